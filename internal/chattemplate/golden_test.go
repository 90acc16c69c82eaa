package chattemplate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testmodel"
)

// The golden files are what Python's Jinja2, set up as transformers sets it
// up, renders for each case (testdata/reference.py writes them); each was
// also read against its template's logic by hand.

type goldenCase struct {
	Template     string `json:"template"`
	Conversation string `json:"conversation"`
	BOS          string `json:"bos"`
	EOS          string `json:"eos"`
}

// conversation is a request in OpenAI's shape.
type conversation struct {
	Messages []struct {
		Role             string `json:"role"`
		Content          string `json:"content"`
		ReasoningContent string `json:"reasoning_content"`
		ToolCallID       string `json:"tool_call_id"`
		Name             string `json:"name"`
		ToolCalls        []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools               []json.RawMessage `json:"tools"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	EnableThinking      *bool             `json:"enable_thinking"`
	ReasoningEffort     string            `json:"reasoning_effort"`
}

// goldenNow is the clock reference.py renders with.
func goldenNow() time.Time { return time.Date(2024, 9, 5, 12, 0, 0, 0, time.UTC) }

func loadConversation(t testing.TB, name string) conversation {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conversations", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c conversation
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func (c conversation) input(bos, eos string) Input {
	in := Input{
		Tools:               c.Tools,
		AddGenerationPrompt: c.AddGenerationPrompt,
		BOS:                 bos,
		EOS:                 eos,
		EnableThinking:      c.EnableThinking,
		ReasoningEffort:     c.ReasoningEffort,
		Now:                 goldenNow,
	}
	for _, m := range c.Messages {
		msg := Message{Role: m.Role, Content: m.Content, ReasoningContent: m.ReasoningContent, ToolCallID: m.ToolCallID, Name: m.Name}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: tc.ID, Type: tc.Type, Function: FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
		}
		in.Messages = append(in.Messages, msg)
	}
	return in
}

func readTemplate(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// templateFromGGUF writes src into a test model's metadata with the
// project's GGUF writer and reads it back the way the worker does.
func templateFromGGUF(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := testmodel.WriteAlphabetChatTemplate(path, src); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := f.KV.String(testmodel.ChatTemplateKey)
	if !ok {
		t.Fatalf("%s missing from the GGUF", testmodel.ChatTemplateKey)
	}
	return got
}

func TestGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	parsed := map[string]*Template{}
	for _, c := range cases {
		t.Run(c.Template+"/"+c.Conversation, func(t *testing.T) {
			tpl := parsed[c.Template]
			if tpl == nil {
				src := templateFromGGUF(t, readTemplate(t, c.Template))
				if tpl, err = Parse(src); err != nil {
					t.Fatal(err)
				}
				parsed[c.Template] = tpl
			}
			out, err := tpl.Render(loadConversation(t, c.Conversation).input(c.BOS, c.EOS))
			base := filepath.Join("testdata", "golden", c.Template+"__"+c.Conversation)
			if want, rerr := os.ReadFile(base + ".err"); rerr == nil {
				var re *RaiseError
				if !errors.As(err, &re) || re.Message != strings.TrimSuffix(string(want), "\n") {
					t.Fatalf("got %q, %v; want raise_exception(%q)", out, err, want)
				}
				return
			}
			want, rerr := os.ReadFile(base + ".txt")
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("render differs from %s.txt\n%s", base, diff(string(want), out))
			}
		})
	}
}

// diff shows where two renders part.
func diff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-80)
	return "common prefix ends at byte " + itoa(i) + "\nwant …" + quote(want[lo:min(len(want), i+80)]) + "\n got …" + quote(got[lo:min(len(got), i+80)])
}

func itoa(i int) string     { b, _ := json.Marshal(i); return string(b) }
func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		tools, thinking, objectArgs bool
	}{
		{"meta-llama-Llama-3.1-8B-Instruct", true, false, true},
		{"meta-llama-Llama-3.2-3B-Instruct", true, false, true},
		{"Qwen-Qwen2.5-7B-Instruct", true, false, true},
		{"mistralai-Mistral-7B-Instruct-v0.3", true, false, true},
		{"microsoft-Phi-3.5-mini-instruct", false, false, false},
		{"google-gemma-2-2b-it", false, false, false},
		{"NousResearch-Hermes-3-Llama-3.1-8B", false, false, false},
		{"Qwen-Qwen3-8B", true, true, false},
		{"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", false, true, false},
	} {
		tpl, err := Parse(readTemplate(t, tc.name))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tpl.Tools() != tc.tools || tpl.Thinking() != tc.thinking || tpl.objectArgs != tc.objectArgs {
			t.Errorf("%s: Tools() = %v, Thinking() = %v, objectArgs %v; want %v, %v, %v",
				tc.name, tpl.Tools(), tpl.Thinking(), tpl.objectArgs, tc.tools, tc.thinking, tc.objectArgs)
		}
	}
}

// DeepSeek-R1's prompt ends inside the <think> block it opens; Qwen3's
// (thinking on) leaves the opening to the model.
func TestPromptOpensThinkReal(t *testing.T) {
	in := loadConversation(t, "plain").input("", "")
	for name, want := range map[string]bool{
		"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": true,
		"Qwen-Qwen3-8B": false,
	} {
		tpl, err := Parse(readTemplate(t, name))
		if err != nil {
			t.Fatal(err)
		}
		out, err := tpl.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := PromptOpensThink(out); got != want {
			t.Errorf("%s: PromptOpensThink = %v for %q", name, got, out)
		}
	}
}

// One Template serves every request of its model at once.
func TestConcurrentRender(t *testing.T) {
	tpl, err := Parse(readTemplate(t, "Qwen-Qwen2.5-7B-Instruct"))
	if err != nil {
		t.Fatal(err)
	}
	in := loadConversation(t, "tools").input("", "<|im_end|>")
	want, err := tpl.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				got, err := tpl.Render(in)
				if err == nil && got != want {
					err = errors.New("renders differ")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
