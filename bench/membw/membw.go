// Package membw measures this machine's memory read bandwidth, the ceiling
// for decoding: each generated token reads every weight once.
package membw

import (
	"sync"
	"time"
)

// Measure reads a buffer of size bytes with the given number of goroutines,
// rounds times, and returns the best rate in bytes per second.
func Measure(size int, threads, rounds int) float64 {
	words := make([]uint64, size/8)
	for i := range words {
		words[i] = uint64(i)
	}
	best := 0.0
	for range rounds {
		start := time.Now()
		var wg sync.WaitGroup
		chunk := len(words) / threads
		sums := make([]uint64, threads)
		for t := range threads {
			part := words[t*chunk : (t+1)*chunk]
			wg.Go(func() { sums[t] = sum(part) })
		}
		wg.Wait()
		rate := float64(chunk*threads*8) / time.Since(start).Seconds()
		best = max(best, rate)
		sink = sums[0]
	}
	return best
}

var sink uint64

// sum keeps four independent accumulators so the loop is bound by loads,
// not by the add chain.
func sum(p []uint64) uint64 {
	var a, b, c, d uint64
	for len(p) >= 8 {
		a += p[0] ^ p[4]
		b += p[1] ^ p[5]
		c += p[2] ^ p[6]
		d += p[3] ^ p[7]
		p = p[8:]
	}
	return a + b + c + d
}
