package app

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"distill/core/atomicfile"
	"distill/core/data"
	"distill/core/task/codegen"
	"distill/core/tensor"

	"go.yaml.in/yaml/v3"
)

// RunConfig is one training run's every setting. It is read from
// --config run.yaml, overridden by flags (every key has one), and saved as
// the run's config.yaml — the effective configuration, so a run can be
// reproduced or resumed from its folder alone.
type RunConfig struct {
	Method string `yaml:"method"` // sft, kd or dpo
	Model  string `yaml:"model"`  // base model folder
	Data   string `yaml:"data"`   // training file (JSONL or CSV)
	Val    string `yaml:"val"`    // validation file; empty: split off val_fraction
	// ValFraction is held out of data for validation when no val file is given.
	ValFraction float64 `yaml:"val_fraction"`
	// ValPerClass holds out this many rows of each class (classification
	// data) for a balanced validation set, instead of val_fraction.
	ValPerClass int    `yaml:"val_per_class"`
	Format      string `yaml:"format"` // declared data format; empty: detected
	Chat        bool   `yaml:"chat"`   // wrap prompt/completion rows in the chat template
	// PlanStages, a language (go, python), trains both stages of codegen
	// --plan on prompt/completion rows with a "plan": the plan from the
	// prompt, the completion from the prompt and the plan, in the prompts
	// codegen --plan asks them with ("": rows train as they are).
	PlanStages string `yaml:"plan_stages"`
	Strict     bool   `yaml:"strict"` // fail on the first bad row instead of skipping it
	Schema     string `yaml:"schema"` // JSON Schema of IDP targets
	Out        string `yaml:"out"`    // run folder; empty: runs/<id>
	Seed       uint64 `yaml:"seed"`
	Device     string `yaml:"device"`
	// Quant quantises the frozen base: nf4 (QLoRA; less memory, slower), q8 or none.
	Quant       string `yaml:"quant"`
	DoubleQuant bool   `yaml:"double_quant"`
	// Full trains every weight instead of an adapter (small models only: 16 bytes/param).
	Full bool       `yaml:"full"`
	LoRA LoRAConfig `yaml:"lora"`

	Epochs int `yaml:"epochs"` // passes over the training data (ignored when steps > 0)
	Steps  int `yaml:"steps"`  // optimizer steps; 0: from epochs
	// SeqLen is the tokens per micro-batch; short examples are packed.
	SeqLen int `yaml:"seq_len"`
	Accum  int `yaml:"accum"` // micro-batches per optimizer step (higher: larger batch, same memory)
	// LR is the peak learning rate of the schedule.
	LR          float64 `yaml:"lr"`
	Schedule    string  `yaml:"schedule"` // cosine, linear or constant
	Warmup      int     `yaml:"warmup"`   // warm-up steps
	WeightDecay float64 `yaml:"weight_decay"`
	MaxGradNorm float64 `yaml:"max_grad_norm"` // 0: no clipping
	// GradCheckpointing recomputes activations in backward (true: much
	// less memory, ~30% more compute), keeps them (false), or picks the
	// faster that fits (auto, the default).
	GradCheckpointing Checkpointing `yaml:"grad_checkpointing"`
	// KeepAttention, with grad_checkpointing true, keeps each layer's attention
	// side on the GPU and recomputes only its MLP (between the two in
	// memory and time; DISTILL_CUDA_KEEP_ATTN=0 turns it off on the device).
	KeepAttention bool `yaml:"keep_attention,omitempty"`
	// CPUBF16 multiplies BF16 and NF4 weights (the frozen base, a KD
	// teacher, the LM head; NF4 dequantised to bf16) by bf16-rounded
	// activations and gradients on the CPU backend, and runs the step's
	// attention on bf16-rounded operands: AVX-512 BF16's and AMX's speed,
	// bf16 mixed precision's numerics.
	CPUBF16         bool `yaml:"cpu_bf16,omitempty"`
	CheckpointEvery int  `yaml:"checkpoint_every"` // steps between checkpoints; 0: only at the end and on Ctrl-C
	EvalEvery       int  `yaml:"eval_every"`       // steps between validation losses; 0: only at the end
	// KeepCheckpoints keeps the newest this many checkpoints, deleting
	// older ones as new ones are saved (0: all); each holds the adapter
	// and both AdamW moments, three times the adapter's size.
	KeepCheckpoints int `yaml:"keep_checkpoints"`

	KD  KDConfig  `yaml:"kd"`
	DPO DPOConfig `yaml:"dpo"`

	// DataSHA256 is each data file's SHA-256 (data, val, kd traces) as the
	// run started, by path: a resume refuses files that changed since.
	// Recorded by the run; not a setting.
	DataSHA256 map[string]string `yaml:"data_sha256,omitempty"`
}

// LoRAConfig is the adapter's shape.
type LoRAConfig struct {
	R       int     `yaml:"r"`
	Alpha   float64 `yaml:"alpha"`
	Dropout float64 `yaml:"dropout"`
	Targets string  `yaml:"targets"` // comma-separated modules
	RSLoRA  bool    `yaml:"rslora"`
}

// KDConfig configures distillation.
type KDConfig struct {
	Teacher      string  `yaml:"teacher"`    // teacher model folder (logit KD)
	Traces       string  `yaml:"traces"`     // JSONL of teacher outputs (sequence-level KD): SFT on them
	Divergence   string  `yaml:"divergence"` // forward_kl, reverse_kl or jsd
	Temperature  float64 `yaml:"temperature"`
	Alpha        float64 `yaml:"alpha"` // weight of the hard-label CE term
	Beta         float64 `yaml:"beta"`  // JSD mixing weight
	TeacherQuant string  `yaml:"teacher_quant"`
}

// DPOConfig configures preference optimisation.
type DPOConfig struct {
	Beta           float64 `yaml:"beta"`
	LabelSmoothing float64 `yaml:"label_smoothing"`
	Loss           string  `yaml:"loss"` // sigmoid or ipo
}

// defaultRunConfig: sensible QLoRA defaults for a small model on a CPU.
func defaultRunConfig(method string) RunConfig {
	return RunConfig{
		Method: method, ValFraction: 0.1, Seed: 1, Device: "auto", Quant: "nf4", DoubleQuant: true,
		LoRA:   LoRAConfig{R: 16, Alpha: 32, Dropout: 0.05, Targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"},
		Epochs: 1, SeqLen: 512, Accum: 1, LR: 2e-4, Schedule: "cosine", Warmup: 10, MaxGradNorm: 1,
		GradCheckpointing: CheckpointAuto, CheckpointEvery: 100,
		KD:  KDConfig{Divergence: "forward_kl", Temperature: 2, Alpha: 0.5, Beta: 0.5, TeacherQuant: "none"},
		DPO: DPOConfig{Beta: 0.1, Loss: "sigmoid"},
	}
}

// bindRunFlags registers one flag per config key, defaulting to cfg's
// current values (so a --config file's values show as defaults).
func bindRunFlags(fs *flag.FlagSet, c *RunConfig) {
	fs.StringVar(&c.Model, "model", c.Model, "base model folder")
	fs.StringVar(&c.Data, "data", c.Data, "training data (JSONL or CSV)")
	fs.StringVar(&c.Val, "val", c.Val, "validation data; empty: hold out --val-fraction of --data")
	fs.Float64Var(&c.ValFraction, "val-fraction", c.ValFraction, "fraction of --data held out for validation when no --val")
	fs.IntVar(&c.ValPerClass, "val-per-class", c.ValPerClass, "classification: hold out this many rows per class (balanced validation)")
	fs.StringVar(&c.Format, "format", c.Format, "data format: prompt_completion, messages, classification, idp, preference (default: detected)")
	fs.BoolVar(&c.Chat, "chat", c.Chat, "render prompt/completion rows with the chat template")
	fs.StringVar(&c.PlanStages, "plan-stages", c.PlanStages, "go or python: train codegen --plan's plan and code stages on rows with a \"plan\"")
	fs.BoolVar(&c.Strict, "strict", c.Strict, "fail on the first bad data row instead of skipping it")
	fs.StringVar(&c.Schema, "schema", c.Schema, "JSON Schema file for IDP targets")
	fs.StringVar(&c.Out, "out", c.Out, "run folder (default runs/<run-id>)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for data order, adapter init and dropout")
	fs.StringVar(&c.Device, "device", c.Device, "compute device: auto (cuda where this binary has it and a GPU is visible, else cpu), cpu or cuda")
	fs.StringVar(&c.Quant, "quant", c.Quant, "quantise the frozen base: nf4 (QLoRA), q8 or none")
	fs.BoolVar(&c.DoubleQuant, "double-quant", c.DoubleQuant, "with nf4: double-quantise the block scales")
	fs.BoolVar(&c.Full, "full", c.Full, "full fine-tuning of every weight (needs --quant none; 16 bytes/param)")
	fs.IntVar(&c.LoRA.R, "lora-r", c.LoRA.R, "LoRA rank")
	fs.Float64Var(&c.LoRA.Alpha, "lora-alpha", c.LoRA.Alpha, "LoRA alpha (scale alpha/r)")
	fs.Float64Var(&c.LoRA.Dropout, "lora-dropout", c.LoRA.Dropout, "dropout on the adapter's input")
	fs.StringVar(&c.LoRA.Targets, "lora-targets", c.LoRA.Targets, "comma-separated target modules")
	fs.BoolVar(&c.LoRA.RSLoRA, "rslora", c.LoRA.RSLoRA, "scale by alpha/sqrt(r) (rank-stabilised LoRA)")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "passes over the training data (when --steps is 0)")
	fs.IntVar(&c.Steps, "steps", c.Steps, "optimizer steps (0: from --epochs)")
	fs.IntVar(&c.SeqLen, "seq-len", c.SeqLen, "tokens per micro-batch (short examples are packed)")
	fs.IntVar(&c.Accum, "accum", c.Accum, "micro-batches per optimizer step")
	fs.Float64Var(&c.LR, "lr", c.LR, "peak learning rate")
	fs.StringVar(&c.Schedule, "schedule", c.Schedule, "learning-rate schedule: cosine, linear or constant")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "warm-up steps")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW decoupled weight decay")
	fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", c.MaxGradNorm, "clip the global gradient norm (0: off)")
	fs.Var(&c.GradCheckpointing, "grad-checkpointing", "recompute activations in backward (true: least memory), keep them (false: a forward less a step), or auto: the fastest way that fits the device's free memory, or the host's, when the run starts")
	fs.BoolVar(&c.CPUBF16, "cpu-bf16", c.CPUBF16, "on the cpu backend, multiply BF16 and NF4 weights (NF4 dequantised to bf16) by bf16-rounded activations and gradients: about twice the GEMM speed on AVX-512 BF16")
	fs.BoolVar(&c.KeepAttention, "keep-attention", c.KeepAttention, "with --grad-checkpointing=true on a GPU: keep each layer's attention activations, recompute only its MLP")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "steps between checkpoints (0: end and Ctrl-C only)")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "steps between validation losses (0: at the end)")
	fs.IntVar(&c.KeepCheckpoints, "keep-checkpoints", c.KeepCheckpoints, "keep the newest N checkpoints, deleting older ones (0: all)")
	fs.StringVar(&c.KD.Teacher, "teacher", c.KD.Teacher, "kd: teacher model folder (logit distillation)")
	fs.StringVar(&c.KD.Traces, "traces", c.KD.Traces, "kd: JSONL of teacher outputs (sequence-level distillation)")
	fs.StringVar(&c.KD.Divergence, "kd-divergence", c.KD.Divergence, "kd: forward_kl, reverse_kl or jsd")
	fs.Float64Var(&c.KD.Temperature, "kd-temperature", c.KD.Temperature, "kd: softmax temperature")
	fs.Float64Var(&c.KD.Alpha, "kd-alpha", c.KD.Alpha, "kd: weight of the hard-label cross-entropy")
	fs.Float64Var(&c.KD.Beta, "kd-beta", c.KD.Beta, "kd: JSD mixing weight")
	fs.StringVar(&c.KD.TeacherQuant, "teacher-quant", c.KD.TeacherQuant, "kd: quantise the teacher: nf4, q8 or none")
	fs.Float64Var(&c.DPO.Beta, "dpo-beta", c.DPO.Beta, "dpo: beta")
	fs.Float64Var(&c.DPO.LabelSmoothing, "dpo-label-smoothing", c.DPO.LabelSmoothing, "dpo: cDPO label smoothing")
	fs.StringVar(&c.DPO.Loss, "dpo-loss", c.DPO.Loss, "dpo: sigmoid or ipo")
}

// readRunConfig merges a YAML file into c; unknown keys are an error (a
// typo must not silently fall back to a default).
func readRunConfig(path string, c *RunConfig) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		msg := strings.ReplaceAll(err.Error(), "in type app.RunConfig", "among the settings")
		for _, t := range []string{"app.LoRAConfig", "app.KDConfig", "app.DPOConfig"} {
			msg = strings.ReplaceAll(msg, "in type "+t, "under "+strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(t, "app."), "Config"))+":")
		}
		if strings.Contains(msg, "not found") {
			msg += " (keys are nested as a run's config.yaml shows them: lora: {r: 8}, kd: {alpha: 0.5}, dpo: {beta: 0.1})"
		}
		return fmt.Errorf("%s: %s", path, msg)
	}
	return nil
}

// writeRunConfig saves the effective configuration, whole or not at all
// (a resume reads it back).
func writeRunConfig(path string, c *RunConfig) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// configFlag finds --config's value in args before the flags are parsed.
func configFlag(args []string) string { return flagValue(args, "config") }

// flagValue is the value given to --name (or -name) in args, before any
// parsing: "" when absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		for _, p := range []string{"--" + name + "=", "-" + name + "="} {
			if strings.HasPrefix(a, p) {
				return a[len(p):]
			}
		}
		if (a == "--"+name || a == "-"+name) && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// validate checks the combination of settings before anything is loaded.
func (c *RunConfig) validate() error {
	switch c.Method {
	case "sft", "kd", "dpo":
	default:
		return fmt.Errorf("method %q: want sft, kd or dpo", c.Method)
	}
	if c.Method == "kd" && c.Data == "" {
		c.Data = c.KD.Traces // sequence-level KD trains on the traces alone
	}
	if c.Model == "" || c.Data == "" {
		return fmt.Errorf("--model and --data are required")
	}
	if c.Method == "kd" && (c.KD.Teacher == "") == (c.KD.Traces == "") {
		return fmt.Errorf("kd needs exactly one of --teacher (logit distillation) or --traces (sequence-level)")
	}
	if err := c.checkCombination(); err != nil {
		return err
	}
	if c.Steps == 0 && c.Epochs == 0 {
		return fmt.Errorf("give --steps or --epochs")
	}
	return c.checkSettings()
}

// checkCombination refuses settings that cannot go together or are out of
// range, whatever the data: train checks them, and so does plan.
func (c *RunConfig) checkCombination() error {
	if c.Full && c.Quant != "none" {
		return fmt.Errorf("--full trains every weight and needs --quant none")
	}
	if c.Full && c.Method == "dpo" {
		// DPO's reference is the model with the adapter off; a full
		// fine-tune rewrites the weights the reference would be read from.
		return fmt.Errorf("dpo needs an adapter: its reference model is the base with the adapter off, which --full would train away; drop --full")
	}
	if c.SeqLen <= 0 || c.Accum <= 0 || !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return fmt.Errorf("--seq-len, --accum and --lr must be positive (and finite)")
	}
	if c.Steps < 0 || c.Epochs < 0 {
		return fmt.Errorf("--steps and --epochs must not be negative")
	}
	return nil
}

// checkSettings refuses values no run can use — out of range, NaN, an
// unknown name — before a run is recorded, naming the flag.
func (c *RunConfig) checkSettings() error {
	oneOf := func(flag, v string, ok ...string) error {
		if !slices.Contains(ok, v) {
			return fmt.Errorf("--%s %q: want %s", flag, v, strings.Join(ok, ", "))
		}
		return nil
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	logitKD := c.Method == "kd" && c.KD.Teacher != ""
	for _, r := range []struct {
		flag string
		bad  bool
		want string
	}{
		{"lora-r", c.LoRA.R <= 0 && !c.Full, "a positive rank"},
		{"lora-alpha", !(c.LoRA.Alpha > 0) || !finite(c.LoRA.Alpha), "a positive scale"},
		{"lora-dropout", !(c.LoRA.Dropout >= 0 && c.LoRA.Dropout < 1), "a probability in [0, 1)"},
		{"val-fraction", !(c.ValFraction >= 0 && c.ValFraction < 1), "a fraction in [0, 1)"},
		{"val-per-class", c.ValPerClass < 0, "a count >= 0"},
		{"warmup", c.Warmup < 0, "a step count >= 0"},
		{"weight-decay", !(c.WeightDecay >= 0) || !finite(c.WeightDecay), "a finite value >= 0"},
		{"max-grad-norm", !(c.MaxGradNorm >= 0) || !finite(c.MaxGradNorm), "a finite value >= 0 (0: no clipping)"},
		{"checkpoint-every", c.CheckpointEvery < 0, "a step count >= 0 (0: at the end only)"},
		{"eval-every", c.EvalEvery < 0, "a step count >= 0 (0: at the end only)"},
		{"keep-checkpoints", c.KeepCheckpoints < 0, "a count >= 0 (0: keep all)"},
		{"kd-temperature", logitKD && (!(c.KD.Temperature > 0) || !finite(c.KD.Temperature)), "a positive temperature"},
		{"kd-alpha", logitKD && !(c.KD.Alpha >= 0 && c.KD.Alpha <= 1), "a weight in [0, 1]"},
		{"kd-beta", logitKD && c.KD.Divergence == "jsd" && !(c.KD.Beta > 0 && c.KD.Beta < 1), "a weight in (0, 1) for jsd"},
		{"dpo-beta", c.Method == "dpo" && (!(c.DPO.Beta > 0) || !finite(c.DPO.Beta)), "a positive, finite beta"},
		{"dpo-label-smoothing", c.Method == "dpo" && !(c.DPO.LabelSmoothing >= 0 && c.DPO.LabelSmoothing < 0.5), "a value in [0, 0.5)"},
	} {
		if r.bad {
			return fmt.Errorf("--%s: want %s", r.flag, r.want)
		}
	}
	if err := oneOf("schedule", c.Schedule, "cosine", "linear", "constant"); err != nil {
		return err
	}
	if c.Val != "" && c.ValPerClass > 0 {
		return fmt.Errorf("--val-per-class holds rows of --data out for validation, and --val gives a validation file: choose one")
	}
	if c.PlanStages != "" && codegen.DefaultChecks(c.PlanStages) == nil {
		return fmt.Errorf("--plan-stages %q: want the code's language, go or python", c.PlanStages)
	}
	if err := oneOf("quant", c.Quant, "nf4", "q8", "none"); err != nil {
		return err
	}
	if err := oneOf("device", c.Device, "auto", "cpu", "cuda"); err != nil {
		return err
	}
	if c.Format != "" {
		if err := oneOf("format", c.Format, data.Formats...); err != nil {
			return err
		}
	}
	if logitKD {
		if err := oneOf("kd-divergence", c.KD.Divergence, "forward_kl", "reverse_kl", "jsd"); err != nil {
			return err
		}
		if err := oneOf("teacher-quant", c.KD.TeacherQuant, "none", "nf4", "q8"); err != nil {
			return err
		}
	}
	if c.Method == "dpo" {
		return oneOf("dpo-loss", c.DPO.Loss, "sigmoid", "ipo")
	}
	return nil
}

// checkFiles refuses a model folder without a config.json and data files
// that are not there, before a run is recorded for them (validate checks
// the settings alone: the Launch form calls it on every edit).
func (c *RunConfig) checkFiles() error {
	for _, m := range []struct{ flag, dir string }{{"model", c.Model}, {"teacher", c.KD.Teacher}} {
		if m.dir == "" {
			continue
		}
		if err := checkModelDir(m.dir); err != nil {
			return fmt.Errorf("--%s: %w", m.flag, err)
		}
	}
	for _, p := range append(c.dataFiles(), c.Schema) {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("data file: %w", err)
		}
		if st.IsDir() {
			return fmt.Errorf("data file %s is a folder: give the JSONL or CSV file", p)
		}
	}
	return nil
}

// OnGPU says whether the run's steps are device-resident (cuda/devnet): a
// LoRA adapter trained by SFT, DPO or KD on a device other than the CPU —
// except logit KD from a Q8 teacher, which devnet does not upload. Other
// runs on the GPU go op by op through the backend, their memory on the host.
func (c *RunConfig) OnGPU() bool {
	q8Teacher := c.Method == "kd" && c.KD.Teacher != "" && c.KD.TeacherQuant == "q8"
	return resolveDevice(c.Device) != "cpu" && !c.Full && !q8Teacher
}

// resolveDevice turns "auto" (or nothing) into "cuda" where this binary has
// the CUDA backend and a GPU opens, else "cpu"; other names stay as they are.
// A run records the result, so a resume trains where it started.
func resolveDevice(d string) string {
	if d != "auto" && d != "" {
		return d
	}
	if _, err := tensor.Open("cuda"); err == nil {
		return "cuda"
	}
	return "cpu"
}
