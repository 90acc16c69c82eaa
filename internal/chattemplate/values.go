package chattemplate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ardanlabs/jinja"
)

// buildData is the render context, as transformers builds it: messages,
// tools (none when there are none), add_generation_prompt, bos_token,
// eos_token, the optional reasoning switches, and the helpers.
func buildData(in Input, st *renderState, objectArgs bool) (map[string]jinja.Value, error) {
	msgs := make([]jinja.Value, len(in.Messages))
	for i, m := range in.Messages {
		msgs[i] = messageValue(m, objectArgs)
	}
	tools := jinja.None()
	if len(in.Tools) > 0 {
		items := make([]jinja.Value, len(in.Tools))
		for i, raw := range in.Tools {
			v, err := jsonValue(raw)
			if err != nil {
				return nil, fmt.Errorf("chat template: tool %d: %w", i, err)
			}
			items[i] = v
		}
		tools = jinja.NewList(items)
	}
	now := in.Now
	if now == nil {
		now = time.Now
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(msgs),
		"tools":                 tools,
		"add_generation_prompt": jinja.NewBool(in.AddGenerationPrompt),
		"bos_token":             jinja.NewString(in.BOS),
		"eos_token":             jinja.NewString(in.EOS),
		"raise_exception":       st.helper("raise_exception", raiseException),
		"strftime_now":          st.helper("strftime_now", strftimeNow(now)),
		"range":                 st.helper("range", st.rangeFunc),
		tojsonName:              st.helper("tojson", tojsonFilter),
	}
	if in.ReasoningEffort != "" {
		data["reasoning_effort"] = jinja.NewString(in.ReasoningEffort)
	}
	if in.EnableThinking != nil {
		data["enable_thinking"] = jinja.NewBool(*in.EnableThinking)
	}
	return data, nil
}

// messageValue is a message as templates see it. Optional keys are left out
// when empty, because templates test them with `is defined` and `in`
// (Llama 3.1: 'tool_calls' in message). An assistant message that only
// calls tools has content none, as OpenAI sends it. With objectArgs,
// tool-call arguments that are valid JSON go in parsed.
func messageValue(m Message, objectArgs bool) jinja.Value {
	v := jinja.NewDict()
	d := v.AsDict()
	d.Set("role", jinja.NewString(m.Role))
	if m.Content == "" && len(m.ToolCalls) > 0 {
		d.Set("content", jinja.None())
	} else {
		d.Set("content", jinja.NewString(m.Content))
	}
	if m.ReasoningContent != "" {
		d.Set("reasoning_content", jinja.NewString(m.ReasoningContent))
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, tc := range m.ToolCalls {
			calls[i] = toolCallValue(tc, objectArgs)
		}
		d.Set("tool_calls", jinja.NewList(calls))
	}
	if m.ToolCallID != "" {
		d.Set("tool_call_id", jinja.NewString(m.ToolCallID))
	}
	if m.Name != "" {
		d.Set("name", jinja.NewString(m.Name))
	}
	return v
}

func toolCallValue(tc ToolCall, objectArgs bool) jinja.Value {
	fn := jinja.NewDict()
	fd := fn.AsDict()
	fd.Set("name", jinja.NewString(tc.Function.Name))
	args := jinja.NewString(tc.Function.Arguments)
	if objectArgs {
		if v, err := jsonValue([]byte(tc.Function.Arguments)); err == nil {
			args = v
		}
	}
	fd.Set("arguments", args)

	v := jinja.NewDict()
	d := v.AsDict()
	if tc.ID != "" {
		d.Set("id", jinja.NewString(tc.ID))
	}
	typ := tc.Type
	if typ == "" {
		typ = "function"
	}
	d.Set("type", jinja.NewString(typ))
	d.Set("function", fn)
	return v
}

// maxJSONDepth bounds nesting in tool schemas and arguments, which come
// from clients; jsonValue recurses once per level.
const maxJSONDepth = 100

// jsonValue decodes one JSON value into a template value, keeping object
// keys in their order (json.dumps prints them in that order) and integers
// as integers.
func jsonValue(b []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return jinja.Undefined(), err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return jinja.Undefined(), errors.New("invalid JSON: trailing data")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxJSONDepth {
		return jinja.Undefined(), errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := jinja.NewDict()
			d := v.AsDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				key, ok := kt.(string)
				if !ok {
					return jinja.Undefined(), errors.New("invalid JSON object key")
				}
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.Set(key, val)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return v, nil
		case '[':
			var items []jinja.Value
			for dec.More() {
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, val)
			}
			if _, err := dec.Token(); err != nil {
				return jinja.Undefined(), err
			}
			return jinja.NewList(items), nil
		}
		return jinja.Undefined(), fmt.Errorf("invalid JSON delimiter %v", t)
	case string:
		return jinja.NewString(t), nil
	case bool:
		return jinja.NewBool(t), nil
	case nil:
		return jinja.None(), nil
	case json.Number:
		// Python's json keeps integers and floats apart, and so must we:
		// tojson prints 1 and 1.0 differently.
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return jinja.NewInt(i), nil
		}
		// An integer beyond int64 becomes the nearest float: Python would
		// keep it exact, but this engine has no big integers.
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return jinja.Undefined(), fmt.Errorf("JSON number %s out of range", t)
		}
		return jinja.NewFloat(f), nil
	}
	return jinja.Undefined(), fmt.Errorf("unexpected JSON token %v", tok)
}
