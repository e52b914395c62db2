package app

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"distill/core/model"
)

func init() {
	register(command{name: "plan", usage: "sft|kd|dpo --model DIR [run flags as for train] [--seq N --batch B] [--memory 8GB] [--json] — predicted peak memory of a run, and the longest micro-batch that fits; serve --model DIR [--quant nf4] [--memory 8GB] — serving's GPU memory and --cpu-offload auto's split", run: runPlan})
}

// runPlan prints a run's memory plan — the same numbers a run prints when it
// starts and the Launch form shows — and, given a budget, the longest
// micro-batch (seq_len) that fits it.
func runPlan(env *Env, args []string) error {
	method := flagValue(args, "method") // or given first, as train takes it
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		method, args = args[0], args[1:]
	}
	if method == "serve" {
		return runPlanServe(env, args)
	}
	if method != "sft" && method != "kd" && method != "dpo" {
		return fmt.Errorf("give the method: distill plan sft|kd|dpo --model DIR … (or --method sft|kd|dpo), or distill plan serve --model DIR, got %q", method)
	}
	cfg := defaultRunConfig(method)
	if path := configFlag(args); path != "" {
		if err := readRunConfig(path, &cfg); err != nil {
			return err
		}
		cfg.Method = method
	}
	fs := flag.NewFlagSet("plan "+method, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.String("config", "", "run config (YAML) to plan")
	bindRunFlags(fs, &cfg)
	fs.String("method", method, "sft, kd or dpo (or give it first, without the flag)")
	fs.IntVar(&cfg.SeqLen, "seq", cfg.SeqLen, "tokens per sequence: --seq-len, under the name the memory plan's users know")
	batch := fs.Int("batch", 1, "sequences of --seq tokens per micro-batch: the plan is for batch × seq tokens, packed (train with --seq-len batch×seq)")
	memory := fs.String("memory", "", "a memory budget (e.g. 8GB, 3.5GiB, 512MB): also print the longest seq_len (with --batch, the largest batch) that fits it")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.Model == "" {
		return fmt.Errorf("--model is required")
	}
	if *batch < 1 || cfg.SeqLen < 1 {
		return fmt.Errorf("--batch and --seq must be positive, got %d and %d", *batch, cfg.SeqLen)
	}
	seq := cfg.SeqLen
	cfg.SeqLen *= *batch
	// train holds --seq-len, the tokens of a micro-batch, to the model's
	// context: a plan for more would be one no run can follow.
	limit := 1 << 15
	if m, err := model.Load(cfg.Model); err == nil {
		if n := m.ContextLimit(); n > 0 {
			limit = n
		}
		m.Close()
	}
	if cfg.SeqLen > limit {
		if *batch > 1 {
			return fmt.Errorf("--batch %d × --seq %d = %d tokens per micro-batch, over the model's context of %d, to which train holds --seq-len: plan --batch %d or less (and --accum for a larger batch)",
				*batch, seq, cfg.SeqLen, limit, max(1, limit/seq))
		}
		return fmt.Errorf("--seq %d is over the model's context of %d tokens (max_position_embeddings or its sliding window), to which train holds --seq-len", cfg.SeqLen, limit)
	}
	// What train would refuse, plan refuses too (it printed plans for
	// --full --quant nf4, a negative --lr, an unknown --device).
	if err := cfg.checkCombination(); err != nil {
		return err
	}
	if err := cfg.checkSettings(); err != nil {
		return err
	}
	cfg.Device = resolveDevice(cfg.Device)
	var w Workstation
	p, err := w.PlanRun(cfg)
	if err != nil {
		return err
	}
	out := map[string]any{"method": cfg.Method, "seq_len": cfg.SeqLen, "quant": cfg.Quant, "plan": p}
	if *batch > 1 {
		out["batch"], out["seq"] = *batch, seq
	}
	longest := 0
	if *memory != "" {
		budget, err := parseBytes(*memory)
		if err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		if longest, err = w.LargestSeqLen(cfg, budget, limit); err != nil {
			return err
		}
		out["memory"], out["longest_seq_len"] = budget, longest
		if *batch > 1 {
			out["largest_batch"] = longest / seq
		}
	}
	var modes []activationMode
	if p.GPU && !cfg.Full {
		if modes, err = w.activationModes(cfg); err != nil {
			return err
		}
		out["activation_modes"] = modes
	}
	if *asJSON {
		return writeJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	where := "host memory, CPU backend"
	if p.GPU {
		where = "GPU memory, device-resident steps; the optimizer's moments stay on the host"
		if p.Optimizer > 0 {
			where = "GPU memory, device-resident steps and optimizer"
		}
	} else if cfg.Device != "cpu" {
		where = "host memory; on " + cfg.Device + " each op also copies its operands to the device"
	}
	tokens := fmt.Sprintf("%d tokens per micro-batch", cfg.SeqLen)
	if *batch > 1 {
		tokens = fmt.Sprintf("%d sequences of %d tokens = %d tokens per micro-batch, packed (train with --seq-len %d)", *batch, seq, cfg.SeqLen, cfg.SeqLen)
	}
	fmt.Fprintf(env.Stdout, "%s of %s, %s base, %s (%s)\n", strings.ToUpper(cfg.Method), cfg.Model, cfg.Quant, tokens, where)
	runtime := "runtime"
	if p.GPU {
		runtime = "CUDA context"
	}
	for _, r := range []struct {
		name string
		b    int64
	}{{"base weights", p.Weights}, {"teacher (weights, forward)", p.Teacher}, {"adapter", p.Adapter}, {"gradients", p.Grads},
		{"optimizer (AdamW)", p.Optimizer}, {"activations", p.Activations}, {"workspace", p.Workspace}, {runtime, p.Runtime}, {"total", p.Total}} {
		if r.b == 0 && (strings.HasPrefix(r.name, "teacher") || r.name == "optimizer (AdamW)") {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%.1f MB\t\n", r.name, float64(r.b)/1e6)
	}
	tw.Flush()
	if cfg.GradCheckpointing.Auto() {
		switch {
		case p.GPU:
			fmt.Fprintln(env.Stdout, "grad_checkpointing auto: the run keeps the most activations that fit nine tenths of the device's free memory when it starts (the ways below); this plan recomputes them")
		case p.Recomputes:
			fmt.Fprintln(env.Stdout, "grad_checkpointing auto: this plan recomputes the activations in the backward (keeping them would take over half this machine's available memory)")
		default:
			fmt.Fprintln(env.Stdout, "grad_checkpointing auto: this plan keeps every layer's activations (no forward recomputed; they fit in half this machine's available memory)")
		}
	}
	if len(modes) > 0 {
		budget, _ := parseBytes(*memory) // parsed above when given
		printActivationModes(env, modes, budget, *memory)
	}
	if *memory != "" {
		if longest == 0 {
			fmt.Fprintf(env.Stdout, "nothing fits %s: even 16 tokens per micro-batch need more (quantise the base, lower the rank, or checkpoint gradients)\n", *memory)
		} else {
			if *batch > 1 { // packed sequences: the tokens of a micro-batch, not one sequence's
				fmt.Fprintf(env.Stdout, "most tokens per micro-batch within %s: %d\n", *memory, longest)
				fmt.Fprintf(env.Stdout, "largest batch of %d-token sequences within %s: %d\n", seq, *memory, longest/seq)
			} else {
				fmt.Fprintf(env.Stdout, "longest seq_len within %s: %d\n", *memory, longest)
			}
			if cfg.GradCheckpointing.Auto() { // LargestSeqLen plans it recomputing: what a run that short of memory would do
				fmt.Fprintln(env.Stdout, "  (with activations recomputed: train it with --grad-checkpointing=true; auto keeps them where this machine's memory allows, past the budget)")
			}
		}
	}
	return nil
}

// parseBytes reads "8GB", "3.5GiB", "512MB", "1e9": decimal units for B,
// KB, MB, GB, TB and binary for KiB, MiB, GiB, TiB.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToLower(t), strings.ToLower(u.suffix)) {
			t, mul = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mul
			break
		}
	}
	x, err := strconv.ParseFloat(t, 64)
	// !(b >= 1) refuses NaN as well as nothing; 2^63 and more would not fit
	// (and ±Inf is one of them).
	if b := x * mul; err != nil || !(b >= 1) || b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a positive size such as 8GB, 3.5GiB or 512MB", s)
	}
	return int64(x * mul), nil
}

// activationMode is a GPU run's total under one way of holding its
// activations: recomputing every layer's in the backward, keeping each
// layer's attention side, or keeping every layer's (a forward less a step).
type activationMode struct {
	Mode   string `json:"mode"`   // recompute, keep_attention, keep
	Config string `json:"config"` // the run config that asks for it
	Total  int64  `json:"total"`  // bytes, as the plan's total
}

// activationModes plans cfg three ways, from least memory to fastest step;
// a way whose total is an earlier one's is left out (the build's gate
// turned it off: asking for it would change nothing).
func (w *Workstation) activationModes(cfg RunConfig) ([]activationMode, error) {
	var modes []activationMode
	for _, m := range []struct {
		mode, config string
		checkpoint   Checkpointing
		keepAttn     bool
	}{{"recompute", "grad_checkpointing: true, keep_attention: false", CheckpointOn, false},
		{"keep_attention", "grad_checkpointing: true, keep_attention: true", CheckpointOn, true},
		{"keep", "grad_checkpointing: false", CheckpointOff, false}} {
		cfg.GradCheckpointing, cfg.KeepAttention = m.checkpoint, m.keepAttn
		p, err := w.PlanRun(cfg)
		if err != nil {
			return nil, err
		}
		if len(modes) > 0 && p.Total == modes[len(modes)-1].Total {
			continue
		}
		modes = append(modes, activationMode{Mode: m.mode, Config: m.config, Total: p.Total})
	}
	return modes, nil
}

// printActivationModes prints the three ways' totals and, against a budget
// (0: none), which fit and the fastest that does.
func printActivationModes(env *Env, modes []activationMode, budget int64, name string) {
	fmt.Fprintln(env.Stdout, "activations, from least memory to the fastest step:")
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fastest := ""
	for _, m := range modes {
		fit := ""
		if budget > 0 {
			fit = "does not fit " + name
			if m.Total <= budget {
				fit, fastest = "fits "+name, m.Config
			}
		}
		fmt.Fprintf(tw, "  %s\t%.1f MB\t%s\n", m.Config, float64(m.Total)/1e6, fit)
	}
	tw.Flush()
	if budget > 0 && fastest != "" {
		fmt.Fprintf(env.Stdout, "fastest within %s: %s\n", name, fastest)
	}
}
