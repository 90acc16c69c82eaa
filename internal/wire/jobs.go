package wire

// Operations of the job protocol (contracts.md, "The job protocol").
const (
	OpStatus                  = "status"
	OpHiveInstall             = "hive_install"
	OpHiveUninstall           = "hive_uninstall"
	OpHiveStart               = "hive_start"
	OpHiveStop                = "hive_stop"
	OpHiveList                = "hive_list"
	OpHiveGet                 = "hive_get"
	OpHiveStatus              = "hive_status"
	OpHiveRefreshCapabilities = "hive_refresh_capabilities"
	OpWorkerSpawn             = "worker_spawn"
	OpWorkerStop              = "worker_stop"
	OpWorkerGet               = "worker_get"
	OpWorkerDelete            = "worker_delete"
	OpWorkerList              = "worker_list"
	OpModelDownload           = "model_download"
	OpModelList               = "model_list"
	OpModelGet                = "model_get"
	OpModelDelete             = "model_delete"
	OpInfer                   = "infer"
)

// Operation is the body of POST /v1/jobs: the operation name plus the fields
// that operation takes. Unused fields stay empty.
type Operation struct {
	Operation string `json:"operation"`

	Alias    string `json:"alias,omitempty"`
	HiveID   string `json:"hive_id,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`
	Model    string `json:"model,omitempty"`
	Device   string `json:"device,omitempty"`
	Force    bool   `json:"force,omitempty"`
	// AcceptNewHostKey lets hive_* operations over SSH record the key of
	// a host that known_hosts does not know yet; a changed key is refused
	// regardless.
	AcceptNewHostKey bool `json:"accept_new_host_key,omitempty"`

	// infer
	Prompt            string        `json:"prompt,omitempty"`
	Messages          []ChatMessage `json:"messages,omitempty"`
	MaxTokens         *int          `json:"max_tokens,omitempty"`
	Temperature       *float64      `json:"temperature,omitempty"`
	TopP              *float64      `json:"top_p,omitempty"`
	TopK              *int          `json:"top_k,omitempty"`
	MinP              *float64      `json:"min_p,omitempty"`
	RepetitionPenalty *float64      `json:"repetition_penalty,omitempty"`
	Seed              *uint32       `json:"seed,omitempty"`
	Stop              []string      `json:"stop,omitempty"`
	TimeoutMs         *int          `json:"timeout_ms,omitempty"`
}

// InferenceRequest extracts the worker request from an infer operation.
func (op Operation) InferenceRequest() InferenceRequest {
	return InferenceRequest{
		Prompt:            op.Prompt,
		Messages:          op.Messages,
		MaxTokens:         op.MaxTokens,
		Temperature:       op.Temperature,
		TopP:              op.TopP,
		TopK:              op.TopK,
		MinP:              op.MinP,
		RepetitionPenalty: op.RepetitionPenalty,
		Seed:              op.Seed,
		Stop:              op.Stop,
		TimeoutMs:         op.TimeoutMs,
	}
}
