package eval

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// MarginBins is the number of equal-width bins of the top-2 margin
// histogram over [0, 1].
const MarginBins = 10

// marginSlack is how far outside [0, 1] a margin may stray by rounding; such
// values are clamped, anything further is an error.
const marginSlack = 1e-9

// ClassReport is the evaluation of a classifier over N examples.
type ClassReport struct {
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"` // Correct / N

	// Unweighted means over every label, zero-support labels included.
	MacroPrecision float64 `json:"macro_precision"`
	MacroRecall    float64 `json:"macro_recall"`
	MacroF1        float64 `json:"macro_f1"`
	// Means weighted by support (gold count): Σ metric_i·support_i / N.
	// Weighted recall always equals accuracy.
	WeightedPrecision float64 `json:"weighted_precision"`
	WeightedRecall    float64 `json:"weighted_recall"`
	WeightedF1        float64 `json:"weighted_f1"`

	Labels   []string       `json:"labels"`
	PerClass []ClassMetrics `json:"per_class"` // in Labels order

	// ConfusionMatrix[g][p] counts examples with gold Labels[g] predicted
	// as Labels[p] (row = gold, column = predicted).
	ConfusionMatrix [][]int `json:"confusion_matrix"`
	// ConfusionRowPct is ConfusionMatrix with each row divided by its sum,
	// in percent (0–100); a row with no examples is all zeros.
	ConfusionRowPct [][]float64 `json:"confusion_row_pct"`

	// Margins is the top-2 margin histogram; nil when no margins were given.
	Margins *MarginHistogram `json:"margin_histogram,omitempty"`
}

// ClassMetrics are one label's one-vs-rest counts and scores.
type ClassMetrics struct {
	Label     string  `json:"label"`
	Support   int     `json:"support"`   // gold examples with this label (TP + FN)
	Predicted int     `json:"predicted"` // examples predicted as this label (TP + FP)
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"` // TP / Predicted, 0 when never predicted
	Recall    float64 `json:"recall"`    // TP / Support, 0 when Support is 0
	F1        float64 `json:"f1"`        // 2TP / (2TP + FP + FN), 0 when that is 0/0
}

// MarginHistogram is the distribution of the top-2 margin (probability of
// the predicted label minus the runner-up's), split by whether the
// prediction was right.
type MarginHistogram struct {
	N      int         `json:"n"`
	Mean   float64     `json:"mean"`
	Median float64     `json:"median"` // mean of the middle two when N is even
	Bins   []MarginBin `json:"bins"`   // MarginBins bins, ascending
}

// MarginBin is the half-open interval [Lo, Hi) of margins; the last bin is
// closed, [0.9, 1].
type MarginBin struct {
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	Count   int     `json:"count"`
	Correct int     `json:"correct"` // of Count, predictions equal to gold
	Wrong   int     `json:"wrong"`
}

// Classification scores predictions pred against gold labels over the label
// set labels, whose order fixes the order of PerClass and of the confusion
// matrix's rows and columns.
//
// Zero divisions follow scikit-learn's default (zero_division behaving as
// 0): a label never predicted has precision 0, a label with no gold
// examples has recall 0, and a label with neither has F1 0. Every label in
// labels counts in the macro means, including one with zero support, as
// sklearn's f1_score(..., labels=labels, average="macro") does; a label
// absent from both gold and pred therefore pulls macro-F1 down. The weighted
// means give zero-support labels weight 0.
//
// margins, when not nil, holds each example's top-2 margin in [0, 1]
// (values within 1e-9 outside are clamped) and must be as long as gold. With
// no examples every score is 0.
//
// Errors: labels with a duplicate, gold and pred (or margins) of different
// lengths, and a *RowError for a gold or predicted label not in labels or a
// margin that is NaN or out of range.
func Classification(labels []string, gold, pred []string, margins []float64) (ClassReport, error) {
	if len(gold) != len(pred) {
		return ClassReport{}, fmt.Errorf("eval: %d gold labels but %d predictions", len(gold), len(pred))
	}
	if margins != nil && len(margins) != len(gold) {
		return ClassReport{}, fmt.Errorf("eval: %d margins for %d examples", len(margins), len(gold))
	}
	index := make(map[string]int, len(labels))
	for i, l := range labels {
		if _, dup := index[l]; dup {
			return ClassReport{}, fmt.Errorf("eval: label %q given twice", l)
		}
		index[l] = i
	}
	k := len(labels)
	r := ClassReport{
		N:               len(gold),
		Labels:          slices.Clone(labels),
		PerClass:        make([]ClassMetrics, k),
		ConfusionMatrix: make([][]int, k),
		ConfusionRowPct: make([][]float64, k),
	}
	if r.Labels == nil {
		r.Labels = []string{}
	}
	for i := range k {
		r.ConfusionMatrix[i] = make([]int, k)
		r.ConfusionRowPct[i] = make([]float64, k)
	}
	correct := make([]bool, len(gold))
	for i := range gold {
		g, ok := index[gold[i]]
		if !ok {
			return ClassReport{}, &RowError{Row: i, Msg: fmt.Sprintf("gold label %q is not one of the labels", gold[i])}
		}
		p, ok := index[pred[i]]
		if !ok {
			return ClassReport{}, &RowError{Row: i, Msg: fmt.Sprintf("predicted label %q is not one of the labels", pred[i])}
		}
		r.ConfusionMatrix[g][p]++
		correct[i] = g == p
	}

	for c := range k {
		m := &r.PerClass[c]
		m.Label = labels[c]
		m.TP = r.ConfusionMatrix[c][c]
		for o := range k {
			m.Support += r.ConfusionMatrix[c][o]
			m.Predicted += r.ConfusionMatrix[o][c]
		}
		m.FP = m.Predicted - m.TP
		m.FN = m.Support - m.TP
		m.Precision = ratio(float64(m.TP), float64(m.Predicted))
		m.Recall = ratio(float64(m.TP), float64(m.Support))
		m.F1 = f1(m.TP, m.FP, m.FN)
		for o := range k {
			r.ConfusionRowPct[c][o] = 100 * ratio(float64(r.ConfusionMatrix[c][o]), float64(m.Support))
		}

		r.Correct += m.TP
		r.MacroPrecision += m.Precision
		r.MacroRecall += m.Recall
		r.MacroF1 += m.F1
		s := float64(m.Support)
		r.WeightedPrecision += m.Precision * s
		r.WeightedRecall += m.Recall * s
		r.WeightedF1 += m.F1 * s
	}
	n := float64(r.N)
	r.Accuracy = ratio(float64(r.Correct), n)
	r.MacroPrecision = ratio(r.MacroPrecision, float64(k))
	r.MacroRecall = ratio(r.MacroRecall, float64(k))
	r.MacroF1 = ratio(r.MacroF1, float64(k))
	r.WeightedPrecision = ratio(r.WeightedPrecision, n)
	r.WeightedRecall = ratio(r.WeightedRecall, n)
	r.WeightedF1 = ratio(r.WeightedF1, n)

	if margins != nil {
		h, err := marginHistogram(margins, correct)
		if err != nil {
			return ClassReport{}, err
		}
		r.Margins = h
	}
	return r, nil
}

// marginBin is the bin of margin m in [0, 1]: the b with b/10 <= m < (b+1)/10,
// 1 falling in the last bin. The edges are the float64 values b/10 reported
// in MarginBin, so a margin equal to an edge lands in the bin it opens.
func marginBin(m float64) int {
	b := min(int(m*MarginBins), MarginBins-1)
	if b > 0 && m < binEdge(b) {
		b--
	}
	if b < MarginBins-1 && m >= binEdge(b+1) {
		b++
	}
	return b
}

func binEdge(b int) float64 { return float64(b) / MarginBins }

func marginHistogram(margins []float64, correct []bool) (*MarginHistogram, error) {
	h := &MarginHistogram{N: len(margins), Bins: make([]MarginBin, MarginBins)}
	for b := range h.Bins {
		h.Bins[b].Lo = binEdge(b)
		h.Bins[b].Hi = binEdge(b + 1)
	}
	sorted := make([]float64, len(margins))
	sum := 0.0
	for i, m := range margins {
		if math.IsNaN(m) || m < -marginSlack || m > 1+marginSlack {
			return nil, &RowError{Row: i, Msg: fmt.Sprintf("margin %v is outside [0, 1]", m)}
		}
		m = min(max(m, 0), 1)
		sorted[i] = m
		sum += m
		bin := &h.Bins[marginBin(m)]
		bin.Count++
		if correct[i] {
			bin.Correct++
		} else {
			bin.Wrong++
		}
	}
	if len(sorted) > 0 {
		slices.Sort(sorted)
		h.Mean = sum / float64(len(sorted))
		mid := len(sorted) / 2
		if len(sorted)%2 == 1 {
			h.Median = sorted[mid]
		} else {
			h.Median = (sorted[mid-1] + sorted[mid]) / 2
		}
	}
	return h, nil
}

// Summary is the report's headline numbers: accuracy, macro_precision,
// macro_recall, macro_f1, weighted_f1 (for the evaluations table).
func (r ClassReport) Summary() map[string]float64 {
	return map[string]float64{
		"accuracy":        r.Accuracy,
		"macro_precision": r.MacroPrecision,
		"macro_recall":    r.MacroRecall,
		"macro_f1":        r.MacroF1,
		"weighted_f1":     r.WeightedF1,
	}
}

// Table writes the report as plain text: the headline scores, the
// per-class table with macro and weighted averages, the confusion matrix
// (ConfusionTable) and, when margins were given, their histogram.
func (r ClassReport) Table(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "classification: %s, %s\n", plural(r.N, "example"), plural(len(r.Labels), "label"))
	head := newTable(false, true, false)
	head.add("accuracy", f4(r.Accuracy), fmt.Sprintf("(%d/%d)", r.Correct, r.N))
	head.add("macro F1", f4(r.MacroF1))
	head.add("weighted F1", f4(r.WeightedF1))
	head.write(bw, "")

	bw.WriteString("\n")
	t := newTable(false, true, true, true, true, true)
	t.add("label", "precision", "recall", "f1", "support", "predicted")
	for _, m := range r.PerClass {
		t.add(m.Label, f4(m.Precision), f4(m.Recall), f4(m.F1), itoa(m.Support), itoa(m.Predicted))
	}
	t.add("macro avg", f4(r.MacroPrecision), f4(r.MacroRecall), f4(r.MacroF1), itoa(r.N))
	t.add("weighted avg", f4(r.WeightedPrecision), f4(r.WeightedRecall), f4(r.WeightedF1), itoa(r.N))
	t.write(bw, "")

	bw.WriteString("\n")
	r.confusion(bw)
	if r.Margins != nil {
		bw.WriteString("\n")
		r.Margins.table(bw)
	}
	return bw.Flush()
}

// ConfusionTable writes the confusion matrix alone as a grid: one row per
// gold label, one column per predicted label, each cell the count and its
// share of the row ("3 (75.0%)"; a zero count is a bare "0"), and the row's
// total at the end.
func (r ClassReport) ConfusionTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	r.confusion(bw)
	return bw.Flush()
}

func (r ClassReport) confusion(bw *bufio.Writer) {
	bw.WriteString("confusion matrix (rows: gold, columns: predicted; count and row %)\n")
	right := make([]bool, len(r.Labels)+2)
	for i := 1; i < len(right); i++ {
		right[i] = true
	}
	t := newTable(right...)
	t.add(append(append([]string{"gold \\ pred"}, r.Labels...), "total")...)
	for g, row := range r.ConfusionMatrix {
		cells := []string{r.Labels[g]}
		total := 0
		for p, c := range row {
			total += c
			if c == 0 {
				cells = append(cells, "0")
			} else {
				cells = append(cells, fmt.Sprintf("%d (%.1f%%)", c, r.ConfusionRowPct[g][p]))
			}
		}
		t.add(append(cells, itoa(total))...)
	}
	t.write(bw, "")
}

func (h *MarginHistogram) table(bw *bufio.Writer) {
	fmt.Fprintf(bw, "top-2 margin: %s, mean %s, median %s\n", plural(h.N, "example"), f4(h.Mean), f4(h.Median))
	most := 0
	for _, b := range h.Bins {
		most = max(most, b.Count)
	}
	t := newTable(false, true, true, true, false)
	t.add("margin", "count", "correct", "wrong", "")
	for i, b := range h.Bins {
		closer := ")"
		if i == len(h.Bins)-1 {
			closer = "]"
		}
		bar := ""
		if most > 0 {
			bar = strings.Repeat("#", int(math.Round(20*float64(b.Count)/float64(most))))
		}
		t.add(fmt.Sprintf("[%.1f, %.1f%s", b.Lo, b.Hi, closer), itoa(b.Count), itoa(b.Correct), itoa(b.Wrong), bar)
	}
	t.write(bw, "")
}
