package openai

import (
	"cmp"
	"net/http"
	"slices"
)

// models asks the backend for its models and completes them as OpenAI
// model objects, sorted by id.
func (s *Server) models(r *http.Request) ([]Model, error) {
	ms, err := s.opt.Backend.Models(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]Model, 0, len(ms))
	for _, m := range ms {
		m.Object = "model"
		if m.Hives == nil {
			m.Hives = []string{}
		}
		slices.Sort(m.Hives)
		if m.OwnedBy == "" && len(m.Hives) > 0 {
			m.OwnedBy = m.Hives[0]
		}
		if m.OwnedBy == "" {
			m.OwnedBy = "rbee"
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Model) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// listModels answers GET /v1/models.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.models(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: ms})
	return nil
}

// getModel answers GET /v1/models/{id}; id comes from the decoded path.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request, id string) error {
	ms, err := s.models(r)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ms, func(m Model) bool { return m.ID == id })
	if i < 0 {
		return modelNotFound(id)
	}
	writeJSON(w, http.StatusOK, ms[i])
	return nil
}
