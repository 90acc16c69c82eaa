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

// sampling are the request fields chat and completions share.
type sampling struct {
	model       string
	maxTokens   *int64
	maxParam    string // the field maxTokens came from
	temperature *float64
	topP        *float64
	seed        *int64
	stop        stopList
	n           *int64
}

// inferenceRequest validates the shared fields and builds the worker
// request. Ranges are OpenAI's (temperature 0 to 2), which the worker's
// own limits contain.
func (p sampling) inferenceRequest() (wire.InferenceRequest, *wire.Error) {
	var req wire.InferenceRequest
	switch {
	case p.model == "":
		return req, badParam("model", "model is required: one of the ids GET /v1/models lists")
	case p.n != nil && *p.n != 1:
		return req, badParam("n", "n must be 1: rbee generates one choice per request, got %d", *p.n)
	}
	if v := p.maxTokens; v != nil {
		if *v < 1 || *v > MaxTokensLimit {
			return req, badParam(p.maxParam, "%s must be from 1 to %d, got %d", p.maxParam, MaxTokensLimit, *v)
		}
		n := int(*v)
		req.MaxTokens = &n
	}
	if v := p.temperature; v != nil {
		if math.IsNaN(*v) || *v < 0 || *v > 2 {
			return req, badParam("temperature", "temperature must be from 0 to 2, got %v", *v)
		}
		req.Temperature = v
	}
	if v := p.topP; v != nil {
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
	if v := p.seed; v != nil {
		// OpenAI seeds are 64-bit and the sampler's 32: the same seed still
		// gives the same text, which is all a seed promises.
		s := uint32(*v)
		req.Seed = &s
	}
	if len(p.stop) > wire.MaxStops {
		return req, badParam("stop", "at most %d stop sequences, got %d", wire.MaxStops, len(p.stop))
	}
	for _, s := range p.stop {
		if s == "" || len(s) > wire.MaxStopBytes {
			return req, badParam("stop", "each stop sequence must be 1 to %d bytes", wire.MaxStopBytes)
		}
	}
	req.Stop = p.stop
	return req, nil
}

// Roles a chat message may have. "developer" is OpenAI's newer name for
// "system", which is what chat templates know.
var roles = map[string]string{
	"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
	"tool": "tool", "function": "function",
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
		if !ok {
			return nil, badParam(param+".role", "%s.role must be system, developer, user, assistant or tool, got %.32q", param, m.Role)
		}
		text, err := contentText(m.Content, param)
		if err != nil {
			return nil, err
		}
		size += len(text)
		if size > wire.MaxPromptBytes {
			return nil, badParam("messages", "the messages hold more than %d bytes of text", wire.MaxPromptBytes)
		}
		out[i] = wire.ChatMessage{Role: role, Content: text}
	}
	return out, nil
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

// promptText is the prompt of /v1/completions: a string, or a list of
// exactly one string. Lists of several prompts and token ids are refused.
func promptText(raw json.RawMessage) (string, *wire.Error) {
	raw = bytes.TrimSpace(raw)
	var s string
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return "", badParam("prompt", "prompt is required")
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badParam("prompt", "prompt is not a valid string")
		}
	default:
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", badParam("prompt", "prompt must be a string or a list of one string; token ids are not supported")
		}
		if len(list) != 1 {
			return "", badParam("prompt", "prompt must hold exactly one string: rbee completes one prompt per request, got %d", len(list))
		}
		s = list[0]
	}
	switch {
	case s == "":
		return "", badParam("prompt", "prompt is empty")
	case len(s) > wire.MaxPromptBytes:
		return "", badParam("prompt", "prompt is %d bytes; the limit is %d", len(s), wire.MaxPromptBytes)
	}
	return s, nil
}

// finishReason is OpenAI's name for a worker's stop reason.
func finishReason(stop string) string {
	switch stop {
	case wire.StopMaxTokens, wire.StopContextLimit:
		return "length"
	}
	return "stop"
}
