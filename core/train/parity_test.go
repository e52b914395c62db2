package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// The goldens come from tools/torchref/train_goldens.py: float64 PyTorch
// loss and LoRA gradients for the same checkpoint, adapter and batch.

type batchFile struct {
	Model    string  `json:"model"`
	IDs      [][]int `json:"ids"`
	LossMask [][]int `json:"loss_mask"`
	Packed   struct {
		IDs         []int `json:"ids"`
		Segments    []int `json:"segments"`
		PositionIDs []int `json:"position_ids"`
		LossMask    []int `json:"loss_mask"`
	} `json:"packed"`
}

type goldenFile struct {
	NCounted       int     `json:"n_counted"`
	Loss           float64 `json:"loss"`
	GradNorm       float64 `json:"grad_norm"`
	NCountedPacked int     `json:"n_counted_packed"`
	LossPacked     float64 `json:"loss_packed"`
	LossRSLoRA     float64 `json:"loss_rslora"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// loadPEFT reads a PEFT adapter folder into a fresh adapter for m.
func loadPEFT(t *testing.T, dir string, m *model.Model) *lora.Adapter {
	t.Helper()
	var cfg struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"lora_alpha"`
		Targets []string `json:"target_modules"`
		RSLoRA  bool     `json:"use_rslora"`
	}
	readJSON(t, filepath.Join(dir, "adapter_config.json"), &cfg)
	c := &m.Config
	dims := func(mod string) (int, int) {
		D, F, qO, kvO := c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
		return map[string][2]int{"q_proj": {D, qO}, "k_proj": {D, kvO}, "v_proj": {D, kvO}, "o_proj": {qO, D},
				"gate_proj": {D, F}, "up_proj": {D, F}, "down_proj": {F, D}}[mod][0],
			map[string][2]int{"q_proj": {D, qO}, "k_proj": {D, kvO}, "v_proj": {D, kvO}, "o_proj": {qO, D},
				"gate_proj": {D, F}, "up_proj": {D, F}, "down_proj": {F, D}}[mod][1]
	}
	a, err := lora.New(lora.Config{R: cfg.R, Alpha: cfg.Alpha, Targets: cfg.Targets, RSLoRA: cfg.RSLoRA}, len(m.Layers), dims)
	if err != nil {
		t.Fatal(err)
	}
	fillPairs(t, filepath.Join(dir, "adapter_model.safetensors"), a.Layers)
	return a
}

// fillPairs copies PEFT-named tensors of a safetensors file into pairs.
func fillPairs(t *testing.T, path string, pairs [][]*lora.Pair) {
	t.Helper()
	f, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for l, layer := range pairs {
		for i, p := range layer {
			if p == nil {
				continue
			}
			block := "self_attn"
			if i >= mGate {
				block = "mlp"
			}
			base := fmt.Sprintf("base_model.model.model.layers.%d.%s.%s.", l, block, lora.Modules[i])
			for _, ab := range []struct {
				name string
				dst  []float32
			}{{"lora_A.weight", p.A}, {"lora_B.weight", p.B}} {
				tt := f.Tensor(base + ab.name)
				if tt == nil {
					t.Fatalf("%s: missing %s", path, base+ab.name)
				}
				copy(ab.dst, tt.ToF32())
			}
		}
	}
}

func fixtureNet(t *testing.T, name, adapter string) (*Net, *batchFile, *goldenFile) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	var bf batchFile
	var g goldenFile
	readJSON(t, filepath.Join(dir, "batch.json"), &bf)
	readJSON(t, filepath.Join(dir, "golden.json"), &g)
	m, err := model.Load(filepath.Join(dir, bf.Model))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	be, _ := tensor.Open("cpu")
	net, err := NewNet(be, m, loadPEFT(t, filepath.Join(dir, adapter), m))
	if err != nil {
		t.Fatal(err)
	}
	return net, &bf, &g
}

func (bf *batchFile) batch() *Batch {
	b := &Batch{}
	for i, ids := range bf.IDs {
		mask := make([]bool, len(ids))
		for t, v := range bf.LossMask[i] {
			mask[t] = v == 1
		}
		b.AddSequence(ids, mask)
	}
	return b
}

func (bf *batchFile) packedBatch() *Batch {
	p := bf.Packed
	b := &Batch{}
	start := 0
	for i := range p.IDs {
		if i > 0 && p.Segments[i] != p.Segments[i-1] {
			start = i
		}
		target := -1
		if i+1 < len(p.IDs) && p.Segments[i+1] == p.Segments[i] && p.LossMask[i+1] == 1 {
			target = p.IDs[i+1]
		}
		b.IDs = append(b.IDs, p.IDs[i])
		b.Targets = append(b.Targets, target)
		b.Pos = append(b.Pos, p.PositionIDs[i])
		b.SegStart = append(b.SegStart, start)
	}
	return b
}

// compareGrads checks every LoRA gradient against the golden file: relative
// error ‖g − want‖ / ‖want‖ per tensor ≤ tol (f32 arithmetic against f64).
func compareGrads(t *testing.T, net *Net, path string, tol float64) {
	t.Helper()
	ref := make([]float32, len(net.Grads))
	refPairs := net.Adapter.Mirror(ref)
	fillPairs(t, path, refPairs)
	got := net.gPairs
	worst := 0.0
	for l := range got {
		for i, p := range got[l] {
			if p == nil {
				continue
			}
			for _, ab := range []struct {
				name      string
				got, want []float32
			}{{"A", p.A, refPairs[l][i].A}, {"B", p.B, refPairs[l][i].B}} {
				var num, den float64
				for j := range ab.got {
					d := float64(ab.got[j]) - float64(ab.want[j])
					num += d * d
					den += float64(ab.want[j]) * float64(ab.want[j])
				}
				rel := math.Sqrt(num / max(den, 1e-30))
				worst = max(worst, rel)
				if rel > tol {
					t.Errorf("layer %d %s lora_%s: relative error %.2e > %.0e (‖want‖ = %.3g)", l, lora.Modules[i], ab.name, rel, tol, math.Sqrt(den))
				}
			}
		}
	}
	t.Logf("worst relative gradient error %.2e", worst)
}

// trainFixtures: every architecture, and the biases (q/k/v/o) of Llama and
// Qwen3 with attention_bias, linear rope scaling, an explicit head_dim.
var trainFixtures = []string{"llama2-f32", "llama3-f32", "smollm-f32", "qwen2-f32", "qwen3-f32", "mistral-f32", "llama-bias-f32", "qwen3-v5-f32"}

// gradTol: the bound for f32 against the float64 reference.
const gradTol = 1e-4

func TestLoRAGradientsMatchPyTorch(t *testing.T) {
	for _, name := range trainFixtures {
		for _, ckpt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/checkpoint=%v", name, ckpt), func(t *testing.T) {
				net, bf, g := fixtureNet(t, name, "adapter")
				net.Checkpoint = ckpt
				b := bf.batch()
				if b.Counted() != g.NCounted {
					t.Fatalf("%d counted tokens, golden %d", b.Counted(), g.NCounted)
				}
				sum, err := net.Step(b, b.Counted())
				if err != nil {
					t.Fatal(err)
				}
				if loss := sum / float64(b.Counted()); math.Abs(loss-g.Loss) > 1e-4*g.Loss {
					t.Errorf("loss %.7f, want %.7f", loss, g.Loss)
				}
				compareGrads(t, net, filepath.Join("testdata", name, "lora_grads.safetensors"), gradTol)
			})
		}
	}
}

func TestPackedSegmentsMatchPyTorch(t *testing.T) {
	for _, name := range trainFixtures {
		t.Run(name, func(t *testing.T) {
			net, bf, g := fixtureNet(t, name, "adapter")
			b := bf.packedBatch()
			if err := b.Validate(net.M.Config.VocabSize); err != nil {
				t.Fatal(err)
			}
			sum, err := net.Step(b, b.Counted())
			if err != nil {
				t.Fatal(err)
			}
			if loss := sum / float64(b.Counted()); math.Abs(loss-g.LossPacked) > 1e-4*g.LossPacked {
				t.Errorf("packed loss %.7f, want %.7f", loss, g.LossPacked)
			}
			compareGrads(t, net, filepath.Join("testdata", name, "lora_grads_packed.safetensors"), gradTol)
		})
	}
}

func TestRSLoRAMatchesPyTorch(t *testing.T) {
	net, bf, g := fixtureNet(t, "qwen3-f32", "adapter_rslora")
	b := bf.batch()
	sum, err := net.Step(b, b.Counted())
	if err != nil {
		t.Fatal(err)
	}
	if loss := sum / float64(b.Counted()); math.Abs(loss-g.LossRSLoRA) > 1e-4*g.LossRSLoRA {
		t.Errorf("rsLoRA loss %.7f, want %.7f", loss, g.LossRSLoRA)
	}
	compareGrads(t, net, filepath.Join("testdata", "qwen3-f32", "lora_grads_rslora.safetensors"), gradTol)
}

// Checkpointing recomputes the same forward: gradients must be identical,
// bit for bit, not merely close.
func TestCheckpointingGivesIdenticalGradients(t *testing.T) {
	net, bf, _ := fixtureNet(t, "qwen2-f32", "adapter")
	b := bf.batch()
	if _, err := net.Step(b, b.Counted()); err != nil {
		t.Fatal(err)
	}
	plain := append([]float32(nil), net.Grads...)
	net.ZeroGrads()
	net.Checkpoint = true
	if _, err := net.Step(b, b.Counted()); err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if plain[i] != net.Grads[i] {
			t.Fatalf("gradient %d differs with checkpointing: %g vs %g", i, net.Grads[i], plain[i])
		}
	}
}
