//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// benchReport collects what TestBench measured: one row per metric, with the
// baselines measured in the same run, and the raw samples behind each row.
type benchReport struct {
	mu       sync.Mutex
	Started  time.Time      `json:"started"`
	Duration string         `json:"duration"`
	Version  string         `json:"version"`
	CPUs     int            `json:"cpus"`
	Load     string         `json:"loadavg_at_start"`
	Rows     []*benchRow    `json:"rows"`
	Failed   []string       `json:"failed_sections,omitempty"`
	Raw      map[string]any `json:"raw"`
}

type benchBaseline struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// benchRow is one metric. Ratio is Tunnel over the first baseline.
type benchRow struct {
	Metric    string          `json:"metric"`
	Unit      string          `json:"unit"`
	Tunnel    float64         `json:"tunnel"`
	Baselines []benchBaseline `json:"baselines,omitempty"`
	Ratios    []float64       `json:"ratios,omitempty"`
	Target    string          `json:"target,omitempty"`
	Verdict   string          `json:"verdict"`
	Note      string          `json:"note,omitempty"`
}

func newBenchReport() *benchReport {
	load, _ := os.ReadFile("/proc/loadavg")
	return &benchReport{Started: time.Now(), CPUs: runtime.NumCPU(), Load: strings.TrimSpace(string(load)), Raw: map[string]any{}}
}

// add records a row. ok, when not nil, decides the verdict against target.
func (r *benchReport) add(metric, unit string, tunnel float64, baselines []benchBaseline, target string, ok func(v float64, ratios []float64) bool, note string) {
	row := &benchRow{Metric: metric, Unit: unit, Tunnel: round3(tunnel), Target: target, Note: note, Verdict: "-"}
	for _, b := range baselines {
		b.Value = round3(b.Value)
		row.Baselines = append(row.Baselines, b)
		ratio := math.NaN()
		if b.Value != 0 {
			ratio = tunnel / b.Value
		}
		row.Ratios = append(row.Ratios, round3(ratio))
	}
	if ok != nil {
		row.Verdict = "MISS"
		if ok(tunnel, row.Ratios) {
			row.Verdict = "ok"
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, row)
}

func (r *benchReport) raw(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Raw[key] = v
}

func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	if v == 0 {
		return 0
	}
	// Three significant digits: enough for a noisy machine.
	p := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func num(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", round3(v)), "0"), ".")
}

// markdown renders the rows as one table.
func (r *benchReport) markdown() string {
	var b strings.Builder
	b.WriteString("| metric | tunnel | baseline(s) | ratio | target | verdict |\n|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		var bases, ratios []string
		for i, x := range row.Baselines {
			bases = append(bases, fmt.Sprintf("%s %s", x.Name, num(x.Value)))
			ratios = append(ratios, fmt.Sprintf("%s× %s", num(row.Ratios[i]), x.Name))
		}
		metric := row.Metric
		if row.Unit != "" {
			metric += " (" + row.Unit + ")"
		}
		if row.Note != "" {
			metric += "; " + row.Note
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", metric, num(row.Tunnel),
			dash(strings.Join(bases, ", ")), dash(strings.Join(ratios, ", ")), dash(row.Target), row.Verdict)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "| section %q failed: see bin/bench.log | | | | | FAIL |\n", f)
	}
	fmt.Fprintf(&b, "\n%s, %d CPUs, load average at start %s, took %s.\n", r.Version, r.CPUs, r.Load, r.Duration)
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// write puts results.json and results.md in bench/ at the repository root.
func (r *benchReport) write() (string, error) {
	r.Duration = time.Since(r.Started).Round(time.Second).String()
	dir := filepath.Join(repoRoot, "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return "", err
	}
	md := r.markdown()
	return md, os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
