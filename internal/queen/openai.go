package queen

import (
	"context"
	"slices"
	"sync"

	"github.com/rbee/rbee/internal/openai"
	"github.com/rbee/rbee/internal/wire"
)

// The queen is the OpenAI API's backend: Generate routes, Models lists.
var _ openai.Backend = (*Server)(nil)

// openAI returns the OpenAI-compatible API of this queen.
func (s *Server) openAI() *openai.Server {
	return openai.New(openai.Options{Backend: s, Keys: s.opt.APIKeys, Token: s.opt.Token, Logger: s.log})
}

// Models lists every model in the catalog of a live hive, with the hives
// that have it, and every model a worker serves (a worker started by hand
// may serve one that no catalog lists).
func (s *Server) Models(ctx context.Context) ([]openai.Model, error) {
	hives, err := s.fleet.List()
	if err != nil {
		return nil, err
	}
	sts := s.fleet.ProbeAll(ctx, hives)
	lists := make([][]wire.HiveModel, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		if sts[i].State != wire.HiveOnline {
			continue
		}
		wg.Go(func() {
			ms, err := s.fleet.Models(ctx, h)
			if err != nil {
				s.log.Warn("cannot list a hive's models", "hive", h.Alias, "err", err)
			}
			lists[i] = ms
		})
	}
	wg.Wait()

	byID := map[string]*openai.Model{}
	get := func(id string) *openai.Model {
		m := byID[id]
		if m == nil {
			m = &openai.Model{ID: id}
			byID[id] = m
		}
		return m
	}
	for _, ms := range lists {
		for _, hm := range ms {
			m := get(hm.ID)
			if !slices.Contains(m.Hives, hm.HiveID) {
				m.Hives = append(m.Hives, hm.HiveID)
			}
			if c := hm.AddedAt.Unix(); !hm.AddedAt.IsZero() && (m.Created == 0 || c < m.Created) {
				m.Created = c
			}
		}
	}
	for _, w := range s.workers.List() {
		if !w.Available() {
			continue
		}
		m := get(w.Model)
		m.Loaded = true
		if !slices.Contains(m.Hives, w.HiveID) {
			m.Hives = append(m.Hives, w.HiveID)
		}
	}
	out := make([]openai.Model, 0, len(byID))
	for _, m := range byID {
		out = append(out, *m)
	}
	return out, nil
}
