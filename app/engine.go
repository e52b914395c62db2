package app

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

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
	cpuBF16                *bool // nil: f32 products
	cpuOffload             int   // on a GPU, the first layers run on the CPU (serve's --cpu-offload; model.AutoCPULayers: the device picks)
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

// checkModelDir says, before anything loads, when dir is not a model
// folder: a PEFT adapter or a training run's folder given in the base's
// place, a folder without config.json, or a file. A missing path and a
// broken config.json are left to model.Load, which names them.
func checkModelDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("model folder %s: no such folder", dir)
		}
		return fmt.Errorf("model folder %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s has no config.json: not a model folder (it is a file: give the folder that holds config.json and the weights)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json")); err == nil {
		base := ""
		var ac struct {
			Base string `json:"base_model_name_or_path"`
		}
		if json.Unmarshal(b, &ac) == nil && ac.Base != "" {
			base = fmt.Sprintf(" (trained on %s)", ac.Base)
		}
		return fmt.Errorf("%s is a LoRA adapter (adapter_config.json): pass it as --adapter and its base model%s as --model", dir, base)
	}
	if _, err := os.Stat(filepath.Join(dir, "adapter", "adapter_config.json")); err == nil {
		return fmt.Errorf("%s is a training run's folder, not a model folder: pass %s as --adapter and the run's base model as --model", dir, filepath.Join(dir, "adapter"))
	}
	return fmt.Errorf("%s has no config.json: not a model folder", dir)
}

// openModel opens the compute device, loads the model folder and applies
// the adapter, if any.
func openModel(f engineFlags, dir string) (tensor.Backend, *model.Model, error) {
	if err := checkModelDir(dir); err != nil {
		return nil, nil, err
	}
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
	cpuReady := false // be is cpuBackend's, --cpu-bf16 applied
	if *f.device != "cpu" {
		// Device-resident forward passes where the build has them — over
		// the layers after the CPU's, set first so the device never holds
		// theirs; without (or for what they do not take) the backend runs
		// op by op.
		m.CPULayers = min(f.cpuOffload, len(m.Layers))
		ok, err := m.Accelerate(*f.device)
		switch {
		case !ok && m.CPULayers >= len(m.Layers):
			// Every layer on the CPU: the final norm and the LM head too,
			// not op by op through the device (a copy of the head a token).
			// They run on it as --device cpu would (--cpu-bf16 included),
			// not on the plain f32 one --cpu-offload's layers take.
			var berr error
			if be, berr = cpuBackend(f); berr != nil {
				m.Close()
				return nil, nil, berr
			}
			m.CPULayers, cpuReady = 0, true
			if f.notice != nil {
				fmt.Fprintf(f.notice, "--device %s: every layer and the LM head run on the CPU (%v)\n", *f.device, err)
			}
		case !ok && f.notice != nil:
			fmt.Fprintf(f.notice, "--device %s: the forward pass runs op by op (%v)\n", *f.device, err)
		}
	}
	if f.cpuBF16 != nil && !cpuReady {
		be = withCPUBF16(be, *f.cpuBF16, f.notice) // said only now: a device that takes no layer leaves them all to the CPU, --cpu-bf16 included
	}
	// bf16 attention multiplies its keys and values rounded to bf16: held
	// so, the KV caches take half the memory and change no result.
	m.KVCacheBF16 = tensor.AttentionBF16(be)
	return be, m, nil
}

// cpuBackend is the CPU backend as f asks for it (--cpu-bf16).
func cpuBackend(f engineFlags) (tensor.Backend, error) {
	be, err := tensor.Open("cpu")
	if err != nil {
		return nil, err
	}
	if f.cpuBF16 != nil {
		be = withCPUBF16(be, *f.cpuBF16, f.notice)
	}
	return be, nil
}

// openForTask loads the tokenizer and the model (flags applied) for a task.
func openForTask(f engineFlags, dir string) (*tokenizer.Tokenizer, tensor.Backend, *model.Model, error) {
	if err := checkModelDir(dir); err != nil {
		return nil, nil, nil, err
	}
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
	return fs.Bool("cpu-bf16", false, "on the CPU, multiply BF16 weights (and NF4 weights dequantised to bf16) by the activations rounded to bf16, and attention's operands too, "+
		"as llama.cpp and GPUs do, and hold the KV caches in bf16 (half the memory): about twice the prefill speed on AVX-512 BF16, several times on AMX (Xeon 4th gen on); log-probs move by up to ~0.1; off, every product is of the f32 values")
}

// withCPUBF16 returns be with the bf16 products and bf16 attention on, when
// on and be is the CPU backend, and says when that buys no speed here or
// does not apply.
func withCPUBF16(be tensor.Backend, on bool, notice io.Writer) tensor.Backend {
	if !on {
		return be
	}
	cpu, ok := be.(tensor.CPU)
	if !ok {
		if notice != nil {
			fmt.Fprintf(notice, "--cpu-bf16: applies to the cpu backend only, not %s\n", be.Name())
		}
		return be
	}
	if !tensor.BF16ProductsFast() && notice != nil {
		fmt.Fprintln(notice, "--cpu-bf16: this CPU has no AVX-512 BF16; the inputs are rounded, the products run at f32's speed")
	}
	cpu.BF16Products, cpu.BF16Attention = true, true
	return cpu
}
