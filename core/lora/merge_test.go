package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
)

func cpu(t testing.TB) tensor.Backend {
	be, err := tensor.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// naiveMerged is W + s·B·A by the definition, one element at a time in f64.
func naiveMerged(w *tensor.Tensor, p *Pair, s float32) []float64 {
	wf := w.ToF32()
	r := len(p.A) / p.In
	out := make([]float64, p.Out*p.In)
	for o := 0; o < p.Out; o++ {
		for i := 0; i < p.In; i++ {
			var d float64
			for k := 0; k < r; k++ {
				d += float64(p.B[o*r+k]) * float64(p.A[k*p.In+i])
			}
			out[o*p.In+i] = float64(wf[o*p.In+i]) + float64(s)*d
		}
	}
	return out
}

// checkNaive compares merged values (at most f32 rounding of the f64 sum,
// then the storage dtype's rounding) with naiveMerged.
func checkNaive(t *testing.T, what string, got []float32, want []float64, dt tensor.DType) {
	t.Helper()
	rel := 1e-6 // f32: a few roundings of terms of similar size
	if dt == tensor.BF16 {
		rel = 1.0 / 256 // half an ulp of 8 mantissa bits, with headroom
	}
	worst := 0.0
	for j := range want {
		d := math.Abs(float64(got[j]) - want[j])
		if d > rel*math.Abs(want[j])+1e-7 {
			t.Fatalf("%s[%d]: %v, naive %v (|Δ| %.2e)", what, j, got[j], want[j], d)
		}
		worst = max(worst, d)
	}
	t.Logf("%s: max |Δ| vs naive f64 = %.2e", what, worst)
}

func TestMergedWeightMatchesNaive(t *testing.T) {
	for _, dir := range []string{llama3, "../model/testdata/llama3-bf16"} {
		m := loadModel(t, dir)
		a := randomAdapter(t, m, allTargets(), 11, 0.1)
		s := a.Config.Scaling()
		for l := range a.Layers {
			for i, p := range a.Layers[l] {
				w := Weight(&m.Layers[l], i).(*tensor.Tensor)
				got := MergedWeight(w, p, s)
				if got.DType != tensor.F32 || !slices.Equal(got.Shape, w.Shape) {
					t.Fatalf("MergedWeight gave %s %v for %v", got.DType, got.Shape, w.Shape)
				}
				checkNaive(t, fmt.Sprintf("%s layer %d %s", filepath.Base(dir), l, Modules[i]), got.F32s(), naiveMerged(w, p, s), tensor.F32)
			}
		}
	}
}

// logits runs ids through m on the CPU backend: (len(ids), vocab).
func logits(t *testing.T, m *model.Model, ids []int) []float32 {
	t.Helper()
	be := cpu(t)
	h, err := m.Forward(be, ids, m.NewCache(len(ids)), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(ids)*m.Config.VocabSize)
	m.Logits(be, out, h, len(ids))
	return out
}

func maxDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

// TestMergeLogits: a merged folder, loaded with model.Load, gives the logits
// of the base with every targeted weight replaced in memory by MergedWeight
// (rounded as stored); its merged tensors match the naive triple loop; every
// other tensor is copied; the side files come along.
func TestMergeLogits(t *testing.T) {
	for _, tc := range []struct {
		base    string
		dt      tensor.DType
		targets []string
		tol     float64 // on logits vs the in-memory reference
	}{
		// Same dtypes and kernels on both sides: equal but for summation order.
		{"llama3-f32", KeepDType, Modules, 1e-5},
		{"llama3-bf16", KeepDType, Modules, 1e-5},
		// bf16 base exported at f32: the reference keeps bf16 for the untouched
		// tensors (widened exactly), so only kernel paths differ.
		{"llama3-bf16", tensor.F32, Modules, 1e-4},
		{"qwen2-f32-sharded", KeepDType, []string{"q_proj", "v_proj", "down_proj"}, 1e-5},
		{"qwen3-bf16", KeepDType, []string{"o_proj", "gate_proj", "up_proj", "k_proj"}, 1e-5},
	} {
		name := tc.base + "/keep"
		if tc.dt != KeepDType {
			name = tc.base + "/" + tc.dt.String()
		}
		t.Run(name, func(t *testing.T) {
			baseDir := filepath.Join("../model/testdata", tc.base)
			base := loadModel(t, baseDir)
			cfg := Config{R: 4, Alpha: 8, Targets: tc.targets}
			a := randomAdapter(t, base, cfg, 21, 0.1)
			out := filepath.Join(t.TempDir(), "merged")
			if err := Merge(base, a, out, tc.dt); err != nil {
				t.Fatal(err)
			}
			merged := loadModel(t, out)

			// The in-memory reference: the base with W' in place.
			ref := loadModel(t, baseDir)
			s := a.Config.Scaling()
			for l := range a.Layers {
				for i, p := range a.Layers[l] {
					if p == nil {
						continue
					}
					w := weightRef(&ref.Layers[l], i)
					mw := MergedWeight((*w).(*tensor.Tensor), p, s)
					if sdt := storedDType((*w).(*tensor.Tensor), tc.dt); sdt != tensor.F32 {
						mw = encode(mw.Name, mw.F32s(), sdt, mw.Shape...)
					}
					*w = mw
				}
			}
			ids := make([]int, 24)
			for i := range ids {
				ids[i] = (i*37 + 11) % base.Config.VocabSize
			}
			got, want, plain := logits(t, merged, ids), logits(t, ref, ids), logits(t, base, ids)
			d, effect := maxDiff(got, want), maxDiff(want, plain)
			t.Logf("max |Δ logit| merged vs reference %.2e; the adapter moves logits by up to %.3f", d, effect)
			if d > tc.tol {
				t.Errorf("merged logits differ from the reference by %.2e > %.0e", d, tc.tol)
			}
			if effect < 0.01 {
				t.Errorf("the adapter barely changes the logits (%.2e): the test has no teeth", effect)
			}

			// Element-wise: every tensor of the merged file against the base.
			src, err := openCheckpoint(baseDir)
			if err != nil {
				t.Fatal(err)
			}
			defer src.close()
			mf, err := model.OpenSafetensors(filepath.Join(out, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer mf.Close()
			if got, want := mf.Names(), sortedNames(src.tensors); !slices.Equal(got, want) {
				t.Fatalf("merged file holds %v\nbase holds %v", got, want)
			}
			for _, name := range mf.Names() {
				bt, mt := src.tensors[name], mf.Tensor(name)
				if mt.DType != storedDType(bt, tc.dt) || !slices.Equal(mt.Shape, bt.Shape) {
					t.Fatalf("%s: %s %v, base %s %v", name, mt.DType, mt.Shape, bt.DType, bt.Shape)
				}
				if l, i := projection(name); l >= 0 && a.Layers[l][i] != nil {
					checkNaive(t, name, mt.ToF32(), naiveMerged(bt, a.Layers[l][i], s), mt.DType)
					continue
				}
				if mt.DType == bt.DType && !slices.Equal(mt.Data, bt.Data) {
					t.Errorf("%s: not copied byte for byte", name)
				}
				if mt.DType != bt.DType && !slices.Equal(mt.ToF32(), bt.ToF32()) {
					t.Errorf("%s: values changed in the dtype conversion", name)
				}
			}

			// Side files: config.json as it was (but torch_dtype when converted).
			for _, f := range []string{"config.json", "generation_config.json"} {
				b0, _ := os.ReadFile(filepath.Join(baseDir, f))
				b1, err := os.ReadFile(filepath.Join(out, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == "config.json" && tc.dt != KeepDType {
					var c map[string]any
					json.Unmarshal(b1, &c)
					if c["torch_dtype"] != "float32" {
						t.Errorf("config.json torch_dtype %v after an F32 export", c["torch_dtype"])
					}
					b0 = []byte(strings.Replace(string(b0), `"torch_dtype": "bfloat16"`, `"torch_dtype": "float32"`, 1))
				}
				if string(b0) != string(b1) {
					t.Errorf("%s not copied as it was", f)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "model.safetensors.index.json")); err == nil {
				t.Error("a shard index was copied next to the single merged file")
			}
		})
	}
}

func storedDType(base *tensor.Tensor, dt tensor.DType) tensor.DType {
	if dt == KeepDType {
		return base.DType
	}
	return dt
}

// projection parses "model.layers.L.<block>.<module>.weight" into (L, module
// index), or (-1, -1).
func projection(name string) (int, int) {
	for i, mod := range Modules {
		var l int
		if n, _ := fmt.Sscanf(name, "model.layers.%d."+block(i)+"."+mod+".weight", &l); n == 1 && name == fmt.Sprintf("model.layers.%d.%s.%s.weight", l, block(i), mod) {
			return l, i
		}
	}
	return -1, -1
}

// TestMergeMatchesPyTorch merges the PyTorch-written adapters and compares
// the merged model's per-token NLL with the float64 reference that applied
// the adapter unmerged (y = xWᵀ + s·(xAᵀ)Bᵀ).
func TestMergeMatchesPyTorch(t *testing.T) {
	// f32 engine vs the f64 reference: ~6e-6 is seen; core/model's goldens
	// allow 1e-3, this keeps 15× headroom over what is seen instead.
	const tol = 1e-4
	for _, dir := range torchAdapters(t) {
		fixture := filepath.Dir(dir)
		t.Run(filepath.Base(fixture)+"/"+filepath.Base(dir), func(t *testing.T) {
			var golden struct {
				NLL        [][]float64 `json:"nll"`
				LossRSLoRA *float64    `json:"loss_rslora"`
			}
			var batch struct {
				IDs      [][]int `json:"ids"`
				LossMask [][]int `json:"loss_mask"`
			}
			for file, v := range map[string]any{"golden.json": &golden, "batch.json": &batch} {
				b, err := os.ReadFile(filepath.Join(fixture, file))
				if err != nil {
					t.Skip(err)
				}
				if err := json.Unmarshal(b, v); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			base := loadModel(t, BasePath(dir, cfg))
			a, err := Load(dir, base)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "merged")
			if err := Merge(base, a, out, KeepDType); err != nil {
				t.Fatal(err)
			}
			merged := loadModel(t, out)
			be := cpu(t)
			worst, sum, count := 0.0, 0.0, 0
			for b, ids := range batch.IDs {
				lp, err := infer.LogProbs(be, merged, ids)
				if err != nil {
					t.Fatal(err)
				}
				for tt := 1; tt < len(ids); tt++ {
					if batch.LossMask[b][tt] == 1 {
						sum -= lp[tt-1]
						count++
					}
					if cfg.RSLoRA {
						continue // the golden holds only the rsLoRA loss
					}
					worst = max(worst, math.Abs(-lp[tt-1]-golden.NLL[b][tt]))
				}
			}
			if cfg.RSLoRA {
				if golden.LossRSLoRA == nil {
					t.Fatal("golden.json has no loss_rslora")
				}
				d := math.Abs(sum/float64(count) - *golden.LossRSLoRA)
				t.Logf("rsLoRA loss %.6f, reference %.6f", sum/float64(count), *golden.LossRSLoRA)
				if d > tol {
					t.Errorf("rsLoRA loss off by %.2e", d)
				}
				return
			}
			t.Logf("max |Δ nll| vs PyTorch float64 = %.2e", worst)
			if worst > tol {
				t.Errorf("max |Δ nll| %.2e > %.0e", worst, tol)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	m := loadModel(t, llama3)
	a := randomAdapter(t, m, allTargets(), 1, 0.1)

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	if err := Merge(m, a, full, KeepDType); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("merge into a non-empty folder: %v", err)
	}
	if err := Merge(m, a, llama3, KeepDType); err == nil || !strings.Contains(err.Error(), "base model's folder") {
		t.Errorf("merge into the base folder: %v", err)
	}
	other := loadModel(t, "../model/testdata/llama2-f32") // MHA: k/v are 64 → 64
	if err := Merge(other, a, filepath.Join(t.TempDir(), "m"), KeepDType); err == nil || !strings.Contains(err.Error(), "different base") {
		t.Errorf("merge onto another base: %v", err)
	}
	if err := Merge(m, a, filepath.Join(t.TempDir(), "m"), tensor.DType(7)); err == nil {
		t.Error("merge with an unknown dtype")
	}
	// An empty existing folder is fine, and nothing is left beside it.
	root := t.TempDir()
	out := filepath.Join(root, "merged")
	os.Mkdir(out, 0o755)
	if err := Merge(m, a, out, tensor.BF16); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("%d entries beside the merged folder", len(entries))
	}
	mm := loadModel(t, out)
	if mm.Embed.DType != tensor.BF16 || mm.Layers[0].Q.(*tensor.Tensor).DType != tensor.BF16 {
		t.Errorf("BF16 export stored %s embeddings, %s q_proj", mm.Embed.DType, mm.Layers[0].Q.(*tensor.Tensor).DType)
	}
}

// TestMergeCopiesSideFiles: tokenizer and other plain files come along;
// other weight formats and subfolders do not.
func TestMergeCopiesSideFiles(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	os.Mkdir(base, 0o755)
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		copyInto(t, filepath.Join(llama3, f), base)
	}
	side := map[string]string{
		"tokenizer.json":          `{"model": {}}`,
		"tokenizer_config.json":   `{"chat_template": "{{ x }}"}`,
		"special_tokens_map.json": `{}`,
		"chat_template.jinja":     "{{ messages }}",
		"LICENSE":                 "licence text",
	}
	skipped := []string{"pytorch_model.bin", "model.gguf", ".hidden"}
	for f, body := range side {
		os.WriteFile(filepath.Join(base, f), []byte(body), 0o644)
	}
	for _, f := range skipped {
		os.WriteFile(filepath.Join(base, f), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(base, "original"), 0o755)
	m := loadModel(t, base)
	a := randomAdapter(t, m, allTargets(), 1, 0.1)
	out := filepath.Join(t.TempDir(), "merged")
	if err := Merge(m, a, out, KeepDType); err != nil {
		t.Fatal(err)
	}
	for f, body := range side {
		if b, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(b) != body {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
	for _, f := range append(skipped, "original") {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			t.Errorf("%s was copied", f)
		}
	}
}
