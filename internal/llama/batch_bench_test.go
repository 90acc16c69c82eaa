package llama

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/engine"
)

// BenchmarkStreams decodes 32 tokens on each of N sequences at once, on
// the model named by RBEE_BENCH_MODEL (go run ./bench/mkmodel writes one).
// Its tok/s metric is the aggregate over all streams.
func BenchmarkStreams(b *testing.B) {
	path := os.Getenv("RBEE_BENCH_MODEL")
	if path == "" {
		b.Skip("set RBEE_BENCH_MODEL to a GGUF model")
	}
	m, err := Load(path, Options{CtxSize: 256, Slots: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const n = 32
	for _, streams := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprint(streams), func(b *testing.B) {
			calls := m.Decodes()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range streams {
					wg.Go(func() {
						seq, err := m.NewSequence(engine.Sampling{})
						if err != nil {
							panic(err)
						}
						defer seq.Close()
						toks, _ := m.Tokenize(fmt.Sprint("Stream ", i))
						if err := seq.Prefill(context.Background(), toks); err != nil {
							panic(err)
						}
						for range n {
							if err := seq.Decode(seq.Sample()); err != nil {
								panic(err)
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(streams*n*b.N)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(m.Decodes()-calls)/float64(b.N), "decodes/op")
		})
	}
}
