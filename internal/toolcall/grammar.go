package toolcall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rbee/rbee/internal/grammar"
)

// UnknownToolError is a tool_choice that names a function the request
// does not offer.
type UnknownToolError struct{ Name string }

func (e *UnknownToolError) Error() string {
	return fmt.Sprintf("tool_choice names function %q, which is not among the tools", e.Name)
}

// Grammar is a GBNF grammar that forces the answer to be tool calls in
// format f: one or more calls (several only where the format allows) for
// tool_choice required, exactly one call of the named function for a
// named choice, each call's arguments valid against its tool's parameters
// schema. It is "" for none and auto, where the model may answer in text.
// A schema the converter cannot enforce is the converter's error (a
// *grammar.UnsupportedError or *grammar.SchemaError) wrapped with the
// tool's name.
//
// The calls are written the way the format's templates write them, which
// Parse reads back: <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
// (hermes, generic), {"name": "f", "parameters": {...}} (llama3, calls
// separated by "; "), [TOOL_CALLS] [{"name": "f", "arguments": {...}}]
// (mistral, the space and the marker optional). The grammar starts at the first token of the answer, so a
// reasoning model's prompt should close its think block first.
func Grammar(f Format, tools []Tool, choice Choice) (string, error) {
	var offered []Tool
	switch choice.Mode {
	case "required":
		offered = tools
	case "function":
		for _, t := range tools {
			if t.Name == choice.Name {
				offered = []Tool{t}
				break
			}
		}
		if offered == nil {
			return "", &UnknownToolError{Name: choice.Name}
		}
	default:
		return "", nil
	}
	if len(offered) == 0 {
		return "", fmt.Errorf("tool_choice %q with no tools", choice.Mode)
	}

	b := grammar.NewBuilder()
	argsKey := "arguments"
	if f == Llama3 {
		argsKey = "parameters"
	}
	var alts []string
	for _, t := range offered {
		params := bytes.TrimSpace(t.Parameters)
		if len(params) == 0 || string(params) == "null" {
			params = []byte(`{"type":"object"}`)
		}
		args, err := b.Schema(params)
		if err != nil {
			return "", fmt.Errorf("tool %q: %w", t.Name, err)
		}
		name, _ := json.Marshal(t.Name)
		head := `{"name": ` + string(name) + `, "` + argsKey + `": `
		alts = append(alts, b.Rule(t.Name+"-call", b.Literal(head)+" "+args+" "+b.Literal("}")))
	}
	call := alts[0]
	if len(alts) > 1 {
		call = b.Rule("tool-call", strings.Join(alts, " | "))
	}

	var root string
	switch f {
	case Llama3:
		root = call
		if choice.Mode == "required" {
			root = call + " ( " + b.Literal("; ") + " " + call + " )*"
		}
	case Mistral:
		// Mistral v0.3 templates write "[TOOL_CALLS] [", Nemo's
		// "[TOOL_CALLS][". The marker is optional: it is a control token,
		// which the grammar may not be able to match, and Parse reads the
		// array without it too.
		root = "( " + b.Literal(mistralTag) + " " + b.Literal(" ") + "? )? " + b.Literal("[") + " " + call
		if choice.Mode == "required" {
			root += " ( " + b.Literal(", ") + " " + call + " )*"
		}
		root += " " + b.Literal("]")
	default:
		block := b.Rule("tool-call-block", b.Literal(hermesTag+"\n")+" "+call+" "+b.Literal("\n"+hermesEnd))
		root = block
		if choice.Mode == "required" {
			root = block + " ( " + b.Literal("\n") + " " + block + " )*"
		}
	}
	return b.Grammar(root), nil
}
