package wire

// InferenceRequest is what the queen posts to a worker's /v1/inference.
// Pointer fields are optional: nil takes the worker's default.
type InferenceRequest struct {
	Prompt string `json:"prompt"`
	// Messages, instead of Prompt, is a conversation that the worker renders
	// with the model's own chat template.
	Messages          []ChatMessage `json:"messages,omitempty"`
	MaxTokens         *int          `json:"max_tokens,omitempty"`
	Temperature       *float64      `json:"temperature,omitempty"`
	TopP              *float64      `json:"top_p,omitempty"`
	TopK              *int          `json:"top_k,omitempty"`
	MinP              *float64      `json:"min_p,omitempty"`
	RepetitionPenalty *float64      `json:"repetition_penalty,omitempty"`
	Seed              *uint32       `json:"seed,omitempty"`
	Stop              []string      `json:"stop,omitempty"`
	// TimeoutMs bounds how long the request may wait for a free slot
	// before it starts; past it the request fails with deadline_exceeded.
	TimeoutMs *int `json:"timeout_ms,omitempty"`

	PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
	// LogitBias maps token ids (decimal strings, as OpenAI sends them) to
	// a bias from -100 (banned) to 100.
	LogitBias map[string]float64 `json:"logit_bias,omitempty"`
	// Logprobs asks for each generated token's log-probability, and
	// TopLogprobs (0 to 20) for that many likeliest tokens at each place.
	Logprobs    bool `json:"logprobs,omitempty"`
	TopLogprobs *int `json:"top_logprobs,omitempty"`
	// ResponseFormat constrains the output to JSON while sampling.
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
	// Tools the model may call (chat messages only), and whether it must.
	Tools      []Tool      `json:"tools,omitempty"`
	ToolChoice *ToolChoice `json:"tool_choice,omitempty"`
	// ReasoningEffort is passed to chat templates that read it.
	ReasoningEffort string `json:"reasoning_effort,omitempty"`
}

// ChatMessage is one turn of a conversation: content, and for an assistant
// its reasoning and tool calls, for a tool result the call it answers.
type ChatMessage struct {
	Role             string     `json:"role"`
	Content          string     `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
	Name             string     `json:"name,omitempty"`
}

// JobCreated answers a POST that created a job (worker inference or daemon job).
type JobCreated struct {
	JobID  string `json:"job_id"`
	SSEURL string `json:"sse_url"`
}

// Worker states, as reported by /v1/ready and heartbeats.
const (
	StateLoading = "loading"
	StateReady   = "ready"
	StateBusy    = "busy"
	StateError   = "error"
	StateGone    = "gone" // set by the queen when heartbeats stop
)

// Ready is the answer of GET /v1/ready.
type Ready struct {
	Ready    bool   `json:"ready"`
	State    string `json:"state"`
	WorkerID string `json:"worker_id,omitempty"`
	Model    string `json:"model,omitempty"`
	CtxSize  int    `json:"ctx_size,omitempty"`
	Slots    int    `json:"slots"`
	Active   int    `json:"active"`
	QueueLen int    `json:"queue_len"`
	QueueCap int    `json:"queue_cap"`
	Device   string `json:"device,omitempty"`
	Error    string `json:"error,omitempty"`
	GPUUse
	Cache *CacheStats `json:"cache,omitempty"`
}

// CacheStats describe a worker's prompt cache: the sequences it keeps after
// their requests end (in idle slots and in RAM) and how much of the prompts
// it served.
type CacheStats struct {
	Sequences    int   `json:"sequences"`
	Tokens       int   `json:"tokens"`
	RAMBytes     int64 `json:"ram_bytes"`
	BudgetBytes  int64 `json:"budget_bytes"`
	PromptTokens int64 `json:"prompt_tokens"`
	CachedTokens int64 `json:"cached_tokens"`
}

// HitRate is the share of prompt tokens the cache served.
func (c *CacheStats) HitRate() float64 {
	if c == nil || c.PromptTokens == 0 {
		return 0
	}
	return float64(c.CachedTokens) / float64(c.PromptTokens)
}

// GPUUse is what a worker on a GPU reports of it once its model is loaded:
// the GPU's name, the layers on it (llama.cpp's n_gpu_layers: the blocks,
// then the output layer) and the device memory the model took (weights, KV
// cache, compute buffers; the driver's own context not included).
type GPUUse struct {
	DeviceName        string `json:"device_name,omitempty"`
	GPULayers         int    `json:"gpu_layers,omitempty"`
	DeviceMemoryBytes uint64 `json:"device_memory_bytes,omitempty"`
}

// Heartbeat is what a worker posts to <queen>/v1/workers/heartbeat.
type Heartbeat struct {
	WorkerID string `json:"worker_id"`
	HiveID   string `json:"hive_id"`
	Model    string `json:"model"`
	URL      string `json:"url"`
	State    string `json:"state"`
	Slots    int    `json:"slots"`
	Active   int    `json:"active"`
	QueueLen int    `json:"queue_len"`
	Device   string `json:"device,omitempty"`
	PID      int    `json:"pid,omitempty"`
	GPUUse
	Cache *CacheStats `json:"cache,omitempty"`
}
