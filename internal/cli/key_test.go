package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/apikeys"
)

func TestKeyCommands(t *testing.T) {
	home := isolate(t)
	// No queen runs: the key commands need none.
	if r := run(t, nil, nil, "key", "list"); r.code != 0 || !strings.Contains(r.stdout, "no API keys") {
		t.Fatalf("empty list: %+v", r)
	}
	r := run(t, nil, nil, "key", "create", "--name", "laptop")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, apikeys.Prefix) || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("create: %+v", r)
	}
	path := filepath.Join(home, "config", "rbee", apikeys.FileName)
	res, err := apikeys.NewChecker(apikeys.Open(path)).Check(secret)
	if err != nil || res.ID == "" {
		t.Fatalf("the printed key is not in %s: %+v %v", path, res, err)
	}

	r = run(t, nil, nil, "key", "create", "--json")
	var created struct {
		ID, Secret string
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || created.ID == "" || !strings.HasPrefix(created.Secret, apikeys.Prefix) {
		t.Fatalf("create --json: %v %+v", err, r)
	}

	r = run(t, nil, nil, "key", "list")
	if r.code != 0 || !strings.Contains(r.stdout, res.ID) || !strings.Contains(r.stdout, "laptop") || !strings.Contains(r.stdout, created.ID) ||
		strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, created.Secret) {
		t.Errorf("list: %+v", r)
	}
	r = run(t, nil, nil, "key", "list", "--json")
	var list []keyInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || strings.Contains(r.stdout, "sha256") {
		t.Errorf("list --json: %v %+v", err, r)
	}

	if r = run(t, nil, nil, "key", "revoke", res.ID); r.code != 0 || !strings.Contains(r.stderr, "Revoked API key "+res.ID+" (laptop)") {
		t.Errorf("revoke: %+v", r)
	}
	if res, _ := apikeys.NewChecker(apikeys.Open(path)).Check(secret); res.ID != "" {
		t.Error("the revoked key still checks")
	}
	if r = run(t, nil, nil, "key", "revoke", res.ID); r.code != exitFailure || !strings.Contains(r.stderr, "no such key") {
		t.Errorf("second revoke: %+v", r)
	}

	for _, args := range [][]string{
		{"key", "revoke"}, {"key", "revoke", "../x"}, {"key", "revoke", "a", "b"},
		{"key", "create", "--name", "a\nb"}, {"key", "create", "--name", strings.Repeat("n", 65)}, {"key", "nope"},
	} {
		if r := run(t, nil, nil, args...); r.code != exitUsage {
			t.Errorf("%q: %+v", args, r)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("keys.json: %v %v", st, err)
	}
}
