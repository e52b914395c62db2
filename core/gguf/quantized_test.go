package gguf_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"distill/core/gguf"
	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
)

// llama-quantize's file types (q4_k_m, q6_k) are checked against llama.cpp
// three ways, from goldens that `make goldens` writes:
//
//   - llama.cpp evaluates distill's quantised file (testdata/llamacpp.json,
//     as for the other types), and its log-probs are compared with distill's
//     own forward on the weights the file holds, dequantised by
//     gguf.Dequantize: the file must mean to llama.cpp what distill meant;
//   - llama-quantize itself (llama_model_quantize in llama.cpp's library,
//     tools/llamacpp/llama_quantize.py) quantises distill's f32 export of
//     the same model, and every tensor of distill's file must have the type
//     and the very bytes llama-quantize gave it (testdata/llama_quantize.json);
//   - ggml's quantisers and dequantisers run on a set of awkward rows, and
//     distill's must give the same bytes and the same floats (same file).

// quantCases are exported at a llama-quantize type. The wide fixtures fill
// K-quant super-blocks (their rows are 256 and 512 or 768 weights); qwen2-f32
// (rows of 64 and 128) takes every fallback (Q5_0 for Q4_K, Q8_0 for the
// output and the Q6_K layers).
var quantCases = []struct{ fixture, typ string }{
	{"wide-llama", "q4_k_m"}, {"wide-qwen3", "q4_k_m"}, {"wide-llama", "q6_k"}, {"qwen2-f32", "q4_k_m"},
}

// wideShapes are fixtures built by the test (writeWideFixture), not by
// torchref: the reference here is distill's own forward, on the
// dequantised weights. Two layers: llama-quantize's use_more_bits keeps
// layer 1's attn_v and ffn_down at Q6_K in q4_k_m, layer 0's at Q4_K.
// wide-llama has an output.weight (Q6_K) and Llama's q/k row order;
// wide-qwen3 ties it to token_embd (then Q6_K).
var wideShapes = map[string]model.Shape{
	"wide-llama": {Arch: "LlamaForCausalLM", Hidden: 256, Intermediate: 512, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 320, RopeTheta: 1e4, RMSNormEps: 1e-5, MaxPositions: 1024, BOS: 300, EOS: 301},
	"wide-qwen3": {Arch: "Qwen3ForCausalLM", Hidden: 256, Intermediate: 768, Layers: 2, Heads: 4, KVHeads: 1, HeadDim: 64, Vocab: 320, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 1024, BOS: 300, EOS: 301},
}

// wideText is what the wide fixtures' log-probs are taken of (byte tokens).
const wideText = "Quantised to four bits, read back by llama.cpp: 0.5 + 0.25 = 0.75."

// writeWideFixture writes a model of shape s into dir with heavy-tailed
// weights, as trained weights are (Student's t with 4 degrees of freedom,
// standard deviation 1/√cols, so activations keep their scale), norms near
// 1, and the byte-level tokenizer.
func writeWideFixture(t *testing.T, dir string, s model.Shape, seed uint64) {
	t.Helper()
	if err := model.WriteRandom(dir, s, tensor.F32, seed); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	sf, err := model.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x7a11))
	var ts []*tensor.Tensor
	for _, name := range sf.Names() {
		src := sf.Tensor(name)
		nt := tensor.New(name, tensor.F32, src.Shape...)
		if len(src.Shape) == 2 {
			studentT(rng, nt.F32s(), 1/math.Sqrt(float64(src.Shape[1])))
		} else {
			copy(nt.Data, src.Data)
		}
		ts = append(ts, nt)
	}
	sf.Close()
	if err := model.WriteSafetensors(path, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	writeByteTokenizer(t, dir)
	gen := fmt.Sprintf(`{"bos_token_id": %d, "eos_token_id": %d}`, s.BOS, s.EOS)
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
}

// studentT fills v with Student's t (4 degrees of freedom) scaled to
// standard deviation std: mostly small, with the occasional outlier a
// min/max quantiser spends its range on.
func studentT(rng *rand.Rand, v []float32, std float64) {
	for i := range v {
		var chi2 float64
		for range 4 {
			z := rng.NormFloat64()
			chi2 += z * z
		}
		v[i] = float32(rng.NormFloat64() / math.Sqrt(chi2/4) * std / math.Sqrt2)
	}
}

// quantFixture is the folder a quantised case exports (a wide fixture, or
// a torchref fixture with the byte-level tokenizer) and the ids evaluated.
func quantFixture(t *testing.T, fixture string) (string, []int) {
	t.Helper()
	s, ok := wideShapes[fixture]
	if !ok {
		var g struct {
			IDs []int `json:"ids"`
		}
		readJSON(t, filepath.Join("..", "model", "testdata", fixture, "golden.json"), &g)
		return fixtureWithTokenizer(t, fixture), g.IDs
	}
	dir := filepath.Join(t.TempDir(), fixture)
	writeWideFixture(t, dir, s, 17)
	var ids []int
	for _, b := range []byte(wideText) {
		ids = append(ids, int(b))
	}
	return dir, ids
}

// exportQuantCase exports a quantised case; preparing the goldens, it also
// writes the f32 file llama-quantize starts from.
func exportQuantCase(t *testing.T, out, fixture, typ string, preparing bool) ggufCase {
	t.Helper()
	dir, ids := quantFixture(t, fixture)
	c := ggufCase{Name: fixture + "-" + typ, Type: typ, Fixture: fixture, IDs: ids, dir: dir, out: out}
	c.File, c.SHA256 = export(t, dir, out, c.Name, typ)
	c.EOSIDs, c.AddBOS = distillEnds(t, dir)
	if preparing {
		ft, _ := gguf.ParseFileType(typ)
		src, _ := export(t, dir, out, c.Name+".f32-source", "f32")
		c.LlamaQuantize = &llamaQuantizeFrom{File: src, FType: uint32(ft)}
	}
	return c
}

// llamaQuantizeFrom asks tools/llamacpp/llama_quantize.py to quantise File
// (an f32 export) to llama_ftype FType.
type llamaQuantizeFrom struct {
	File  string `json:"file"`
	FType uint32 `json:"ftype"`
}

// quantizeGolden is testdata/llama_quantize.json.
type quantizeGolden struct {
	Generator string `json:"generator"`
	Reference string `json:"reference"`
	// Rows: ggml's quantisation of the rows quantRows makes, per ggml type
	// name: the bytes' sha256 and that of the floats ggml reads them back as.
	Rows struct {
		SHA256 string `json:"sha256"`
		Rows   int    `json:"rows"`
		Cols   int    `json:"cols"`
		Types  map[string]struct {
			Quantized   string `json:"quantized"`
			Dequantized string `json:"dequantized"`
		} `json:"types"`
	} `json:"rows"`
	// Cases: each quantised case's tensors as llama-quantize wrote them.
	// (source_sha256, the f32 file's, is there to trace it.)
	Cases map[string]struct {
		Tensors map[string]struct {
			Type   string `json:"type"`
			SHA256 string `json:"sha256"`
		} `json:"tensors"`
	} `json:"cases"`
}

const quantizeGoldenPath = "testdata/llama_quantize.json"

func readQuantizeGolden(t *testing.T) *quantizeGolden {
	t.Helper()
	var g quantizeGolden
	b, err := os.ReadFile(quantizeGoldenPath)
	if err != nil {
		t.Fatalf("%v: run `make goldens`", err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%s: %v", quantizeGoldenPath, err)
	}
	return &g
}

// quantTol bounds |Δ log-prob| between llama.cpp on a quantised file and
// distill's forward on the same dequantised weights (ggmlProducts). The
// weights agree to the bit (TestLlamaQuantizeBytes: ggml's dequantisers
// give the same floats), and llama.cpp rounds the activations to 8 bits
// before each product by a quantised weight, as ggmlProducts does; with
// f32 activations instead the two differ by up to 0.22 (measured:
// 0.081-0.122 on the wide fixtures, 0.219 on qwen2-f32-q4_k_m), about what
// separates distill on the unquantised weights from llama.cpp on q6_k
// (0.30), so the rounding must be followed for the check to mean much.
// What is left is the order of summation, and it is chaotic: a product
// that differs in its last bit can round an activation of the next layer
// to the neighbouring 8-bit level, and the position where that happens and
// every later one (through attention) then differ by up to 0.05, where
// the others agree to 1e-6. Measured: three cases within 1.4e-6, and
// wide-llama-q6_k within 0.043 (one such flip at t=53); with the
// activations multiplied by sgemm, all the batch at once, in place of one
// row at a time, flips from t=13-28 on and up to 0.050; on arm64 (the
// pure-Go kernels, under qemu) up to 0.048. Another machine's kernels flip
// elsewhere, hence 3× the largest flip measured. The
// layout mistakes tried by hand, each made alike in the encoder and the
// decoder (Q4_K's nibbles swapped, two of its 6-bit scale and min bits
// swapped, Q6_K's high bits of two quarters swapped, Q5_0's fifth bits
// misplaced), moved them by 2.7 to 13 nats.
const quantTol = 0.15

// checkQuantCase: the file is the one llama.cpp read; every tensor is
// llama-quantize's; llama.cpp's log-probs are distill's on the dequantised
// weights.
func checkQuantCase(t *testing.T, c ggufCase, g *llamaGolden, lq *quantizeGolden) {
	if !sameFile(t, c, g) {
		return
	}
	checkEnds(t, c, g)
	tensors := readGGUF(t, filepath.Join(c.out, c.File))
	compareWithLlamaQuantize(t, c, tensors, lq)

	orig, err := model.Load(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ref := dequantizedModel(t, orig, tensors)
	defer ref.Close()
	types := map[string]gguf.Type{}
	for _, ti := range tensors {
		name, _ := hfName(ti.Name)
		types[name] = ti.Type
	}
	gap := func(be tensor.Backend, m *model.Model) (seq, last float64, at, atLast int) {
		lp, err := infer.LogProbs(be, m, c.IDs)
		if err != nil {
			t.Fatal(err)
		}
		dist, err := lastLogProbs(be, m, c.IDs)
		if err != nil {
			t.Fatal(err)
		}
		seq, at = maxDiff(t, lp, g.LogProbs)
		last, atLast = maxDiff(t, dist, g.LastLogProbs)
		return seq, last, at, atLast
	}
	worst, worstLast, at, atLast := gap(ggmlProducts{types: types}, ref)
	plain, plainLast, _, _ := gap(tensor.CPU{}, ref)
	moved, movedLast, _, _ := gap(tensor.CPU{}, orig)
	t.Logf("%s: max |Δ logprob| %.2e at t=%d, last distribution %.2e at id %d (tolerance %.2g); with f32 activations %.3f / %.3f; on the unquantised weights %.3f / %.3f",
		c.Name, worst, at+1, worstLast, atLast, quantTol, plain, plainLast, moved, movedLast)
	if !(worst <= quantTol && worstLast <= quantTol) { // NaN fails too
		t.Errorf("llama.cpp and distill's forward on the file's own weights disagree by %.3g (sequence) / %.3g (last distribution), over %.2g",
			worst, worstLast, quantTol)
	}
}

// ggmlProducts is the CPU backend multiplying as llama.cpp's CPU backend
// does by a quantised weight: the activations are first rounded to the
// 8-bit blocks ggml multiplies that type by (its vec_dot_type) — Q8_K (256
// wide, an f32 scale putting the largest magnitude at ±127, halves to even:
// quantize_row_q8_K) for the K-quants, Q8_0 (32 wide, an f16 scale, the
// AVX2 quantize_row_q8_0) for Q5_0 and Q8_0 — and then multiplied exactly
// but for the order of summation. Each token's row is multiplied alone
// (the matvec kernel): see quantTol for why.
type ggmlProducts struct {
	tensor.CPU
	types map[string]gguf.Type // the file's types, by HF weight name
}

func (b ggmlProducts) MatMul(out, x []float32, w tensor.Matrix, T int) {
	if wt, ok := w.(*tensor.Tensor); ok {
		switch b.types[wt.Name] {
		case gguf.Q4_K, gguf.Q5_K, gguf.Q6_K:
			x = roundQ8K(x[:T*w.Cols()])
		case gguf.Q5_0, gguf.Q8_0:
			x = roundQ8_0(x[:T*w.Cols()])
		}
	}
	K, N := w.Cols(), w.Rows()
	for i := range T {
		b.CPU.MatMul(out[i*N:(i+1)*N], x[i*K:(i+1)*K], w, 1)
	}
}

func roundQ8K(x []float32) []float32 {
	y := make([]float32, len(x))
	for b := 0; b < len(x); b += 256 {
		var top, amax float32
		for _, v := range x[b : b+256] {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, top = a, v
			}
		}
		if amax == 0 {
			continue
		}
		iscale := -127 / top
		d := 1 / iscale
		for j, v := range x[b : b+256] {
			y[b+j] = d * float32(min(127, int(math.RoundToEven(float64(iscale*v)))))
		}
	}
	return y
}

func roundQ8_0(x []float32) []float32 {
	y := make([]float32, len(x))
	for b := 0; b < len(x); b += 32 {
		var amax float32
		for _, v := range x[b : b+32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		d := tensor.F16ToF32(tensor.F32ToF16(amax / 127))
		for j, v := range x[b : b+32] {
			y[b+j] = d * float32(math.RoundToEven(float64(v*id)))
		}
	}
	return y
}

// compareWithLlamaQuantize: each tensor of the file has the type and bytes
// llama-quantize gave the same model.
func compareWithLlamaQuantize(t *testing.T, c ggufCase, tensors []ggufTensor, lq *quantizeGolden) {
	t.Helper()
	want, ok := lq.Cases[c.Name]
	if !ok {
		t.Errorf("%s has no case %s: run `make goldens`", quantizeGoldenPath, c.Name)
		return
	}
	if len(want.Tensors) != len(tensors) {
		t.Errorf("distill wrote %d tensors, llama-quantize %d", len(tensors), len(want.Tensors))
	}
	types := map[string]int{}
	for _, ti := range tensors {
		w, ok := want.Tensors[ti.Name]
		switch {
		case !ok:
			t.Errorf("%s: llama-quantize wrote no such tensor", ti.Name)
		case w.Type != ti.Type.String():
			t.Errorf("%s: distill stores it at %s, llama-quantize at %s", ti.Name, ti.Type, w.Type)
		case w.SHA256 != hashBytes(ti.Data):
			t.Errorf("%s (%s): distill's bytes differ from llama-quantize's", ti.Name, ti.Type)
		}
		types[ti.Type.String()]++
	}
	t.Logf("%s: %d tensors, type and bytes as llama-quantize's: %v", c.Name, len(tensors), types)
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// dequantizedModel is an HF folder of orig's config with the weights the
// GGUF tensors hold, widened to f32 by gguf.Dequantize and put back under
// their HF names and in HF's q/k row order.
func dequantizedModel(t *testing.T, orig *model.Model, tensors []ggufTensor) *model.Model {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(orig.Dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &orig.Config
	permuted := orig.Arch.Name == "LlamaForCausalLM" || orig.Arch.Name == "MistralForCausalLM"
	var ts []*tensor.Tensor
	for _, ti := range tensors {
		name, ok := hfName(ti.Name)
		if !ok {
			t.Fatalf("tensor %s has no HF name here", ti.Name)
		}
		shape := []int{int(ti.Dims[0])}
		if len(ti.Dims) == 2 {
			shape = []int{int(ti.Dims[1]), int(ti.Dims[0])}
		}
		w := tensor.New(name, tensor.F32, shape...)
		if err := gguf.Dequantize(w.F32s(), ti.Type, ti.Data); err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		if permuted && (strings.HasSuffix(ti.Name, "attn_q.weight") || strings.HasSuffix(ti.Name, "attn_k.weight")) {
			halvesOrder(w.F32s(), c.HeadDim, shape[1])
		}
		ts = append(ts, w)
	}
	if err := model.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// halvesOrder undoes llama.cpp's interleaved q/k rows in place: in each
// head of d rows, row 2i goes back to i and row 2i+1 to d/2+i.
func halvesOrder(w []float32, d, cols int) {
	head := make([]float32, d*cols)
	for h := 0; h < len(w)/(d*cols); h++ {
		rows := w[h*d*cols : (h+1)*d*cols]
		copy(head, rows)
		for i := range d / 2 {
			copy(rows[i*cols:(i+1)*cols], head[(2*i)*cols:(2*i+1)*cols])
			copy(rows[(d/2+i)*cols:(d/2+i+1)*cols], head[(2*i+1)*cols:(2*i+2)*cols])
		}
	}
}

// hfName is the HF name of a llama.cpp tensor name: the table the exporter
// maps by, written out again from llama.cpp's names.
func hfName(name string) (string, bool) {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", true
	case "output_norm.weight":
		return "model.norm.weight", true
	case "output.weight":
		return "lm_head.weight", true
	}
	var layer int
	var rest string
	if _, err := fmt.Sscanf(name, "blk.%d.%s", &layer, &rest); err != nil {
		return "", false
	}
	stem, sfx, _ := strings.Cut(rest, ".")
	hf, ok := map[string]string{
		"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
		"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
		"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
		"ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
	}[stem]
	return fmt.Sprintf("model.layers.%d.%s.%s", layer, hf, sfx), ok
}

// quantRowTypes are the types whose ggml quantisers the rows check.
var quantRowTypes = []gguf.Type{gguf.Q4_K, gguf.Q5_K, gguf.Q6_K, gguf.Q5_0, gguf.Q8_0}

// quantRows are rows of 1024 that exercise the quantisers' corners:
// Gaussian and heavy-tailed weights at several scales, one outlier among
// small weights, all-zero, constant and all-positive rows, values so small
// that the f16 scales are subnormal, and exact zeros among others.
func quantRows() (rows [][]float32, cols int) {
	const n = 1024
	rng := rand.New(rand.NewPCG(23, 5))
	row := func(f func(i int) float64) []float32 {
		r := make([]float32, n)
		for i := range r {
			r[i] = float32(f(i))
		}
		return r
	}
	for _, std := range []float64{1, 0.02, 3e3} {
		rows = append(rows, row(func(int) float64 { return rng.NormFloat64() * std }))
		r := make([]float32, n)
		studentT(rng, r, std)
		rows = append(rows, r)
	}
	rows = append(rows,
		row(func(i int) float64 {
			if i%97 == 5 {
				return 0.5
			}
			return rng.NormFloat64() * 0.01
		}),
		row(func(int) float64 { return 0 }),
		row(func(int) float64 { return 0.125 }),
		row(func(int) float64 { return -0.3 }),
		row(func(int) float64 { return math.Abs(rng.NormFloat64()) + 0.1 }),
		row(func(int) float64 { return -math.Abs(rng.NormFloat64()) - 0.1 }),
		row(func(int) float64 { return rng.NormFloat64() * 1e-6 }),
		row(func(i int) float64 {
			if i%3 == 0 {
				return 0
			}
			return rng.NormFloat64()
		}),
		row(func(i int) float64 { return float64(i%17-8) / 8 }),
	)
	return rows, n
}

func flatRows(rows [][]float32) []float32 {
	var all []float32
	for _, r := range rows {
		all = append(all, r...)
	}
	return all
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// prepareQuantRows writes the rows for tools/llamacpp/llama_quantize.py.
func prepareQuantRows(t *testing.T, out string) {
	rows, cols := quantRows()
	data := f32Bytes(flatRows(rows))
	if err := os.WriteFile(filepath.Join(out, "quant-rows.f32"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ty := range quantRowTypes {
		types = append(types, ty.String())
	}
	b, _ := json.MarshalIndent(map[string]any{"file": "quant-rows.f32", "rows": len(rows), "cols": cols, "sha256": hashBytes(data), "types": types}, "", " ")
	if err := os.WriteFile(filepath.Join(out, "quant-rows.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// distill's quantisers write ggml's bytes for every row, and its
// dequantisers read ggml's bytes back as ggml does, to the bit.
func TestLlamaQuantizeBytes(t *testing.T) {
	g := readQuantizeGolden(t)
	rows, cols := quantRows()
	x := flatRows(rows)
	if got := hashBytes(f32Bytes(x)); got != g.Rows.SHA256 || g.Rows.Rows != len(rows) || g.Rows.Cols != cols {
		t.Fatalf("the rows are not those ggml quantised (sha256 %s, golden %s): run `make goldens`", got[:12], g.Rows.SHA256)
	}
	for _, ty := range quantRowTypes {
		t.Run(ty.String(), func(t *testing.T) {
			want, ok := g.Rows.Types[ty.String()]
			if !ok {
				t.Fatalf("%s has no %s rows: run `make goldens`", quantizeGoldenPath, ty)
			}
			rowBytes := gguf.RowBytes(ty, cols)
			q := make([]byte, len(rows)*rowBytes)
			if err := gguf.EncodeRows(q, ty, x); err != nil {
				t.Fatal(err)
			}
			if hashBytes(q) != want.Quantized {
				t.Errorf("distill's %s bytes differ from ggml's", ty)
			}
			y := make([]float32, len(x))
			if err := gguf.Dequantize(y, ty, q); err != nil {
				t.Fatal(err)
			}
			if hashBytes(f32Bytes(y)) != want.Dequantized {
				t.Errorf("distill reads %s back differently from ggml", ty)
			}
			if slices.Equal(y, x) {
				t.Errorf("%s changed nothing: the rows test no quantisation", ty)
			}
		})
	}
}
