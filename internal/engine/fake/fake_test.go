package fake

import (
	"testing"

	"github.com/rbee/rbee/internal/testmodel"
)

func TestPiece(t *testing.T) {
	m := &Model{}
	for _, tok := range []int32{-1, testmodel.AlphabetVocabSize, 1 << 20} {
		if p, err := m.Piece(tok); err == nil {
			t.Errorf("Piece(%d) = %q, want an error", tok, p)
		}
	}
	if p, err := m.Piece(int32(testmodel.CharToken('a'))); err != nil || string(p) != "a" {
		t.Errorf("Piece(a) = %q, %v", p, err)
	}
	// A control token renders as nothing, and that is not an error.
	if p, err := m.Piece(BOS); err != nil || len(p) != 0 {
		t.Errorf("Piece(BOS) = %q, %v", p, err)
	}
}
