package openai

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// The fields OpenAI defines that rbee does not read into its request
// types: each is either refused with a 400 naming it (rbee cannot do what
// it asks, and an answer that ignored it would be wrong) or accepted and
// ignored on purpose (it asks nothing of the answer). A field no OpenAI
// endpoint defines is accepted, as OpenAI clients and SDKs add their own.

// ignoredFields are accepted and ignored on both endpoints, with the
// reason (the README lists them).
var ignoredFields = map[string]string{
	"user":                   "an end-user id for OpenAI's abuse monitoring; rbee keeps no such records",
	"safety_identifier":      "user's successor, for the same monitoring",
	"store":                  "asks OpenAI to keep the answer for its dashboard; rbee stores no answers",
	"metadata":               "tags for stored answers, which rbee does not keep",
	"service_tier":           "OpenAI's processing tiers; rbee has one",
	"prompt_cache_key":       "a routing hint for OpenAI's prompt cache; rbee's cache and routing find shared prefixes themselves",
	"prompt_cache_retention": "how long OpenAI keeps cached prompts; rbee's cache keeps them while memory allows",
}

// refusal is why a field is refused, and the value that is accepted anyway
// because it asks for what rbee does (nil: only null).
type refusal struct {
	why   string
	allow func(json.RawMessage) bool
}

var textOnly = func(v json.RawMessage) bool {
	var m []string
	return json.Unmarshal(v, &m) == nil && (len(m) == 0 || len(m) == 1 && m[0] == "text")
}

// equals allows one JSON value (one that asks for nothing).
func equals(want string) func(json.RawMessage) bool {
	return func(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == want }
}

// chatRefused are OpenAI's chat fields rbee refuses, and fields of
// /v1/completions sent to chat.
var chatRefused = map[string]refusal{
	"modalities":         {"rbee models answer in text only (modalities may be [\"text\"])", textOnly},
	"audio":              {"audio output is not supported: rbee models answer in text", nil},
	"prediction":         {"predicted outputs are not supported", nil},
	"web_search_options": {"rbee has no web search", nil},
	"functions":          {"functions is deprecated and not supported: use tools", nil},
	"function_call":      {"function_call is deprecated and not supported: use tool_choice", nil},
	"verbosity":          {"verbosity is not supported: rbee models have no verbosity setting", nil},
	"prompt":             {"prompt is a field of /v1/completions: chat takes messages", nil},
	"echo":               {"echo is a field of /v1/completions", equals("false")},
	"best_of":            {"best_of is a field of /v1/completions", equals("1")},
	"suffix":             {"suffix is a field of /v1/completions", equals(`""`)},
}

// completionRefused are fields of chat sent to /v1/completions: each asks
// for something a completion cannot give.
var completionRefused = map[string]refusal{
	"messages":              {"messages is a field of /v1/chat/completions: completions take prompt", nil},
	"tools":                 {"tools need a chat: use /v1/chat/completions", nil},
	"tool_choice":           {"tool_choice needs a chat: use /v1/chat/completions", nil},
	"parallel_tool_calls":   {"parallel_tool_calls needs a chat: use /v1/chat/completions", nil},
	"reasoning_effort":      {"reasoning_effort needs a chat template: use /v1/chat/completions", nil},
	"max_completion_tokens": {"completions take max_tokens", nil},
	"top_logprobs":          {"completions take logprobs as the number of top tokens (0 to 5)", nil},
	"modalities":            chatRefused["modalities"],
	"audio":                 chatRefused["audio"],
	"prediction":            chatRefused["prediction"],
}

// checkFields refuses the first field of body (by name) in refused whose
// value is neither null nor allowed.
func checkFields(body []byte, refused map[string]refusal) *wire.Error {
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil {
		return nil // decoding the request already said what is wrong
	}
	var bad []string
	for k, v := range raw {
		r, ok := refused[k]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) || r.allow != nil && r.allow(v) {
			continue
		}
		bad = append(bad, k)
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	why := refused[bad[0]].why
	if !strings.HasPrefix(why, bad[0]+" ") {
		why = bad[0] + ": " + why
	}
	return badParam(bad[0], "%s", why)
}
