package testmodel

import "github.com/rbee/rbee/internal/gguf"

// ChatTemplateKey is the GGUF key llama.cpp and the worker read a model's
// Jinja chat template from.
const ChatTemplateKey = "tokenizer.chat_template"

// WriteAlphabetChatTemplate writes the alphabet model (see WriteAlphabet)
// with chatTemplate as its tokenizer.chat_template, so that tests can load
// a model that carries a real family's template.
func WriteAlphabetChatTemplate(path, chatTemplate string) error {
	kvs := append(alphabetKVs(), gguf.WriteKV{Key: ChatTemplateKey, Value: chatTemplate})
	return gguf.WriteFile(path, kvs, alphabetTensors())
}
