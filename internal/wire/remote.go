package wire

// Error codes of hives on other machines, reached over SSH.
const (
	CodeSSHFailed        = "ssh_failed"        // connecting, logging in or a command over SSH failed
	CodeHostKeyUnknown   = "host_key_unknown"  // the host's key is not in known_hosts: trust it first
	CodeHostKeyChanged   = "host_key_changed"  // the host's key differs from the recorded one
	CodeIncompatibleHost = "incompatible_host" // the host's OS or CPU differs from the programs to install
	CodeNotInstalled     = "not_installed"     // the hive is not installed on the host
)

// HiveInstall is the result data of hive_install and hive_uninstall on a
// remote host: where the programs are, and which files were copied or
// removed.
type HiveInstall struct {
	Alias      string   `json:"alias"`
	Host       string   `json:"host"`
	Platform   string   `json:"platform,omitempty"` // GOOS/GOARCH of the host, e.g. linux/amd64
	BinaryPath string   `json:"binary_path"`        // the directory on the host
	Files      []string `json:"files"`              // copied by install, removed by uninstall
}
