package app

import (
	"flag"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// engineFlags are the flags every command that runs the model shares.
type engineFlags struct {
	device, adapter *string
}

func addEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		device:  fs.String("device", "cpu", "compute device: cpu or cuda"),
		adapter: fs.String("adapter", "", "PEFT LoRA adapter folder to apply (unmerged) over the base"),
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
	if *f.adapter != "" {
		a, err := lora.Load(*f.adapter, m)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		m.Delta = a
	}
	return be, m, nil
}
