package app

import (
	"distill/core/gguf"
	"distill/core/model"
)

// ollamaModelfile is gguf.Modelfile with the checkpoint's own sampling.
func ollamaModelfile(m *model.Model, name, file string, withAdapter bool) (string, error) {
	gen, err := model.LoadGenerationConfig(m.Dir)
	if err != nil {
		return "", err
	}
	return gguf.Modelfile(m, gguf.ModelfileOptions{Name: name, File: file, Adapter: withAdapter,
		Sampling: samplingFrom(gen, -1, -1, -1, -1, -1, 0)})
}
