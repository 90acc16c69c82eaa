package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/rbee/rbee/internal/testmodel"
)

// What the scripted model says; testmodel.ReplyMarker(i) in a message
// selects reply i.
var agentReplies = []string{
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
	"It is sunny in Paris.",
	// In the order the schema below lists its properties once the client
	// marshals it (a Go map: sorted), which the grammar keeps.
	"{\"celsius\": 21, \"city\": \"Paris\"}",
}

// The official OpenAI Go client drives an agent's loop through a real
// queen, hive and worker on a scripted model: the model calls a tool, the
// client sends the result, the model answers; streamed calls reassemble;
// a json_schema answer parses into a Go struct.
func TestAgentToolRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := filepath.Join(e.home, "agent.gguf")
	must(t, testmodel.WriteScripted(path, agentReplies, testmodel.ScriptOptions{}))
	e.mustRbee("queen", "start")
	e.mustRbee("hive", "start")
	e.mustRbee("model", "download", path) // catalog id "agent"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := sdk.NewClient(option.WithBaseURL(e.queenURL+"/v1"), option.WithAPIKey("none"), option.WithMaxRetries(0))
	tools := []sdk.ChatCompletionToolUnionParam{sdk.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: sdk.String("The weather of a city"),
		Parameters: shared.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required":   []string{"city"},
		},
	})}
	msgs := []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("What is the weather in Paris?")}
	params := sdk.ChatCompletionNewParams{Model: "agent", Messages: msgs, Tools: tools, Temperature: sdk.Float(0)}
	chat, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("chat: %v\nqueen log:\n%s", err, e.log("queen-rbee.log"))
	}
	choice := chat.Choices[0]
	if choice.FinishReason != "tool_calls" || len(choice.Message.ToolCalls) != 1 {
		t.Fatalf("first turn: %s", chat.RawJSON())
	}
	call := choice.Message.ToolCalls[0]
	var args struct{ City string }
	if call.Function.Name != "get_weather" || json.Unmarshal([]byte(call.Function.Arguments), &args) != nil || args.City != "Paris" || call.ID == "" {
		t.Fatalf("call: %+v", call)
	}

	// The client sends the call and its result back; the model answers.
	msgs = append(msgs, choice.Message.ToParam(), sdk.ToolMessage(`{"sky": "sunny"} `+testmodel.ReplyMarker(1), call.ID))
	params.Messages = msgs
	final, err := c.Chat.Completions.New(ctx, params)
	must(t, err)
	if got := final.Choices[0]; got.Message.Content != agentReplies[1] || got.FinishReason != "stop" || len(got.Message.ToolCalls) != 0 {
		t.Errorf("final answer: %s", final.RawJSON())
	}
	if final.Usage.PromptTokensDetails.CachedTokens == 0 {
		t.Errorf("the second turn reused nothing of the first: %+v", final.Usage)
	}

	// Streamed, the call arrives in pieces the client's accumulator joins.
	params.Messages = msgs[:1]
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc sdk.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	must(t, stream.Err())
	if got := acc.Choices[0]; got.FinishReason != "tool_calls" || len(got.Message.ToolCalls) != 1 ||
		got.Message.ToolCalls[0].Function.Name != "get_weather" || !strings.Contains(got.Message.ToolCalls[0].Function.Arguments, "Paris") {
		t.Errorf("streamed call: %+v", got)
	}

	// Structured output: the answer parses into the caller's struct.
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"city":    map[string]any{"type": "string"},
			"celsius": map[string]any{"type": "integer"},
		},
		"required":             []string{"city", "celsius"},
		"additionalProperties": false,
	}
	out, err := c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{
		Model:       "agent",
		Messages:    []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("Report " + testmodel.ReplyMarker(2))},
		Temperature: sdk.Float(0),
		ResponseFormat: sdk.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "report", Schema: schema, Strict: sdk.Bool(true)},
		}},
	})
	must(t, err)
	var report struct {
		City    string `json:"city"`
		Celsius int    `json:"celsius"`
	}
	if err := json.Unmarshal([]byte(out.Choices[0].Message.Content), &report); err != nil || report.City != "Paris" || report.Celsius != 21 {
		t.Errorf("structured output %q: %v %+v", out.Choices[0].Message.Content, err, report)
	}
}
