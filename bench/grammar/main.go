// Command grammar measures what a json_schema grammar costs while
// decoding: tokens/s of the same model, threads, prompt and seed with and
// without a grammar of a moderate schema (10 properties, nested), and
// their ratio (the goal is at least 0.9).
//
//	go run ./bench/grammar [-model M.gguf] [-threads 2] [-tokens 128] [-runs 3]
//
// Without -model it writes (once, cached) a random-weight model of the
// Qwen2-0.5B layout in Q8_0, whose vocabulary has 151936 tokens. A random
// model picks tokens the grammar refuses far more often than a trained
// one, so this is the grammar's worst case.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"time"

	"github.com/rbee/rbee/bench/harness"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/grammar"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testmodel"
)

const schema = `{
	"type": "object",
	"properties": {
		"id": {"type": "integer", "minimum": 0, "maximum": 100000},
		"name": {"type": "string", "maxLength": 40},
		"email": {"type": "string", "format": "email"},
		"active": {"type": "boolean"},
		"score": {"type": "number", "minimum": 0, "maximum": 100},
		"role": {"enum": ["admin", "user", "guest"]},
		"tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5},
		"address": {
			"type": "object",
			"properties": {
				"street": {"type": "string", "maxLength": 60},
				"city": {"type": "string", "maxLength": 40},
				"zip": {"type": "string", "pattern": "^[0-9]{5}$"}
			},
			"required": ["city", "zip"]
		},
		"created": {"type": "string", "format": "date-time"},
		"notes": {"type": ["string", "null"], "maxLength": 100}
	},
	"required": ["id", "name", "email", "active", "score", "role", "tags", "address", "created", "notes"]
}`

type result struct {
	tps    float64 // decode tokens/s
	tokens int     // generated before the end or the cap
}

func main() {
	var (
		model   = flag.String("model", "", "GGUF model (default: a cached random Qwen2-0.5B-shape Q8_0 model)")
		threads = flag.Int("threads", 2, "decode threads")
		tokens  = flag.Int("tokens", 128, "most tokens to generate per run")
		runs    = flag.Int("runs", 3, "measured runs of each (after one warm-up)")
		seed    = flag.Uint("seed", 1, "sampling seed")
		prompt  = flag.String("prompt", "Write the user record as JSON:", "prompt")
	)
	flag.Parse()
	log.SetFlags(0)
	if *model == "" {
		*model = harness.CachedModel(testmodel.Qwen2_0_5B)
	}
	g, err := grammar.FromSchema([]byte(schema))
	if err != nil {
		log.Fatal(err)
	}
	m, err := llama.Load(*model, llama.Options{Threads: *threads, CtxSize: 1024})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	type row struct {
		name string
		s    engine.Sampling
	}
	var rows []row
	for _, temp := range []float32{0, 1} {
		base := engine.Sampling{Temperature: temp, Seed: uint32(*seed)}
		constrained := base
		constrained.Grammar = g
		rows = append(rows, row{fmt.Sprintf("unconstrained, temp %g", temp), base}, row{fmt.Sprintf("json_schema, temp %g", temp), constrained})
	}
	results := make([][]result, len(rows))
	for i := range *runs + 1 {
		for r, rw := range rows {
			res := decode(m, *prompt, rw.s, *tokens)
			if i > 0 { // the first round warms caches and pages in the weights
				results[r] = append(results[r], res)
			}
		}
	}
	info := m.Info()
	fmt.Printf("model: %s (%s, vocabulary %d), %d threads, up to %d new tokens, seed %d, median of %d runs\n\n",
		filepath.Base(*model), info.Description, info.VocabSize, *threads, *tokens, *seed, *runs)
	fmt.Printf("| %-26s | %12s | %8s | %13s |\n", "", "decode tok/s", "tokens", "vs unconstr.")
	fmt.Printf("|%s|%s|%s|%s|\n", dashes(28), dashes(14), dashes(10), dashes(15))
	var plain float64
	for r, rw := range rows {
		tps := median(results[r], func(x result) float64 { return x.tps })
		n := median(results[r], func(x result) float64 { return float64(x.tokens) })
		ratio := "1.00"
		if rw.s.Grammar == "" {
			plain = tps
		} else {
			ratio = fmt.Sprintf("%.2f", tps/plain)
		}
		fmt.Printf("| %-26s | %12.1f | %8.0f | %13s |\n", rw.name, tps, n, ratio)
	}
}

// decode generates up to n tokens and measures the decode rate: from the
// first sampled token to the last.
func decode(m *llama.Model, prompt string, s engine.Sampling, n int) result {
	toks, err := m.Tokenize(prompt)
	if err != nil {
		log.Fatal(err)
	}
	seq, err := m.NewSequence(s)
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		log.Fatal(err)
	}
	tok := seq.Sample()
	first := time.Now()
	got := 1
	for got < n && !m.IsEOG(tok) {
		if err := seq.Decode(tok); err != nil {
			log.Fatal(err)
		}
		tok = seq.Sample()
		got++
	}
	el := time.Since(first).Seconds()
	return result{tps: float64(got-1) / el, tokens: got}
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func dashes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}
