package model

import (
	"fmt"
	"sort"
	"strings"
)

// Arch describes how one HF architecture differs from the Llama decoder that
// all supported ones share.
type Arch struct {
	Name    string // config.json "architectures"[0], e.g. "LlamaForCausalLM"
	QKVBias bool   // q/k/v projections carry biases (Qwen2)
	QKNorm  bool   // per-head RMSNorm on q and k before RoPE (Qwen3)
	// AttnBiasFromConfig: config's attention_bias adds q/k/v/o biases
	// (Llama, Qwen3).
	AttnBiasFromConfig bool
}

var arches = map[string]Arch{}

// RegisterArch makes an architecture loadable; each lives in its own file and
// registers from init(). A duplicate name panics.
func RegisterArch(a Arch) {
	if _, dup := arches[a.Name]; dup {
		panic("model: architecture registered twice: " + a.Name)
	}
	arches[a.Name] = a
}

func lookupArch(c *Config) (Arch, error) {
	for _, name := range c.Architectures {
		if a, ok := arches[name]; ok {
			return a, nil
		}
	}
	known := make([]string, 0, len(arches))
	for n := range arches {
		known = append(known, n)
	}
	sort.Strings(known)
	return Arch{}, fmt.Errorf("unsupported architecture %s (supported: %s)", strings.Join(c.Architectures, ", "), strings.Join(known, ", "))
}
