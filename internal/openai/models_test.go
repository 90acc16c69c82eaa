package openai

import (
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func TestModels(t *testing.T) {
	b := newBackend()
	b.models = []Model{
		{ID: "zeta", Hives: []string{"gpu-box", "alpha-box"}, Created: 1600000000},
		{ID: "alpha", Hives: []string{"localhost"}, Loaded: true},
		{ID: "/models/hand.gguf"}, // a worker started by hand, no catalog
	}
	a := newAPI(t, b, nil)
	r := a.do(t, http.MethodGet, "/v1/models", "")
	var list ModelList
	r.decode(t, &list)
	want := ModelList{Object: "list", Data: []Model{
		{ID: "/models/hand.gguf", Object: "model", OwnedBy: "rbee", Hives: []string{}},
		{ID: "alpha", Object: "model", OwnedBy: "localhost", Hives: []string{"localhost"}, Loaded: true},
		{ID: "zeta", Object: "model", Created: 1600000000, OwnedBy: "alpha-box", Hives: []string{"alpha-box", "gpu-box"}},
	}}
	if r.status != http.StatusOK || !reflect.DeepEqual(list, want) {
		t.Errorf("%d\n got %+v\nwant %+v", r.status, list, want)
	}

	r = a.do(t, http.MethodGet, "/v1/models/zeta", "")
	var m Model
	r.decode(t, &m)
	if r.status != http.StatusOK || !reflect.DeepEqual(m, want.Data[2]) {
		t.Errorf("get zeta: %d %s", r.status, r.body)
	}
	r = a.do(t, http.MethodGet, "/v1/models/%2Fmodels%2Fhand.gguf", "")
	if r.status != http.StatusOK {
		t.Errorf("get an escaped id: %d %s", r.status, r.body)
	}
	r = a.do(t, http.MethodGet, "/v1/models/gpt-4o", "")
	if e := r.apiErr(t); r.status != http.StatusNotFound || e.Code != wire.CodeModelNotFound || e.Param == nil || *e.Param != "model" {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}

	// No models is an empty list, not null.
	b.models = nil
	r = a.do(t, http.MethodGet, "/v1/models", "")
	if string(r.body) != "{\"object\":\"list\",\"data\":[]}\n" {
		t.Errorf("empty list: %s", r.body)
	}

	b.err = errors.Join(errors.New("listing"), wire.Errorf(wire.CodeHiveUnreachable, "hive down"))
	if r := a.do(t, http.MethodGet, "/v1/models", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("backend error: %d %s", r.status, r.body)
	}
}
