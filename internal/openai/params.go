package openai

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// MaxTokensLimit bounds max_tokens before any worker is asked: no model's
// context comes near it, so a larger value is a mistake or an attack.
const MaxTokensLimit = 1 << 24

// samplerRequest validates the fields chat and completions share and
// builds the worker request from them. Ranges are OpenAI's (temperature 0
// to 2, penalties -2 to 2), which the worker's own limits contain.
func samplerRequest(model string, maxTokens *int64, maxParam string, p sampler) (wire.InferenceRequest, *wire.Error) {
	var req wire.InferenceRequest
	switch {
	case model == "":
		return req, badParam("model", "model is required: one of the ids GET /v1/models lists")
	case p.N != nil && *p.N != 1:
		return req, badParam("n", "n must be 1: rbee generates one choice per request, got %d", *p.N)
	}
	if v := maxTokens; v != nil {
		if *v < 1 || *v > MaxTokensLimit {
			return req, badParam(maxParam, "%s must be from 1 to %d, got %d", maxParam, MaxTokensLimit, *v)
		}
		n := int(*v)
		req.MaxTokens = &n
	}
	if v := p.Temperature; v != nil {
		if math.IsNaN(*v) || *v < 0 || *v > 2 {
			return req, badParam("temperature", "temperature must be from 0 to 2, got %v", *v)
		}
		req.Temperature = v
	}
	if v := p.TopP; v != nil {
		switch {
		case math.IsNaN(*v) || *v < 0 || *v > 1:
			return req, badParam("top_p", "top_p must be from 0 to 1, got %v", *v)
		case *v == 0:
			// No probability mass: only the most likely token remains.
			one := 1
			req.TopK = &one
		default:
			req.TopP = v
		}
	}
	if v := p.TopK; v != nil {
		if *v < 0 || *v > wire.MaxTopK {
			return req, badParam("top_k", "top_k must be from 0 (off) to %d, got %d", wire.MaxTopK, *v)
		}
		if req.TopK == nil || *v != 0 && *v < int64(*req.TopK) {
			k := int(*v)
			req.TopK = &k
		}
	}
	if v := p.MinP; v != nil {
		if math.IsNaN(*v) || *v < 0 || *v > 1 {
			return req, badParam("min_p", "min_p must be from 0 to 1, got %v", *v)
		}
		req.MinP = v
	}
	rp, rpParam := p.RepetitionPenalty, "repetition_penalty"
	if v := p.RepeatPenalty; v != nil {
		if rp != nil && *rp != *v {
			return req, badParam("repeat_penalty", "repeat_penalty is another name of repetition_penalty: give one, or the same value")
		}
		rp, rpParam = v, "repeat_penalty"
	}
	if rp != nil {
		if math.IsNaN(*rp) || *rp <= 0 || *rp > 10 {
			return req, badParam(rpParam, "%s must be above 0 and at most 10 (1 is off), got %v", rpParam, *rp)
		}
		req.RepetitionPenalty = rp
	}
	for _, f := range []struct {
		name string
		v    *float64
		to   **float64
	}{{"presence_penalty", p.PresencePenalty, &req.PresencePenalty}, {"frequency_penalty", p.FrequencyPenalty, &req.FrequencyPenalty}} {
		if f.v == nil {
			continue
		}
		if math.IsNaN(*f.v) || *f.v < -2 || *f.v > 2 {
			return req, badParam(f.name, "%s must be from -2 to 2, got %v", f.name, *f.v)
		}
		*f.to = f.v
	}
	if len(p.LogitBias) > wire.MaxLogitBias {
		return req, badParam("logit_bias", "logit_bias holds %d tokens; the limit is %d", len(p.LogitBias), wire.MaxLogitBias)
	}
	for tok, v := range p.LogitBias {
		if id, err := strconv.ParseInt(tok, 10, 32); err != nil || id < 0 {
			return req, badParam("logit_bias", "logit_bias keys must be token ids (\"1234\"), got %.32q", tok)
		}
		if math.IsNaN(v) || v < -100 || v > 100 {
			return req, badParam("logit_bias", "logit_bias values must be from -100 to 100, got %v for token %s", v, tok)
		}
	}
	if len(p.LogitBias) > 0 {
		req.LogitBias = p.LogitBias
	}
	if v := p.Seed; v != nil {
		// OpenAI seeds are 64-bit and the sampler's 32: the same seed still
		// gives the same text, which is all a seed promises.
		s := uint32(*v)
		req.Seed = &s
	}
	if len(p.Stop) > wire.MaxStops {
		return req, badParam("stop", "at most %d stop sequences, got %d", wire.MaxStops, len(p.Stop))
	}
	for _, s := range p.Stop {
		if s == "" || len(s) > wire.MaxStopBytes {
			return req, badParam("stop", "each stop sequence must be 1 to %d bytes", wire.MaxStopBytes)
		}
	}
	req.Stop = p.Stop
	return req, nil
}

// validate is the worker's own check of req, the last one before it is
// sent; the fields were checked one by one already, so what it finds names
// no field.
func validate(req wire.InferenceRequest) *wire.Error {
	if err := req.Validate(); err != nil {
		return badParam("", "%v", err)
	}
	return nil
}

// Roles a chat message may have. "developer" is OpenAI's newer name for
// "system", which is what chat templates know.
var roles = map[string]string{
	"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
}

// chatMessages validates a conversation and turns it into the worker's
// messages.
func chatMessages(in []chatMessage) ([]wire.ChatMessage, *wire.Error) {
	if len(in) == 0 {
		return nil, badParam("messages", "messages must hold at least one message")
	}
	if len(in) > wire.MaxMessages {
		return nil, badParam("messages", "at most %d messages, got %d", wire.MaxMessages, len(in))
	}
	out := make([]wire.ChatMessage, len(in))
	size := 0
	for i, m := range in {
		param := "messages[" + strconv.Itoa(i) + "]"
		role, ok := roles[m.Role]
		switch {
		case m.Role == "function":
			return nil, badParam(param+".role", "%s.role function is deprecated and not supported: use tool messages", param)
		case !ok:
			return nil, badParam(param+".role", "%s.role must be system, developer, user, assistant or tool, got %.32q", param, m.Role)
		case len(m.Audio) > 0 && string(m.Audio) != "null":
			return nil, badParam(param+".audio", "%s.audio: audio is not supported, rbee models take text only", param)
		case len(m.FunctionCall) > 0 && string(m.FunctionCall) != "null":
			return nil, badParam(param+".function_call", "%s.function_call is deprecated and not supported: use tool_calls", param)
		case role == "tool" && m.ToolCallID == "":
			return nil, badParam(param+".tool_call_id", "%s.tool_call_id is required: the id of the call this message answers", param)
		case len(m.ToolCalls) > 0 && role != "assistant":
			return nil, badParam(param+".tool_calls", "%s.tool_calls: only assistant messages hold tool calls", param)
		}
		text, err := contentText(m.Content, param)
		if err != nil {
			return nil, err
		}
		if m.Refusal != nil && text == "" {
			text = *m.Refusal
		}
		msg := wire.ChatMessage{Role: role, Content: text, ReasoningContent: m.ReasoningContent,
			ToolCallID: m.ToolCallID, Name: m.Name}
		for j, c := range m.ToolCalls {
			cp := param + ".tool_calls[" + strconv.Itoa(j) + "]"
			if c.Type != "" && c.Type != "function" {
				return nil, badParam(cp+".type", "%s.type must be function, got %.32q", cp, c.Type)
			}
			if c.Function.Name == "" {
				return nil, badParam(cp+".function.name", "%s.function.name is required", cp)
			}
			args, aerr := callArguments(c.Function.Arguments, cp)
			if aerr != nil {
				return nil, aerr
			}
			msg.ToolCalls = append(msg.ToolCalls, wire.ToolCall{ID: c.ID, Type: "function",
				Function: wire.ToolCallFunction{Name: c.Function.Name, Arguments: args}})
			size += len(c.Function.Name) + len(args)
		}
		size += len(text) + len(m.ReasoningContent)
		if size > wire.MaxPromptBytes {
			return nil, badParam("messages", "the messages hold more than %d bytes of text", wire.MaxPromptBytes)
		}
		out[i] = msg
	}
	return out, nil
}

// callArguments is the arguments of a call in the conversation as JSON
// text: OpenAI sends a string holding JSON; a JSON object is taken too.
func callArguments(raw json.RawMessage, param string) (string, *wire.Error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return "{}", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badParam(param+".function.arguments", "%s.function.arguments is not a valid string", param)
		}
		return s, nil
	case raw[0] == '{':
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return "", badParam(param+".function.arguments", "%s.function.arguments is not valid JSON", param)
		}
		return b.String(), nil
	}
	return "", badParam(param+".function.arguments", "%s.function.arguments must be a string of JSON", param)
}

// contentText is a message's content as text: a string, null, or the text
// of a list of parts. Other parts (images, audio, files) are refused rather
// than dropped, since the answer would ignore them.
func contentText(raw json.RawMessage, param string) (string, *wire.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badParam(param+".content", "%s.content is not a valid string", param)
		}
		return s, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badParam(param+".content", "%s.content must be a string or a list of content parts", param)
	}
	var b strings.Builder
	for j, p := range parts {
		switch p.Type {
		case "text":
			b.WriteString(p.Text)
		case "refusal":
			b.WriteString(p.Refusal)
		default:
			return "", badParam(param+".content", "%s.content[%d] is of type %.32q; rbee models take text only", param, j, p.Type)
		}
	}
	return b.String(), nil
}

// MaxPrompts bounds the prompts of one completions request: each takes a
// slot of the model's workers.
const MaxPrompts = 32

// promptTexts are the prompts of /v1/completions: a string, or a list of
// strings, each a choice of the answer. Token ids are refused: the queen
// has no tokenizer.
func promptTexts(raw json.RawMessage) ([]string, *wire.Error) {
	raw = bytes.TrimSpace(raw)
	var list []string
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return nil, badParam("prompt", "prompt is required")
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badParam("prompt", "prompt is not a valid string")
		}
		list = []string{s}
	default:
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, badParam("prompt", "prompt must be a string or a list of strings; token ids are not supported")
		}
	}
	switch {
	case len(list) == 0:
		return nil, badParam("prompt", "prompt is an empty list")
	case len(list) > MaxPrompts:
		return nil, badParam("prompt", "at most %d prompts in one request, got %d", MaxPrompts, len(list))
	}
	for i, s := range list {
		p := "prompt"
		if raw[0] == '[' {
			p = "prompt[" + strconv.Itoa(i) + "]"
		}
		switch {
		case s == "":
			return nil, badParam("prompt", "%s is empty", p)
		case len(s) > wire.MaxPromptBytes:
			return nil, badParam("prompt", "%s is %d bytes; the limit is %d", p, len(s), wire.MaxPromptBytes)
		}
	}
	return list, nil
}

// finishReason is OpenAI's name for a worker's stop reason.
func finishReason(stop string) string {
	switch stop {
	case wire.StopMaxTokens, wire.StopContextLimit:
		return "length"
	case wire.StopToolCalls:
		return "tool_calls"
	}
	return "stop"
}
