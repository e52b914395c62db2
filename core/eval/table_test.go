package eval

import (
	"strings"
	"testing"
)

func render(t *testing.T, table func(*strings.Builder) error) string {
	t.Helper()
	var b strings.Builder
	if err := table(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func golden(t *testing.T, name, got, want string) {
	t.Helper()
	want = strings.TrimPrefix(want, "\n")
	if got != want {
		t.Errorf("%s table:\n%s\nwant:\n%s", name, got, want)
	}
}

// The same numbers as TestClassificationMixed, with longer label names.
func TestClassReportTable(t *testing.T) {
	r, err := Classification([]string{"billing", "technical", "account", "spam"},
		[]string{"billing", "billing", "billing", "technical", "technical", "account", "account"},
		[]string{"billing", "billing", "technical", "technical", "billing", "technical", "billing"},
		[]float64{0.95, 0.5, 0.05, 1.0, 0.1, 0.0, 0.3})
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, func(b *strings.Builder) error { return r.Table(b) })
	golden(t, "classification", got, `
classification: 7 examples, 4 labels
accuracy     0.4286  (3/7)
macro F1     0.2429
weighted F1  0.3592

label         precision  recall      f1  support  predicted
billing          0.5000  0.6667  0.5714        3          4
technical        0.3333  0.5000  0.4000        2          3
account          0.0000  0.0000  0.0000        2          0
spam             0.0000  0.0000  0.0000        0          0
macro avg        0.2083  0.2917  0.2429        7
weighted avg     0.3095  0.4286  0.3592        7

confusion matrix (rows: gold, columns: predicted; count and row %)
gold \ pred    billing  technical  account  spam  total
billing      2 (66.7%)  1 (33.3%)        0     0      3
technical    1 (50.0%)  1 (50.0%)        0     0      2
account      1 (50.0%)  1 (50.0%)        0     0      2
spam                 0          0        0     0      0

top-2 margin: 7 examples, mean 0.4143, median 0.3000
margin      count  correct  wrong
[0.0, 0.1)      2        0      2  ####################
[0.1, 0.2)      1        0      1  ##########
[0.2, 0.3)      0        0      0
[0.3, 0.4)      1        0      1  ##########
[0.4, 0.5)      0        0      0
[0.5, 0.6)      1        1      0  ##########
[0.6, 0.7)      0        0      0
[0.7, 0.8)      0        0      0
[0.8, 0.9)      0        0      0
[0.9, 1.0]      2        2      0  ####################
`)

	// The grid alone, single label, no margins: one row at 100%.
	r, err = Classification([]string{"only"}, []string{"only", "only"}, []string{"only", "only"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got = render(t, func(b *strings.Builder) error { return r.ConfusionTable(b) })
	golden(t, "confusion", got, `
confusion matrix (rows: gold, columns: predicted; count and row %)
gold \ pred        only  total
only         2 (100.0%)      2
`)
	got = render(t, func(b *strings.Builder) error { return r.Table(b) })
	if strings.Contains(got, "top-2 margin") || !strings.HasPrefix(got, "classification: 2 examples, 1 label\n") {
		t.Errorf("single-label table:\n%s", got)
	}
}

func TestIDPReportTable(t *testing.T) {
	r, err := IDP(idpCase())
	if err != nil {
		t.Fatal(err)
	}
	got := render(t, func(b *strings.Builder) error { return r.Table(b) })
	golden(t, "idp", got, `
idp: 4 documents
schema valid   75.0%  (3/4)
exact match    25.0%  (1/4)
field F1      0.6857  (micro)

field        support  tp  fp  fn  precision  recall      f1
invoice            4   3   0   1     1.0000  0.7500  0.8571
line_items         4   3   3   1     0.5000  0.7500  0.6000
tags               2   2   0   0     1.0000  1.0000  1.0000
total              4   2   1   2     0.6667  0.5000  0.5714
vendor             4   2   1   2     0.6667  0.5000  0.5714
all (micro)       18  12   5   6     0.7059  0.6667  0.6857
`)
}

func TestCodeReportTable(t *testing.T) {
	r := Codegen([]CodeResult{
		{Built: true, Linted: true, LintRun: true, TestsRun: true, TestsPassed: true},
		{Built: true, LintRun: true, TestsRun: true},
		{LintRun: true, TestsRun: true},
		{Built: true, Linted: true, LintRun: true},
		{Linted: true, LintRun: true},
	})
	got := render(t, func(b *strings.Builder) error { return r.Table(b) })
	golden(t, "codegen", got, `
codegen: 5 tasks
build success  60.0%  (3/5)
lint pass      60.0%  (3/5 tasks linted)
pass@1         33.3%  (1/3 tasks with tests)
`)
	r = Codegen([]CodeResult{{Built: true, Linted: true, LintRun: true}})
	got = render(t, func(b *strings.Builder) error { return r.Table(b) })
	golden(t, "codegen without tests", got, `
codegen: 1 task
build success  100.0%  (1/1)
lint pass      100.0%  (1/1 tasks linted)
pass@1            n/a  (no task carries tests)
`)
	r = Codegen([]CodeResult{{Built: true}})
	got = render(t, func(b *strings.Builder) error { return r.Table(b) })
	golden(t, "codegen without a lint check", got, `
codegen: 1 task
build success  100.0%  (1/1)
lint pass         n/a  (no lint check for the language)
pass@1            n/a  (no task carries tests)
`)
}
