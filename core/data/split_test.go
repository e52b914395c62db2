package data

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"distill/core/tokenizer/chat"
)

func numberedRows(labels ...string) []Row {
	rows := make([]Row, len(labels))
	for i, l := range labels {
		rows[i] = Row{Line: i + 1, Label: l}
	}
	return rows
}

func lines(rows []Row) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = r.Line
	}
	return out
}

// checkPartition: train and val are disjoint, cover rows, and keep file order.
func checkPartition(t *testing.T, rows, train, val []Row) {
	t.Helper()
	all := append(lines(train), lines(val)...)
	slices.Sort(all)
	if !slices.Equal(all, lines(rows)) {
		t.Errorf("train %v + val %v is not the rows %v", lines(train), lines(val), lines(rows))
	}
	if !slices.IsSorted(lines(train)) || !slices.IsSorted(lines(val)) {
		t.Errorf("file order lost: train %v val %v", lines(train), lines(val))
	}
}

func TestSplit(t *testing.T) {
	rows := numberedRows(strings.Split(strings.Repeat("x,", 20)[:39], ",")...)
	for _, tt := range []struct {
		frac float64
		n    int
	}{{0, 0}, {0.1, 2}, {0.25, 5}, {0.5, 10}, {0.01, 1}, {0.99, 19}} {
		train, val, err := Split(rows, tt.frac, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(val) != tt.n {
			t.Errorf("fraction %v: %d validation rows, want %d", tt.frac, len(val), tt.n)
		}
		checkPartition(t, rows, train, val)
		_, again, _ := Split(rows, tt.frac, 7)
		if !slices.Equal(lines(val), lines(again)) {
			t.Errorf("fraction %v: not deterministic: %v then %v", tt.frac, lines(val), lines(again))
		}
	}
	// The split for a seed is fixed (SplitMix64 + Fisher–Yates): a change
	// here reshuffles every user's validation set.
	_, val, _ := Split(rows, 0.25, 42)
	if got, want := fmt.Sprint(lines(val)), "[2 8 10 16 17]"; got != want {
		t.Errorf("seed 42: validation lines %s, want %s", got, want)
	}
	_, other, _ := Split(rows, 0.25, 43)
	if slices.Equal(lines(val), lines(other)) {
		t.Errorf("seeds 42 and 43 give the same split %v", lines(val))
	}
	for _, bad := range []float64{-0.1, 1, 1.5} {
		if _, _, err := Split(rows, bad, 1); err == nil {
			t.Errorf("fraction %v accepted", bad)
		}
	}
}

func TestBalancedSplit(t *testing.T) {
	// a×10, b×5, c×1, d×2, classes interleaved in the file
	rows := numberedRows(strings.Split("a,b,a,d,a,b,a,a,c,b,a,a,d,b,a,a,b,a", ",")...)
	for _, tt := range []struct {
		per   PerClass
		count map[string]int
		short []ClassShortfall
	}{
		{PerClass{Count: 3}, map[string]int{"a": 3, "b": 3, "d": 1}, []ClassShortfall{
			{Label: "c", Rows: 1, Want: 3, Got: 0}, {Label: "d", Rows: 2, Want: 3, Got: 1}}},
		{PerClass{Fraction: 0.2}, map[string]int{"a": 2, "b": 1, "d": 1}, []ClassShortfall{
			{Label: "c", Rows: 1, Want: 1, Got: 0}}},
		{PerClass{Count: 1}, map[string]int{"a": 1, "b": 1, "d": 1}, []ClassShortfall{
			{Label: "c", Rows: 1, Want: 1, Got: 0}}},
	} {
		train, val, short, err := BalancedSplit(rows, tt.per, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, r := range val {
			got[r.Label]++
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.count) {
			t.Errorf("%+v: validation per class %v, want %v", tt.per, got, tt.count)
		}
		if !slices.Equal(short, tt.short) {
			t.Errorf("%+v: short %v, want %v", tt.per, short, tt.short)
		}
		// Every class keeps a training row.
		for _, l := range []string{"a", "b", "c", "d"} {
			if !slices.ContainsFunc(train, func(r Row) bool { return r.Label == l }) {
				t.Errorf("%+v: class %s has no training row", tt.per, l)
			}
		}
		checkPartition(t, rows, train, val)
		_, again, _, _ := BalancedSplit(rows, tt.per, 3)
		if !slices.Equal(lines(val), lines(again)) {
			t.Errorf("%+v: not deterministic: %v then %v", tt.per, lines(val), lines(again))
		}
	}
	_, v1, _, _ := BalancedSplit(rows, PerClass{Count: 3}, 1)
	_, v2, _, _ := BalancedSplit(rows, PerClass{Count: 3}, 2)
	if slices.Equal(lines(v1), lines(v2)) {
		t.Errorf("seeds 1 and 2 give the same split %v", lines(v1))
	}
	if s := (ClassShortfall{Label: "c", Rows: 1, Want: 3}).String(); s != `label "c": 1 rows, 3 wanted for validation, 0 taken` {
		t.Errorf("String() = %q", s)
	}
	for _, bad := range []PerClass{{}, {Count: 2, Fraction: 0.1}, {Count: -1}, {Fraction: 1}} {
		if _, _, _, err := BalancedSplit(rows, bad, 1); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestBalancedSplitDataset(t *testing.T) {
	d := mustLoad(t, "testdata/text_cls.jsonl", Options{})
	train, val, short, err := BalancedSplit(d.Rows, PerClass{Count: 1}, 5)
	if err != nil {
		t.Fatal(err)
	}
	// positive 2 rows, negative 2, neutral 1: neutral cannot give one.
	if len(val) != 2 || len(train) != 3 || len(short) != 1 || short[0].Label != "neutral" {
		t.Errorf("val %v train %v short %v", lines(val), lines(train), short)
	}
	if vd := d.Subset(val); vd.Format != FormatClassification || len(vd.Rows) != 2 || vd.Skipped != nil || vd.ClassificationPrompt(val[0]) == "" {
		t.Errorf("Subset: %+v", vd)
	}
}

func TestLoadWithValidation(t *testing.T) {
	train, val, err := LoadWithValidation("testdata/text_cls.jsonl", "testdata/val_cls.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if train.Format != FormatClassification || val.Format != FormatClassification || len(val.Rows) != 2 {
		t.Errorf("train %s, val %s with %d rows", train.Format, val.Format, len(val.Rows))
	}
	for _, tt := range []struct{ train, val, want string }{
		{"testdata/text_cls.jsonl", "testdata/val_unseen.jsonl", `labels the training file testdata/text_cls.jsonl lacks: "confused"`},
		{"testdata/features_cls.jsonl", "testdata/val_cls.jsonl", "has the features [text] but training file testdata/features_cls.jsonl has [sepal_length, sepal_width, species_hint]"},
		{"testdata/pc.jsonl", "testdata/val_cls.jsonl", "testdata/val_cls.jsonl:1: required field is missing (field prompt)"},
	} {
		_, _, err := LoadWithValidation(tt.train, tt.val, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s + %s: err %v, want %q", tt.train, tt.val, err, tt.want)
		}
	}
}

// TestTokenOffsetsDecodeFallback checks the decode-prefix mapping against
// the alignment on text both handle.
func TestTokenOffsetsDecodeFallback(t *testing.T) {
	for _, name := range []string{"llama2", "qwen3"} {
		m := loadModel(t, name)
		text := "Héllo wörld, naïve café — 42 tokens here."
		ids := m.tok.Encode(text, false)
		aligned, err := newTokenOffsets(m.tok, ids, text)
		if err != nil || aligned.ends == nil {
			t.Fatalf("%s: alignment failed: %v", name, err)
		}
		decoded := &tokenOffsets{tok: m.tok, ids: ids}
		for cs := 0; cs < len(text); cs += 3 {
			for ce := cs + 1; ce <= len(text); ce += 5 {
				a1, b1 := aligned.span(cs, ce)
				a2, b2 := decoded.span(cs, ce)
				if a1 != a2 || b1 != b2 {
					t.Errorf("%s: bytes [%d,%d): aligned tokens [%d,%d), decoded [%d,%d)", name, cs, ce, a1, b1, a2, b2)
				}
			}
		}
	}
}

// TestSplitmix checks the generator against SplitMix64's published
// reference output for seed 1234567.
func TestSplitmix(t *testing.T) {
	r := newSplitmix(1234567)
	for i, want := range []uint64{6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821} {
		if got := r.next(); got != want {
			t.Errorf("output %d = %d, want %d", i, got, want)
		}
	}
}

// TestBalancedSample: an evaluation sample holds nothing back, so every
// class with rows is in it (a class of one row too) and a fraction of 1
// is the whole file; classes short of the count are reported.
func TestBalancedSample(t *testing.T) {
	rows := numberedRows(strings.Split("a,b,a,d,a,b,a,a,c,b,a,a,d,b,a,a,b,a", ",")...)
	for _, tt := range []struct {
		per   PerClass
		count map[string]int
		short []ClassShortfall
	}{
		{PerClass{Count: 3}, map[string]int{"a": 3, "b": 3, "c": 1, "d": 2}, []ClassShortfall{
			{Label: "c", Rows: 1, Want: 3, Got: 1}, {Label: "d", Rows: 2, Want: 3, Got: 2}}},
		{PerClass{Fraction: 1}, map[string]int{"a": 10, "b": 5, "c": 1, "d": 2}, nil},
		{PerClass{Count: 1}, map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, nil},
	} {
		sample, short, err := BalancedSample(rows, tt.per, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, r := range sample {
			got[r.Label]++
		}
		if !maps.Equal(got, tt.count) || !slices.Equal(short, tt.short) {
			t.Errorf("%+v: per class %v short %v, want %v and %v", tt.per, got, short, tt.count, tt.short)
		}
		if !slices.IsSortedFunc(sample, func(a, b Row) int { return a.Line - b.Line }) {
			t.Errorf("%+v: sample not in file order", tt.per)
		}
	}
	if _, _, err := BalancedSample(rows, PerClass{Fraction: 1.5}, 3); err == nil {
		t.Error("fraction 1.5 accepted")
	}
}

// TestPerClassErrors: a bad count or fraction is refused in words a user
// reads, not as a Go struct ({Count:-1 Fraction:0}).
func TestPerClassErrors(t *testing.T) {
	rows := numberedRows("a", "a", "b", "b")
	for _, tc := range []struct {
		per  PerClass
		want string
	}{
		{PerClass{Count: -1}, "want a count >= 1 or a fraction in (0, 1] of each class's rows, got count -1"},
		{PerClass{Fraction: -0.5}, "got fraction -0.5"},
		{PerClass{Fraction: math.NaN()}, "got fraction NaN"},
		{PerClass{Fraction: math.Inf(1)}, "got fraction +Inf"},
		{PerClass{Fraction: 1.5}, "got fraction 1.5"},
		{PerClass{Count: 2, Fraction: 0.5}, "got both count 2 and fraction 0.5"},
		{PerClass{}, "got neither a count nor a fraction"},
	} {
		_, _, err := BalancedSample(rows, tc.per, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "{") {
			t.Errorf("BalancedSample(%v): %v, want %q", tc.per, err, tc.want)
		}
	}
	for _, per := range []PerClass{{Count: -1}, {Fraction: 1}, {Fraction: math.NaN()}} {
		_, _, _, err := BalancedSplit(rows, per, 1)
		if err == nil || !strings.Contains(err.Error(), "want a count >= 1 or a fraction in (0, 1)") || strings.Contains(err.Error(), "{") {
			t.Errorf("BalancedSplit(%v): %v", per, err)
		}
	}
}

// TestLeaked counts validation rows whose input a training row has too,
// whatever their answers, and only those.
func TestLeaked(t *testing.T) {
	train := []Row{{Text: "refund please", Label: "billing"}, {Prompt: "2+2", Completion: "4"}, {Features: map[string]string{"age": "31", "job": "x"}}}
	val := []Row{
		{Text: " refund please ", Label: "account"},                // same text, other label: leaked
		{Prompt: "2+2", Completion: "four"},                        // same prompt
		{Features: map[string]string{"job": "x", "age": "31"}},     // same features
		{Features: map[string]string{"age": "32", "job": "x"}},     // not
		{Text: "refund please now", Label: "billing"},              // not
		{Messages: []chat.Message{{Role: "user", Content: "2+2"}}}, // not: a chat, not a prompt
	}
	if n := Leaked(train, val); n != 3 {
		t.Errorf("Leaked = %d, want 3", n)
	}
}
