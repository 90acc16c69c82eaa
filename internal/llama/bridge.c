#include <stdio.h>
#include "bridge.h"
#include "_cgo_export.h"

static int rbee_verbose = 0;
static enum ggml_log_level rbee_last_level = GGML_LOG_LEVEL_NONE;

static void rbee_log(enum ggml_log_level level, const char *text, void *user) {
	(void)user;
	if (level == GGML_LOG_LEVEL_CONT) {
		level = rbee_last_level;
	} else {
		rbee_last_level = level;
	}
	if (rbee_verbose || level >= GGML_LOG_LEVEL_WARN) {
		fputs(text, stderr);
	}
}

void rbee_quiet_logs(int verbose) {
	rbee_verbose = verbose;
	llama_log_set(rbee_log, NULL);
}

static bool rbee_progress(float p, void *user) {
	return goLoadProgress(p, (uintptr_t)user);
}

void rbee_set_progress(struct llama_model_params *p, uintptr_t handle) {
	p->progress_callback = rbee_progress;
	p->progress_callback_user_data = (void *)handle;
}

void rbee_batch_set(struct llama_batch *b, int i, llama_token tok, llama_pos pos, llama_seq_id seq, int8_t logits) {
	b->token[i] = tok;
	b->pos[i] = pos;
	b->n_seq_id[i] = 1;
	b->seq_id[i][0] = seq;
	b->logits[i] = logits;
}
