package wire

import "time"

// WorkerInfo describes a worker process of a hive: the result data of
// worker_spawn, worker_get, worker_stop and worker_delete, and the elements
// of worker_list's.
type WorkerInfo struct {
	WorkerID  string    `json:"worker_id"`
	HiveID    string    `json:"hive_id"`
	Model     string    `json:"model"` // catalog id (modelref.Ref.ID)
	URL       string    `json:"url"`   // empty until the worker listens
	PID       int       `json:"pid"`
	Device    string    `json:"device"`
	State     string    `json:"state"` // State* of worker.go
	StartedAt time.Time `json:"started_at"`
}

// ModelInfo describes an entry of a hive's model catalog: the result data
// of model_get, model_delete and model_download, and the elements of
// model_list's.
type ModelInfo struct {
	ID              string    `json:"id"`
	Source          string    `json:"source"` // "file" (imported by reference) or the hf: reference
	Path            string    `json:"path"`   // absolute path of the .gguf file on the hive's machine
	SizeBytes       int64     `json:"size_bytes"`
	Architecture    string    `json:"architecture"`
	Parameters      uint64    `json:"parameters"`
	Quantization    string    `json:"quantization"`
	ContextLength   uint64    `json:"context_length"`
	HasChatTemplate bool      `json:"has_chat_template"`
	AddedAt         time.Time `json:"added_at"`
	LastUsedAt      time.Time `json:"last_used_at,omitzero"` // absent until a worker first loads it

	// File is the file's name: its path in the repository for a download.
	File string `json:"file,omitempty"`
	// SHA256 is what a download was verified against (lowercase hex);
	// empty for imported files, which are not hashed.
	SHA256 string `json:"sha256,omitempty"`
	// MemoryBytes estimates what a worker needs to run the model: weights,
	// f16 KV cache and scratch for the default context (catalog.EstimateMemory).
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
}

// HiveHealth is the answer of a hive's GET /health.
type HiveHealth struct {
	Status string `json:"status"` // "ok"
	HiveID string `json:"hive_id"`
}

// HiveCapabilities is the answer of a hive's GET /v1/capabilities. RAM is 0
// where the hive cannot read it.
type HiveCapabilities struct {
	HiveID        string    `json:"hive_id"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	CPUCores      int       `json:"cpu_cores"`
	RAMTotalBytes uint64    `json:"ram_total_bytes"`
	RAMFreeBytes  uint64    `json:"ram_free_bytes"`
	GPUs          []GPUInfo `json:"gpus"` // never null: [] when there are none
}

// GPUInfo is one accelerator of a hive.
type GPUInfo struct {
	Device           string `json:"device"` // e.g. "cuda:0"
	Name             string `json:"name"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	// MemoryFreeBytes is what the driver reported free when the hive
	// looked: workers already running there have taken theirs.
	MemoryFreeBytes   uint64 `json:"memory_free_bytes"`
	ComputeCapability string `json:"compute_capability,omitempty"` // e.g. "9.0"
}
