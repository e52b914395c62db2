package app

import (
	"flag"
	"fmt"
	"strings"
	"unicode/utf8"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/train"
)

// runPlanServe prints the memory `distill serve` takes for a model: on the
// CPU (the default, as serve's) the host's, its KV caches at full context
// for --max-batch sequences and, given the machine's memory, how many fit;
// with --device cuda the GPU's — its device-resident decoder holding every
// layer, and what each layer left to the CPU saves — and, given the card's
// memory, the split --cpu-offload auto would make there.
func runPlanServe(env *Env, args []string) error {
	fs := flag.NewFlagSet("plan serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("model", "", "base model folder")
	device := fs.String("device", "cpu", "as serve's --device: cpu (host memory) or cuda (the GPU's)")
	q := fs.String("quant", "none", "as serve's --quant: none, nf4 or q8 (the GPU decoder holds NF4 or dense weights)")
	dq := fs.Bool("double-quant", true, "with nf4: double-quantise the block scales")
	memory := fs.String("memory", "", "the machine's available memory, or the card's with --device cuda (e.g. 8GB): what fits in it")
	batch := fs.Int("max-batch", 8, "as serve's --max-batch: sequences decoding together (CPU plan)")
	ctx := fs.Int("context", 0, "positions each sequence's KV cache may reach (CPU plan; default: the model's context, as serve allows)")
	adapters := fs.Int("adapters", 4, "as serve's --adapters: adapters kept loaded, each counted at rank 16 (CPU plan)")
	cpuBF16 := fs.Bool("cpu-bf16", false, "as serve's --cpu-bf16: the KV caches held in bf16, half the f32 ones (CPU plan)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
	}
	switch *device {
	case "cpu":
		return planServeHost(env, *dir, hostPlanFlags{*q, *dq, *memory, *batch, *ctx, *adapters, *cpuBF16, *asJSON})
	case "cuda":
		var hostOnly []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "max-batch" || f.Name == "context" || f.Name == "adapters" || f.Name == "cpu-bf16" {
				hostOnly = append(hostOnly, "--"+f.Name)
			}
		})
		if len(hostOnly) > 0 {
			return fmt.Errorf("%s: the GPU's plan holds one sequence of %d positions and one adapter (the CPU's plan, --device cpu, takes them)", strings.Join(hostOnly, ", "), model.DecoderPlanContext)
		}
	default:
		return fmt.Errorf("--device %q: cpu or cuda", *device)
	}
	if *q != "none" && *q != "nf4" {
		return fmt.Errorf("--quant %s: the GPU decoder holds NF4 or dense weights (serve runs q8 op by op): plan none or nf4", *q)
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := quant.QuantizeModel(m, *q, *dq && *q == "nf4", false); err != nil {
		return fmt.Errorf("--quant: %w", err)
	}
	all := m.DecoderPlan(0)
	L := len(m.Layers)
	perLayer := all.Total() - m.DecoderPlan(min(1, L-1)).Total()
	if L > 2 { // from the second layer on: leaving the first also leaves the embedding
		perLayer = (m.DecoderPlan(1).Total() - m.DecoderPlan(L-1).Total()) / int64(L-2)
	}
	out := map[string]any{"model": *dir, "quant": *q, "layers": L, "plan": all, "cuda_context": int64(train.DeviceRuntime), "total": all.Total() + train.DeviceRuntime,
		"per_cpu_layer": perLayer, "context": model.DecoderPlanContext, "prompt": model.DecoderPlanPrompt}
	var budget int64
	from, fits := 0, true
	if *memory != "" {
		if budget, err = parseBytes(*memory); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		free := budget - train.DeviceRuntime
		from, fits = m.OffloadFor(model.OffloadRoom(free)) // as serve's --cpu-offload auto
		out["memory"], out["cpu_layers"], out["fits"] = budget, from, fits
		if fits {
			out["on_gpu"] = m.DecoderPlan(from).Total() + train.DeviceRuntime
		}
	}
	if *asJSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "serving %s (%s base) device-resident on a GPU, every layer there:\n", *dir, *q)
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("weights (%d layers)", L), mb(all.Weights))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", "LM head and embedding", mb(all.Head))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("KV cache, %d positions (%s)", m.DecoderPlanContext(),
		map[bool]string{false: "f32", true: "bf16"}[model.DeviceKVBF16(m.Config.HeadDim)]), mb(all.Cache))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("a %d-token prompt's pass", model.DecoderPlanPrompt), mb(all.Pass))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("a rank-%d LoRA adapter on every projection", model.DecoderPlanRank), mb(all.Adapter))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", "CUDA context", mb(train.DeviceRuntime))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", "total", mb(all.Total()+train.DeviceRuntime))
	fmt.Fprintf(env.Stdout, "each layer left to the CPU (--cpu-offload N) saves about %s\n", mb(perLayer))
	switch {
	case *memory == "":
	case !fits:
		fmt.Fprintf(env.Stdout, "within %s: not even the last layer fits beside the LM head (%s); serve runs every layer on the CPU\n", *memory, mb(m.DecoderPlan(L-1).Total()+train.DeviceRuntime))
	case from == 0:
		fmt.Fprintf(env.Stdout, "within %s: every layer on the GPU (--cpu-offload auto keeps a tenth of the free memory spare)\n", *memory)
	default:
		fmt.Fprintf(env.Stdout, "within %s: the first %d of %d layers on the CPU, %s on the GPU (--cpu-offload auto: %d)\n", *memory, from, L, mb(m.DecoderPlan(from).Total()+train.DeviceRuntime), from)
	}
	return nil
}

// hostPlanFlags are plan serve's flags for the CPU's plan.
type hostPlanFlags struct {
	quant           string
	doubleQuant     bool
	memory          string
	batch, ctx      int
	adapters        int
	cpuBF16, asJSON bool
}

// planServeHost is `distill plan serve` on the CPU: infer.PlanHost for
// batch sequences of ctx positions, and within memory (if given) the KV
// cache serve's --kv-memory auto would leave and how many full-context
// sequences it holds.
func planServeHost(env *Env, dir string, f hostPlanFlags) error {
	q, memory, batch, ctx, adapters := f.quant, f.memory, f.batch, f.ctx, f.adapters
	if batch < 1 || ctx < 0 || adapters < 0 {
		return fmt.Errorf("--max-batch %d, --context %d, --adapters %d: want a batch of 1 or more and no negative counts", batch, ctx, adapters)
	}
	m, err := model.Load(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := quant.QuantizeModel(m, q, f.doubleQuant && q == "nf4", false); err != nil {
		return fmt.Errorf("--quant: %w", err)
	}
	m.KVCacheBF16 = f.cpuBF16 // as serve's --cpu-bf16 holds them
	limit := m.ContextLimit()
	if limit <= 0 {
		limit = 4096 // as serve
	}
	if ctx == 0 {
		ctx = limit
	} else if ctx > limit {
		return fmt.Errorf("--context %d: the model's context is %d positions (serve admits no more)", ctx, limit)
	}
	p := infer.PlanHost(m, batch, ctx, adapters, model.DecoderPlanRank)
	perSeq := p.Caches / int64(batch)
	out := map[string]any{"model": dir, "quant": q, "device": "cpu", "plan": p, "total": p.Total(), "kv_cache_per_position": infer.CacheBytesPerPosition(m)}
	var avail, room int64
	if memory != "" {
		if avail, err = parseBytes(memory); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		full := int64(limit) * infer.CacheBytesPerPosition(m) // as serve's --kv-memory auto: one sequence
		room = max(avail-avail/10-(p.Total()-p.Caches), full) // of the model's whole context at least
		out["memory"], out["kv_memory"], out["full_context_sequences"] = avail, room, room/max(1, perSeq)
	}
	if f.asJSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "serving %s (%s base) on the CPU, %d sequences at %d positions each:\n", dir, q, batch, ctx)
	rows := []struct {
		name string
		b    int64
	}{
		{fmt.Sprintf("weights (%d layers, as held)", len(m.Layers)), p.Weights},
		{fmt.Sprintf("KV caches (%s), %d × %d positions (%s each)", map[bool]string{false: "f32", true: "bf16"}[f.cpuBF16], batch, ctx, mb(perSeq)), p.Caches},
		{"the largest prompt pass", p.Prefill},
		{fmt.Sprintf("a decode step of %d sequences", batch), p.Decode},
		{fmt.Sprintf("%d LoRA adapters of rank %d", adapters, model.DecoderPlanRank), p.Adapters},
		{"runtime, tokenizer, HTTP", p.Runtime},
		{"total", p.Total()},
	}
	width := 0
	for _, r := range rows {
		width = max(width, utf8.RuneCountInString(r.name))
	}
	for _, r := range rows {
		fmt.Fprintf(env.Stdout, "  %-*s %12s\n", width, r.name, mb(r.b))
	}
	if memory != "" {
		fmt.Fprintf(env.Stdout, "within %s: %s for KV caches (serve's --kv-memory auto), %d full-context sequences at once; shorter ones share it by their length\n",
			memory, mb(room), room/max(1, perSeq))
		if total := p.Total() - p.Caches + room; total > avail {
			fmt.Fprintf(env.Stdout, "that is %s in all, more than %s: serve would decode one sequence at a time and the machine may swap; use --quant nf4, fewer --adapters, or a shorter --context\n", mb(total), memory)
		}
	}
	return nil
}
