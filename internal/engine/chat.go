package engine

import "strings"

// ChatMessage is one turn of a conversation.
type ChatMessage struct {
	Role    string
	Content string
}

// PlainChat is the prompt for models whose GGUF has no chat template that
// llama.cpp knows: one "role: content" line per message, then "assistant:"
// for the model to continue. Content that starts with a space follows the
// colon as it is: an assistant's reply sent back then reads exactly as the
// model wrote it after "assistant:", so the prompt cache reuses it.
func PlainChat(msgs []ChatMessage) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(":")
		if !strings.HasPrefix(m.Content, " ") {
			b.WriteString(" ")
		}
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString("assistant:")
	return b.String()
}
