package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// errUsage marks a mistake in the command line: the caller prints the
// command's usage and exits 2 instead of 1.
var errUsage = errors.New("usage")

// usageError is a command-line mistake with its reason.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// asUsage makes a refused argument a usage error; nil stays nil.
func asUsage(err error) error {
	if err != nil {
		return usagef("%v", err)
	}
	return nil
}

// parseArgs parses the flags of fs wherever they stand in args, so that
// "rbee infer hello -m x" means "rbee infer -m x hello". The standard flag
// package stops at the first positional argument; here only "--" ends the
// flags. It returns the positional arguments in order, and flag.ErrHelp for
// -h or --help.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "h" || name == "help" {
				return nil, flag.ErrHelp
			}
			return nil, usagef("unknown flag %s", a)
		}
		flags = append(flags, a)
		if !hasValue && !isBoolFlag(f) {
			if i+1 >= len(args) {
				return nil, usagef("flag %s needs a value", a)
			}
			i++
			flags = append(flags, args[i])
		}
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s", strings.TrimPrefix(err.Error(), "flag provided but not defined: "))
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printFlags lists fs's flags with their double-dash spelling; a one-letter
// flag that shares its value with a long one is shown beside it.
func printFlags(w io.Writer, fs *flag.FlagSet, short map[string]string) {
	long := make(map[string]string, len(short)) // long name -> short name
	for s, l := range short {
		long[l] = s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if _, isShort := short[f.Name]; isShort {
			return
		}
		valName, usage := flag.UnquoteUsage(f)
		if isBoolFlag(f) {
			valName = ""
		}
		spell := "    --" + f.Name
		if s, ok := long[f.Name]; ok {
			spell = "-" + s + ", --" + f.Name
		}
		if valName != "" {
			spell += " " + valName
		}
		if f.DefValue != "" && !isBoolFlag(f) {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", spell, usage)
	})
	_ = tw.Flush()
}

// optInt, optFloat and optUint32 are flags that remember whether they were
// given, so that an absent one leaves the request field nil and the worker
// picks its default.
type optInt struct{ v *int }

func (o *optInt) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.Itoa(*o.v)
}

func (o *optInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	o.v = &n
	return nil
}

type optFloat struct{ v *float64 }

func (o *optFloat) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatFloat(*o.v, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	o.v = &f
	return nil
}

type optUint32 struct{ v *uint32 }

func (o *optUint32) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*o.v), 10)
}

func (o *optUint32) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a whole number from 0 to %d", s, uint32(1<<32-1))
	}
	v := uint32(n)
	o.v = &v
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
