package app

import (
	"fmt"
	"text/tabwriter"

	"distill/core/model"
	"distill/core/quant"
)

func init() {
	register(command{name: "quantize", usage: "--model DIR [--quant nf4|q8] [--double-quant] — bits per parameter and error per tensor", run: runQuantize})
}

// runQuantize quantises a model's projections in memory and reports the
// storage and the error of each tensor: what --quant would cost in accuracy.
func runQuantize(env *Env, args []string) error {
	fs := newFlags(env, "quantize", "--model DIR [--quant nf4|q8] [--double-quant=false]")
	dir := fs.String("model", "", "model folder")
	format := fs.String("quant", "nf4", "nf4 or q8")
	dq := fs.Bool("double-quant", true, "with nf4: double-quantise the block scales")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	rep, err := quant.QuantizeModel(m, *format, *dq && *format == "nf4", true)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tbits/param\tmax |err|\trms err")
	for _, t := range rep.Tensors {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3g\t%.3g\n", t.Name, t.BitsPerParam, t.MaxAbs, t.RMS)
	}
	tw.Flush()
	fmt.Fprintf(env.Stdout, "%s: %d projection parameters in %.1f MB, %.3f bits/param\n", rep.Format, rep.Params, float64(rep.Bytes)/1e6, rep.BitsPerParam())
	return nil
}
