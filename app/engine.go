package app

import (
	"distill/core/model"
	"distill/core/tensor"
)

// openModel opens the compute device and loads the model folder.
func openModel(device, dir string) (tensor.Backend, *model.Model, error) {
	be, err := tensor.Open(device)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	return be, m, nil
}
