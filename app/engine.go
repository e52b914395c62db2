package app

import (
	"flag"
	"fmt"
	"io"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/tokenizer"
)

// engineFlags are the flags every command that runs the model shares, and
// where to say how the model runs (nil: nowhere).
type engineFlags struct {
	device, adapter, quant *string
	doubleQuant            *bool
	notice                 io.Writer
}

func addEngineFlags(fs *flag.FlagSet, notice io.Writer) engineFlags {
	return engineFlags{
		notice:      notice,
		device:      fs.String("device", "cpu", "compute device: cpu or cuda (on cuda the forward pass is device-resident where the build has it — weights and KV cache on the GPU — else op by op, copying each op's operands)"),
		adapter:     fs.String("adapter", "", "PEFT LoRA adapter folder to apply (unmerged) over the base"),
		quant:       fs.String("quant", "none", "quantise the projections on load: none, nf4 or q8"),
		doubleQuant: fs.Bool("double-quant", true, "with nf4: double-quantise the block scales (bitsandbytes' compress_statistics)"),
	}
}

// openModel opens the compute device, loads the model folder and applies
// the adapter, if any.
func openModel(f engineFlags, dir string) (tensor.Backend, *model.Model, error) {
	be, err := tensor.Open(*f.device)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := quant.QuantizeModel(m, *f.quant, *f.doubleQuant && *f.quant == "nf4", false); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("--quant: %w", err)
	}
	if *f.adapter != "" {
		a, err := lora.Load(*f.adapter, m)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		m.Delta = a
	}
	if *f.device != "cpu" {
		// Device-resident forward passes where the build has them; without
		// (or for what they do not take) the backend runs op by op.
		if ok, err := m.Accelerate(*f.device); !ok && f.notice != nil {
			fmt.Fprintf(f.notice, "--device %s: the forward pass runs op by op (%v)\n", *f.device, err)
		}
	}
	return be, m, nil
}

// openForTask loads the tokenizer and the model (flags applied) for a task.
func openForTask(f engineFlags, dir string) (*tokenizer.Tokenizer, tensor.Backend, *model.Model, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	be, m, err := openModel(f, dir)
	if err != nil {
		return nil, nil, nil, err
	}
	return tok, be, m, nil
}
