package wire

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
