package engine

import "strings"

// ChatMessage is one turn of a conversation.
type ChatMessage struct {
	Role    string
	Content string
}

// PlainChat is the prompt for models whose GGUF has no chat template that
// llama.cpp knows: one "role: content" line per message, then "assistant:"
// for the model to continue.
func PlainChat(msgs []ChatMessage) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString("assistant:")
	return b.String()
}
