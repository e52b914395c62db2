// Command ncureport reads Nsight Compute's raw CSV (`ncu --csv --page raw`,
// one row a profiled kernel, a column a metric) from the files named, or
// stdin, and prints for each kernel what limits it: its time and the
// GPU's speed-of-light fractions, its launch (grid, registers, shared
// memory) and occupancy with each limit, the issue rate, the busiest
// pipes, shared memory's wavefronts and bank conflicts, and the warp
// stalls that cost the most cycles per issued instruction. cuda/devcheck.sh
// runs it on the GPU machine (NCU_DETAIL=1) over the flash kernels and a
// sample of the training step's largest kernels; Go is not there, so it is
// built by `make cuda-devpack`. Lines that are not CSV rows (the profiled
// program's output, ncu's ==PROF== lines) are skipped; a kernel profiled
// twice with the same launch is shown once, its last profile.
package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// kernel is one profiled launch: its name, launch and metrics (value and
// unit by metric name).
type kernel struct {
	name, block, grid string
	value             map[string]float64
	unit              map[string]string
}

func main() {
	var in []io.Reader
	for _, f := range os.Args[1:] {
		r, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ncureport:", err)
			continue
		}
		defer r.Close()
		in = append(in, r)
	}
	if len(os.Args) == 1 {
		in = append(in, os.Stdin)
	}
	var ks []kernel
	for _, r := range in {
		got, err := parse(r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ncureport:", err)
		}
		ks = append(ks, got...)
	}
	if len(ks) == 0 {
		fmt.Println("ncureport: no profiled kernels")
		os.Exit(1)
	}
	for _, k := range dedupe(ks) {
		fmt.Print(k.report())
	}
}

// parse reads the CSV rows of r: a header with "Kernel Name", then a row of
// units (no ID), then a row per kernel. A second header (another file's,
// or ncu run again into the same log) starts afresh.
func parse(r io.Reader) ([]kernel, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var ks []kernel
	var hdr, units []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if !strings.HasPrefix(line, `"`) {
			continue
		}
		cr := csv.NewReader(strings.NewReader(line))
		cr.LazyQuotes = true
		row, err := cr.Read()
		if err != nil {
			continue
		}
		switch {
		case indexOf(row, "Kernel Name") >= 0:
			hdr, units = row, nil
		case hdr == nil:
		case row[0] == "" && units == nil:
			units = row
		default:
			ks = append(ks, newKernel(hdr, units, row))
		}
	}
	return ks, nil
}

func indexOf(row []string, s string) int {
	for i, v := range row {
		if v == s {
			return i
		}
	}
	return -1
}

func newKernel(hdr, units, row []string) kernel {
	k := kernel{value: map[string]float64{}, unit: map[string]string{}}
	for i, name := range hdr {
		if i >= len(row) {
			break
		}
		switch name {
		case "Kernel Name":
			k.name = shortName(row[i])
		case "Block Size":
			k.block = row[i]
		case "Grid Size":
			k.grid = row[i]
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(row[i], ",", ""), 64)
		if err != nil {
			continue
		}
		k.value[name] = v
		if i < len(units) {
			k.unit[name] = units[i]
		}
	}
	return k
}

var anonNS = regexp.MustCompile(`\(anonymous namespace\)::`)

// shortName drops a demangled name's return type, anonymous namespaces
// and parameter list: "void (anonymous namespace)::k_fa_fwd<128, 8,
// true>(float *, …)" → "k_fa_fwd<128, 8, true>".
func shortName(s string) string {
	s = anonNS.ReplaceAllString(s, "")
	if i := strings.Index(s, "("); i > 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, " "); i >= 0 && !strings.Contains(s, "<") {
		s = s[i+1:]
	} else if i := strings.Index(s, "<"); i > 0 {
		if j := strings.LastIndex(s[:i], " "); j >= 0 {
			s = s[j+1:]
		}
	}
	return s
}

// dedupe keeps each (name, grid, block)'s last profile, in the order of
// their first.
func dedupe(ks []kernel) []kernel {
	at := map[string]int{}
	var out []kernel
	for _, k := range ks {
		key := k.name + "|" + k.grid + "|" + k.block
		if i, ok := at[key]; ok {
			out[i] = k
			continue
		}
		at[key] = len(out)
		out = append(out, k)
	}
	return out
}

// get is metric m's value, and whether the profile has it.
func (k kernel) get(m string) (float64, bool) {
	v, ok := k.value[m]
	return v, ok
}

// micros is the kernel's duration in µs (0 when not measured).
func (k kernel) micros() float64 {
	v, ok := k.get("gpu__time_duration.sum")
	if !ok {
		return 0
	}
	switch k.unit["gpu__time_duration.sum"] {
	case "nsecond", "ns":
		return v / 1e3
	case "msecond", "ms":
		return v * 1e3
	case "second", "s":
		return v * 1e6
	}
	return v
}

var (
	pipeRe  = regexp.MustCompile(`^sm__(?:pipe_(.+)_cycles_active|inst_executed_pipe_(.+))\.avg\.pct_of_peak_sustained_active$`)
	stallRe = regexp.MustCompile(`^smsp__average_warps_issue_stalled_(.+)_per_issue_active\.ratio$`)
)

// ranked is the metrics whose names re matches (the first non-empty
// submatch naming each), at least min, largest first, at most n.
func (k kernel) ranked(re *regexp.Regexp, min float64, n int) []string {
	type kv struct {
		name string
		v    float64
	}
	best := map[string]float64{}
	for m, v := range k.value {
		sm := re.FindStringSubmatch(m)
		if sm == nil || v < min {
			continue
		}
		name := ""
		for _, s := range sm[1:] {
			if s != "" {
				name = s
				break
			}
		}
		if strings.HasPrefix(m, "sm__inst_executed_pipe_") {
			name += " (inst)"
		}
		best[name] = max(best[name], v)
	}
	var all []kv
	for name, v := range best {
		all = append(all, kv{name, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].name < all[j].name
	})
	var out []string
	for i, e := range all {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%s %.3g", e.name, e.v))
	}
	return out
}

// field is "label value" for each metric the profile has, formatted by f.
func (k kernel) field(label, m, f string) string {
	v, ok := k.get(m)
	if !ok {
		return ""
	}
	if label == "" {
		return fmt.Sprintf(f, v)
	}
	return label + " " + fmt.Sprintf(f, v)
}

// join is the non-empty parts joined by sep.
func join(sep string, parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}

// metricField is a metric shown in a report line: its label, name and
// format.
type metricField struct{ label, metric, format string }

// reportLines are the report's lines of metrics, each field shown where
// the profile has it.
var reportLines = []struct {
	label  string
	fields []metricField
}{
	{"time", []metricField{
		{"SM", "sm__throughput.avg.pct_of_peak_sustained_elapsed", "%.1f %%"},
		{"memory", "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed", "%.1f %%"},
		{"L1/shared", "l1tex__throughput.avg.pct_of_peak_sustained_active", "%.1f %%"},
		{"L2", "lts__throughput.avg.pct_of_peak_sustained_elapsed", "%.1f %%"},
		{"DRAM", "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed", "%.1f %%"}}},
	{"occupancy (warps, % of the SM's)", []metricField{
		{"theoretical", "sm__maximum_warps_per_active_cycle_pct", "%.1f"},
		{"achieved", "sm__warps_active.avg.pct_of_peak_sustained_active", "%.1f"},
		{"blocks/SM by registers", "launch__occupancy_limit_registers", "%.0f"},
		{"by shared", "launch__occupancy_limit_shared_mem", "%.0f"},
		{"by warps", "launch__occupancy_limit_warps", "%.0f"},
		{"by blocks", "launch__occupancy_limit_blocks", "%.0f"}}},
	{"issue", []metricField{
		{"instructions/cycle/SM", "sm__inst_issued.avg.per_cycle_active", "%.2f"},
		{"issue slots busy", "sm__inst_issued.avg.pct_of_peak_sustained_active", "%.1f %%"},
		{"cycles per warp instruction", "smsp__average_warp_latency_per_inst_issued.ratio", "%.1f"}}},
}

// report is the kernel's lines.
func (k kernel) report() string {
	var b strings.Builder
	smem := ""
	if d, ok := k.bytes("launch__shared_mem_per_block_dynamic"); ok {
		s, _ := k.bytes("launch__shared_mem_per_block_static")
		smem = fmt.Sprintf("%.1f KiB shared", (d+s)/1024)
	}
	fmt.Fprintf(&b, "%s  (%s)\n", k.name, join(", ", nonEmpty("grid ", k.grid), nonEmpty("block ", k.block),
		k.field("", "launch__registers_per_thread", "%.0f registers"), smem, k.field("waves", "launch__waves_per_multiprocessor", "%.2f")))
	line := func(label string, parts ...string) {
		if s := join(", ", parts...); s != "" {
			fmt.Fprintf(&b, "  %s: %s\n", label, s)
		}
	}
	for _, l := range reportLines {
		var parts []string
		if l.label == "time" {
			parts = append(parts, fmtMicros(k.micros()))
		}
		for _, f := range l.fields {
			parts = append(parts, k.field(f.label, f.metric, f.format))
		}
		line(l.label, parts...)
	}
	line("pipes (% of peak)", k.ranked(pipeRe, 1, 8)...)
	if w, ok := k.get("l1tex__data_pipe_lsu_wavefronts_mem_shared.sum"); ok {
		c, _ := k.get("l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum")
		pct := 0.0
		if w > 0 {
			pct = 100 * c / w
		}
		line("shared memory", fmt.Sprintf("%.0f wavefronts", w), fmt.Sprintf("%.0f bank conflicts (%.1f %%)", c, pct))
	}
	line("stalls (cycles per issued instruction)", k.ranked(stallRe, 0.05, 8)...)
	return b.String()
}

func nonEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func fmtMicros(us float64) string {
	if us == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f µs", us)
}

// bytes is metric m in bytes, and whether the profile has it.
func (k kernel) bytes(m string) (float64, bool) {
	v, ok := k.get(m)
	switch strings.ToLower(k.unit[m]) {
	case "kbyte":
		v *= 1e3
	case "kibyte":
		v *= 1024
	case "mbyte":
		v *= 1e6
	case "mibyte":
		v *= 1 << 20
	}
	return v, ok
}
