package wire

// Error codes of model downloads (model_download and worker_spawn with an
// hf: reference).
const (
	CodeDownloadFailed = "download_failed"   // the transfer failed after its retries
	CodeDiskFull       = "disk_full"         // no space left for the model file
	CodeChecksum       = "checksum_mismatch" // the bytes do not match the hub's SHA-256
	CodeHubAuth        = "hub_auth"          // the hub wants a (better) HF_TOKEN
	CodeHubRefused     = "hub_refused"       // the hub sent an unsafe file name, digest or redirect
	CodeNoChoice       = "model_choice"      // no file named, and no single GGUF file to pick
)
