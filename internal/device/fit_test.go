package device

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testmodel"
)

func writeShape(t *testing.T, s testmodel.Shape) *gguf.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), s.Name+".gguf")
	if err := testmodel.WriteRandom(path, s, 1); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEstimate(t *testing.T) {
	tied := testmodel.Tiny
	tied.Name, tied.TiedEmbeddings, tied.QKVBias = "tiny-tied", true, true
	for _, s := range []testmodel.Shape{testmodel.Tiny, tied} {
		t.Run(s.Name, func(t *testing.T) {
			f := writeShape(t, s)
			const ctx, batch = 1024, 512
			n, err := Estimate(f, ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if n.Blocks != s.Blocks || n.All() != s.Blocks+1 {
				t.Fatalf("blocks %d, all %d; want %d", n.Blocks, n.All(), s.Blocks)
			}
			// Every tensor is counted once, except that a tied embedding
			// is counted for the output layer instead of the input.
			embd, _ := f.Tensor("token_embd.weight")
			want := f.TensorBytes()
			if !s.TiedEmbeddings {
				want -= embd.Size
			}
			if got := uint64(n.Blocks)*n.BlockBytes + n.OutputBytes; got != want {
				t.Errorf("blocks and output = %d bytes, want %d", got, want)
			}
			if n.OutputBytes < embd.Size {
				t.Errorf("output layer %d bytes, smaller than the vocabulary matrix (%d)", n.OutputBytes, embd.Size)
			}
			if want := uint64(ctx * s.KVHeads * 2 * s.HeadDim() * 2); n.KVBytes != want {
				t.Errorf("KV per block = %d, want %d", n.KVBytes, want)
			}
			logits := uint64(batch * s.Vocab * 4)
			if n.ComputeBytes < logits {
				t.Errorf("compute %d bytes: less than the batch's logits (%d)", n.ComputeBytes, logits)
			}
			checkFit(t, n)
		})
	}
}

func checkFit(t *testing.T, n Needs) {
	t.Helper()
	per := n.BlockBytes + n.KVBytes
	whole := n.Bytes(n.All())
	if whole != n.ComputeBytes+uint64(n.Blocks)*per+n.OutputBytes || n.Bytes(0) != n.ComputeBytes || n.Bytes(-3) != n.ComputeBytes {
		t.Fatalf("Bytes: all %d, 0 %d for %+v", whole, n.Bytes(0), n)
	}
	if n.Bytes(n.All()+10) != whole {
		t.Errorf("more layers than the model has must cost no more")
	}
	for _, c := range []struct {
		free uint64
		want int
	}{
		{0, 0},
		{Margin, 0},
		{Margin + n.ComputeBytes, 0},
		{Margin + n.ComputeBytes + per - 1, 0},
		{Margin + n.ComputeBytes + per, 1},
		{Margin + whole - 1, n.Blocks},
		{Margin + whole, n.All()},
		{1 << 50, n.All()},
	} {
		if got := n.Fit(c.free); got != c.want {
			t.Errorf("Fit(%d) = %d, want %d (%+v)", c.free, got, c.want, n)
		}
	}
}

func TestEstimateRejects(t *testing.T) {
	f := writeShape(t, testmodel.Tiny)
	if _, err := Estimate(f, 0, 512); err == nil {
		t.Error("a context of 0 tokens was accepted")
	}
	if _, err := Estimate(f, 512, 0); err == nil {
		t.Error("a batch of 0 was accepted")
	}
	noBlocks := *f
	noBlocks.Tensors = nil
	for _, ti := range f.Tensors {
		if ti.Name == "token_embd.weight" || ti.Name == "output.weight" {
			noBlocks.Tensors = append(noBlocks.Tensors, ti)
		}
	}
	if _, err := Estimate(&noBlocks, 512, 512); err == nil {
		t.Error("a model without blocks was accepted")
	}
	bad := *f
	bad.Tensors = append([]gguf.TensorInfo{{Name: "blk.x.attn_q.weight", Size: 1}}, f.Tensors...)
	if _, err := Estimate(&bad, 512, 512); err == nil {
		t.Error("a block named blk.x was accepted")
	}
}

func TestSaturation(t *testing.T) {
	const maxU = ^uint64(0)
	if mul(1<<40, 1<<40) != maxU || mul(3, 4, 5) != 60 || mul() != 1 || add(maxU, 1) != maxU || add(2, 3) != 5 {
		t.Fatal("saturating arithmetic is wrong")
	}
	huge := Needs{Blocks: 10, BlockBytes: maxU / 2, KVBytes: maxU / 2, ComputeBytes: 1}
	if huge.Bytes(5) != maxU || huge.Fit(1<<50) != 0 {
		t.Fatalf("an absurd model must never fit: bytes %d, fit %d", huge.Bytes(5), huge.Fit(1<<50))
	}
}

func TestPlace(t *testing.T) {
	f := writeShape(t, testmodel.Tiny)
	needs, err := Estimate(f, 2*256, PromptBatch)
	if err != nil {
		t.Fatal(err)
	}
	gpu := Target{Device: Device{Kind: CUDA}, Description: "Test GPU", Total: 80 << 30}

	gpu.Free = 80 << 30
	if p, err := Place(f, gpu, -1, 256, 2); err != nil || p.Layers != needs.All() || p.Needs != needs {
		t.Fatalf("a big GPU: %+v, %v; want all %d layers", p, err, needs.All())
	}
	if p, err := Place(f, gpu, 3, 256, 2); err != nil || p.Layers != 3 {
		t.Fatalf("asked for 3 layers: %+v, %v", p, err)
	}
	gpu.Free = Margin + needs.ComputeBytes + needs.BlockBytes + needs.KVBytes
	if p, err := Place(f, gpu, -1, 256, 2); err != nil || p.Layers != 1 {
		t.Fatalf("room for one block: %+v, %v", p, err)
	}
	gpu.Free = Margin
	if _, err := Place(f, gpu, -1, 256, 2); err == nil || !strings.Contains(err.Error(), "does not fit on cuda:0 (Test GPU)") {
		t.Fatalf("no room: %v", err)
	}
	// What was asked is given even where it does not fit: llama.cpp says.
	if p, err := Place(f, gpu, 2, 256, 2); err != nil || p.Layers != 2 {
		t.Fatalf("asked for 2 layers on a full GPU: %+v, %v", p, err)
	}
}
