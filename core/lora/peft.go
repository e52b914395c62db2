package lora

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"distill/core/model"
	"distill/core/tensor"
)

// PEFT's file names inside an adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// block is the submodule of a decoder layer that holds module i.
func block(i int) string {
	if i < 4 {
		return "self_attn"
	}
	return "mlp"
}

// Key is PEFT's saved tensor name for matrix "A" or "B" of module i (into
// Modules) of layer l, e.g.
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.
func Key(l, i int, matrix string) string {
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s.lora_%s.weight", l, block(i), Modules[i], matrix)
}

// keyRE parses Key's names; PEFT drops the adapter name when it saves, but
// some tools keep it (lora_A.default.weight), so the infix is accepted.
var keyRE = regexp.MustCompile(`^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(\.default)?\.weight$`)

// Save writes a in PEFT's layout with f32 weights: see SaveDType.
func Save(dir string, a *Adapter) error { return SaveDType(dir, a, tensor.F32) }

// SaveDType writes dir/adapter_config.json and dir/adapter_model.safetensors
// (weights at dt: F32, BF16 or F16) in PEFT's layout, loadable by
// PeftModel.from_pretrained, vLLM and TGI.
//
// The folder is written under a temporary name next to dir and renamed into
// place, so a crash never leaves a half-written adapter at dir. When dir
// already exists, its other plain files (a README, say) are carried over and
// the old folder is swapped out; a crash between the two renames leaves the
// previous adapter whole in a hidden sibling "."+base(dir)+".old-*".
func SaveDType(dir string, a *Adapter, dt tensor.DType) error {
	if err := a.Config.Validate(); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if dt != tensor.F32 && dt != tensor.BF16 && dt != tensor.F16 {
		return fmt.Errorf("save adapter %s: dtype %s is not supported (F32, BF16 or F16)", dir, dt)
	}
	ts, err := a.tensors(dt)
	if err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	cfgJSON, err := json.MarshalIndent(peftConfig(a.Config), "", "  ")
	if err != nil {
		return err
	}
	tmp, err := tempDirFor(dir)
	if err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place
	if err := model.WriteSafetensors(filepath.Join(tmp, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := writeFileSync(filepath.Join(tmp, ConfigFile), append(cfgJSON, '\n')); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := replaceDir(tmp, dir, true); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	return nil
}

// peftConfig is adapter_config.json as PEFT writes it for a plain LoRA on a
// causal LM (json sorts the keys, as PEFT's sort_keys=True does).
func peftConfig(c Config) map[string]any {
	var base any
	if c.BaseModel != "" {
		base = c.BaseModel
	}
	targets := append([]string{}, c.Targets...)
	return map[string]any{
		"peft_type":               "LORA",
		"task_type":               "CAUSAL_LM",
		"r":                       c.R,
		"lora_alpha":              c.Alpha,
		"lora_dropout":            c.Dropout,
		"target_modules":          targets,
		"bias":                    "none",
		"use_rslora":              c.RSLoRA,
		"use_dora":                false,
		"base_model_name_or_path": base,
		"revision":                nil,
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"modules_to_save":         nil,
		"layers_to_transform":     nil,
		"rank_pattern":            map[string]any{},
		"alpha_pattern":           map[string]any{},
	}
}

// tensors lists a's matrices under PEFT's names, at dt (f32: views of
// a.Params, no copy).
func (a *Adapter) tensors(dt tensor.DType) ([]*tensor.Tensor, error) {
	r := a.Config.R
	targeted := make([]bool, len(Modules))
	for _, m := range a.Config.Targets {
		targeted[ModuleIndex(m)] = true
	}
	var ts []*tensor.Tensor
	for l, layer := range a.Layers {
		if len(layer) != len(Modules) {
			return nil, fmt.Errorf("layer %d has %d module slots, want %d", l, len(layer), len(Modules))
		}
		for i, p := range layer {
			if (p != nil) != targeted[i] {
				return nil, fmt.Errorf("layer %d %s: target_modules %v and the adapter's pairs disagree", l, Modules[i], a.Config.Targets)
			}
			if p == nil {
				continue
			}
			if len(p.A) != r*p.In || len(p.B) != p.Out*r {
				return nil, fmt.Errorf("layer %d %s: A has %d and B %d values, rank %d with (in %d, out %d) needs %d and %d", l, Modules[i], len(p.A), len(p.B), r, p.In, p.Out, r*p.In, p.Out*r)
			}
			ts = append(ts, encode(Key(l, i, "A"), p.A, dt, r, p.In), encode(Key(l, i, "B"), p.B, dt, p.Out, r))
		}
	}
	if len(ts) == 0 {
		return nil, errors.New("adapter has no targeted projections")
	}
	return ts, nil
}

// encode stores v at dt in a new tensor (f32: a view of v).
func encode(name string, v []float32, dt tensor.DType, shape ...int) *tensor.Tensor {
	if dt == tensor.F32 {
		return tensor.FromF32(name, v, shape...)
	}
	t := tensor.New(name, dt, shape...)
	putF32(t.Data, dt, v)
	return t
}

// putF32 rounds src to dt into dst (len(src)·dt.Size() bytes, little-endian).
func putF32(dst []byte, dt tensor.DType, src []float32) {
	switch dt {
	case tensor.F32:
		for i, f := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	case tensor.BF16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToBF16(f))
		}
	case tensor.F16:
		for i, f := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToF16(f))
		}
	default:
		panic("lora: cannot store " + dt.String())
	}
}

// LoadConfig reads dir/adapter_config.json. Features this engine does not
// implement are errors naming the key, never silently dropped; keys that do
// not change the adapter's function are ignored.
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return Config{}, fmt.Errorf("%s: no %s: is %s a PEFT adapter folder?", path, ConfigFile, dir)
		}
		return Config{}, err
	}
	c, err := parseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func parseConfig(b []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Config{}, fmt.Errorf("not valid JSON: %v", err)
	}
	// null and absent are the same to every check below.
	for k, v := range raw {
		if string(v) == "null" {
			delete(raw, k)
		}
	}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%q must be a string, got %s", key, v)
		}
		return s, nil
	}
	flag := func(key string) (bool, error) {
		v, ok := raw[key]
		if !ok {
			return false, nil
		}
		var f bool
		if err := json.Unmarshal(v, &f); err != nil {
			return false, fmt.Errorf("%q must be true or false, got %s", key, v)
		}
		return f, nil
	}
	num := func(key string, def float64) (float64, error) {
		v, ok := raw[key]
		if !ok {
			return def, nil
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return 0, fmt.Errorf("%q must be a number, got %s", key, v)
		}
		return f, nil
	}
	// empty: absent, null, false, "", [] or {}.
	empty := func(key string) bool {
		v, ok := raw[key]
		if !ok {
			return true
		}
		switch strings.Join(strings.Fields(string(v)), "") {
		case "false", `""`, "[]", "{}":
			return true
		}
		return false
	}

	if t, err := str("peft_type"); err != nil {
		return Config{}, err
	} else if t != "" && t != "LORA" {
		return Config{}, fmt.Errorf("peft_type is %q: only LORA adapters are supported", t)
	}
	if t, err := str("task_type"); err != nil {
		return Config{}, err
	} else if t != "" && t != "CAUSAL_LM" {
		return Config{}, fmt.Errorf("task_type is %q: only CAUSAL_LM adapters are supported", t)
	}
	if bias, err := str("bias"); err != nil {
		return Config{}, err
	} else if bias != "" && bias != "none" {
		return Config{}, fmt.Errorf("bias is %q: adapters that train biases are not supported (only \"none\")", bias)
	}
	for _, u := range []struct{ key, why string }{
		{"use_dora", "DoRA (use_dora: true) is not supported; train a plain LoRA or merge the DoRA adapter with PEFT first"},
		{"fan_in_fan_out", "fan_in_fan_out: true (Conv1D-style transposed weights, GPT-2) is not supported"},
		{"lora_bias", "lora_bias: true (a bias on lora_B) is not supported"},
		{"modules_to_save", "modules_to_save is not supported: the adapter carries full copies of other modules"},
		{"rank_pattern", "rank_pattern is not supported: every module must use the same rank r"},
		{"alpha_pattern", "alpha_pattern is not supported: every module must use the same lora_alpha"},
		{"layers_to_transform", "layers_to_transform is not supported: the adapter must cover every layer"},
		{"layer_replication", "layer_replication is not supported"},
		{"exclude_modules", "exclude_modules is not supported: list the targeted modules in target_modules instead"},
		{"trainable_token_indices", "trainable_token_indices is not supported"},
		{"target_parameters", "target_parameters is not supported"},
		// PEFT 0.17 and later: same tensors as a plain LoRA, other arithmetic.
		{"alora_invocation_tokens", "Activated LoRA (alora_invocation_tokens) is not supported: the adapter acts only after its invocation tokens, which this engine would not honour"},
		{"use_qalora", "QALoRA (use_qalora: true) is not supported: its lora_A reads group-pooled inputs"},
		{"use_bdlora", "block-diagonal LoRA (use_bdlora) is not supported"},
		{"arrow_config", "Arrow routing (arrow_config) is not supported"},
	} {
		if !empty(u.key) {
			return Config{}, fmt.Errorf("%s (%q is %s)", u.why, u.key, raw[u.key])
		}
	}
	if v, ok := raw["init_lora_weights"]; ok {
		var s string
		if json.Unmarshal(v, &s) == nil {
			for _, p := range []string{"pissa", "olora", "corda", "loftq"} {
				if strings.HasPrefix(strings.ToLower(s), p) {
					return Config{}, fmt.Errorf("init_lora_weights is %q: such adapters expect a modified base model; convert it to a plain LoRA with PEFT (path_initial_model_for_weight_conversion) first", s)
				}
			}
		}
	}

	var c Config
	var err error
	r, err := num("r", 8) // PEFT's defaults where a key is absent
	if err != nil {
		return Config{}, err
	}
	if r != math.Trunc(r) || r < 1 || r > 1<<20 {
		return Config{}, fmt.Errorf("\"r\" must be a positive integer, got %v", r)
	}
	c.R = int(r)
	if c.Alpha, err = num("lora_alpha", 8); err != nil {
		return Config{}, err
	}
	if c.Dropout, err = num("lora_dropout", 0); err != nil {
		return Config{}, err
	}
	if c.RSLoRA, err = flag("use_rslora"); err != nil {
		return Config{}, err
	}
	if c.BaseModel, err = str("base_model_name_or_path"); err != nil {
		return Config{}, err
	}
	tm, ok := raw["target_modules"]
	if !ok {
		return Config{}, fmt.Errorf("no \"target_modules\": list the adapted modules, e.g. [\"q_proj\", \"v_proj\"]")
	}
	if err := json.Unmarshal(tm, &c.Targets); err != nil {
		var s string
		if json.Unmarshal(tm, &s) == nil {
			return Config{}, fmt.Errorf("target_modules is the string %q (a regular expression or \"all-linear\"), which is not supported: give a list of module names from %s", s, strings.Join(Modules, ","))
		}
		return Config{}, fmt.Errorf("target_modules must be a list of module names, got %s", tm)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads a PEFT adapter folder for base model m: adapter_config.json
// (see LoadConfig) and adapter_model.safetensors (F32, BF16 or F16). Every
// tensor of every targeted projection of every layer must be present with the
// shape m and r imply; errors name the file and the tensor.
func Load(dir string, m *model.Model) (*Adapter, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if _, err := os.Stat(filepath.Join(dir, "adapter_model.bin")); err == nil {
			return nil, fmt.Errorf("%s: only adapter_model.bin (a pickle) is there: re-save the adapter with PEFT's safe_serialization=True", dir)
		}
		return nil, fmt.Errorf("%s: no %s in the adapter folder", path, WeightsFile)
	}
	f, err := model.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The rank against the file's first lora_A before the adapter is
	// allocated: r × (in + out) × layers floats of a wrong r may not fit in
	// memory at all.
	for _, name := range f.Names() {
		if t := f.Tensor(name); strings.Contains(name, "lora_A") && t != nil && len(t.Shape) == 2 && t.Shape[0] != cfg.R {
			return nil, fmt.Errorf("%s: tensor %q has rank %d but %s says r=%d: the adapter's files disagree (re-save the adapter)",
				path, name, t.Shape[0], ConfigFile, cfg.R)
		}
	}

	a, err := NewFor(m, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	a.Config.BaseModel = cfg.BaseModel // as the file says, even if empty
	dims := DimsOf(m)
	r, nL := cfg.R, len(m.Layers)
	type slot struct{ l, i, ab int }
	seen := map[slot]string{}
	fileLayers := 0
	for _, name := range f.Names() {
		g := keyRE.FindStringSubmatch(name)
		if g == nil {
			return nil, fmt.Errorf("%s: unexpected tensor %q: only lora_A/lora_B weights of the decoder's q/k/v/o/gate/up/down projections are supported", path, name)
		}
		l, err := strconv.Atoi(g[1])
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad layer number", path, name)
		}
		i := ModuleIndex(g[3])
		if i < 0 || block(i) != g[2] {
			return nil, fmt.Errorf("%s: tensor %q: %s.%s is not a projection this engine adapts (%s)", path, name, g[2], g[3], strings.Join(Modules, ","))
		}
		if l >= nL {
			return nil, fmt.Errorf("%s: tensor %q refers to layer %d but base model %s has %d layers: adapter was trained on a different base", path, name, l, m.Dir, nL)
		}
		fileLayers = max(fileLayers, l+1)
		if a.Layers[l][i] == nil {
			return nil, fmt.Errorf("%s: tensor %q adapts %s, which adapter_config.json's target_modules %v does not list", path, name, Modules[i], cfg.Targets)
		}
		ab := 0
		if g[4] == "B" {
			ab = 1
		}
		if prev, dup := seen[slot{l, i, ab}]; dup {
			return nil, fmt.Errorf("%s: tensors %q and %q are the same matrix", path, prev, name)
		}
		seen[slot{l, i, ab}] = name
		t := f.Tensor(name)
		in, out := dims(Modules[i])
		p := a.Layers[l][i]
		want, dst := []int{r, in}, p.A
		if ab == 1 {
			want, dst = []int{out, r}, p.B
		}
		if len(t.Shape) != 2 || t.Shape[0] != want[0] || t.Shape[1] != want[1] {
			why := fmt.Sprintf("base model %s with r=%d implies %v: adapter was trained on a different base", m.Dir, r, want)
			if len(t.Shape) == 2 {
				rank := t.Shape[0]
				if ab == 1 {
					rank = t.Shape[1]
				}
				if rank != r && (ab == 0 && t.Shape[1] == in || ab == 1 && t.Shape[0] == out) {
					why = fmt.Sprintf("rank %d but adapter_config.json says r=%d", rank, r)
				}
			}
			return nil, fmt.Errorf("%s: tensor %q has shape %v: %s", path, name, t.Shape, why)
		}
		tensor.ToF32(dst, t.DType, t.Data)
	}
	for l := range a.Layers {
		for i, p := range a.Layers[l] {
			if p == nil {
				continue
			}
			for ab, mat := range []string{"A", "B"} {
				if _, ok := seen[slot{l, i, ab}]; ok {
					continue
				}
				if fileLayers < nL && l >= fileLayers {
					return nil, fmt.Errorf("%s: missing tensor %q: the file adapts %d layers but base model %s has %d: adapter was trained on a different base", path, Key(l, i, mat), fileLayers, m.Dir, nL)
				}
				return nil, fmt.Errorf("%s: missing tensor %q (target_modules lists %s)", path, Key(l, i, mat), Modules[i])
			}
		}
	}
	return a, nil
}

// BasePath resolves an adapter's base_model_name_or_path: a relative path is
// taken relative to the adapter folder when that names an existing folder,
// else returned as written (a hub id or a path relative to the working
// directory).
func BasePath(dir string, c Config) string {
	b := c.BaseModel
	if b == "" || filepath.IsAbs(b) {
		return b
	}
	if p := filepath.Join(dir, b); isDir(p) {
		return p
	}
	return b
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// sortedNames is keys of a tensor map, sorted.
func sortedNames[T any](m map[string]T) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
