package lora

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	m := loadModel(t, llama3)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"all", Config{R: 4, Alpha: 8, Dropout: 0.05, Targets: append([]string(nil), Modules...), BaseModel: "meta-llama/Llama-3.2-1B"}},
		{"qv-rslora", Config{R: 3, Alpha: 6.5, Targets: []string{"v_proj", "q_proj"}, RSLoRA: true, BaseModel: llama3}},
		{"mlp", Config{R: 1, Alpha: 1, Targets: []string{"down_proj", "gate_proj", "up_proj"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := randomAdapter(t, m, tc.cfg, 3, 0.1)
			dir := filepath.Join(t.TempDir(), "runs", "r1", "adapter") // parents created
			if err := Save(dir, a); err != nil {
				t.Fatal(err)
			}
			b, err := Load(dir, m)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Config, b.Config) {
				t.Errorf("config %+v, loaded %+v", a.Config, b.Config)
			}
			if !slices.Equal(a.Params, b.Params) {
				t.Error("parameters differ after Save and Load")
			}
			for l := range a.Layers {
				for i := range a.Layers[l] {
					if (a.Layers[l][i] == nil) != (b.Layers[l][i] == nil) {
						t.Errorf("layer %d %s: targeted differs", l, Modules[i])
					}
				}
			}
			if s := b.Config.Scaling(); tc.cfg.RSLoRA && s != float32(6.5/1.7320508075688772) {
				t.Errorf("rsLoRA scaling %v", s)
			}
		})
	}
}

func TestSaveBF16(t *testing.T) {
	m := loadModel(t, llama3)
	a := randomAdapter(t, m, allTargets(), 5, 0.1)
	dir := t.TempDir()
	if err := SaveDType(dir, a, tensor.BF16); err != nil {
		t.Fatal(err)
	}
	f, err := model.OpenSafetensors(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if dt := f.Tensor(Key(0, 0, "A")).DType; dt != tensor.BF16 {
		t.Fatalf("stored %s, want BF16", dt)
	}
	b, err := Load(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a.Params {
		if want := tensor.BF16ToF32(tensor.F32ToBF16(v)); b.Params[i] != want {
			t.Fatalf("param %d: %v, want bf16(%v) = %v", i, b.Params[i], v, want)
		}
	}
}

// TestPEFTKeyNames: names, shapes and dtype exactly as PEFT saves a LoRA on
// a 2-layer Llama (hidden 64, 4 heads, 2 kv heads of 16, intermediate 128).
func TestPEFTKeyNames(t *testing.T) {
	m := loadModel(t, llama3)
	a := randomAdapter(t, m, allTargets(), 1, 0.1)
	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	const r = 4
	want := []struct {
		key   string
		shape []int
	}{
		{"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", []int{r, 128}},
		{"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight", []int{128, r}},
		{"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.mlp.up_proj.lora_B.weight", []int{128, r}},
		{"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight", []int{32, r}},
		{"base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight", []int{32, r}},
		{"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", []int{r, 128}},
		{"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight", []int{128, r}},
		{"base_model.model.model.layers.1.mlp.up_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.mlp.up_proj.lora_B.weight", []int{128, r}},
		{"base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight", []int{32, r}},
		{"base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", []int{64, r}},
		{"base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", []int{r, 64}},
		{"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", []int{32, r}},
	}
	f, err := model.OpenSafetensors(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	for _, w := range want {
		keys = append(keys, w.key)
		tt := f.Tensor(w.key)
		if tt == nil {
			t.Errorf("missing %s", w.key)
			continue
		}
		if !slices.Equal(tt.Shape, w.shape) || tt.DType != tensor.F32 {
			t.Errorf("%s: %s %v, want F32 %v", w.key, tt.DType, tt.Shape, w.shape)
		}
	}
	if got := f.Names(); !slices.Equal(got, keys) {
		t.Errorf("file holds %d tensors %v\nwant %d", len(got), got, len(keys))
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format pt", f.Metadata)
	}
	// The pair's values are where PEFT's names say: A of layer 1 q_proj.
	if got := f.Tensor(Key(1, 0, "A")).ToF32(); !slices.Equal(got, a.Layers[1][0].A) {
		t.Error("layer 1 q_proj lora_A holds other values")
	}
}

func TestPEFTConfigFile(t *testing.T) {
	m := loadModel(t, llama3)
	a := randomAdapter(t, m, Config{R: 8, Alpha: 16, Dropout: 0.1, Targets: []string{"q_proj", "v_proj"}, RSLoRA: true, BaseModel: "Qwen/Qwen2.5-0.5B-Instruct"}, 1, 0)
	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"peft_type":               "LORA",
		"task_type":               "CAUSAL_LM",
		"r":                       8.0,
		"lora_alpha":              16.0,
		"lora_dropout":            0.1,
		"target_modules":          []any{"q_proj", "v_proj"},
		"bias":                    "none",
		"use_rslora":              true,
		"use_dora":                false,
		"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
		"revision":                nil,
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"modules_to_save":         nil,
		"layers_to_transform":     nil,
		"rank_pattern":            map[string]any{},
		"alpha_pattern":           map[string]any{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("adapter_config.json:\n%s\nwant %v", b, want)
	}
	if !strings.Contains(string(b), `"r": 8,`) || !strings.Contains(string(b), `"lora_alpha": 16,`) {
		t.Errorf("r and lora_alpha should be written as integers, as PEFT does:\n%s", b)
	}
}

// TestLoadTorchFixtures loads the adapters tools/torchref/train_goldens.py
// wrote with PyTorch (PEFT's layout, base path relative to the adapter) and
// checks every value against the file read independently.
func TestLoadTorchFixtures(t *testing.T) {
	dirs := torchAdapters(t)
	for _, dir := range dirs {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			cfg, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			base := BasePath(dir, cfg)
			if !isDir(base) {
				t.Fatalf("base_model_name_or_path %q does not resolve to a folder (got %s)", cfg.BaseModel, base)
			}
			m := loadModel(t, base)
			a, err := Load(dir, m)
			if err != nil {
				t.Fatal(err)
			}
			f, err := model.OpenSafetensors(filepath.Join(dir, WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n := 0
			for l := range a.Layers {
				for i, p := range a.Layers[l] {
					if p == nil {
						t.Fatalf("layer %d %s not loaded", l, Modules[i])
					}
					if !slices.Equal(p.A, f.Tensor(Key(l, i, "A")).ToF32()) || !slices.Equal(p.B, f.Tensor(Key(l, i, "B")).ToF32()) {
						t.Errorf("layer %d %s: values differ from the file", l, Modules[i])
					}
					n += 2
				}
			}
			if n != len(f.Names()) {
				t.Errorf("loaded %d matrices, file holds %d", n, len(f.Names()))
			}
		})
	}
}

func torchAdapters(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob("../train/testdata/*/adapter*/" + ConfigFile)
	if len(dirs) == 0 {
		t.Skip("no PyTorch-written adapters under core/train/testdata (tools/torchref/train_goldens.py writes them)")
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

// TestLoadPEFTStyleFixture: a config with every key PEFT 0.15 writes, and
// weights in BF16 under names with the ".default" adapter infix.
func TestLoadPEFTStyleFixture(t *testing.T) {
	const fixture = "testdata/peft-0.15"
	cfg, err := LoadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := Config{R: 2, Alpha: 16, Dropout: 0.05, Targets: []string{"v_proj", "down_proj", "q_proj"}, BaseModel: "../../../model/testdata/llama3-f32"}
	if !reflect.DeepEqual(cfg, wantCfg) {
		t.Fatalf("config %+v, want %+v", cfg, wantCfg)
	}
	if got := BasePath(fixture, cfg); got != filepath.Join(fixture, cfg.BaseModel) {
		t.Errorf("BasePath = %s", got)
	}
	m := loadModel(t, BasePath(fixture, cfg))

	dir := t.TempDir()
	copyInto(t, filepath.Join(fixture, ConfigFile), dir)
	var ts []*tensor.Tensor
	want := map[string][]float32{}
	for l := range 2 {
		for _, mod := range []string{"q_proj", "v_proj", "down_proj"} {
			i := ModuleIndex(mod)
			in, out := DimsOf(m)(mod)
			for _, ab := range []struct {
				m     string
				shape []int
			}{{"A", []int{2, in}}, {"B", []int{out, 2}}} {
				name := strings.Replace(Key(l, i, ab.m), ".weight", ".default.weight", 1)
				tt := tensor.New(name, tensor.BF16, ab.shape...)
				v := make([]float32, tt.Elems())
				for j := range v {
					v[j] = float32(l*7+i*3+j%13-10) / 64 // exact in bf16
					tt.U16s()[j] = tensor.F32ToBF16(v[j])
				}
				ts = append(ts, tt)
				want[Key(l, i, ab.m)] = v
			}
		}
	}
	if err := model.WriteSafetensors(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	a, err := Load(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Config.Scaling(); s != 8 {
		t.Errorf("scaling %v, want 16/2", s)
	}
	for l := range a.Layers {
		for i, p := range a.Layers[l] {
			if p == nil {
				continue
			}
			if !slices.Equal(p.A, want[Key(l, i, "A")]) || !slices.Equal(p.B, want[Key(l, i, "B")]) {
				t.Errorf("layer %d %s: values differ", l, Modules[i])
			}
		}
	}
	if a.Layers[0][ModuleIndex("k_proj")] != nil {
		t.Error("k_proj is not targeted but has a pair")
	}
}

func copyInto(t *testing.T, src, dir string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// savedAdapter writes a valid all-module adapter for llama3 into a fresh
// folder and returns it.
func savedAdapter(t *testing.T, m *model.Model, layers int) string {
	t.Helper()
	a, err := New(allTargets(), layers, DimsOf(m))
	if err != nil {
		t.Fatal(err)
	}
	Init(a, 1)
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	return dir
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	if b, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editWeights rewrites the safetensors file through edit, which gets every
// tensor (copied out of the mapping) by name.
func editWeights(t *testing.T, dir string, edit func(map[string]*tensor.Tensor)) {
	t.Helper()
	path := filepath.Join(dir, WeightsFile)
	f, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*tensor.Tensor{}
	for _, n := range f.Names() {
		src := f.Tensor(n)
		ts[n] = &tensor.Tensor{Name: n, DType: src.DType, Shape: src.Shape, Data: slices.Clone(src.Data)}
	}
	f.Close()
	edit(ts)
	var list []*tensor.Tensor
	for n, tt := range ts {
		tt.Name = n
		list = append(list, tt)
	}
	if err := model.WriteSafetensors(path, list, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	m := loadModel(t, llama3)
	downB := Key(1, ModuleIndex("down_proj"), "B")
	for _, tc := range []struct {
		name   string
		layers int // of the saved adapter; 0 means the model's 2
		cfg    func(map[string]any)
		raw    string // replaces adapter_config.json when set
		ts     func(map[string]*tensor.Tensor)
		rm     string // file to delete
		want   []string
	}{
		{name: "missing key", ts: func(ts map[string]*tensor.Tensor) { delete(ts, downB) },
			want: []string{WeightsFile, `missing tensor "` + downB + `"`}},
		{name: "wrong shape", ts: func(ts map[string]*tensor.Tensor) {
			ts[downB] = tensor.New("", tensor.F32, 96, 4)
		}, want: []string{WeightsFile, downB, "shape [96 4]", "[64 4]", "different base"}},
		{name: "wrong rank", ts: func(ts map[string]*tensor.Tensor) {
			ts[downB] = tensor.New("", tensor.F32, 64, 3)
		}, want: []string{downB, "rank 3 but adapter_config.json says r=4"}},
		{name: "rank far past the tensors'", cfg: func(c map[string]any) { c["r"] = 1 << 20 }, // refused before r·(in+out)·layers floats are allocated
			want: []string{WeightsFile, "lora_A", "has rank 4 but adapter_config.json says r=1048576"}},
		{name: "more layers than the base", layers: 3,
			want: []string{WeightsFile, "layer 2 but base model", "has 2 layers", "different base"}},
		{name: "fewer layers than the base", layers: 1,
			want: []string{WeightsFile, "missing tensor", "layers.1.", "adapts 1 layers", "different base"}},
		{name: "different base dims", cfg: func(c map[string]any) {}, ts: func(ts map[string]*tensor.Tensor) {
			k := Key(0, ModuleIndex("k_proj"), "B")
			ts[k] = tensor.New("", tensor.F32, 64, 4) // llama2's MHA: 4 kv heads
		}, want: []string{"k_proj.lora_B.weight", "[32 4]", "different base"}},
		{name: "extra tensor", ts: func(ts map[string]*tensor.Tensor) {
			ts["base_model.model.lm_head.weight"] = tensor.New("", tensor.F32, 384, 64)
		}, want: []string{WeightsFile, `unexpected tensor "base_model.model.lm_head.weight"`}},
		{name: "untargeted module", cfg: func(c map[string]any) {
			c["target_modules"] = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"}
		}, want: []string{WeightsFile, "down_proj", "does not list"}},
		{name: "duplicate with .default", ts: func(ts map[string]*tensor.Tensor) {
			k := Key(0, 0, "A")
			c := *ts[k]
			ts[strings.Replace(k, ".weight", ".default.weight", 1)] = &c
		}, want: []string{"are the same matrix"}},
		{name: "DoRA", cfg: func(c map[string]any) { c["use_dora"] = true },
			want: []string{ConfigFile, "DoRA", "use_dora"}},
		{name: "Activated LoRA", cfg: func(c map[string]any) { c["alora_invocation_tokens"] = []int{128000, 42} },
			want: []string{ConfigFile, "Activated LoRA", "alora_invocation_tokens"}},
		{name: "QALoRA", cfg: func(c map[string]any) { c["use_qalora"] = true },
			want: []string{ConfigFile, "QALoRA", "use_qalora"}},
		{name: "bad JSON", raw: `{"r": 4, "target_modules": ["q_proj"]`,
			want: []string{ConfigFile, "not valid JSON"}},
		{name: "target regex", cfg: func(c map[string]any) { c["target_modules"] = `.*\.(q|v)_proj` },
			want: []string{ConfigFile, "target_modules is the string", "list of module names"}},
		{name: "all-linear", cfg: func(c map[string]any) { c["target_modules"] = "all-linear" },
			want: []string{ConfigFile, `"all-linear"`}},
		{name: "no targets", cfg: func(c map[string]any) { delete(c, "target_modules") },
			want: []string{ConfigFile, "no \"target_modules\""}},
		{name: "unknown target", cfg: func(c map[string]any) { c["target_modules"] = []string{"q_proj", "lm_head"} },
			want: []string{ConfigFile, `unknown lora target module "lm_head"`}},
		{name: "bias", cfg: func(c map[string]any) { c["bias"] = "lora_only" },
			want: []string{ConfigFile, `bias is "lora_only"`}},
		{name: "rank_pattern", cfg: func(c map[string]any) { c["rank_pattern"] = map[string]int{"q_proj": 8} },
			want: []string{ConfigFile, "rank_pattern"}},
		{name: "alpha_pattern", cfg: func(c map[string]any) { c["alpha_pattern"] = map[string]int{"q_proj": 8} },
			want: []string{ConfigFile, "alpha_pattern"}},
		{name: "modules_to_save", cfg: func(c map[string]any) { c["modules_to_save"] = []string{"lm_head"} },
			want: []string{ConfigFile, "modules_to_save"}},
		{name: "fan_in_fan_out", cfg: func(c map[string]any) { c["fan_in_fan_out"] = true },
			want: []string{ConfigFile, "fan_in_fan_out"}},
		{name: "layers_to_transform", cfg: func(c map[string]any) { c["layers_to_transform"] = []int{0} },
			want: []string{ConfigFile, "layers_to_transform"}},
		{name: "lora_bias", cfg: func(c map[string]any) { c["lora_bias"] = true },
			want: []string{ConfigFile, "lora_bias"}},
		{name: "pissa", cfg: func(c map[string]any) { c["init_lora_weights"] = "pissa_niter_4" },
			want: []string{ConfigFile, "pissa", "modified base"}},
		{name: "not LoRA", cfg: func(c map[string]any) { c["peft_type"] = "IA3" },
			want: []string{ConfigFile, `peft_type is "IA3"`}},
		{name: "classifier", cfg: func(c map[string]any) { c["task_type"] = "SEQ_CLS" },
			want: []string{ConfigFile, "SEQ_CLS"}},
		{name: "bad rank", cfg: func(c map[string]any) { c["r"] = 2.5 },
			want: []string{ConfigFile, `"r" must be a positive integer`}},
		{name: "rank as text", cfg: func(c map[string]any) { c["r"] = "8" },
			want: []string{ConfigFile, `"r" must be a number`}},
		{name: "no config", rm: ConfigFile, want: []string{"no adapter_config.json", "PEFT adapter folder"}},
		{name: "no weights", rm: WeightsFile, want: []string{"no adapter_model.safetensors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := tc.layers
			if layers == 0 {
				layers = len(m.Layers)
			}
			dir := savedAdapter(t, m, layers)
			if tc.cfg != nil {
				editConfig(t, dir, tc.cfg)
			}
			if tc.raw != "" {
				if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(tc.raw), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.ts != nil {
				editWeights(t, dir, tc.ts)
			}
			if tc.rm != "" {
				os.Remove(filepath.Join(dir, tc.rm))
			}
			a, err := Load(dir, m)
			if err == nil {
				t.Fatalf("loaded: %+v", a.Config)
			}
			msg := err.Error()
			for _, w := range append(tc.want, dir) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\nshould contain %q", msg, w)
				}
			}
		})
	}
}

// TestLoadIgnoresHarmlessKeys: unknown keys and PEFT's defaults for absent
// ones.
func TestLoadIgnoresHarmlessKeys(t *testing.T) {
	m := loadModel(t, llama3)
	dir := savedAdapter(t, m, 2)
	editConfig(t, dir, func(c map[string]any) {
		c["some_future_option"] = map[string]any{"x": 1}
		c["megatron_core"] = "megatron.core"
		c["use_dora"] = false
		c["exclude_modules"] = nil
		c["init_lora_weights"] = "gaussian"
		// PEFT 0.17's defaults for its newer variants.
		c["alora_invocation_tokens"], c["use_qalora"], c["arrow_config"], c["qalora_group_size"] = nil, false, nil, 16
		delete(c, "revision")
		delete(c, "task_type")
	})
	if _, err := Load(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	m := loadModel(t, llama3)
	root := t.TempDir()
	dir := filepath.Join(root, "adapter")
	first := randomAdapter(t, m, allTargets(), 1, 0.1)
	if err := Save(dir, first); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Overwrite with a different rank and targets: the new adapter replaces
	// the old as a whole, other files stay.
	second := randomAdapter(t, m, Config{R: 2, Alpha: 2, Targets: []string{"q_proj"}}, 2, 0.1)
	if err := Save(dir, second); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Params, second.Params) {
		t.Error("the second Save did not replace the adapter")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err != nil || string(b) != "notes" {
		t.Errorf("README.md not carried over: %q %v", b, err)
	}
	// A failing Save leaves the adapter there untouched.
	bad := randomAdapter(t, m, allTargets(), 3, 0.1)
	bad.Layers[0][0].A = bad.Layers[0][0].A[:5]
	if err := Save(dir, bad); err == nil || !strings.Contains(err.Error(), "q_proj") {
		t.Errorf("saving a broken adapter: %v", err)
	}
	if err := SaveDType(dir, second, tensor.DType(9)); err == nil {
		t.Error("saved with an unknown dtype")
	}
	if got, err := Load(dir, m); err != nil || !slices.Equal(got.Params, second.Params) {
		t.Errorf("adapter changed by failed saves: %v", err)
	}
	// No temporary or old folders are left beside it.
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "adapter" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left beside the adapter: %v", names)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("adapter folder holds %d entries, want config, weights, README", len(entries))
	}
}
