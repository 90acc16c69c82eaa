package grammar

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// intLimit bounds the integers a bounded rule writes: a one-sided bound
// gets this as its other side (a restriction: the digits are bounded
// anyway, as in llama.cpp).
const intLimit = 1e15

// bound is one side of a numeric range.
type bound struct {
	set  bool
	v    float64
	excl bool
}

// bounds reads minimum, maximum and both forms of exclusiveMinimum and
// exclusiveMaximum (draft 4's booleans, later drafts' numbers), keeping
// the stricter of each side.
func bounds(o *object, path string) (lo, hi bound, err error) {
	num := func(k string) (float64, bool, error) {
		v, ok := o.vals[k]
		if !ok {
			return 0, false, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return 0, false, nil
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false, &SchemaError{Path: path, Msg: k + " is not a usable number"}
		}
		return f, true, nil
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
		if v, ok := o.vals[k]; ok {
			_, isNum := v.(json.Number)
			_, isBool := v.(bool)
			if !isNum && (!isBool || !strings.HasPrefix(k, "exclusive")) {
				return lo, hi, &SchemaError{Path: path, Msg: k + " must be a number"}
			}
		}
	}
	tighten := func(b *bound, v float64, excl, lower bool) {
		stricter := !b.set || (lower && (v > b.v || v == b.v && excl)) || (!lower && (v < b.v || v == b.v && excl))
		if stricter {
			*b = bound{set: true, v: v, excl: excl}
		}
	}
	if v, ok, err := num("minimum"); err != nil {
		return lo, hi, err
	} else if ok {
		tighten(&lo, v, o.vals["exclusiveMinimum"] == true, true)
	}
	if v, ok, err := num("maximum"); err != nil {
		return lo, hi, err
	} else if ok {
		tighten(&hi, v, o.vals["exclusiveMaximum"] == true, false)
	}
	if v, ok, err := num("exclusiveMinimum"); err != nil {
		return lo, hi, err
	} else if ok {
		tighten(&lo, v, true, true)
	}
	if v, ok, err := num("exclusiveMaximum"); err != nil {
		return lo, hi, err
	} else if ok {
		tighten(&hi, v, true, false)
	}
	return lo, hi, nil
}

// intBounds are the smallest and largest integers within lo and hi,
// clamped to ±intLimit.
func intBounds(lo, hi bound) (int64, int64) {
	l, h := -intLimit, intLimit
	if lo.set {
		if lo.excl {
			l = math.Max(l, math.Floor(lo.v)+1)
		} else {
			l = math.Max(l, math.Ceil(lo.v))
		}
	}
	if hi.set {
		if hi.excl {
			h = math.Min(h, math.Ceil(hi.v)-1)
		} else {
			h = math.Min(h, math.Floor(hi.v))
		}
	}
	return clampInt(l), clampInt(h)
}

// clampInt converts f to an integer within ±(intLimit+1).
func clampInt(f float64) int64 {
	return int64(math.Max(-intLimit-1, math.Min(f, intLimit+1)))
}

func (c *converter) integerBody(o *object, path string) (string, error) {
	lo, hi, err := bounds(o, path)
	if err != nil {
		return "", err
	}
	if !lo.set && !hi.set {
		return c.b.primitive("integer"), nil
	}
	l, h := intBounds(lo, hi)
	if l > h {
		return "", &UnsupportedError{Keyword: "minimum", Path: path, Detail: "no integer within the bounds (and within ±10^15)"}
	}
	return "(" + intRange(l, h) + ") " + c.b.primitive("space"), nil
}

// numberBody writes numbers within bounds without exponent, as an
// integer within them, or I.F whose whole range [I, I+1) is within them,
// or -J.F whose whole range (-(J+1), -J] is: a subset of the numbers in
// range (none between 0.2 and 0.7, say: then it is an UnsupportedError).
func (c *converter) numberBody(o *object, path string) (string, error) {
	lo, hi, err := bounds(o, path)
	if err != nil {
		return "", err
	}
	if !lo.set && !hi.set {
		return c.b.primitive("number"), nil
	}
	l, h := intBounds(lo, hi)
	var alts []string
	if l <= h {
		alts = append(alts, "("+intRange(l, h)+")")
	}
	frac := c.b.primitive("decimal-part")
	// I.F for I >= 0: I >= l, and I+1 <= hi.
	pl, ph := max(l, 0), int64(intLimit)
	if hi.set {
		ph = min(ph, clampInt(math.Floor(hi.v)-1))
	}
	if pl <= ph {
		alts = append(alts, "("+intRange(pl, ph)+`) "." `+frac)
	}
	// -J.F for J >= 0: -J <= h, and -(J+1) >= lo.
	nl, nh := max(-h, 0), int64(intLimit)
	if lo.set {
		nh = min(nh, clampInt(-math.Ceil(lo.v)-1))
	}
	if nl <= nh {
		alts = append(alts, `"-" (`+intRange(nl, nh)+`) "." `+frac)
	}
	if len(alts) == 0 {
		return "", &UnsupportedError{Keyword: "minimum", Path: path, Detail: "bounds this narrow (no integer, nor a whole interval [I, I+1), within them) are not supported"}
	}
	return "(" + strings.Join(alts, " | ") + ") " + c.b.primitive("space"), nil
}

// intRange is a GBNF expression of exactly the integers lo..hi (lo <=
// hi), written as llama.cpp's converter writes them: digit ranges.
func intRange(lo, hi int64) string {
	var sb strings.Builder
	writeIntRange(&sb, lo, hi)
	return sb.String()
}

func writeIntRange(sb *strings.Builder, lo, hi int64) {
	if lo < 0 && hi < 0 {
		sb.WriteString(`"-" (`)
		writeIntRange(sb, -hi, -lo)
		sb.WriteString(")")
		return
	}
	if lo < 0 {
		sb.WriteString(`"-" (`)
		writeIntRange(sb, 1, -lo)
		sb.WriteString(") | ")
		lo = 0
	}
	from, to := strconv.FormatInt(lo, 10), strconv.FormatInt(hi, 10)
	for d := len(from); d < len(to); d++ {
		uniformRange(sb, from, strings.Repeat("9", d))
		from = "1" + strings.Repeat("0", d)
		sb.WriteString(" | ")
	}
	uniformRange(sb, from, to)
}

// uniformRange writes the numbers from..to, both of the same number of
// digits.
func uniformRange(sb *strings.Builder, from, to string) {
	i := 0
	for i < len(from) && i < len(to) && from[i] == to[i] {
		i++
	}
	if i > 0 {
		sb.WriteString(`"` + from[:i] + `"`)
	}
	if i >= len(from) || i >= len(to) {
		return
	}
	if i > 0 {
		sb.WriteString(" ")
	}
	subLen := len(from) - i - 1
	if subLen == 0 {
		sb.WriteString("[" + from[i:i+1] + "-" + to[i:i+1] + "]")
		return
	}
	fromSub, toSub := from[i+1:], to[i+1:]
	zeros, nines := strings.Repeat("0", subLen), strings.Repeat("9", subLen)
	toReached := false
	sb.WriteString("(")
	if fromSub == zeros {
		digitRange(sb, from[i], to[i]-1)
		sb.WriteString(" ")
		moreDigits(sb, subLen)
	} else {
		sb.WriteString("[" + from[i:i+1] + "] (")
		uniformRange(sb, fromSub, nines)
		sb.WriteString(")")
		if from[i] < to[i]-1 {
			sb.WriteString(" | ")
			if toSub == nines {
				digitRange(sb, from[i]+1, to[i])
				toReached = true
			} else {
				digitRange(sb, from[i]+1, to[i]-1)
			}
			sb.WriteString(" ")
			moreDigits(sb, subLen)
		}
	}
	if !toReached {
		sb.WriteString(" | ")
		digitRange(sb, to[i], to[i])
		sb.WriteString(" ")
		uniformRange(sb, zeros, toSub)
	}
	sb.WriteString(")")
}

func digitRange(sb *strings.Builder, from, to byte) {
	if from == to {
		sb.WriteString("[" + string(from) + "]")
		return
	}
	sb.WriteString("[" + string(from) + "-" + string(to) + "]")
}

func moreDigits(sb *strings.Builder, n int) {
	sb.WriteString("[0-9]")
	if n != 1 {
		sb.WriteString("{" + strconv.Itoa(n) + "}")
	}
}
