package app

import (
	"flag"
	"fmt"

	"distill/core/model"
	"distill/core/quant"
	"distill/core/train"
)

// runPlanServe prints the GPU memory `distill serve --device cuda` takes
// for a model — its device-resident decoder holding every layer, and what
// each layer left to the CPU saves — and, given the card's memory, the
// split --cpu-offload auto would make there.
func runPlanServe(env *Env, args []string) error {
	fs := flag.NewFlagSet("plan serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("model", "", "base model folder")
	q := fs.String("quant", "none", "as serve's --quant: none or nf4 (the GPU decoder holds NF4 or dense weights)")
	dq := fs.Bool("double-quant", true, "with nf4: double-quantise the block scales")
	memory := fs.String("memory", "", "the card's memory (e.g. 8GB): the split --cpu-offload auto would make on it, idle")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
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
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Fprintf(env.Stdout, "serving %s (%s base) device-resident on a GPU, every layer there:\n", *dir, *q)
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("weights (%d layers)", L), mb(all.Weights))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", "LM head and embedding", mb(all.Head))
	fmt.Fprintf(env.Stdout, "  %-44s %12s\n", fmt.Sprintf("KV cache, %d positions", m.DecoderPlanContext()), mb(all.Cache))
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
