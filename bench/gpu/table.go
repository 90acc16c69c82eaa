package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// tableCmd prints every result in a folder as one table, with the worker
// against the engine and decode speed against the GPU's memory bandwidth.
// Missing or failed measurements are rows that say so: the table is
// printed whatever happened.
func tableCmd(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: table RESULTS_DIR")
	}
	files, err := filepath.Glob(filepath.Join(args[0], "*.json"))
	if err != nil {
		return err
	}
	byModel := map[string][]Result{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(data, &r); err != nil {
			fmt.Printf("(%s: unreadable result: %v)\n", filepath.Base(f), err)
			continue
		}
		byModel[r.Model] = append(byModel[r.Model], r)
	}
	fmt.Println("| model | run | prompt tok/s | decode tok/s | GPU layers | GPU MiB | exit |")
	fmt.Println("|---|---|---:|---:|---:|---:|---|")
	var notes []string
	for _, m := range models {
		rs := byModel[m.file]
		slices.SortFunc(rs, func(a, b Result) int { return strings.Compare(order(a), order(b)) })
		if len(rs) == 0 {
			fmt.Printf("| %s | no result | | | | | |\n", m.file)
			continue
		}
		for _, r := range rs {
			if r.Error != "" {
				fmt.Printf("| %s | %s | FAILED: %s | | | | |\n", m.file, label(r), oneLine(r.Error))
				continue
			}
			mem := ""
			if r.DeviceMemBytes > 0 {
				mem = fmt.Sprint(r.DeviceMemBytes >> 20)
			}
			fmt.Printf("| %s | %s | %s | %s | %d | %s | %s |\n", m.file, label(r),
				num(median(r.PromptTPS)), num(median(r.DecodeTPS)), r.LayersUsed, mem, r.Exit)
		}
		notes = append(notes, summary(m.file, rs)...)
	}
	fmt.Println()
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}

// summary compares the full-offload worker with the engine, both with the
// bandwidth ceiling, and the GPU worker with the CPU one.
func summary(model string, rs []Result) []string {
	var eng, gpu, cpu *Result
	for i := range rs {
		r := &rs[i]
		if r.Error != "" || len(r.DecodeTPS) == 0 {
			continue
		}
		switch {
		case r.Kind == "engine" && r.Device != "cpu" && r.GPULayers < 0:
			eng = r
		case r.Kind == "worker" && r.Device != "cpu" && r.GPULayers < 0:
			gpu = r
		case r.Kind == "worker" && r.Device == "cpu":
			cpu = r
		}
	}
	var out []string
	if eng != nil && gpu != nil {
		ratio := median(gpu.DecodeTPS) / median(eng.DecodeTPS)
		verdict := "met"
		if ratio < 0.97 {
			verdict = "NOT met"
		}
		out = append(out, fmt.Sprintf("%s: worker/engine decode on %s = %.3f (goal >= 0.97: %s); prompt %.3f",
			model, gpu.Device, ratio, verdict, median(gpu.PromptTPS)/median(eng.PromptTPS)))
	}
	for _, r := range []*Result{eng, gpu} {
		if r == nil {
			continue
		}
		bw, known := ceiling(r.DeviceName)
		if !known || r.WeightsPerToken == 0 {
			out = append(out, fmt.Sprintf("%s: %s on %q: no bandwidth ceiling known for this GPU", model, r.Kind, r.DeviceName))
			continue
		}
		reach := median(r.DecodeTPS) * float64(r.WeightsPerToken)
		out = append(out, fmt.Sprintf("%s: %s decode reads %.0f GB/s of weights (%.0f MiB a token) = %.0f%% of the %s's %.2f TB/s",
			model, r.Kind, reach/1e9, float64(r.WeightsPerToken)/(1<<20), 100*reach/bw, r.DeviceName, bw/1e12))
	}
	if gpu != nil && cpu != nil {
		out = append(out, fmt.Sprintf("%s: GPU worker decodes %.1fx and prefills %.1fx as fast as the CPU worker (%d threads)",
			model, median(gpu.DecodeTPS)/median(cpu.DecodeTPS), median(gpu.PromptTPS)/median(cpu.PromptTPS), cpu.Threads))
	}
	return out
}

// ceiling is a GPU's memory bandwidth from its datasheet, by name.
func ceiling(name string) (bytesPerSec float64, known bool) {
	switch {
	case strings.Contains(name, "H200"):
		return 4.8e12, true
	case strings.Contains(name, "H100") && strings.Contains(name, "PCIe"):
		return 2.0e12, true
	case strings.Contains(name, "H100") && strings.Contains(name, "NVL"):
		return 3.9e12, true
	case strings.Contains(name, "H100"):
		return 3.35e12, true // SXM
	case strings.Contains(name, "A100") && strings.Contains(name, "80GB"):
		return 2.039e12, true
	case strings.Contains(name, "A100"):
		return 1.555e12, true
	}
	return 0, false
}

func order(r Result) string {
	dev := "0"
	if r.Device == "cpu" {
		dev = "2"
	} else if r.GPULayers >= 0 {
		dev = "1"
	}
	return dev + r.Kind
}

func label(r Result) string {
	switch {
	case r.Device == "cpu":
		return fmt.Sprintf("%s on cpu, %d threads", r.Kind, r.Threads)
	case r.GPULayers >= 0:
		return fmt.Sprintf("%s on %s, --gpu-layers %d", r.Kind, r.Device, r.GPULayers)
	}
	return fmt.Sprintf("%s on %s, full offload", r.Kind, r.Device)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func num(x float64) string {
	if x >= 100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}
