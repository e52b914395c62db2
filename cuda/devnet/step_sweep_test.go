//go:build cuda

package devnet_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"distill/core/lora"
	"distill/cuda/devnet"
)

// Each variant's baseline: the one setting its knobs alone, added where
// none does; knobs alone, the default step.
func TestParseVariants(t *testing.T) {
	vs, err := parseVariants("nohalfdy:DISTILL_CUDA_HALF_DY=0; keep:DISTILL_BENCH_KEEP=1;" +
		"nohalfdy-keep:DISTILL_CUDA_HALF_DY=0 DISTILL_BENCH_KEEP=1;" +
		"colda-dropout:DISTILL_BENCH_DROPOUT=0.05 DISTILL_CUDA_COL_DA=1 DISTILL_BENCH_KEEP=1;" +
		"rowsums-dropout:DISTILL_CUDA_ROW_SUMS=1 DISTILL_BENCH_KEEP=1 DISTILL_BENCH_DROPOUT=0.05;;")
	ok(t, err)
	want := map[string]string{"default": "", "nohalfdy": "default", "keep": "default", "nohalfdy-keep": "keep",
		"colda-dropout": "base,dropout=0.05,keep=1", "rowsums-dropout": "base,dropout=0.05,keep=1",
		"base,dropout=0.05,keep=1": "default"}
	if len(vs) != len(want) {
		t.Fatalf("%d variants, want %d: %+v", len(vs), len(want), vs)
	}
	for _, v := range vs {
		base := ""
		if v.base >= 0 {
			base = vs[v.base].name
		}
		if w, found := want[v.name]; !found || base != w {
			t.Errorf("[%s]: baseline %q, want %q", v.name, base, w)
		}
	}
	if last := vs[len(vs)-1]; strings.Join(last.env, " ") != "DISTILL_BENCH_DROPOUT=0.05 DISTILL_BENCH_KEEP=1" || last.gated {
		t.Errorf("the added baseline sets %q (gated %v)", last.env, last.gated)
	}
	for _, bad := range []string{"x", ":A=1", "a b:A=1", "x:A", "x:=1", "x:A=1;x:B=1", "default:A=1", "a/b:A=1"} {
		if _, err := parseVariants(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The sweep over a small model on the device: every variant visited each
// round with its own variables (a gate it closes stays closed for its
// visits alone, the environment as it was after each), its line in the
// benchmark format beside its baseline; a step recorded and replayed where
// a variant asks; past the deadline nothing runs and every line says so.
func TestStepSweep(t *testing.T) {
	d := device(t)
	m, s := firstSetup(t, 11)
	a, err := lora.NewFor(m, lora.Config{R: 16, Alpha: 32, Targets: lora.Modules})
	ok(t, err)
	lora.Init(a, 1)
	t.Setenv("DISTILL_CUDA_HALF_DY", "")
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "0")
	vs, err := parseVariants("nohalfdy:DISTILL_CUDA_HALF_DY=0;keep:DISTILL_BENCH_KEEP=1;" +
		"nohalfdy-keep:DISTILL_CUDA_HALF_DY=0 DISTILL_BENCH_KEEP=1;graphs:DISTILL_CUDA_STEP_GRAPHS=1;" +
		"nodropdx:DISTILL_CUDA_DROPOUT_DX=0 DISTILL_BENCH_DROPOUT=0.05;dpo:DISTILL_BENCH_METHOD=dpo")
	ok(t, err)
	halfDy := map[string]int64{}
	visits := map[string]int{}
	var order []string
	var log bytes.Buffer
	sw := sweeper{rounds: 2, steps: 1, warm: 3, out: &log}
	last := devnet.HalfDyLayers()
	sw.after = func(v variant) {
		visits[v.name]++
		order = append(order, v.name)
		halfDy[v.name] += devnet.HalfDyLayers() - last
		last = devnet.HalfDyLayers()
		if g, s := os.Getenv("DISTILL_CUDA_HALF_DY"), os.Getenv("DISTILL_CUDA_STEP_GRAPHS"); g != "" || s != "0" {
			t.Errorf("after [%s]: DISTILL_CUDA_HALF_DY %q, DISTILL_CUDA_STEP_GRAPHS %q: not restored", v.name, g, s)
		}
		if _, set := os.LookupEnv("DISTILL_BENCH_KEEP"); set {
			t.Errorf("after [%s]: DISTILL_BENCH_KEEP left set", v.name)
		}
	}
	replays0, _, _, _ := devnet.StepGraphs()
	res := sw.run(d, m, a, s.shape, 64, "small/seq64", vs)
	replays1, _, _, _ := devnet.StepGraphs()
	t.Logf("visits:\n%s", log.String())
	for _, r := range res {
		if r.err != nil || len(r.samples) != 2 || visits[r.v.name] != 2 {
			t.Errorf("[%s]: %d samples of %d visits (%v), want 2", r.v.name, len(r.samples), visits[r.v.name], r.err)
		}
	}
	var want []string // in the given order, then back
	for _, v := range vs {
		want = append(want, v.name)
	}
	for i := range vs {
		want = append(want, vs[len(vs)-1-i].name)
	}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("visited %q, want %q", order, want)
	}
	// Three layers' bf16 dy a step, four steps a visit, where the gate is open.
	for _, name := range []string{"default", "keep", "graphs"} {
		if halfDy[name] == 0 {
			t.Errorf("[%s]: no layer read its dy in bf16", name)
		}
	}
	for _, name := range []string{"nohalfdy", "nohalfdy-keep"} {
		if halfDy[name] != 0 {
			t.Errorf("[%s]: %d layers read their dy in bf16 with the gate closed", name, halfDy[name])
		}
	}
	if replays1-replays0 < 2 { // the graphs variant's timed step, each round
		t.Errorf("%d steps replayed, want ≥ 2", replays1-replays0)
	}

	var out bytes.Buffer
	printSweep(&out, "small/seq64", 989, res)
	benchRe := regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op(.*)$`) // tools/cudatable's
	all := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(all) < len(vs) {
		t.Fatalf("%d lines for %d variants:\n%s", len(all), len(vs), out.String())
	}
	lines, verdicts := all[:len(vs)], all[len(vs):]
	if len(verdicts) != len(vs) || !strings.HasPrefix(verdicts[0], "sweep small/seq64 verdicts") {
		t.Errorf("want a verdict a variant but the default after the lines:\n%s", strings.Join(verdicts, "\n"))
	}
	for _, v := range vs[1:] {
		if n := strings.Count(out.String(), "["+v.name+"] vs ["); n != 1 {
			t.Errorf("[%s]: %d verdicts", v.name, n)
		}
	}
	vsBase := map[string]string{"default": "", "nohalfdy": "%vs[default]", "keep": "%vs[default]", "nohalfdy-keep": "%vs[keep]",
		"graphs": "%vs[default]", "nodropdx": "%vs[base,dropout=0.05]", "dpo": "%vs[default]", "base,dropout=0.05": "%vs[default]"}
	for i, line := range lines {
		name := vs[i].name
		if !benchRe.MatchString(line) || !strings.HasPrefix(line, "BenchmarkSweep["+name+"]/small/seq64\t2\t") {
			t.Errorf("line %q: not [%s]'s in the benchmark format", line, name)
		}
		if w := vsBase[name]; (w == "") != !strings.Contains(line, "%vs[") || w != "" && !strings.Contains(line, w) {
			t.Errorf("line %q: want %q", line, w)
		}
	}

	sw.deadline = time.Now() // nothing fits
	out.Reset()
	printSweep(&out, "small/seq64", 989, sw.run(d, m, a, s.shape, 64, "small/seq64", vs))
	if n := strings.Count(out.String(), "did not run: skipped for the deadline"); n != len(vs) {
		t.Errorf("past the deadline %d of %d variants said so:\n%s", n, len(vs), out.String())
	}
}

// A verdict calls a change faster or slower only beyond the larger spread
// of the two variants' visits, and never within 1 %.
func TestSweepVerdicts(t *testing.T) {
	res := func(secs ...float64) sweepResult {
		var r sweepResult
		for _, s := range secs {
			r.samples = append(r.samples, sample{sec: s})
		}
		return r
	}
	for _, c := range []struct {
		r, b sweepResult
		want string
	}{
		{res(0.95, 0.96), res(1.00, 1.01), "faster"}, // −5 %, spreads ~1 %
		{res(0.995), res(1.0), "same"},               // −0.5 %: within the floor
		{res(0.97, 1.02), res(1.0, 1.0), "same"},     // −3 %, but its own visits 5 % apart
		{res(1.03), res(1.0, 1.05), "same"},          // +3 %, the baseline's visits 5 % apart
		{res(1.10, 1.11), res(1.0), "slower"},        // +10 %
		{res(0.5), res(1.0), "faster"},               // one visit each
	} {
		if got, d := verdict(c.r, c.b); got != c.want {
			t.Errorf("%v against %v: %s (%+.3f), want %s", c.r.samples, c.b.samples, got, d, c.want)
		}
	}
}
