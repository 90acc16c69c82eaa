package wire

// Hive states, as the queen sees them from the hive's /health.
const (
	HiveOnline  = "online"
	HiveOffline = "offline"
)

// Status is the result data of the queen's status operation.
type Status struct {
	Queen   QueenStatus    `json:"queen"`
	Hives   []HiveStatus   `json:"hives"`
	Workers []WorkerStatus `json:"workers"`
	Models  []HiveModel    `json:"models"`
	// Queues are the models with requests waiting in the queen for a
	// free worker slot.
	Queues []QueueStatus `json:"queues"`
}

// QueueStatus is one model's queue in the queen.
type QueueStatus struct {
	Model   string `json:"model"`
	Waiting int    `json:"waiting"` // requests waiting for a free slot
	Max     int    `json:"max"`     // max_queue: more are refused with queue_full
}

// QueenStatus describes the queen itself.
type QueenStatus struct {
	URL string `json:"url"`
}

// HiveStatus is one hive of hives.conf and whether it answers. It is also
// the result data of hive_list (a list), hive_get, hive_status and
// hive_start.
type HiveStatus struct {
	Alias    string `json:"alias"`
	Host     string `json:"host"`
	HivePort int    `json:"hive_port"`
	State    string `json:"state"` // HiveOnline or HiveOffline
	URL      string `json:"url"`
	HiveID   string `json:"hive_id,omitempty"` // what the hive calls itself, when online
	// Error says why an offline hive did not answer.
	Error string `json:"error,omitempty"`
	// Capabilities is the hive's GET /v1/capabilities, for hive_get,
	// hive_status and hive_refresh_capabilities.
	Capabilities *HiveCapabilities `json:"capabilities,omitempty"`
}

// WorkerStatus is one worker as the queen's heartbeat registry knows it.
type WorkerStatus struct {
	WorkerID   string `json:"worker_id"`
	HiveID     string `json:"hive_id"`
	Model      string `json:"model"`
	URL        string `json:"url"`
	State      string `json:"state"`
	Slots      int    `json:"slots"`
	Active     int    `json:"active"`
	QueueLen   int    `json:"queue_len"`
	LastSeenMs int64  `json:"last_seen_ms"` // milliseconds since its last heartbeat
	Device     string `json:"device,omitempty"`
	PID        int    `json:"pid,omitempty"`
	GoneReason string `json:"gone_reason,omitempty"`
	GPUUse
	Cache *CacheStats `json:"cache,omitempty"`
}

// HiveModel is a model of one hive's catalog.
type HiveModel struct {
	HiveID string `json:"hive_id"`
	ModelInfo
}
