package chattemplate

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchInput is a 20-message chat with two tools: a system message, then
// rounds of user question, assistant tool call, tool result and answer.
func benchInput() Input {
	in := Input{
		AddGenerationPrompt: true,
		BOS:                 "<|begin_of_text|>",
		EOS:                 "<|eot_id|>",
		Now:                 goldenNow,
		Tools: []json.RawMessage{
			json.RawMessage(`{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}`),
			json.RawMessage(`{"type":"function","function":{"name":"search","description":"Search the web.","parameters":{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":10}},"required":["query"]}}}`),
		},
		Messages: []Message{{Role: "system", Content: "You are a helpful assistant with tools. Answer briefly and cite sources."}},
	}
	for i := 0; len(in.Messages) < 19; i++ {
		id := fmt.Sprintf("call%05d", i)
		in.Messages = append(in.Messages,
			Message{Role: "user", Content: fmt.Sprintf("What is the weather in city number %d, and is it good for a walk this afternoon?", i)},
			Message{Role: "assistant", ToolCalls: []ToolCall{{ID: id, Type: "function", Function: FunctionCall{Name: "get_weather", Arguments: fmt.Sprintf(`{"city": "City %d", "unit": "celsius"}`, i)}}}},
			Message{Role: "tool", ToolCallID: id, Content: `{"temperature": 21.5, "sky": "clear", "wind_kmh": 12}`},
			Message{Role: "assistant", Content: "It is 21.5 °C and clear with a light wind: a good afternoon for a walk."},
		)
	}
	in.Messages = append(in.Messages[:19], Message{Role: "user", Content: "Thanks! And tomorrow?"})
	return in
}

func BenchmarkRender(b *testing.B) {
	in := benchInput()
	if len(in.Messages) != 20 {
		b.Fatalf("%d messages", len(in.Messages))
	}
	for _, name := range []string{"meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-8B"} {
		b.Run(name, func(b *testing.B) {
			tpl, err := Parse(readTemplate(b, name))
			if err != nil {
				b.Fatal(err)
			}
			in := in
			if name == "mistralai-Mistral-7B-Instruct-v0.3" {
				// Mistral wants a reply before the next question; the
				// conversation ends on a user message either way.
				in.Messages = in.Messages[:len(in.Messages):len(in.Messages)]
			}
			out, err := tpl.Render(in)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(out)), "prompt-bytes")
			b.ResetTimer()
			for b.Loop() {
				if _, err := tpl.Render(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRenderCost is the benchmark's figure as a log line for the report
// (go test -run RenderCost -v); it asserts nothing about time.
func TestRenderCost(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	in := benchInput()
	for _, name := range []string{"meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen2.5-7B-Instruct"} {
		tpl, err := Parse(readTemplate(t, name))
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		start := time.Now()
		for range n {
			if _, err := tpl.Render(in); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %v per 20-message render with tools", name, time.Since(start)/n)
	}
}
