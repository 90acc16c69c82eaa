package toolcall

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Choice is the request's tool_choice: Mode none, auto, required or
// function (Name is then the function's name).
type Choice struct {
	Mode string
	Name string
}

// GenericPrompt is the system prompt text that describes tools to a model
// whose template knows none, in the generic format (see the package
// comment). tools are the request's tool objects as sent
// ({"type": "function", "function": {...}}). It is empty with no tools or
// with tool_choice none, where the model is not to call any.
func GenericPrompt(tools []json.RawMessage, choice Choice) string {
	if len(tools) == 0 || choice.Mode == "none" {
		return ""
	}
	var b strings.Builder
	b.WriteString("# Tools\n\n")
	b.WriteString("You may call one or more functions to assist with the user query.\n\n")
	b.WriteString("You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n")
	for _, t := range tools {
		var c bytes.Buffer
		if json.Compact(&c, t) != nil {
			c.Reset()
			c.Write(bytes.TrimSpace(t))
		}
		b.Write(c.Bytes())
		b.WriteByte('\n')
	}
	b.WriteString("</tools>\n\n")
	b.WriteString("For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
	b.WriteString("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n")
	switch choice.Mode {
	case "required":
		b.WriteString("\nYou must call at least one function now; answer with <tool_call> blocks only.\n")
	case "function":
		b.WriteString("\nYou must call the function \"" + choice.Name + "\" now; answer with its <tool_call> block only.\n")
	default:
		b.WriteString("\nCall a function only when it helps; otherwise answer the user directly.\n")
	}
	return b.String()
}
