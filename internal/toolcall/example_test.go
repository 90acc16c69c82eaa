package toolcall_test

import (
	"fmt"

	"github.com/rbee/rbee/internal/toolcall"
)

// A streamed answer becomes OpenAI chunk deltas: content, then each call's
// header (index, id, type, name, empty arguments) and its arguments.
func ExampleStream() {
	opt := toolcall.Options{Tools: []toolcall.Tool{{Name: "get_weather"}}}
	s := toolcall.NewStream(toolcall.Hermes, opt)
	pieces := []string{"Let me look.", "\n<tool_", "call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"}
	var deltas []toolcall.Delta
	for _, p := range pieces {
		deltas = append(deltas, s.Add(p)...)
	}
	deltas = append(deltas, s.Close()...)
	for _, d := range deltas {
		switch c := d.Call; {
		case c != nil && c.ID != "":
			fmt.Printf(`{"tool_calls":[{"index":%d,"id":"call_…","type":"function","function":{"name":%q,"arguments":""}}]}`+"\n", c.Index, c.Name)
		case c != nil:
			fmt.Printf(`{"tool_calls":[{"index":%d,"function":{"arguments":%q}}]}`+"\n", c.Index, c.Arguments)
		case d.Reasoning != "":
			fmt.Printf(`{"reasoning_content":%q}`+"\n", d.Reasoning)
		default:
			fmt.Printf(`{"content":%q}`+"\n", d.Content)
		}
	}
	// Output:
	// {"content":"Let me look."}
	// {"tool_calls":[{"index":0,"id":"call_…","type":"function","function":{"name":"get_weather","arguments":""}}]}
	// {"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}
}

func ExampleParse() {
	opt := toolcall.Options{Reasoning: true, Tools: []toolcall.Tool{{Name: "get_time"}}}
	r := toolcall.Parse(toolcall.Llama3, "<think>The user wants the time.</think>\n{\"name\": \"get_time\", \"parameters\": {}}", opt)
	fmt.Printf("reasoning %q, content %q, %d call: %s %s\n", r.Reasoning, r.Content, len(r.Calls), r.Calls[0].Name, r.Calls[0].Arguments)
	// Output: reasoning "The user wants the time.", content "", 1 call: get_time {}
}
