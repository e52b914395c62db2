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
	cpuBF16                *bool // nil: leave the bf16 products as they are
	notice                 io.Writer
}

func addEngineFlags(fs *flag.FlagSet, notice io.Writer) engineFlags {
	return engineFlags{
		notice:      notice,
		device:      fs.String("device", "cpu", "compute device: cpu or cuda (on cuda the forward pass is device-resident where the build has it — weights and KV cache on the GPU — else op by op, copying each op's operands)"),
		adapter:     fs.String("adapter", "", "PEFT LoRA adapter folder to apply (unmerged) over the base"),
		quant:       fs.String("quant", "none", "quantise the projections on load: none, nf4 or q8"),
		doubleQuant: fs.Bool("double-quant", true, "with nf4: double-quantise the block scales (bitsandbytes' compress_statistics)"),
		cpuBF16:     addCPUBF16Flag(fs),
	}
}

// openModel opens the compute device, loads the model folder and applies
// the adapter, if any.
func openModel(f engineFlags, dir string) (tensor.Backend, *model.Model, error) {
	be, err := tensor.Open(*f.device)
	if err != nil {
		return nil, nil, err
	}
	if f.cpuBF16 != nil {
		setCPUBF16(*f.cpuBF16, f.notice)
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

func addCPUBF16Flag(fs *flag.FlagSet) *bool {
	return fs.Bool("cpu-bf16", false, "on the CPU, multiply BF16 weights by the activations rounded to bf16 (as llama.cpp and GPUs do): "+
		"about twice the prefill speed on AVX-512 BF16; logits move by about 1e-2; off, every product is of the f32 activations")
}

// setCPUBF16 turns the CPU's bf16 products on or off and says when on buys
// no speed here.
func setCPUBF16(on bool, notice io.Writer) {
	tensor.SetBF16Products(on)
	if on && !tensor.BF16ProductsFast() && notice != nil {
		fmt.Fprintln(notice, "--cpu-bf16: this CPU has no AVX-512 BF16; the activations are rounded, the products run at f32's speed")
	}
}
