// Command download measures the model downloader (internal/download)
// against the fake Hugging Face hub (internal/hf/hubtest) on loopback, and
// prints two tables. The first is the throughput of a plain http.Get +
// io.Copy into a file and of the downloader fetching the same file in the
// same run (which also hashes every byte, fsyncs the file and renames it
// into place), alternating, and their ratio (goal: at least 0.8). The
// second proves resuming: a transfer cut at half the file, then resumed,
// sends only the rest (the hub counts the bytes it sends), and a connection
// dropped at half is resumed within one download.
//
// Run it with:
//
//	go run ./bench/download [-size 512] [-runs 3] [-dir DIR]
//
// The file is random bytes written once to a temporary directory (or DIR).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rbee/rbee/internal/download"
	"github.com/rbee/rbee/internal/hf/hubtest"
)

const (
	repo = "bench/model"
	file = "model.gguf"
)

func main() {
	var (
		sizeMiB = flag.Int("size", 512, "file size in MiB")
		runs    = flag.Int("runs", 3, "measured downloads of each kind")
		dir     = flag.String("dir", "", "directory for the files (default: a new temporary one, removed after)")
	)
	flag.Parse()
	log.SetFlags(0)
	if err := run(int64(*sizeMiB)<<20, *runs, *dir); err != nil {
		log.Fatal("bench/download: ", err)
	}
}

func run(size int64, runs int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "rbee-bench-download-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	src := filepath.Join(dir, "served.bin")
	if err := writeRandom(src, size); err != nil {
		return err
	}
	hub := hubtest.New()
	defer hub.Close()
	if err := hub.AddFile(repo, file, src); err != nil {
		return err
	}
	fileURL := hub.URL + "/" + repo + "/resolve/main/" + file
	sum := hub.SHA256(repo, file)
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		return err
	}
	defer root.Close()
	home, _ := url.Parse(hub.URL)
	d := download.New(download.Options{Policy: download.Policy{Home: home}, Logger: slog.New(slog.DiscardHandler)})
	req := download.Request{URL: fileURL, Root: root, Name: file, SHA256: sum, Size: size}

	// One unmeasured round warms the page cache and the connections.
	if _, err := plain(fileURL, filepath.Join(out, "plain.bin")); err != nil {
		return err
	}
	var plainRates, rbeeRates []float64
	for i := 0; i <= runs; i++ {
		_ = os.Remove(filepath.Join(out, file))
		t, err := timed(func() error { _, err := d.Get(context.Background(), req, nil); return err })
		if err != nil {
			return err
		}
		if i > 0 {
			rbeeRates = append(rbeeRates, mibps(size, t))
		}
		_ = os.Remove(filepath.Join(out, "plain.bin")) // both start without a file to replace
		t, err = timed(func() error { _, err := plain(fileURL, filepath.Join(out, "plain.bin")); return err })
		if err != nil {
			return err
		}
		if i > 0 {
			plainRates = append(plainRates, mibps(size, t))
		}
	}
	_ = os.Remove(filepath.Join(out, "plain.bin"))

	fmt.Printf("download of a %d MiB file from the local fake hub (loopback), %d runs each, alternating\n\n", size>>20, runs)
	fmt.Printf("%-44s %12s %12s\n", "client", "median MiB/s", "best MiB/s")
	fmt.Printf("%-44s %12.0f %12.0f\n", "plain http.Get + io.Copy to a file", median(plainRates), slices.Max(plainRates))
	fmt.Printf("%-44s %12.0f %12.0f\n", "rbee download (SHA-256, fsync, rename)", median(rbeeRates), slices.Max(rbeeRates))
	fmt.Printf("\nratio rbee / plain (medians): %.2f (goal >= 0.80)\n", median(rbeeRates)/median(plainRates))

	return resume(hub, d, req, size)
}

// resume cuts a transfer at half the file, then resumes it, and prints
// what the hub sent each time.
func resume(hub *hubtest.Hub, d *download.Downloader, req download.Request, size int64) error {
	_ = req.Root.Remove(req.Name)
	half := size / 2
	gate := make(chan struct{})
	defer close(gate)
	hub.SetFault(repo, file, hubtest.Fault{Gate: gate, GateAfter: half})
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan error, 1)
	go func() {
		_, err := d.Get(ctx, req, nil)
		failed <- err
	}()
	partial := filepath.Join(req.Root.Name(), req.Name+".partial")
	for {
		if st, err := os.Stat(partial); err == nil && st.Size() == half {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the transfer stops at half, as if the hive were stopped
	if err := <-failed; !errors.Is(err, context.Canceled) {
		return fmt.Errorf("the cut transfer: %v", err)
	}
	for len(d.Transfers()) > 0 {
		time.Sleep(time.Millisecond)
	}
	first := hub.Stats(repo, file)

	hub.SetFault(repo, file, hubtest.Fault{})
	res, err := d.Get(context.Background(), req, nil)
	if err != nil {
		return err
	}
	second := hub.Stats(repo, file)

	// A connection dropped at half within one download: retried at once
	// with a Range from where it stopped.
	_ = req.Root.Remove(req.Name)
	hub.SetFault(repo, file, hubtest.Fault{CutAfter: half})
	cut, err := d.Get(context.Background(), req, nil)
	if err != nil {
		return err
	}
	third := hub.Stats(repo, file)

	fmt.Printf("\nresume after a cut at half (%d bytes of %d)\n\n", half, size)
	fmt.Printf("%-44s %16s %16s\n", "", "hub sent bytes", "client received")
	fmt.Printf("%-44s %16d %16s\n", "transfer cancelled at half", first.BodyBytes, "-")
	fmt.Printf("%-44s %16d %16d\n", "next download (resumed: Range)", second.BodyBytes, res.Transferred)
	fmt.Printf("%-44s %16d %16d\n", "connection dropped at half, one download", third.BodyBytes, cut.Transferred)
	fmt.Printf("\nresumed download sent only the rest: %v (%d + %d = %d, file %d; %d range request)\n",
		first.BodyBytes+second.BodyBytes == size && res.Resumed,
		first.BodyBytes, second.BodyBytes, first.BodyBytes+second.BodyBytes, size, second.Ranges)
	fmt.Printf("dropped connection resumed in %d attempts, %d bytes sent for a %d-byte file\n", cut.Attempts, third.BodyBytes, size)
	return nil
}

// plain is the baseline: what a script would do.
func plain(u, path string) (int64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'r', 'b', 'e', 'e'})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		n := min(int64(len(buf)), left)
		_, _ = rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
