package eval

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func raws(ss ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		out[i] = json.RawMessage(s)
	}
	return out
}

func checkField(t *testing.T, got, want FieldScore) {
	t.Helper()
	if got.Field != want.Field || got.Support != want.Support || got.TP != want.TP || got.FP != want.FP || got.FN != want.FN {
		t.Errorf("field %q counts = %+v, want %+v", want.Field, got, want)
	}
	checkF(t, want.Field+" precision", got.Precision, want.Precision)
	checkF(t, want.Field+" recall", got.Recall, want.Recall)
	checkF(t, want.Field+" f1", got.F1, want.F1)
}

// idpCase is four invoices:
//
//	0 valid, nested object and array of objects, number spellings, a
//	  wrong name, a wrong quantity, an extra line item, nulls;
//	1 invalid prediction (not even JSON);
//	2 valid and an exact match despite key order, 1e2 for 100 and a null;
//	3 valid but a missing nested field and a string "7" for 7.
func idpCase() (gold, pred []json.RawMessage, valid []bool) {
	gold = raws(
		`{"invoice":"A1","total":10.5,"vendor":{"name":"Acme","vat":null},
		  "line_items":[{"sku":"x","quantity":1},{"sku":"y","quantity":2}]}`,
		`{"invoice":"B2","total":3,"line_items":[]}`,
		`{"invoice":"C3","total":100,"vendor":{"name":"Bolt","vat":"DE1"},"tags":["x","y"]}`,
		`{"invoice":"D4","total":7,"vendor":{"name":"Zed"}}`,
	)
	pred = raws(
		`{"total":1.05e1,"invoice":"A1","vendor":{"name":"ACME"},
		  "line_items":[{"quantity":1.0,"sku":"x"},{"sku":"y","quantity":3},{"sku":"z","quantity":1}],"notes":null}`,
		`not json {`,
		`{"tags":["x","y"],"vendor":{"vat":"DE1","name":"Bolt"},"total":1e2,"invoice":"C3","notes":null}`,
		`{"invoice":"D4","total":"7"}`,
	)
	return gold, pred, []bool{true, false, true, true}
}

func TestIDP(t *testing.T) {
	r, err := IDP(idpCase())
	if err != nil {
		t.Fatal(err)
	}
	// Document level: valid rows 0, 2, 3 → 3/4; exact match row 2 only → 1/4.
	if r.N != 4 || r.SchemaValid != 3 || r.ExactMatch != 1 {
		t.Errorf("n, valid, exact = %d, %d, %d; want 4, 3, 1", r.N, r.SchemaValid, r.ExactMatch)
	}
	checkF(t, "schema valid rate", r.SchemaValidRate, 0.75)
	checkF(t, "exact match rate", r.ExactMatchRate, 0.25)

	// Row 0: gold paths invoice, total, vendor.name (vat is null: absent),
	//   line_items[0].sku, line_items[0].quantity, line_items[1].sku,
	//   line_items[1].quantity = 7.
	//   TP: invoice, total (1.05e1 = 10.5), [0].sku, [0].quantity (1.0 = 1), [1].sku = 5
	//   differ: vendor.name (ACME ≠ Acme), [1].quantity (3 ≠ 2) → FP 2, FN 2
	//   pred only: [2].sku, [2].quantity → FP 2 (notes is null: absent)
	//   → TP 5, FP 4, FN 2.
	// Row 1: invalid → its gold paths invoice, total are FN (line_items is
	//   empty: no paths) → FN 2.
	// Row 2: all 6 gold paths (invoice, total, vendor.name, vendor.vat,
	//   tags[0], tags[1]) match → TP 6.
	// Row 3: invoice TP; total "7" vs 7 differ → FP 1, FN 1; vendor.name
	//   missing → FN 1 → TP 1, FP 1, FN 2.
	// Micro: TP 5+6+1 = 12, FP 4+1 = 5, FN 2+2+2 = 6, support 12+6 = 18
	//   (gold paths 7+2+6+3 = 18).
	//   P = 12/17, R = 12/18 = 2/3, F1 = 24/(24+5+6) = 24/35.
	checkField(t, r.Micro, FieldScore{Support: 18, TP: 12, FP: 5, FN: 6, Precision: 12.0 / 17, Recall: 2.0 / 3, F1: 24.0 / 35})

	// Per top-level field, sorted:
	//   invoice:    rows 0, 2, 3 TP, row 1 FN → TP 3, FN 1; P 1, R 3/4, F1 6/(6+0+1) = 6/7
	//   line_items: row 0 → TP 3, FP 3, FN 1; P 3/6, R 3/4, F1 6/(6+3+1) = 3/5
	//   tags:       row 2 → TP 2; P = R = F1 = 1
	//   total:      rows 0, 2 TP; row 1 FN; row 3 FP+FN → TP 2, FP 1, FN 2;
	//               P 2/3, R 2/4, F1 4/(4+1+2) = 4/7
	//   vendor:     row 0 FP+FN; row 2 TP 2; row 3 FN → TP 2, FP 1, FN 2; same scores as total
	want := []FieldScore{
		{Field: "invoice", Support: 4, TP: 3, FN: 1, Precision: 1, Recall: 0.75, F1: 6.0 / 7},
		{Field: "line_items", Support: 4, TP: 3, FP: 3, FN: 1, Precision: 0.5, Recall: 0.75, F1: 0.6},
		{Field: "tags", Support: 2, TP: 2, Precision: 1, Recall: 1, F1: 1},
		{Field: "total", Support: 4, TP: 2, FP: 1, FN: 2, Precision: 2.0 / 3, Recall: 0.5, F1: 4.0 / 7},
		{Field: "vendor", Support: 4, TP: 2, FP: 1, FN: 2, Precision: 2.0 / 3, Recall: 0.5, F1: 4.0 / 7},
	}
	if len(r.PerField) != len(want) {
		t.Fatalf("per field = %+v", r.PerField)
	}
	for i := range want {
		checkField(t, r.PerField[i], want[i])
	}
	s := r.Summary()
	checkF(t, "summary field_f1", s["field_f1"], 24.0/35)
	checkF(t, "summary schema_valid_rate", s["schema_valid_rate"], 0.75)
}

func TestIDPInvalidPredictionIgnored(t *testing.T) {
	// An invalid prediction's paths are never false positives, even when it
	// is JSON: gold a, b.c → FN 2; pred's x is ignored; not an exact match
	// even though the values are equal in row 1.
	r, err := IDP(raws(`{"a":1,"b":{"c":true}}`, `{"a":1}`), raws(`{"x":2}`, `{"a":1}`), []bool{false, false})
	if err != nil {
		t.Fatal(err)
	}
	// FN: row 0 a, b.c; row 1 a → 3. TP 0, FP 0 → P 0/0 = 0, R 0/3 = 0, F1 0/3 = 0.
	checkField(t, r.Micro, FieldScore{Support: 3, FN: 3})
	if r.ExactMatch != 0 || r.SchemaValid != 0 {
		t.Errorf("exact %d, valid %d", r.ExactMatch, r.SchemaValid)
	}
}

func TestIDPAllCorrectAndEmpty(t *testing.T) {
	r, err := IDP(raws(`[1, {"k": [true, "s"]}]`, `"bare"`), raws(`[1.0,{"k":[true,"s"]}]`, `"bare"`), []bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	// Paths [0], [1].k[0], [1].k[1], $ → TP 4; both rows exact.
	checkField(t, r.Micro, FieldScore{Support: 4, TP: 4, Precision: 1, Recall: 1, F1: 1})
	checkF(t, "exact", r.ExactMatchRate, 1)
	var fields []string
	for _, f := range r.PerField {
		fields = append(fields, f.Field)
	}
	if !slices.Equal(fields, []string{"$", "[0]", "[1]"}) {
		t.Errorf("fields = %v", fields)
	}

	// No documents: every rate 0/0 → 0; per_field marshals as [].
	r, err = IDP(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if want := `{"n":0,"schema_valid":0,"schema_valid_rate":0,"exact_match":0,"exact_match_rate":0,` +
		`"micro":{"support":0,"tp":0,"fp":0,"fn":0,"precision":0,"recall":0,"f1":0},"per_field":[]}`; string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
}

func TestIDPNullsAndEmptyContainers(t *testing.T) {
	// Field level: null, {} and [] are absent, so gold {"a":1,"b":null,"c":{},"d":[]}
	// and pred {"a":1} share one path, a → TP 1, nothing else.
	// Exact match: null members are absent ({"b":null} = {}), but an empty
	// object or array is not: row 0 differs (c, d), row 1 matches.
	r, err := IDP(
		raws(`{"a":1,"b":null,"c":{},"d":[]}`, `{"a":1,"b":null}`),
		raws(`{"a":1}`, `{"a":1}`),
		[]bool{true, true})
	if err != nil {
		t.Fatal(err)
	}
	checkField(t, r.Micro, FieldScore{Support: 2, TP: 2, Precision: 1, Recall: 1, F1: 1})
	if r.ExactMatch != 1 {
		t.Errorf("exact = %d, want 1", r.ExactMatch)
	}
	// Arrays are position-wise: a null element keeps its slot, so [null, 5]
	// against [5] is [1]=5 missing (FN) and [0]=5 extra (FP).
	r, err = IDP(raws(`{"v":[null,5]}`), raws(`{"v":[5]}`), []bool{true})
	if err != nil {
		t.Fatal(err)
	}
	checkField(t, r.Micro, FieldScore{Support: 1, FP: 1, FN: 1})
}

func TestIDPErrors(t *testing.T) {
	for _, c := range []struct {
		name       string
		gold, pred []json.RawMessage
		valid      []bool
		row        int
		msg        string
	}{
		{"lengths", raws(`{}`), raws(`{}`, `{}`), []bool{true}, -1, "eval: 1 gold documents, 2 predictions and 1 validity flags"},
		{"bad gold", raws(`{}`, `{"a":`), raws(`{}`, `{}`), []bool{true, true}, 1, "eval: row 1: gold is not JSON: unexpected EOF"},
		{"valid but not JSON", raws(`{}`), raws(`{"a":1} x`), []bool{true}, 0, "eval: row 0: prediction marked valid is not JSON: data after the JSON value"},
		{"empty gold", raws(``), raws(`{}`), []bool{false}, 0, "eval: row 0: gold is not JSON: empty input"},
	} {
		_, err := IDP(c.gold, c.pred, c.valid)
		if err == nil || err.Error() != c.msg {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.msg)
			continue
		}
		var re *RowError
		if got := errors.As(err, &re); got != (c.row >= 0) || (got && re.Row != c.row) {
			t.Errorf("%s: RowError = %v, want row %d", c.name, re, c.row)
		}
	}
}

func TestCanonNumber(t *testing.T) {
	same := [][]string{
		{"1", "1.0", "1e0", "1E+0", "10e-1", "0.1e1", "1.000"},
		{"0", "-0", "0.0", "0e5", "-0.000E-3"},
		{"100", "1e2", "1E+2", "100.00", "0.001e5"},
		{"-2.5", "-25e-1", "-0.25E1"},
		{"12345678901234567890", "1234567890123456789e1", "1.234567890123456789e19"},
	}
	for _, group := range same {
		for _, s := range group[1:] {
			if canonNumber(s) != canonNumber(group[0]) {
				t.Errorf("canonNumber(%s) = %s, canonNumber(%s) = %s; want equal", s, canonNumber(s), group[0], canonNumber(group[0]))
			}
		}
	}
	differ := [][2]string{
		{"1", "-1"}, {"1.5", "1.50001"}, {"10", "1"}, {"0.1", "0.01"},
		// Equal as float64, different as decimals.
		{"12345678901234567890", "12345678901234567891"},
	}
	for _, d := range differ {
		if canonNumber(d[0]) == canonNumber(d[1]) {
			t.Errorf("canonNumber(%s) = canonNumber(%s) = %s", d[0], d[1], canonNumber(d[0]))
		}
	}
	if got := canonNumber("1.50e3"); got != "15e2" {
		t.Errorf("canonNumber(1.50e3) = %s, want 15e2", got)
	}
	// An absurd exponent is compared as text, not expanded.
	if got := canonNumber("1e99999999999999999999"); got != "raw:1e99999999999999999999" {
		t.Errorf("huge exponent = %s", got)
	}
}

func TestFlattenPaths(t *testing.T) {
	v, err := decodeJSON([]byte(`{"a.b":[1,{"c":null,"d":[true]}],"e":{},"f_1":{"g":"s","unit price":2},"":0}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range flatten(v) {
		got = append(got, l.field+" | "+l.path+" = "+l.value)
	}
	want := []string{
		`[""] | [""] = #0`,
		`["a.b"] | ["a.b"][0] = #1e0`,
		`["a.b"] | ["a.b"][1].d[0] = true`,
		`f_1 | f_1.g = "s"`,
		`f_1 | f_1["unit price"] = #2e0`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("flatten =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A string and a number with the same text never compare equal.
	if scalar("#1e0") == scalar(json.Number("1")) {
		t.Error("string collides with number")
	}
}

func TestCanonical(t *testing.T) {
	canon := func(s string) string {
		v, err := decodeJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		canonical(&b, v)
		return b.String()
	}
	a := canon(` { "b" : [1.0, null, {"y": "<&>", "x": null}], "a": "\u00e9" } `)
	b := canon(`{"a":"é","b":[1,null,{"y":"<&>"}]}`)
	if a != b {
		t.Errorf("canonical forms differ:\n%s\n%s", a, b)
	}
	if want := `{"a":"é","b":[#1e0,null,{"y":"<&>"}]}`; a != want {
		t.Errorf("canonical = %s, want %s", a, want)
	}
}
