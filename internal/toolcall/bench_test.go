package toolcall

import (
	"strings"
	"testing"
)

// benchAnswer is a reasoning model's answer with text and two calls.
var benchAnswer = "<think>\n" + strings.Repeat("The user asks about the weather, so I call the tool. ", 20) + "\n</think>\n\n" +
	"Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"" + strings.Repeat("Paris ", 50) + "\"}}\n</tool_call>\n" +
	"<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"

// BenchmarkStream feeds the answer in 4-byte pieces, about a token each.
func BenchmarkStream(b *testing.B) {
	opt := Options{Reasoning: true, Tools: weatherTools}
	b.SetBytes(int64(len(benchAnswer)))
	for b.Loop() {
		s := NewStream(Hermes, opt)
		for i := 0; i < len(benchAnswer); i += 4 {
			s.Add(benchAnswer[i:min(i+4, len(benchAnswer))])
		}
		s.Close()
	}
}

// BenchmarkStreamLongCandidate is a call whose text never ends, streamed in
// 4-byte pieces: the scan resumes instead of starting over, so the cost
// per piece does not grow with the candidate.
func BenchmarkStreamLongCandidate(b *testing.B) {
	text := "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"" + strings.Repeat("x", 64<<10)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		s := NewStream(Hermes, tools())
		for i := 0; i < len(text); i += 4 {
			s.Add(text[i:min(i+4, len(text))])
		}
		s.Close()
	}
}
