package hf

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Preference is the order in which ChooseGGUF takes a quantization when a
// repository holds several: Q4_K_M first (the usual balance of size and
// quality, and what most GGUF repositories recommend), then Q8_0 (near
// lossless), then the other k-quants from larger to smaller, then the
// unquantized forms. The tag is matched in the file name, case-insensitively.
var Preference = []string{
	"Q4_K_M", "Q8_0", "Q5_K_M", "Q6_K", "Q4_K_S", "Q5_K_S", "Q4_0", "IQ4_XS", "Q5_0",
	"Q3_K_M", "Q3_K_L", "Q3_K_S", "Q2_K", "F16", "BF16", "F32",
}

// splitRE matches the shards of a split GGUF ("-00001-of-00003.gguf"),
// which one file reference cannot name.
var splitRE = regexp.MustCompile(`(?i)-\d{5}-of-\d{5}\.gguf$`)

// ChoiceError says why no file was chosen, with the candidates.
type ChoiceError struct {
	Reason  string
	Choices []string
}

func (e *ChoiceError) Error() string {
	if len(e.Choices) == 0 {
		return e.Reason
	}
	shown := e.Choices
	more := ""
	if len(shown) > 20 {
		shown, more = shown[:20], fmt.Sprintf(" (and %d more)", len(e.Choices)-20)
	}
	return fmt.Sprintf("%s: %s%s", e.Reason, strings.Join(shown, ", "), more)
}

// ChooseGGUF picks the model file of a repository from its file list: the
// only .gguf file there is, or else the one whose name carries the first
// tag of Preference that exactly one file carries. Multimodal projectors
// (mmproj) and split shards are never chosen. With nothing to choose, or a
// tie, it fails listing the choices, so the person can name one.
func ChooseGGUF(files []string) (string, error) {
	var cands, split []string
	for _, f := range files {
		base := strings.ToLower(path.Base(f))
		switch {
		case !strings.HasSuffix(base, ".gguf"):
		case strings.Contains(base, "mmproj"):
		case splitRE.MatchString(base):
			split = append(split, f)
		default:
			cands = append(cands, f)
		}
	}
	slices.Sort(cands)
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) == 0 && len(split) > 0:
		slices.Sort(split)
		return "", &ChoiceError{Reason: "the repository holds only split GGUF files, which rbee cannot load yet", Choices: split}
	case len(cands) == 0:
		return "", &ChoiceError{Reason: "the repository holds no .gguf file"}
	}
	for _, tag := range Preference {
		var hits []string
		for _, f := range cands {
			if hasTag(path.Base(f), tag) {
				hits = append(hits, f)
			}
		}
		switch len(hits) {
		case 0:
			continue
		case 1:
			return hits[0], nil
		default:
			return "", &ChoiceError{Reason: fmt.Sprintf("several files are %s; name one", tag), Choices: hits}
		}
	}
	return "", &ChoiceError{
		Reason:  fmt.Sprintf("none of the GGUF files is one of %s; name one", strings.Join(Preference, ", ")),
		Choices: cands,
	}
}

// hasTag reports whether name holds tag as a word: not inside a longer
// token (Q4_0 is not in IQ4_0, Q4_K is not in Q4_K_M).
func hasTag(name, tag string) bool {
	lname, ltag := strings.ToLower(name), strings.ToLower(tag)
	for i := 0; ; {
		j := strings.Index(lname[i:], ltag)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(ltag)
		before := start == 0 || !isAlnum(lname[start-1])
		after := end == len(lname) || !(isAlnum(lname[end]) || lname[end] == '_')
		if before && after {
			return true
		}
		i = start + 1
	}
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
