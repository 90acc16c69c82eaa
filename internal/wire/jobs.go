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

	// infer: the request the queen sends on to a worker, inline in the
	// operation's JSON.
	InferenceRequest
}
