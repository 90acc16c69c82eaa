package wire

import "encoding/json"

// MarshalJSON encodes a decoded event as the typed event it came from, so
// that relaying an event (queen from worker, queen from hive) keeps its zero
// fields, such as the index 0 of the first token.
func (e Event) MarshalJSON() ([]byte, error) {
	switch e.Type {
	case TypeNarration:
		return json.Marshal(Narration{Type: e.Type, Actor: e.Actor, Action: e.Action, Human: e.Human, JobID: e.JobID, HiveID: e.HiveID, WorkerID: e.WorkerID})
	case TypeToken:
		return json.Marshal(Token{Type: e.Type, T: e.T, I: e.I, R: e.R, Call: e.Call, Logprobs: e.Logprobs})
	case TypeResult:
		data := e.Data
		if data == nil {
			data = json.RawMessage("null")
		}
		return json.Marshal(struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}{e.Type, data})
	case TypeProgress:
		return json.Marshal(Progress{Type: e.Type, Done: e.Done, Total: e.Total, Unit: e.Unit, Rate: e.Rate})
	case TypeEnd:
		end := End{Type: e.Type, StopReason: e.StopReason, TokensIn: e.TokensIn, TokensOut: e.TokensOut, TokensCached: e.TokensCached}
		if e.Timings != nil {
			end.Timings = *e.Timings
		}
		return json.Marshal(end)
	case TypeError:
		return json.Marshal(ErrorEvent{Type: e.Type, Code: e.Code, Message: e.Message})
	}
	type plain Event // no methods: the default encoding
	return json.Marshal(plain(e))
}
