package wire

import (
	"encoding/json"
	"testing"
)

// Decoding then encoding an event gives back the same JSON, zero fields and
// all: the queen relays events this way.
func TestEventRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"type":"token","t":"","i":0}`,
		`{"type":"progress","done":0,"total":10,"unit":"bytes"}`,
		`{"type":"end","stop_reason":"eos","tokens_in":0,"tokens_out":0,"timings":{"ttft_ms":0,"prompt_ms":0,"decode_ms":0,"total_ms":0,"queue_ms":0,"prompt_tps":0,"decode_tps":0}}`,
		`{"type":"result","data":null}`,
		`{"type":"result","data":{"a":[1,2]}}`,
		`{"type":"error","code":"cancelled","message":"x"}`,
		`{"type":"narration","actor":"queen-rbee","action":"spawn","human":"h","worker_id":"w"}`,
		`{"type":"custom","human":"h"}`,
	} {
		var e Event
		if err := json.Unmarshal([]byte(in), &e); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in {
			t.Errorf("round trip\n in  %s\n out %s", in, out)
		}
	}
}
