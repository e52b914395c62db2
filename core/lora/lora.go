// Package lora holds LoRA adapters over a model's linear projections: their
// parameters in one planned allocation, initialisation, PEFT-format save and
// load, and merging into the base weights.
package lora

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"distill/core/model"
	"distill/core/tensor"
)

// Modules are the linear projections an adapter may target, in the order
// parameters are laid out within a layer.
var Modules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// Config is an adapter's hyper-parameters (PEFT's LoraConfig subset).
type Config struct {
	R         int      // rank
	Alpha     float64  // lora_alpha
	Dropout   float64  // lora_dropout, applied to the adapter's input in training
	Targets   []string // subset of Modules
	RSLoRA    bool     // scale by alpha/sqrt(r) instead of alpha/r
	BaseModel string   // base_model_name_or_path
}

// Scaling is the factor s in y = W x + s · B A x.
func (c Config) Scaling() float32 {
	if c.RSLoRA {
		return float32(c.Alpha / math.Sqrt(float64(c.R)))
	}
	return float32(c.Alpha / float64(c.R))
}

// Validate checks ranks and target names.
func (c Config) Validate() error {
	if c.R <= 0 {
		return fmt.Errorf("lora rank r must be positive, got %d", c.R)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("lora dropout must be in [0, 1), got %g", c.Dropout)
	}
	if len(c.Targets) == 0 {
		return fmt.Errorf("lora needs at least one target module (from %s)", strings.Join(Modules, ","))
	}
	for _, t := range c.Targets {
		if ModuleIndex(t) < 0 {
			return fmt.Errorf("unknown lora target module %q (known: %s)", t, strings.Join(Modules, ","))
		}
	}
	return nil
}

// ModuleIndex is m's position in Modules, or -1.
func ModuleIndex(m string) int {
	for i, n := range Modules {
		if n == m {
			return i
		}
	}
	return -1
}

// Pair is the adapter of one linear layer W (out, in):
// y = x·Wᵀ + s · (x·Aᵀ)·Bᵀ. A and B are views into Adapter.Params.
type Pair struct {
	In, Out int
	A       []float32 // (r, in)
	B       []float32 // (out, r)
}

// Adapter is every Pair of a model, its parameters in one allocation (the
// optimizer and gradient buffers mirror it element for element).
type Adapter struct {
	Config Config
	// Layers[l][ModuleIndex(m)] is nil where m is not targeted.
	Layers [][]*Pair
	Params []float32

	retired atomic.Bool // Retire
}

// Retire marks an adapter its owner will not run again (serve's cache
// evicted it): a device that holds an upload of it may free that now
// rather than when memory runs short. Safe from any goroutine.
func (a *Adapter) Retire() { a.retired.Store(true) }

// Retired says Retire was called.
func (a *Adapter) Retired() bool { return a.retired.Load() }

// Dims gives (in, out) of module m in a model's layer; DimsOf derives it
// from a loaded model.
type Dims func(module string) (in, out int)

// DimsOf is the (in, out) of each projection of m's decoder layers, from its
// config: q (hidden → heads·headDim), k and v (hidden → kvHeads·headDim),
// o (heads·headDim → hidden), gate and up (hidden → intermediate), down
// (intermediate → hidden). Unknown modules give (0, 0).
func DimsOf(m *model.Model) Dims {
	c := m.Config
	D, F := c.HiddenSize, c.IntermediateSize
	qOut, kvOut := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	return func(module string) (int, int) {
		switch module {
		case "q_proj":
			return D, qOut
		case "k_proj", "v_proj":
			return D, kvOut
		case "o_proj":
			return qOut, D
		case "gate_proj", "up_proj":
			return D, F
		case "down_proj":
			return F, D
		}
		return 0, 0
	}
}

// NewFor lays out a zero adapter for every decoder layer of m (call Init
// before training). An empty cfg.BaseModel is set to m.Dir.
func NewFor(m *model.Model, cfg Config) (*Adapter, error) {
	if cfg.BaseModel == "" {
		cfg.BaseModel = m.Dir
	}
	return New(cfg, len(m.Layers), DimsOf(m))
}

// Weight is the base weight (out, in) that module index i (into Modules) of
// layer L adapts.
func Weight(L *model.Layer, i int) tensor.Matrix {
	return *weightRef(L, i)
}

func weightRef(L *model.Layer, i int) *tensor.Matrix {
	switch Modules[i] {
	case "q_proj":
		return &L.Q
	case "k_proj":
		return &L.K
	case "v_proj":
		return &L.V
	case "o_proj":
		return &L.O
	case "gate_proj":
		return &L.Gate
	case "up_proj":
		return &L.Up
	case "down_proj":
		return &L.Down
	}
	panic("lora: no weight for module " + Modules[i])
}

// Matches reports whether a fits m: one entry per decoder layer, and every
// Pair's (in, out) equal to the projection it adapts. The error says which
// layer and module differ.
func (a *Adapter) Matches(m *model.Model) error {
	if len(a.Layers) != len(m.Layers) {
		return fmt.Errorf("adapter has %d layers but base model %s has %d: adapter was trained on a different base", len(a.Layers), m.Dir, len(m.Layers))
	}
	dims := DimsOf(m)
	for l, layer := range a.Layers {
		if len(layer) != len(Modules) {
			return fmt.Errorf("adapter layer %d has %d module slots, want %d", l, len(layer), len(Modules))
		}
		for i, p := range layer {
			if p == nil {
				continue
			}
			in, out := dims(Modules[i])
			if p.In != in || p.Out != out {
				return fmt.Errorf("adapter layer %d %s is (in %d, out %d) but base model %s has (in %d, out %d): adapter was trained on a different base", l, Modules[i], p.In, p.Out, m.Dir, in, out)
			}
			if len(p.A) != a.Config.R*p.In || len(p.B) != p.Out*a.Config.R {
				return fmt.Errorf("adapter layer %d %s: A has %d and B %d values, rank %d needs %d and %d", l, Modules[i], len(p.A), len(p.B), a.Config.R, a.Config.R*p.In, p.Out*a.Config.R)
			}
		}
	}
	return nil
}

// New lays out a zero adapter for nLayers layers of the given dims.
func New(cfg Config, nLayers int, dims Dims) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targeted := make([]bool, len(Modules))
	for _, t := range cfg.Targets {
		targeted[ModuleIndex(t)] = true
	}
	n := 0
	for l := 0; l < nLayers; l++ {
		for i, m := range Modules {
			if targeted[i] {
				in, out := dims(m)
				n += cfg.R * (in + out)
			}
		}
	}
	a := &Adapter{Config: cfg, Layers: make([][]*Pair, nLayers), Params: make([]float32, n)}
	a.Layers = a.views(a.Params, nLayers, targeted, dims)
	return a, nil
}

// views cuts buf into Pairs in the canonical order (layer, module, A then B).
func (a *Adapter) views(buf []float32, nLayers int, targeted []bool, dims Dims) [][]*Pair {
	layers := make([][]*Pair, nLayers)
	off, r := 0, a.Config.R
	for l := range layers {
		layers[l] = make([]*Pair, len(Modules))
		for i, m := range Modules {
			if !targeted[i] {
				continue
			}
			in, out := dims(m)
			p := &Pair{In: in, Out: out}
			p.A = buf[off : off+r*in : off+r*in]
			off += r * in
			p.B = buf[off : off+out*r : off+out*r]
			off += out * r
			layers[l][i] = p
		}
	}
	return layers
}

// Mirror returns Pairs with the same layout viewing buf (len(a.Params)): the
// shape of gradients and optimizer moments.
func (a *Adapter) Mirror(buf []float32) [][]*Pair {
	targeted := make([]bool, len(Modules))
	dims := map[string][2]int{}
	for _, layer := range a.Layers {
		for i, p := range layer {
			if p != nil {
				targeted[i] = true
				dims[Modules[i]] = [2]int{p.In, p.Out}
			}
		}
	}
	return a.views(buf, len(a.Layers), targeted, func(m string) (int, int) { d := dims[m]; return d[0], d[1] })
}
