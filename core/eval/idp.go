package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// IDPReport is the evaluation of structured extraction over N documents.
type IDPReport struct {
	N               int     `json:"n"`
	SchemaValid     int     `json:"schema_valid"`
	SchemaValidRate float64 `json:"schema_valid_rate"` // SchemaValid / N
	ExactMatch      int     `json:"exact_match"`
	ExactMatchRate  float64 `json:"exact_match_rate"` // ExactMatch / N

	// Micro are the field-level counts and scores summed over every path of
	// every document (Field is empty).
	Micro FieldScore `json:"micro"`
	// PerField groups the same counts by top-level field, sorted by Field.
	PerField []FieldScore `json:"per_field"`
}

// FieldScore are field-level counts and scores for a group of paths.
type FieldScore struct {
	Field     string  `json:"field,omitempty"`
	Support   int     `json:"support"` // gold paths (TP + FN)
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"` // TP / (TP + FP)
	Recall    float64 `json:"recall"`    // TP / (TP + FN)
	F1        float64 `json:"f1"`        // 2TP / (2TP + FP + FN)
}

func (s *FieldScore) finish() {
	s.Support = s.TP + s.FN
	s.Precision = ratio(float64(s.TP), float64(s.TP+s.FP))
	s.Recall = ratio(float64(s.TP), float64(s.TP+s.FN))
	s.F1 = f1(s.TP, s.FP, s.FN)
}

// IDP scores extracted JSON pred against gold, document by document;
// valid[i] says whether pred[i] passed the schema (the caller validates).
// The three slices must be equally long.
//
// Schema-valid rate is the share of valid predictions. A document is an
// exact match when its prediction is valid and canonically equal to gold:
// object key order, whitespace, string escapes and number spelling do not
// matter (1, 1.0 and 1e0 are equal; numbers compare as exact decimals),
// and an object member whose value is null equals an absent member. Array
// order matters, and an empty object or array differs from an absent one. A
// key repeated within one object keeps its last value.
//
// Field-level scores compare the documents' flattened paths: every
// non-null scalar (string, number, boolean) is one path, written like
// line_items[0].quantity, with keys that are not plain identifiers
// JSON-quoted in brackets (`["unit price"]`) and array elements compared by
// position. Null values, empty objects and empty arrays are absent: they
// have no paths. For one document, with G gold's paths and P the
// prediction's:
//
//   - a path in both with equal values (by the same canonical equality) is
//     a true positive;
//   - a path in both with different values (including a different type,
//     "7" against 7) is one false positive and one false negative;
//   - a path only in P is a false positive; a path only in G a false
//     negative;
//   - when the prediction is not valid every path of G is a false negative
//     and P is ignored (no false positives), so an invalid document costs
//     recall, not precision.
//
// Micro sums the counts over all documents; PerField groups them by the
// path's first segment (the top-level key; "[i]" when the document is an
// array, "$" for a bare scalar). Support is the number of gold paths.
//
// Errors: slices of different lengths, and a *RowError for a gold value
// that is not JSON or a prediction marked valid that is not JSON (an
// invalid prediction is never parsed).
func IDP(gold, pred []json.RawMessage, valid []bool) (IDPReport, error) {
	if len(gold) != len(pred) || len(gold) != len(valid) {
		return IDPReport{}, fmt.Errorf("eval: %d gold documents, %d predictions and %d validity flags", len(gold), len(pred), len(valid))
	}
	r := IDPReport{N: len(gold), PerField: []FieldScore{}}
	fields := map[string]*FieldScore{}
	field := func(name string) *FieldScore {
		s, ok := fields[name]
		if !ok {
			s = &FieldScore{Field: name}
			fields[name] = s
		}
		return s
	}
	for i := range gold {
		g, err := decodeJSON(gold[i])
		if err != nil {
			return IDPReport{}, &RowError{Row: i, Msg: fmt.Sprintf("gold is not JSON: %v", err)}
		}
		gl := flatten(g)
		if !valid[i] {
			for _, l := range gl {
				field(l.field).FN++
			}
			continue
		}
		r.SchemaValid++
		p, err := decodeJSON(pred[i])
		if err != nil {
			return IDPReport{}, &RowError{Row: i, Msg: fmt.Sprintf("prediction marked valid is not JSON: %v", err)}
		}
		var gc, pc strings.Builder
		canonical(&gc, g)
		canonical(&pc, p)
		if gc.String() == pc.String() {
			r.ExactMatch++
		}
		pl := flatten(p)
		pv := make(map[string]string, len(pl))
		for _, l := range pl {
			pv[l.path] = l.value
		}
		for _, l := range gl {
			s := field(l.field)
			v, ok := pv[l.path]
			switch {
			case !ok:
				s.FN++
			case v == l.value:
				s.TP++
			default:
				s.FP++
				s.FN++
			}
			delete(pv, l.path)
		}
		for _, l := range pl {
			if _, ok := pv[l.path]; ok { // not in gold
				field(l.field).FP++
			}
		}
	}
	for _, s := range fields {
		s.finish()
		r.Micro.TP += s.TP
		r.Micro.FP += s.FP
		r.Micro.FN += s.FN
		r.PerField = append(r.PerField, *s)
	}
	slices.SortFunc(r.PerField, func(a, b FieldScore) int { return strings.Compare(a.Field, b.Field) })
	r.Micro.finish()
	r.SchemaValidRate = ratio(float64(r.SchemaValid), float64(r.N))
	r.ExactMatchRate = ratio(float64(r.ExactMatch), float64(r.N))
	return r, nil
}

// Summary is the report's headline numbers: schema_valid_rate,
// exact_match_rate, field_precision, field_recall, field_f1 (micro).
func (r IDPReport) Summary() map[string]float64 {
	return map[string]float64{
		"schema_valid_rate": r.SchemaValidRate,
		"exact_match_rate":  r.ExactMatchRate,
		"field_precision":   r.Micro.Precision,
		"field_recall":      r.Micro.Recall,
		"field_f1":          r.Micro.F1,
	}
}

// Table writes the report as plain text: the document-level rates, then the
// per-field error table with the micro totals as its last row.
func (r IDPReport) Table(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "idp: %s\n", plural(r.N, "document"))
	head := newTable(false, true, false)
	head.add("schema valid", pct1(r.SchemaValidRate), fmt.Sprintf("(%d/%d)", r.SchemaValid, r.N))
	head.add("exact match", pct1(r.ExactMatchRate), fmt.Sprintf("(%d/%d)", r.ExactMatch, r.N))
	head.add("field F1", f4(r.Micro.F1), "(micro)")
	head.write(bw, "")

	bw.WriteString("\n")
	t := newTable(false, true, true, true, true, true, true, true)
	t.add("field", "support", "tp", "fp", "fn", "precision", "recall", "f1")
	row := func(name string, s FieldScore) {
		t.add(name, itoa(s.Support), itoa(s.TP), itoa(s.FP), itoa(s.FN), f4(s.Precision), f4(s.Recall), f4(s.F1))
	}
	for _, s := range r.PerField {
		row(s.Field, s)
	}
	row("all (micro)", r.Micro)
	t.write(bw, "")
	return bw.Flush()
}
