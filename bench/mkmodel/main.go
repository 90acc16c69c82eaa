// Command mkmodel writes the project's generated GGUF test models, so that
// benchmarks and demos never need a download:
//
//	go run ./bench/mkmodel -shape qwen2-0.5b|llama3.2-1b|tiny|alphabet -o PATH [-seed N]
//	go run ./bench/mkmodel -script REPLIES.json -o PATH
//
// If PATH already exists with the size the shape produces, nothing is done,
// which lets benchmark scripts call it unconditionally to keep a cache. The
// check is by size only: a file of the same shape written with another seed
// is kept.
//
// -script writes the scripted model (testmodel.WriteScripted) for the
// replies in a JSON array of strings, always (it takes milliseconds): a
// prompt containing "[reply:i]" gets reply i, any other reply 0.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testmodel"
)

func main() {
	shape := flag.String("shape", "", "model to write: qwen2-0.5b, llama3.2-1b, tiny, alphabet or scripted (with -script)")
	out := flag.String("o", "", "output path")
	seed := flag.Uint64("seed", 1, "random seed (ignored for alphabet)")
	script := flag.String("script", "", "write the scripted model for the replies in this JSON array of strings")
	flag.Parse()
	if *script != "" && *shape == "" {
		*shape = "scripted"
	}
	if err := run(*shape, *out, *seed, *script); err != nil {
		fmt.Fprintln(os.Stderr, "mkmodel:", err)
		os.Exit(1)
	}
}

func run(shape, out string, seed uint64, script string) error {
	if out == "" || flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("-o PATH is required and no arguments are accepted")
	}
	var want int64
	var write func() error
	switch {
	case script != "" || shape == "scripted":
		if script == "" {
			return fmt.Errorf("-shape scripted needs -script FILE")
		}
		if shape != "scripted" {
			return fmt.Errorf("-script does not go with -shape %s", shape)
		}
		b, err := os.ReadFile(script)
		if err != nil {
			return err
		}
		var replies []string
		if err := json.Unmarshal(b, &replies); err != nil {
			return fmt.Errorf("%s: want a JSON array of strings: %w", script, err)
		}
		want = -1 // always written
		write = func() error { return testmodel.WriteScripted(out, replies, testmodel.ScriptOptions{}) }
	case shape == "alphabet":
		want = testmodel.AlphabetFileSize()
		write = func() error { return testmodel.WriteAlphabet(out) }
	default:
		s, ok := testmodel.ShapeByName(shape)
		if !ok {
			return fmt.Errorf("unknown -shape %q (want qwen2-0.5b, llama3.2-1b, tiny or alphabet)", shape)
		}
		var err error
		if want, err = s.FileSize(); err != nil {
			return err
		}
		write = func() error { return testmodel.WriteRandom(out, s, seed) }
	}
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Size() == want {
		fmt.Printf("%s: up to date (%d bytes)\n", out, want)
		return nil
	}
	start := time.Now()
	if err := write(); err != nil {
		return err
	}
	f, err := gguf.Check(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: wrote %s %s, %d tensors, %d parameters, %d bytes in %v\n",
		out, f.Architecture(), f.FileType(), len(f.Tensors), f.ParamCount(), f.FileSize, time.Since(start).Round(time.Millisecond))
	return nil
}
