#ifndef RBEE_BRIDGE_H
#define RBEE_BRIDGE_H
#include <stdint.h>
#include "llama.h"

// rbee_quiet_logs routes llama.cpp and ggml logging to stderr, warnings and
// errors only: the info chatter of a model load is noise in a worker's log.
void rbee_quiet_logs(int verbose);

// rbee_set_progress installs a load-progress callback that calls back into Go
// with the given handle.
void rbee_set_progress(struct llama_model_params *p, uintptr_t handle);

// rbee_batch_set writes token i of a batch for one sequence.
void rbee_batch_set(struct llama_batch *b, int i, llama_token tok, llama_pos pos, llama_seq_id seq, int8_t logits);
#endif
