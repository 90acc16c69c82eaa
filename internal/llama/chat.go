package llama

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"unsafe"

	"github.com/rbee/rbee/internal/engine"
)

// templateInfo records the model's chat template and the text of its BOS
// and EOS tokens.
func (m *Model) templateInfo() {
	if tmpl := C.llama_model_chat_template(m.model, nil); tmpl != nil {
		m.info.ChatTemplate = C.GoString(tmpl)
	}
	text := func(t C.llama_token) string {
		if t < 0 || int(t) >= m.info.VocabSize {
			return ""
		}
		return C.GoString(C.llama_vocab_get_text(m.vocab, t))
	}
	m.info.BOSText = text(C.llama_vocab_bos(m.vocab))
	m.info.EOSText = text(C.llama_vocab_eos(m.vocab))
}

// ChatPrompt renders msgs with the model's GGUF chat template. llama.cpp
// recognises the common templates by their text; a model without one, or
// with one llama.cpp does not know, gets engine.PlainChat.
func (m *Model) ChatPrompt(msgs []engine.ChatMessage) (string, error) {
	tmpl := C.llama_model_chat_template(m.model, nil)
	if tmpl == nil {
		return engine.PlainChat(msgs), nil
	}
	// The C strings live until the call returns; freed together after.
	chat := make([]C.struct_llama_chat_message, len(msgs))
	var cstrs []*C.char
	defer func() {
		for _, p := range cstrs {
			C.free(unsafe.Pointer(p))
		}
	}()
	cstr := func(s string) *C.char {
		p := C.CString(s)
		cstrs = append(cstrs, p)
		return p
	}
	total := 0
	for i, msg := range msgs {
		chat[i].role = cstr(msg.Role)
		chat[i].content = cstr(msg.Content)
		total += len(msg.Role) + len(msg.Content)
	}
	var first *C.struct_llama_chat_message
	if len(chat) > 0 {
		first = &chat[0]
	}
	size := 2*total + 256
	for range 2 {
		buf := C.malloc(C.size_t(size))
		n := C.llama_chat_apply_template(tmpl, first, C.size_t(len(chat)), true, (*C.char)(buf), C.int32_t(size))
		if n < 0 {
			C.free(buf)
			return engine.PlainChat(msgs), nil
		}
		if int(n) <= size {
			out := C.GoStringN((*C.char)(buf), n)
			C.free(buf)
			return out, nil
		}
		C.free(buf)
		size = int(n)
	}
	return engine.PlainChat(msgs), nil
}
