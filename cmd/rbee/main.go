// Command rbee is the CLI of rbee (the keeper): the one program a person
// types. See `rbee --help`.
package main

import (
	"os"

	"github.com/rbee/rbee/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
