package eval

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

const tol = 1e-12

func near(a, b float64) bool { return math.Abs(a-b) <= tol }

func checkF(t *testing.T, name string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %.15g, want %.15g", name, got, want)
	}
}

func checkClass(t *testing.T, got ClassMetrics, want ClassMetrics) {
	t.Helper()
	if got.Label != want.Label || got.Support != want.Support || got.Predicted != want.Predicted ||
		got.TP != want.TP || got.FP != want.FP || got.FN != want.FN {
		t.Errorf("class %q counts = %+v, want %+v", want.Label, got, want)
	}
	checkF(t, want.Label+" precision", got.Precision, want.Precision)
	checkF(t, want.Label+" recall", got.Recall, want.Recall)
	checkF(t, want.Label+" f1", got.F1, want.F1)
}

// Four labels: a and b are predicted, c has gold examples but is never
// predicted, d has neither gold examples nor predictions.
func TestClassificationMixed(t *testing.T) {
	labels := []string{"a", "b", "c", "d"}
	gold := []string{"a", "a", "a", "b", "b", "c", "c"}
	pred := []string{"a", "a", "b", "b", "a", "b", "a"}
	margins := []float64{0.95, 0.5, 0.05, 1.0, 0.1, 0.0, 0.3}
	r, err := Classification(labels, gold, pred, margins)
	if err != nil {
		t.Fatal(err)
	}
	// Confusion matrix, rows gold a..d, columns predicted a..d:
	//   a: rows 0,1 → a; row 2 → b          [2 1 0 0]
	//   b: row 3 → b; row 4 → a             [1 1 0 0]
	//   c: row 5 → b; row 6 → a             [1 1 0 0]
	//   d: none                             [0 0 0 0]
	wantCM := [][]int{{2, 1, 0, 0}, {1, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 0, 0}}
	if !slices.EqualFunc(r.ConfusionMatrix, wantCM, slices.Equal) {
		t.Errorf("confusion matrix = %v, want %v", r.ConfusionMatrix, wantCM)
	}
	// Row percentages: a 2/3, 1/3; b 1/2, 1/2; c 1/2, 1/2; d all 0 (0/0).
	wantPct := [][]float64{{200.0 / 3, 100.0 / 3, 0, 0}, {50, 50, 0, 0}, {50, 50, 0, 0}, {0, 0, 0, 0}}
	for g := range wantPct {
		for p := range wantPct[g] {
			checkF(t, "row pct", r.ConfusionRowPct[g][p], wantPct[g][p])
		}
	}
	if r.N != 7 || r.Correct != 3 {
		t.Errorf("n, correct = %d, %d; want 7, 3", r.N, r.Correct)
	}
	checkF(t, "accuracy", r.Accuracy, 3.0/7) // diagonal 2+1+0+0 = 3 of 7

	// a: TP 2, predicted 2+1+1 = 4 → FP 2, support 3 → FN 1.
	//    P = 2/4, R = 2/3, F1 = 2·2/(2·2+2+1) = 4/7.
	checkClass(t, r.PerClass[0], ClassMetrics{Label: "a", Support: 3, Predicted: 4, TP: 2, FP: 2, FN: 1,
		Precision: 0.5, Recall: 2.0 / 3, F1: 4.0 / 7})
	// b: TP 1, predicted 1+1+1 = 3 → FP 2, support 2 → FN 1.
	//    P = 1/3, R = 1/2, F1 = 2/(2+2+1) = 2/5.
	checkClass(t, r.PerClass[1], ClassMetrics{Label: "b", Support: 2, Predicted: 3, TP: 1, FP: 2, FN: 1,
		Precision: 1.0 / 3, Recall: 0.5, F1: 0.4})
	// c: never predicted: P = 0/0 → 0; R = 0/2 = 0; F1 = 0/(0+0+2) = 0.
	checkClass(t, r.PerClass[2], ClassMetrics{Label: "c", Support: 2, Predicted: 0, TP: 0, FP: 0, FN: 2})
	// d: no support, never predicted: P, R, F1 all 0/0 → 0.
	checkClass(t, r.PerClass[3], ClassMetrics{Label: "d"})

	// Macro means over all four labels, d included:
	//   P  = (1/2 + 1/3 + 0 + 0)/4 = (5/6)/4  = 5/24
	//   R  = (2/3 + 1/2 + 0 + 0)/4 = (7/6)/4  = 7/24
	//   F1 = (4/7 + 2/5 + 0 + 0)/4 = (34/35)/4 = 17/70
	checkF(t, "macro precision", r.MacroPrecision, 5.0/24)
	checkF(t, "macro recall", r.MacroRecall, 7.0/24)
	checkF(t, "macro f1", r.MacroF1, 17.0/70)
	// Weighted by support 3, 2, 2, 0 over N = 7:
	//   P  = (1/2·3 + 1/3·2)/7 = (13/6)/7 = 13/42
	//   R  = (2/3·3 + 1/2·2 + 0·2)/7 = 3/7 (= accuracy)
	//   F1 = (4/7·3 + 2/5·2)/7 = (60/35 + 28/35)/7 = 88/245
	checkF(t, "weighted precision", r.WeightedPrecision, 13.0/42)
	checkF(t, "weighted recall", r.WeightedRecall, 3.0/7)
	checkF(t, "weighted f1", r.WeightedF1, 88.0/245)

	// Margins: row (margin, right?) → bin:
	//   0 (0.95, yes) → 9   1 (0.5, yes) → 5   2 (0.05, no) → 0
	//   3 (1.0, yes) → 9 (last bin is closed)  4 (0.1, no) → 1 (edge opens bin 1)
	//   5 (0.0, no) → 0     6 (0.3, no) → 3
	h := r.Margins
	if h == nil {
		t.Fatal("no margin histogram")
	}
	type cnt struct{ count, correct, wrong int }
	want := map[int]cnt{0: {2, 0, 2}, 1: {1, 0, 1}, 3: {1, 0, 1}, 5: {1, 1, 0}, 9: {2, 2, 0}}
	for b, bin := range h.Bins {
		if got := (cnt{bin.Count, bin.Correct, bin.Wrong}); got != want[b] {
			t.Errorf("bin %d = %+v, want %+v", b, got, want[b])
		}
		checkF(t, "bin lo", bin.Lo, float64(b)/10)
		checkF(t, "bin hi", bin.Hi, float64(b+1)/10)
	}
	// Mean = (0.95+0.5+0.05+1+0.1+0+0.3)/7 = 2.9/7; sorted 0, .05, .1, .3, .5, .95, 1 → median 0.3.
	checkF(t, "margin mean", h.Mean, 2.9/7)
	checkF(t, "margin median", h.Median, 0.3)
	if h.N != 7 {
		t.Errorf("margin n = %d", h.N)
	}
}

func TestClassificationAllCorrect(t *testing.T) {
	r, err := Classification([]string{"x", "y", "z"}, []string{"x", "y", "z", "x"}, []string{"x", "y", "z", "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every class: TP = support = predicted, so P = R = F1 = 1; accuracy 4/4.
	for _, v := range []float64{r.Accuracy, r.MacroPrecision, r.MacroRecall, r.MacroF1, r.WeightedPrecision, r.WeightedRecall, r.WeightedF1} {
		checkF(t, "score", v, 1)
	}
	if r.Margins != nil {
		t.Error("margin histogram without margins")
	}
	// Diagonal rows: 100% on the diagonal.
	checkF(t, "x row pct", r.ConfusionRowPct[0][0], 100)
	if r.ConfusionMatrix[0][0] != 2 {
		t.Errorf("cm[x][x] = %d, want 2", r.ConfusionMatrix[0][0])
	}
}

func TestClassificationAllWrong(t *testing.T) {
	r, err := Classification([]string{"x", "y"}, []string{"x", "y", "x"}, []string{"y", "x", "y"}, []float64{0.2, 0.4, 0.6})
	if err != nil {
		t.Fatal(err)
	}
	// x: TP 0, FP 1, FN 2 → P 0/1, R 0/2, F1 0/(0+1+2) = 0; y likewise.
	checkClass(t, r.PerClass[0], ClassMetrics{Label: "x", Support: 2, Predicted: 1, FP: 1, FN: 2})
	checkClass(t, r.PerClass[1], ClassMetrics{Label: "y", Support: 1, Predicted: 2, FP: 2, FN: 1})
	for _, v := range []float64{r.Accuracy, r.MacroF1, r.WeightedF1} {
		checkF(t, "score", v, 0)
	}
	// cm: x → [0 2], y → [1 0]; percentages [0 100], [100 0].
	if !slices.EqualFunc(r.ConfusionMatrix, [][]int{{0, 2}, {1, 0}}, slices.Equal) {
		t.Errorf("cm = %v", r.ConfusionMatrix)
	}
	// All three margins wrong: bins 2, 4, 6.
	for _, b := range []int{2, 4, 6} {
		if bin := r.Margins.Bins[b]; bin.Count != 1 || bin.Wrong != 1 {
			t.Errorf("bin %d = %+v", b, bin)
		}
	}
	// Median of 0.2, 0.4, 0.6 is 0.4; mean 1.2/3.
	checkF(t, "median", r.Margins.Median, 0.4)
	checkF(t, "mean", r.Margins.Mean, 1.2/3)
}

func TestClassificationSingleLabel(t *testing.T) {
	r, err := Classification([]string{"only"}, []string{"only", "only"}, []string{"only", "only"}, []float64{0.25, 0.75})
	if err != nil {
		t.Fatal(err)
	}
	// One label, always right: 2/2; macro over one label = its F1 = 1.
	checkF(t, "accuracy", r.Accuracy, 1)
	checkF(t, "macro f1", r.MacroF1, 1)
	// Even count: median = (0.25 + 0.75)/2 = 0.5.
	checkF(t, "median", r.Margins.Median, 0.5)
}

func TestClassificationEmpty(t *testing.T) {
	// No examples: every ratio is 0/0 → 0, matrices are zero-filled.
	r, err := Classification([]string{"a", "b"}, nil, nil, []float64{})
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 0 || r.Accuracy != 0 || r.MacroF1 != 0 || r.WeightedF1 != 0 || r.MacroPrecision != 0 {
		t.Errorf("empty report = %+v", r)
	}
	if r.Margins == nil || r.Margins.N != 0 || r.Margins.Mean != 0 || r.Margins.Median != 0 {
		t.Errorf("empty margins = %+v", r.Margins)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	// No labels at all still marshals to arrays, not null.
	r, err = Classification(nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"confusion_matrix":[]`) || !strings.Contains(string(b), `"labels":[]`) {
		t.Errorf("json = %s", b)
	}
}

func TestClassificationMarginEdges(t *testing.T) {
	// Each edge b/10 opens bin b; just under it stays in bin b-1.
	for b := 1; b < MarginBins; b++ {
		e := float64(b) / 10
		if got := marginBin(e); got != b {
			t.Errorf("marginBin(%v) = %d, want %d", e, got, b)
		}
		if got := marginBin(math.Nextafter(e, 0)); got != b-1 {
			t.Errorf("marginBin(just under %v) = %d, want %d", e, got, b-1)
		}
	}
	if marginBin(0) != 0 || marginBin(1) != 9 {
		t.Error("0 or 1 binned wrong")
	}
	// Rounding slack: 1+1e-12 is clamped into the last bin, -1e-12 into the first.
	r, err := Classification([]string{"a"}, []string{"a", "a"}, []string{"a", "a"}, []float64{1 + 1e-12, -1e-12})
	if err != nil {
		t.Fatal(err)
	}
	if r.Margins.Bins[9].Count != 1 || r.Margins.Bins[0].Count != 1 {
		t.Errorf("bins = %+v", r.Margins.Bins)
	}
}

func TestClassificationErrors(t *testing.T) {
	labels := []string{"a", "b"}
	for _, c := range []struct {
		name       string
		labels     []string
		gold, pred []string
		margins    []float64
		row        int // -1: not a RowError
		msg        string
	}{
		{"unknown gold", labels, []string{"a", "zz"}, []string{"a", "a"}, nil, 1, `eval: row 1: gold label "zz" is not one of the labels`},
		{"unknown pred", labels, []string{"a", "b", "a"}, []string{"a", "b", "c"}, nil, 2, `eval: row 2: predicted label "c" is not one of the labels`},
		{"nan margin", labels, []string{"a"}, []string{"a"}, []float64{math.NaN()}, 0, "eval: row 0: margin NaN is outside [0, 1]"},
		{"big margin", labels, []string{"a", "a"}, []string{"a", "a"}, []float64{0.5, 1.5}, 1, "eval: row 1: margin 1.5 is outside [0, 1]"},
		{"lengths", labels, []string{"a"}, nil, nil, -1, "eval: 1 gold labels but 0 predictions"},
		{"margin length", labels, []string{"a"}, []string{"a"}, []float64{}, -1, "eval: 0 margins for 1 examples"},
		{"duplicate label", []string{"a", "b", "a"}, nil, nil, nil, -1, `eval: label "a" given twice`},
	} {
		_, err := Classification(c.labels, c.gold, c.pred, c.margins)
		if err == nil || err.Error() != c.msg {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.msg)
			continue
		}
		var re *RowError
		if got := errors.As(err, &re); got != (c.row >= 0) || (got && re.Row != c.row) {
			t.Errorf("%s: RowError = %v (%v), want row %d", c.name, re, got, c.row)
		}
	}
}

func TestClassificationJSONKeys(t *testing.T) {
	r, err := Classification([]string{"a", "b"}, []string{"a", "b"}, []string{"a", "a"}, []float64{0.5, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"confusion_matrix":[[1,0],[1,0]]`, `"confusion_row_pct":[[100,0],[100,0]]`, `"macro_f1":`,
		`"weighted_f1":`, `"per_class":[{"label":"a","support":1,"predicted":2,"tp":1,"fp":1,"fn":0,`, `"margin_histogram":{"n":2,`,
		`{"lo":0.5,"hi":0.6,"count":2,"correct":1,"wrong":1}`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("json lacks %s:\n%s", k, b)
		}
	}
	s := r.Summary()
	// a: P 1/2, R 1, F1 2/3; b: 0, 0, 0 → macro F1 1/3; accuracy 1/2.
	checkF(t, "summary macro_f1", s["macro_f1"], 1.0/3)
	checkF(t, "summary accuracy", s["accuracy"], 0.5)
	if len(s) != 5 {
		t.Errorf("summary = %v", s)
	}
}
