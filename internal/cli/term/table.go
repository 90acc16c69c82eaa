// Package term is what the CLI shows people: results as tables or key: value
// lines, and a job's narration and progress on stderr, every string from a
// daemon kept to one line of plain text.
package term

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// View says how to print a result for people: the columns of a table for a
// list, the first keys of key: value lines for an object. Keys a View does
// not name are left out of tables (they would be too wide) and printed last,
// sorted, in key: value lines.
type View struct {
	Cols  []string
	Keys  []string
	Empty string // printed for an empty list
}

// PrintJSON prints result data as indented JSON.
func PrintJSON(w io.Writer, data json.RawMessage) error {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return fmt.Errorf("the result is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// PrintData prints result data for people, as the View says.
func PrintData(w io.Writer, data json.RawMessage, v View) error {
	if len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return fmt.Errorf("the result is not JSON: %w", err)
	}
	switch x := x.(type) {
	case nil:
		return nil
	case []any:
		return printTable(w, x, v)
	case map[string]any:
		return printKV(w, x, v.Keys)
	default:
		_, err := fmt.Fprintln(w, cell("", x))
		return err
	}
}

func printTable(w io.Writer, rows []any, v View) error {
	if len(rows) == 0 {
		if v.Empty != "" {
			_, err := fmt.Fprintln(w, v.Empty)
			return err
		}
		return nil
	}
	cols := v.Cols
	if len(cols) == 0 {
		cols = allKeys(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = strings.ToUpper(c)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		obj, ok := r.(map[string]any)
		cells := make([]string, len(cols))
		for i, c := range cols {
			switch {
			case ok:
				cells[i] = cell(c, obj[c])
			case i == 0:
				cells[i] = cell("", r)
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func allKeys(rows []any) []string {
	var keys []string
	for _, r := range rows {
		if obj, ok := r.(map[string]any); ok {
			for k := range obj {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		keys = []string{"value"}
	}
	return keys
}

func printKV(w io.Writer, obj map[string]any, first []string) error {
	var keys []string
	for _, k := range first {
		if _, ok := obj[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range obj {
		if !slices.Contains(keys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	keys = append(keys, rest...)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s:\t%s\n", OneLine(k), cell(k, obj[k]))
	}
	return tw.Flush()
}

// cell writes one value for people; key hints at units ("size_bytes").
func cell(key string, v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return OneLine(v)
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && strings.HasSuffix(key, "_bytes") {
			return SizeText(n)
		}
		return v.String()
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = cell("", e)
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return OneLine(string(b))
}
