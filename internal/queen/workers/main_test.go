package workers

import (
	"os"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }
