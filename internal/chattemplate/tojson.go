package chattemplate

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"
)

// tojsonName is the filter that replaces tojson in a template's source
// (see prepare): the engine looks its own filters up before the render
// context, so its tojson cannot be overridden by name, and it differs from
// transformers' json.dumps where prompts notice (indent sorts keys and
// escapes <, > and &).
const tojsonName = "rbee_tojson"

// maxEncodeDepth bounds the nesting tojson walks; a template can build a
// list that contains itself.
const maxEncodeDepth = 200

// tojsonFilter is transformers' tojson: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False), each overridable.
func tojsonFilter(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.NewString(""), nil
	}
	e := encoder{itemSep: ", ", keySep: ": "}
	indent, hasIndent := arg(args, kwargs, 1, "indent")
	if hasIndent && !indent.IsNone() && !indent.IsUndefined() {
		e.indented = true
		e.itemSep = ","
		switch {
		case indent.IsString():
			e.indent = indent.AsString()
		case indent.IsInt():
			e.indent = strings.Repeat(" ", int(min(max(indent.AsInt(), 0), 64)))
		default:
			return jinja.Undefined(), errors.New("tojson: indent must be an integer or a string")
		}
	}
	if v, ok := kwargs["ensure_ascii"]; ok {
		e.ascii = v.IsTruthy()
	}
	if v, ok := kwargs["sort_keys"]; ok {
		e.sortKeys = v.IsTruthy()
	}
	if v, ok := kwargs["separators"]; ok && !v.IsNone() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Items[0].IsString() || !v.AsList().Items[1].IsString() {
			return jinja.Undefined(), errors.New("tojson: separators must be two strings")
		}
		e.itemSep, e.keySep = v.AsList().Items[0].AsString(), v.AsList().Items[1].AsString()
	}
	if err := e.value(args[0], 0); err != nil {
		return jinja.Undefined(), err
	}
	if e.b.Len() > MaxOutputLen {
		return jinja.Undefined(), ErrTooLong
	}
	return jinja.NewString(e.b.String()), nil
}

// arg is a filter argument given by position (after the filtered value) or
// by name.
func arg(args []jinja.Value, kwargs map[string]jinja.Value, pos int, name string) (jinja.Value, bool) {
	if v, ok := kwargs[name]; ok {
		return v, true
	}
	if pos < len(args) {
		return args[pos], true
	}
	return jinja.Undefined(), false
}

type encoder struct {
	b               strings.Builder
	itemSep, keySep string
	indent          string
	indented        bool
	ascii, sortKeys bool
}

func (e *encoder) newline(depth int) {
	e.b.WriteByte('\n')
	for range depth {
		e.b.WriteString(e.indent)
	}
}

func (e *encoder) value(v jinja.Value, depth int) error {
	if depth > maxEncodeDepth {
		return errors.New("tojson: value nested too deeply")
	}
	if e.b.Len() > MaxOutputLen {
		return ErrTooLong
	}
	switch {
	case v.IsNone(), v.IsUndefined(), v.IsCallable():
		e.b.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			e.b.WriteString("true")
		} else {
			e.b.WriteString("false")
		}
	case v.IsInt():
		e.b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		e.b.WriteString(pyFloat(v.AsFloat()))
	case v.IsString():
		e.str(v.AsString())
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			e.b.WriteString("[]")
			return nil
		}
		e.b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				e.b.WriteString(e.itemSep)
			}
			if e.indented {
				e.newline(depth + 1)
			}
			if err := e.value(it, depth+1); err != nil {
				return err
			}
		}
		if e.indented {
			e.newline(depth)
		}
		e.b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		if d.Len() == 0 {
			e.b.WriteString("{}")
			return nil
		}
		keys := d.Keys
		if e.sortKeys {
			keys = slices.Sorted(slices.Values(keys))
		}
		e.b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				e.b.WriteString(e.itemSep)
			}
			if e.indented {
				e.newline(depth + 1)
			}
			e.str(k)
			e.b.WriteString(e.keySep)
			if err := e.value(d.Data[k], depth+1); err != nil {
				return err
			}
		}
		if e.indented {
			e.newline(depth)
		}
		e.b.WriteByte('}')
	default:
		e.b.WriteString("null")
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// str writes s as Python's json.dumps does: \" \\ \n \r \t \b \f, other
// control characters as \u00XX, and with ensure_ascii everything outside
// printable ASCII as \uXXXX (UTF-16 surrogate pairs above U+FFFF).
func (e *encoder) str(s string) {
	b := &e.b
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (e.ascii && r == 0x7f):
				writeU(b, r)
			case e.ascii && r > 0x7f:
				if r > 0xffff {
					r -= 0x10000
					writeU(b, 0xd800+(r>>10))
					writeU(b, 0xdc00+(r&0x3ff))
				} else {
					writeU(b, r)
				}
			default:
				// Invalid UTF-8 arrives here as U+FFFD, which is what
				// a Python string decoded with errors="replace" holds.
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

func writeU(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[r>>12&0xf])
	b.WriteByte(hexDigits[r>>8&0xf])
	b.WriteByte(hexDigits[r>>4&0xf])
	b.WriteByte(hexDigits[r&0xf])
}

// pyFloat formats f as Python's repr (which json.dumps uses): the shortest
// digits that round-trip, positional from 1e-4 up to 1e16 with at least
// one decimal ("1.0"), scientific otherwise ("1e+16", "1.5e-05").
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d[.ddd]e±XX
	mant, exp, _ := strings.Cut(s, "e")
	x, _ := strconv.Atoi(exp)
	if x < -4 || x >= 16 {
		return mant + "e" + exp[:1] + pad2(exp[1:])
	}
	p := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(p, ".") {
		p += ".0"
	}
	return p
}

// pad2 keeps at least two exponent digits, as Python does ("e-05").
func pad2(digits string) string {
	digits = strings.TrimLeft(digits, "0")
	for len(digits) < 2 {
		digits = "0" + digits
	}
	return digits
}
