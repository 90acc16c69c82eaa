package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/rbee/rbee/internal/grammar"
	"github.com/rbee/rbee/internal/wire"
)

// chatOptions adds the chat-only fields to req: logprobs, response_format,
// tools, tool_choice and reasoning_effort. Schemas (of response_format and
// of each tool's parameters) are converted to a grammar here too, so that
// one the worker could not enforce is a 400 naming it before any worker is
// chosen or started; the worker converts them again.
func chatOptions(in *chatRequest, req *wire.InferenceRequest) *wire.Error {
	if err := logprobOptions(in.Logprobs, in.TopLogprobs, req); err != nil {
		return err
	}
	if err := formatOption(in.ResponseFormat, req); err != nil {
		return err
	}
	if err := toolOptions(in.Tools, in.ToolChoice, req); err != nil {
		return err
	}
	if v := in.ReasoningEffort; v != nil {
		switch *v {
		case "none", "minimal", "low", "medium", "high", "xhigh":
			req.ReasoningEffort = *v
		default:
			return badParam("reasoning_effort", "reasoning_effort must be none, minimal, low, medium, high or xhigh, got %.32q", *v)
		}
	}
	return nil
}

func logprobOptions(logprobs *bool, top *int64, req *wire.InferenceRequest) *wire.Error {
	req.Logprobs = logprobs != nil && *logprobs
	if top == nil {
		return nil
	}
	switch {
	case *top < 0 || *top > wire.MaxTopLogprobs:
		return badParam("top_logprobs", "top_logprobs must be from 0 to %d, got %d", wire.MaxTopLogprobs, *top)
	case !req.Logprobs:
		return badParam("top_logprobs", "top_logprobs needs logprobs: true")
	}
	n := int(*top)
	req.TopLogprobs = &n
	return nil
}

// formatOption reads response_format. text asks for nothing; a json_schema
// without a schema is any JSON object, as json_object.
func formatOption(f *responseFormat, req *wire.InferenceRequest) *wire.Error {
	if f == nil {
		return nil
	}
	switch f.Type {
	case wire.FormatText:
		return nil
	case wire.FormatJSONObject:
		req.ResponseFormat = &wire.ResponseFormat{Type: wire.FormatJSONObject}
		return nil
	case wire.FormatJSONSchema:
	default:
		return badParam("response_format.type", "response_format.type must be text, json_object or json_schema, got %.32q", f.Type)
	}
	if f.JSONSchema == nil {
		return badParam("response_format.json_schema", "response_format.json_schema is required with type json_schema: {\"name\", \"schema\"}")
	}
	schema := bytes.TrimSpace(f.JSONSchema.Schema)
	if len(schema) == 0 || bytes.Equal(schema, []byte("null")) {
		req.ResponseFormat = &wire.ResponseFormat{Type: wire.FormatJSONObject}
		return nil
	}
	if err := checkSchema(schema, "response_format.json_schema.schema"); err != nil {
		return err
	}
	req.ResponseFormat = &wire.ResponseFormat{Type: wire.FormatJSONSchema, Schema: schema}
	return nil
}

// checkSchema refuses a schema the grammar converter cannot enforce, or
// one that is not a JSON Schema.
func checkSchema(schema json.RawMessage, param string) *wire.Error {
	if len(schema) > wire.MaxSchemaBytes {
		return badParam(param, "%s is %d bytes; the limit is %d", param, len(schema), wire.MaxSchemaBytes)
	}
	_, err := grammar.FromSchema(schema)
	if err == nil {
		return nil
	}
	var (
		unsupported *grammar.UnsupportedError
		invalid     *grammar.SchemaError
	)
	switch {
	case errors.As(err, &unsupported):
		return badParam(param, "%s: %v (rbee enforces schemas while sampling and refuses what it cannot enforce)", param, err)
	case errors.As(err, &invalid):
		return badParam(param, "%s: %v", param, err)
	}
	return badParam(param, "%s cannot be used: %v", param, err)
}

// toolOptions reads tools and tool_choice.
func toolOptions(tools []toolParam, choice json.RawMessage, req *wire.InferenceRequest) *wire.Error {
	if len(tools) > wire.MaxTools {
		return badParam("tools", "at most %d tools, got %d", wire.MaxTools, len(tools))
	}
	names := map[string]bool{}
	for i, t := range tools {
		p := "tools[" + strconv.Itoa(i) + "]"
		switch {
		case t.Type != "function":
			return badParam(p+".type", "%s.type must be function (rbee has no custom tools), got %.32q", p, t.Type)
		case t.Function == nil:
			return badParam(p+".function", "%s.function is required", p)
		case names[t.Function.Name]:
			return badParam(p+".function.name", "%s: a second function named %.64q", p, t.Function.Name)
		}
		if err := checkToolName(t.Function.Name); err != "" {
			return badParam(p+".function.name", "%s.function.name %s", p, err)
		}
		names[t.Function.Name] = true
		params := bytes.TrimSpace(t.Function.Parameters)
		if bytes.Equal(params, []byte("null")) {
			params = nil
		}
		if len(params) > 0 {
			if err := checkSchema(params, p+".function.parameters"); err != nil {
				return err
			}
		}
		req.Tools = append(req.Tools, wire.Tool{Type: "function", Function: wire.ToolFunction{
			Name: t.Function.Name, Description: t.Function.Description, Parameters: params, Strict: t.Function.Strict}})
	}
	c, err := toolChoice(choice)
	if err != nil || c == nil {
		return err
	}
	switch {
	case c.Mode == wire.ToolChoiceRequired && len(tools) == 0:
		return badParam("tool_choice", "tool_choice required needs tools")
	case c.Mode == wire.ToolChoiceFunction && !names[c.Name]:
		return badParam("tool_choice", "tool_choice names the function %.64q, which is not among the tools", c.Name)
	}
	req.ToolChoice = c
	return nil
}

// toolChoice reads "none", "auto", "required" or
// {"type":"function","function":{"name":...}}; nil when absent.
func toolChoice(raw json.RawMessage) (*wire.ToolChoice, *wire.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		switch mode {
		case wire.ToolChoiceNone, wire.ToolChoiceAuto, wire.ToolChoiceRequired:
			return &wire.ToolChoice{Mode: mode}, nil
		}
		return nil, badParam("tool_choice", "tool_choice must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}, got %.32q", mode)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, badParam("tool_choice", "tool_choice must be a string or an object")
	}
	switch {
	case obj.Type != "function":
		return nil, badParam("tool_choice", "tool_choice type %.32q is not supported: use none, auto, required or a function", obj.Type)
	case obj.Function.Name == "":
		return nil, badParam("tool_choice", "tool_choice.function.name is required")
	}
	return &wire.ToolChoice{Mode: wire.ToolChoiceFunction, Name: obj.Function.Name}, nil
}

// checkToolName accepts OpenAI's function names: 1 to 64 letters, digits,
// underscores and dashes (and dots, which the worker takes too). It says
// what is wrong, or "".
func checkToolName(s string) string {
	if s == "" || len(s) > 64 {
		return "must be 1 to 64 characters, got " + strconv.Itoa(len(s))
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "may hold only letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}
