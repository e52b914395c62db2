//go:build cuda

package devnet_test

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"distill/core/lora"
	"distill/core/model"
	"distill/cuda"
	"distill/cuda/devnet"
)

// BenchmarkStepSweep: BenchmarkStep's step for every variant named in
// DISTILL_BENCH_VARIANTS, in one process over one model a shape
// (DISTILL_BENCH_STEP), the variants taken in turn round after round
// (DISTILL_BENCH_ROUNDS, default 2; every other round in reverse), so each
// is timed beside the others under the same clocks and heat, and the
// model's load and quantisation, the process's start and the device's
// context are paid once, not once a variant (devcheck's STEP_VARIANTS ran
// a process each: the 1.5B model's NF4 quantisation alone took 5.4 s on
// the project's 2-core VM, where its step takes ~0.1 s on an H200). A
// variant is `name:VAR=value VAR=value`, variants apart by `;`; the
// DISTILL_BENCH_* knobs among its
// variables (KEEP, DROPOUT, METHOD, SEQS, ATTN) say which step it is, the
// rest (the gates) which path, and it is compared with its baseline: the
// variant that sets its knobs alone, added when none does (`base,keep=1`),
// or for a variant that sets knobs alone, the default step. Each visit
// makes its own Net, warms it up (3 steps: a recorded step's arena and
// recording) and times DISTILL_BENCH_SWEEP_STEPS steps (default 3); a
// visit's line is printed as it ends, and at the end one line a variant in
// the benchmark format, its fastest visit's time, the spread of its visits
// and its change against its baseline's fastest. DISTILL_BENCH_SWEEP_SECONDS
// bounds the sweep, the shapes left sharing the time left alike: no visit
// starts that would end past its shape's share (its previous visit's time
// the guess), and the summary reports what ran.
func BenchmarkStepSweep(b *testing.B) {
	spec := os.Getenv("DISTILL_BENCH_VARIANTS")
	if spec == "" {
		b.Skip("skipping: DISTILL_BENCH_VARIANTS names no variant")
	}
	vs, err := parseVariants(spec)
	if err != nil {
		b.Fatal(err)
	}
	sw := sweeper{rounds: envInt("DISTILL_BENCH_ROUNDS", 2), steps: envInt("DISTILL_BENCH_SWEEP_STEPS", 3), warm: 3, out: os.Stdout}
	var end time.Time
	if s := envInt("DISTILL_BENCH_SWEEP_SECONDS", 0); s > 0 {
		end = time.Now().Add(time.Duration(s) * time.Second)
	}
	peak, list, d := benchPeak(), benchShapes(b), device(b)
	for k, sh := range list {
		if !end.IsZero() { // the shapes left share the time left alike
			sw.deadline = time.Now().Add(time.Until(end) / time.Duration(len(list)-k))
		}
		m, a, s := benchModel(b, sh.name)
		label := sh.label()
		res := sw.run(d, m, a, s, sh.seq, label, vs)
		for _, r := range res {
			if r.err != nil {
				b.Errorf("[%s] %s: %v", r.v.name, label, r.err)
			}
		}
		printSweep(os.Stdout, label, peak, res)
	}
}

// variant is one entry of DISTILL_BENCH_VARIANTS.
type variant struct {
	name  string
	env   []string // VAR=value, as given
	knobs []string // the DISTILL_BENCH_* among env, sorted: which step
	gated bool     // env sets something besides the knobs: which path
	base  int      // its baseline's index in the list (−1: none, the default itself)
}

const sweepDefault = "default"

// parseVariants reads a sweep's variants and gives each its baseline:
// the default step first, then the given ones, then any baseline none of
// them is (a variant setting only knobs k is the baseline of every variant
// whose knobs are k).
func parseVariants(spec string) ([]variant, error) {
	vs := []variant{{name: sweepDefault, base: -1}}
	seen := map[string]bool{sweepDefault: true}
	for _, item := range strings.Split(spec, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, env, found := strings.Cut(item, ":")
		name = strings.TrimSpace(name)
		if !found || name == "" || strings.ContainsAny(name, " \t[]/") {
			return nil, fmt.Errorf("DISTILL_BENCH_VARIANTS: %q: want name:VAR=value VAR=value (a name without spaces, brackets or slashes)", item)
		}
		if seen[name] {
			return nil, fmt.Errorf("DISTILL_BENCH_VARIANTS: %q named twice", name)
		}
		seen[name] = true
		v := variant{name: name}
		for _, kv := range strings.Fields(env) {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("DISTILL_BENCH_VARIANTS: [%s]: %q is not VAR=value", name, kv)
			}
			v.env = append(v.env, kv)
			if strings.HasPrefix(k, "DISTILL_BENCH_") {
				v.knobs = append(v.knobs, kv)
			} else {
				v.gated = true
			}
		}
		slices.Sort(v.knobs)
		vs = append(vs, v)
	}
	n := len(vs)
	for i := 1; i < n; i++ {
		key := strings.Join(vs[i].knobs, " ")
		if !vs[i].gated { // knobs alone (or nothing): against the default step
			vs[i].base = 0
			continue
		}
		vs[i].base = -1
		for j := range vs {
			if !vs[j].gated && strings.Join(vs[j].knobs, " ") == key {
				vs[i].base = j
				break
			}
		}
		if vs[i].base < 0 { // no variant sets these knobs alone: add one that does
			name := "base"
			for _, kv := range vs[i].knobs {
				k, val, _ := strings.Cut(kv, "=")
				name += "," + strings.ToLower(strings.TrimPrefix(k, "DISTILL_BENCH_")) + "=" + val
			}
			vs = append(vs, variant{name: name, env: vs[i].knobs, knobs: vs[i].knobs, base: 0})
			vs[i].base = len(vs) - 1
		}
	}
	return vs, nil
}

// sweeper times variants in turn.
type sweeper struct {
	rounds, steps, warm int
	deadline            time.Time       // zero: none
	out                 io.Writer       // each visit's line
	after               func(v variant) // called after each visit (the tests' probe)
}

// sample is one visit's figures.
type sample struct {
	sec, issueSec      float64 // a step's time, and the host's to launch it
	poolMiB, planMiB   float64
	tokens             int
	flops              float64
	replayed, visitSec float64 // steps replayed a timed step; the visit's whole time
}

// sweepResult is a variant's visits.
type sweepResult struct {
	v       variant
	samples []sample
	err     error // its last failed visit's
	skipped int   // visits the deadline left out
}

func (sw sweeper) run(d *cuda.Device, m *model.Model, a *lora.Adapter, s model.Shape, seq int, label string, vs []variant) []sweepResult {
	res := make([]sweepResult, len(vs))
	for i := range vs {
		res[i].v = vs[i]
	}
	for round := range sw.rounds {
		order := make([]int, len(vs))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 { // drift (clocks, heat) falls on each variant alike
			slices.Reverse(order)
		}
		for _, i := range order {
			r := &res[i]
			if guess := r.lastVisit(res); !sw.deadline.IsZero() && time.Now().Add(guess).After(sw.deadline) {
				r.skipped++
				fmt.Fprintf(sw.out, "sweep %s round %d [%s]: skipped for the deadline\n", label, round+1, r.v.name)
				continue
			}
			smp, err := sw.visit(d, m, a, s, seq, r.v)
			if sw.after != nil {
				sw.after(r.v)
			}
			if err != nil {
				r.err = err
				fmt.Fprintf(sw.out, "sweep %s round %d [%s]: %v\n", label, round+1, r.v.name, err)
				continue
			}
			r.samples = append(r.samples, smp)
			fmt.Fprintf(sw.out, "sweep %s round %d [%s]: %.2f ms a step (issue %.2f), %.1f s the visit\n",
				label, round+1, r.v.name, smp.sec*1e3, smp.issueSec*1e3, smp.visitSec)
		}
	}
	return res
}

// lastVisit guesses the time of r's next visit: its last one's, or before
// it has one the longest any variant's has taken (a minute before any).
func (r *sweepResult) lastVisit(all []sweepResult) time.Duration {
	sec := 0.0
	if n := len(r.samples); n > 0 {
		sec = r.samples[n-1].visitSec
	} else {
		for _, o := range all {
			for _, s := range o.samples {
				sec = max(sec, s.visitSec)
			}
		}
	}
	if sec == 0 {
		return time.Minute
	}
	return time.Duration(sec * float64(time.Second))
}

// visit sets v's variables, makes its step, warms it up and times
// sw.steps steps; the variables are restored after.
func (sw sweeper) visit(d *cuda.Device, m *model.Model, a *lora.Adapter, s model.Shape, seq int, v variant) (smp sample, err error) {
	t0 := time.Now()
	defer setEnv(v.env)()
	defer func() {
		if p := recover(); p != nil { // one variant's bug must not lose the others' figures
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	if err := d.Pool.Trim(); err != nil {
		return smp, err
	}
	d.Pool.ResetPeak()
	pool0 := d.Pool.Stats().InUse
	sb, err := newStepBench(d, m, a, s, seq)
	if err != nil {
		return smp, err
	}
	defer sb.close()
	for range sw.warm {
		if err := sb.step(); err != nil {
			return smp, err
		}
	}
	if err := d.Sync(); err != nil {
		return smp, err
	}
	replays0, _, fails0, _ := devnet.StepGraphs()
	var issue time.Duration
	start := time.Now()
	for range sw.steps {
		if err := sb.step(); err != nil {
			return smp, err
		}
		if sb.net != nil {
			issue += sb.net.LastIssue
		}
	}
	if err := d.Sync(); err != nil {
		return smp, err
	}
	n := float64(sw.steps)
	smp.sec = time.Since(start).Seconds() / n
	replays1, _, fails1, last := devnet.StepGraphs()
	if fails1 != fails0 {
		return smp, fmt.Errorf("step graphs: recording failed: %v", last)
	}
	if os.Getenv("DISTILL_CUDA_STEP_GRAPHS") == "1" && replays1 == replays0 {
		return smp, fmt.Errorf("step graphs on, but no step replayed")
	}
	plan := sb.plan()
	smp.issueSec, smp.replayed = issue.Seconds()/n, float64(replays1-replays0)/n
	smp.poolMiB = float64(d.Pool.Stats().Peak-pool0) / (1 << 20)
	smp.planMiB = float64(plan.Total()-plan.Runtime-plan.Optimizer) / (1 << 20)
	smp.tokens, smp.flops = sb.tokens, sb.flops
	smp.visitSec = time.Since(t0).Seconds()
	return smp, nil
}

// setEnv sets each VAR=value and returns what restores them.
func setEnv(env []string) (restore func()) {
	type old struct {
		k, v string
		set  bool
	}
	var olds []old
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		prev, set := os.LookupEnv(k)
		olds = append(olds, old{k, prev, set})
		os.Setenv(k, v)
	}
	return func() {
		for _, o := range slices.Backward(olds) {
			if o.set {
				os.Setenv(o.k, o.v)
			} else {
				os.Unsetenv(o.k)
			}
		}
	}
}

// fastest is the index of r's quickest visit (−1: none ran).
func (r sweepResult) fastest() int {
	best := -1
	for i, s := range r.samples {
		if best < 0 || s.sec < r.samples[best].sec {
			best = i
		}
	}
	return best
}

// printSweep writes a variant a line, in `go test -bench`'s format (so
// tools/cudatable tabulates them): steps timed, the fastest visit's
// ns/op, tokens/s, GFLOP/s and MFU, the change against its baseline's
// fastest (%vs[base]: negative is faster), the spread of its visits
// (slowest over fastest), the host's launch time and memory; a variant
// that never ran says why.
func printSweep(w io.Writer, label string, peak float64, res []sweepResult) {
	for _, r := range res {
		name := fmt.Sprintf("BenchmarkSweep[%s]/%s", r.v.name, label)
		i := r.fastest()
		if i < 0 {
			why := "skipped for the deadline"
			if r.err != nil {
				why = r.err.Error()
			}
			fmt.Fprintf(w, "%s\tdid not run: %s\n", name, why)
			continue
		}
		s := r.samples[i]
		line := fmt.Sprintf("%s\t%d\t%.0f ns/op\t%.0f tokens/s\t%.0f GFLOP/s\t%.2f MFU%%", name, len(r.samples),
			s.sec*1e9, float64(s.tokens)/s.sec, s.flops/s.sec/1e9, 100*s.flops/s.sec/1e12/peak)
		if r.v.base >= 0 {
			if j := res[r.v.base].fastest(); j >= 0 {
				line += fmt.Sprintf("\t%+.2f %%vs[%s]", 100*(s.sec/res[r.v.base].samples[j].sec-1), res[r.v.base].v.name)
			}
		}
		line += fmt.Sprintf("\t%.2f %%spread\t%.2f ms-issue\t%.2f replayed\t%.0f MiB-pool-peak\t%.0f MiB-plan",
			100*r.spread(), s.issueSec*1e3, s.replayed, s.poolMiB, s.planMiB)
		if r.skipped > 0 {
			line += fmt.Sprintf("\t%d skipped", r.skipped)
		}
		fmt.Fprintln(w, line)
	}
	printVerdicts(w, label, res)
}

// spread is how much slower r's slowest visit was than its fastest (0 with
// one visit).
func (r sweepResult) spread() float64 {
	i := r.fastest()
	if i < 0 {
		return 0
	}
	slow := r.samples[i].sec
	for _, o := range r.samples {
		slow = max(slow, o.sec)
	}
	return slow/r.samples[i].sec - 1
}

// minNoise is the least change a verdict calls faster or slower: the same
// step's wall time moved by ~1 % from run to run on the H200 (session 9,
// BENCHMARKS.md: 78–79 ms), more than two visits' spread may show.
const minNoise = 0.01

// verdict says whether variant r is faster or slower than its baseline b
// beyond the larger of their spreads (at least minNoise), and the change.
func verdict(r, b sweepResult) (string, float64) {
	i, j := r.fastest(), b.fastest()
	d := r.samples[i].sec/b.samples[j].sec - 1
	noise := max(r.spread(), b.spread(), minNoise)
	switch {
	case d < -noise:
		return "faster", d
	case d > noise:
		return "slower", d
	}
	return "same", d
}

// printVerdicts lists every variant that ran beside a baseline that ran,
// faster first: what a session deciding its gates reads.
func printVerdicts(w io.Writer, label string, res []sweepResult) {
	type row struct {
		v, name  string
		d, noise float64
	}
	var rows []row
	for _, r := range res {
		if r.v.base < 0 || r.fastest() < 0 || res[r.v.base].fastest() < 0 {
			continue
		}
		b := res[r.v.base]
		v, d := verdict(r, b)
		rows = append(rows, row{v, fmt.Sprintf("[%s] vs [%s]", r.v.name, b.v.name), d, max(r.spread(), b.spread(), minNoise)})
	}
	if len(rows) == 0 {
		return
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(a.d, b.d) })
	fmt.Fprintf(w, "sweep %s verdicts (fastest visits; faster or slower beyond the larger spread, at least %.0f %%):\n", label, 100*minNoise)
	for _, r := range rows {
		fmt.Fprintf(w, "  %-6s %+7.2f %%  %s (noise %.2f %%)\n", r.v, 100*r.d, r.name, 100*r.noise)
	}
}

// envInt is the integer in variable k, or def when unset or not a positive
// integer.
func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
