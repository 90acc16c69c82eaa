// Package toolcall turns a model's output text into OpenAI chat output:
// content, reasoning_content and tool_calls, for a whole answer (Parse) and
// for a streamed one (Stream), and writes what the prompt (GenericPrompt)
// and the sampler (Grammar) need for tools.
//
// # Formats
//
// Each chat template family has its own call syntax; DetectFormat picks one
// from the template source, the way llama.cpp's common/chat.cpp does:
//
//   - hermes (Hermes 2/3, Qwen2.5, Qwen3: the template mentions <tool_call>):
//     <tool_call>{"name": "f", "arguments": {...}}</tool_call>, repeated
//     for several calls.
//   - llama3 (Llama 3.1 to 3.3: the template has the ipython role or
//     <|python_tag|>): a JSON object {"name": "f", "parameters": {...}}
//     that opens the answer, optionally after <|python_tag|>, and the
//     built-in form <|python_tag|>f.call(key=value, ...) with JSON values.
//   - mistral (the template mentions [TOOL_CALLS]): [TOOL_CALLS] followed by
//     a JSON array of {"name", "arguments", "id"} objects (Mistral 7B v0.3,
//     Nemo, Small 2409), or by f[ARGS]{...} (later Mistral templates;
//     f[CALL_ID]id[ARGS]{...} too), one [TOOL_CALLS] per call.
//   - generic, for every template that knows no tools (and for models with
//     no template at all); see below.
//
// # The generic format
//
// GenericPrompt describes the tools in the system prompt (a <tools> list of
// the request's tool objects, in the words of Qwen2.5's template, so that
// models trained on it recognise it) and asks for the Hermes syntax, which many small models were trained on: one block
// per call, several blocks for several calls, nothing but whitespace
// between them:
//
//	<tool_call>
//	{"name": "get_weather", "arguments": {"city": "Paris"}}
//	</tool_call>
//
// The generic format is parsed exactly as hermes.
//
// In every JSON format "arguments" and "parameters" are both accepted, an
// arguments value may be an object or a string holding a JSON object (it is
// returned as the object's compact JSON text), and a missing or null one is
// {}. A JSON call object without a tag (the llama3 form) is recognised in
// the hermes and generic formats too, and in mistral a JSON array of call
// objects without [TOOL_CALLS] ([TOOL_CALLS] and <|python_tag|> are control
// tokens, which a detokenizer that drops control tokens leaves out); these
// bare forms count only where the answer starts or right after another
// call, and only when they begin with {"name": (or [{"name":), so that an
// answer that merely contains JSON stays text.
//
// # What is a call
//
// Calls are recognised only when Options.Tools is not empty (tool_choice
// none: pass no tools, and the output is content and reasoning only). A
// candidate becomes a call when its JSON is complete and valid, it has a
// string "name" that is one of Options.Tools, and its arguments are a JSON
// object. Anything else (invalid JSON, an unknown name, a marker with no
// call after it, a call still open when the output ends) stays text,
// marker included: OpenAI never returns a call to a tool the client did not
// offer, and a client could not run one. Whitespace around calls is
// dropped; other text before, between and after calls is content. A
// closing tag (</tool_call>) after a call is optional, since a stop
// sequence may have cut it.
//
// # Reasoning
//
// With Options.Reasoning (the template opens <think> blocks), a <think>
// block at the start of the output is reasoning; with Options.ThinkingOpen
// (the prompt ends inside <think>), the output is reasoning up to </think>.
// Reasoning is trimmed of surrounding whitespace, as is the content right
// after </think>; a block never closed is reasoning to the end. Call markers
// inside reasoning are reasoning.
//
// # IDs
//
// A call's ID is "call_" and 24 random letters and digits, as OpenAI's,
// except in the mistral format: Mistral templates refuse any tool call ID
// that is not 9 letters and digits when the call comes back in the next
// request, so a mistral call keeps the model's own ID when it is one, and
// otherwise gets 9 random letters and digits.
//
// # Streaming
//
// A Stream holds back exactly the text that may still turn out to be part
// of a marker, a call or a tag, and decides only on complete evidence, so
// the deltas do not depend on how the text was cut into pieces: the
// Content deltas concatenate to Parse's Content, the Reasoning deltas to
// its Reasoning, and the calls (a header delta with Index, ID and Name,
// then one delta with the complete arguments) reassemble to its Calls.
// Parse is a Stream fed the whole text.
package toolcall
