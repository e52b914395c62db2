package views

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

func classEval(cm [][]int) *app.ClassEval {
	labels := []string{"Good", "Standard", "Bad"}
	c := &app.ClassEval{Labels: labels, Confusion: cm}
	correct := 0
	for i, row := range cm {
		sum, predicted := 0, 0
		for j, n := range row {
			sum += n
			predicted += cm[j][i]
		}
		pct := make([]float64, len(row))
		for j, n := range row {
			pct[j] = 100 * float64(n) / float64(sum)
		}
		c.RowPct = append(c.RowPct, pct)
		p, r := float64(row[i])/float64(predicted), float64(row[i])/float64(sum)
		c.PerClass = append(c.PerClass, app.ClassScore{Label: labels[i], Precision: p, Recall: r, F1: 2 * p * r / (p + r), Support: sum})
		c.MacroF1 += c.PerClass[i].F1 / 3
		c.N += sum
		correct += row[i]
	}
	c.Accuracy = float64(correct) / float64(c.N)
	c.Margins = &struct {
		Median float64         `json:"median"`
		Bins   []app.MarginBin `json:"bins"`
	}{Median: 0.31}
	for i, n := range []int{4, 9, 21, 30, 38, 27, 22, 15, 9, 5} {
		wrong := max(0, 12-2*i)
		c.Margins.Bins = append(c.Margins.Bins, app.MarginBin{Lo: float64(i) / 10, Hi: float64(i+1) / 10, Count: n, Wrong: wrong, Correct: n - wrong})
	}
	return c
}

func evalFixture() *fakeService {
	return &fakeService{
		evals: []app.EvalRow{
			{ID: 3, Run: "20261125-182700-sft-ab12", Adapter: "sft-creditmix-0412", Kind: "classification",
				Metrics: "macro_f1 0.713 · accuracy 0.717", ReportPath: "runs/a/eval/classification.json", Age: 4 * time.Minute},
			{ID: 2, Run: "20261124-090000-dpo-9c2e", Adapter: "dpo-invoices-0410", Kind: "idp",
				Metrics: "schema_valid_rate 0.95 · exact_match_rate 0.6", ReportPath: "runs/b/eval/idp.json", Age: 3 * time.Hour},
			{ID: 1, Kind: "codegen", Metrics: "build_success_rate 0.9 · lint_pass_rate 0.8", ReportPath: "runs/eval/codegen.json", Age: 50 * time.Hour},
		},
		reports: map[string]app.EvalReport{
			"runs/a/eval/classification.json": {ID: 3, Kind: "classification", Model: "models/qwen", Adapter: "sft-creditmix-0412", Data: "creditmix-val.jsonl",
				Calibrated: classEval([][]int{{49, 9, 2}, {10, 35, 15}, {4, 11, 45}}),
				Raw:        classEval([][]int{{55, 5, 0}, {30, 25, 5}, {20, 15, 25}}),
				Peers:      []app.EvalPeer{{Name: "base", Metric: "macro-F1", Delta: 0.29}, {Name: "20261124-101500-kd-0411", Metric: "macro-F1", Delta: -0.03}}},
			"runs/b/eval/idp.json": {ID: 2, Kind: "idp", Model: "models/qwen", Adapter: "dpo-invoices-0410", Data: "invoices-val.jsonl",
				IDP: &app.IDPEval{N: 120, SchemaValidRate: 0.95, ExactMatchRate: 0.6,
					Micro: app.FieldScore{Precision: 0.91, Recall: 0.88, F1: 0.895},
					PerField: []app.FieldScore{
						{Field: "company", Support: 120, TP: 110, FP: 6, FN: 10, Precision: 0.948, Recall: 0.917, F1: 0.932},
						{Field: "date", Support: 120, TP: 117, FP: 2, FN: 3, Precision: 0.983, Recall: 0.975, F1: 0.979},
						{Field: "total", Support: 118, TP: 90, FP: 20, FN: 28, Precision: 0.818, Recall: 0.763, F1: 0.789},
						{Field: "address", Support: 110, TP: 40, FP: 50, FN: 70, Precision: 0.444, Recall: 0.364, F1: 0.4},
					}}},
			"runs/eval/codegen.json": {ID: 1, Kind: "codegen", Model: "models/coder",
				Code: codeEvalWithFailures()},
		},
	}
}

func evalsModel(svc *fakeService, w, h int) Model {
	return stepRun(newTestModel(svc, w, h), keys("4"))
}

func TestEvalsEmpty(t *testing.T) {
	for _, s := range sizes {
		m := evalsModel(&fakeService{}, s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("evals-empty", s.w, s.h), frame)
	}
}

func TestEvalsList(t *testing.T) {
	for _, s := range sizes {
		m := evalsModel(evalFixture(), s.w, s.h)
		if m.tab != TabEvals || len(m.evals.all) != 3 {
			t.Fatalf("tab %d, %d evals", m.tab, len(m.evals.all))
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("evals", s.w, s.h), frame)
	}
}

// openEval opens the evaluation down rows below the first.
func openEval(m Model, down int) Model {
	for range down {
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	}
	return stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
}

func TestEvalsClassification(t *testing.T) {
	for _, s := range sizes {
		m := openEval(evalsModel(evalFixture(), s.w, s.h), 0)
		if m.evals.open == nil || m.evals.raw {
			t.Fatalf("open %v raw %v", m.evals.open, m.evals.raw)
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "49") || !strings.Contains(frame, "82%") {
			t.Errorf("no calibrated Good/Good cell:\n%s", frame)
		}
		if !strings.Contains(frame, "vs base: macro-F1 +0.290") || !strings.Contains(frame, "-0.030") {
			t.Errorf("no line against the base and the other run:\n%s", frame)
		}
		golden(t, sizeName("evals-class-calibrated", s.w, s.h), frame)
		m = step(m, tea.KeyMsg{Type: tea.KeyRight})
		if !m.evals.raw {
			t.Fatal("→ did not switch to raw")
		}
		frame = m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("evals-class-raw", s.w, s.h), frame)
		m = step(m, tea.KeyMsg{Type: tea.KeyRight})
		if !m.evals.raw {
			t.Error("→ on raw left raw: it chooses, it does not toggle")
		}
		m = step(m, keys("t"))
		if m.evals.raw {
			t.Error("t did not switch back to calibrated")
		}
		m = step(m, tea.KeyMsg{Type: tea.KeyLeft})
		if m.evals.raw {
			t.Error("← on calibrated left calibrated: it chooses, it does not toggle")
		}
		m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
		if m.evals.open != nil || m.tab != TabEvals {
			t.Error("esc did not return to the list")
		}
	}
}

func TestEvalsIDP(t *testing.T) {
	for _, s := range sizes {
		m := openEval(evalsModel(evalFixture(), s.w, s.h), 1)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if i, j := strings.Index(frame, "address"), strings.Index(frame, "date"); i < 0 || j < 0 || i > j {
			t.Errorf("worst field not first:\n%s", frame)
		}
		golden(t, sizeName("evals-idp", s.w, s.h), frame)
	}
}

func TestEvalsCodegen(t *testing.T) {
	for _, s := range sizes {
		m := openEval(evalsModel(evalFixture(), s.w, s.h), 2)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "failing cases (2)") || !strings.Contains(frame, "tasks.jsonl:19  test go test: --- FAIL: TestSum") {
			t.Errorf("no failing cases:\n%s", frame)
		}
		golden(t, sizeName("evals-codegen", s.w, s.h), frame)
	}
}

func TestEvalsMissingReport(t *testing.T) {
	svc := evalFixture()
	delete(svc.reports, "runs/b/eval/idp.json")
	m := openEval(evalsModel(svc, 80, 24), 1)
	if m.evals.open != nil || !strings.Contains(m.View(), "cannot open evaluation 2") {
		t.Fatalf("missing report:\n%s", m.View())
	}
}

// e on a finished run in Runs evaluates it: the Evals view says so at once,
// then opens the recorded report; a running run is refused in place, and a
// failure is explained in the Evals view.
func TestEvaluateFromRuns(t *testing.T) {
	svc := evalFixture()
	svc.runs = threeRuns()
	m := newTestModel(svc, 80, 24)
	m = stepRun(m, keys("e")) // the cursor is on the running run
	if len(svc.evalued) != 0 || !strings.Contains(m.View(), "evaluate it when it has finished") {
		t.Fatalf("a running run was evaluated: %v\n%s", svc.evalued, m.View())
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	nm, cmd := m.Update(keys("e"))
	m = nm.(Model)
	m, cmd = stepCmd(m, cmd) // evaluateMsg: switch to Evals, start the evaluation
	if m.tab != TabEvals || !strings.Contains(m.View(), "evaluating 20261125-171500-kd-03f1") {
		t.Fatalf("tab %d:\n%s", m.tab, m.View())
	}
	m, cmd = stepCmd(m, cmd) // evaluatedMsg: reload the list, open the report
	if len(svc.evalued) != 1 || svc.evalued[0] != "20261125-171500-kd-03f1" {
		t.Fatalf("evaluated %v", svc.evalued)
	}
	for _, c := range cmd().(tea.BatchMsg) {
		m = step(m, c())
	}
	if m.evals.open == nil || m.evals.open.Kind != "classification" {
		t.Fatalf("the report did not open:\n%s", m.View())
	}

	svc.evalErr = errors.New("run x has no validation file")
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	m, cmd = stepCmd(m, func() tea.Msg { return evaluateMsg{"x"} })
	m, _ = stepCmd(m, cmd)
	if f := m.View(); !strings.Contains(f, "cannot evaluate: run x has no validation file") {
		t.Errorf("failure not shown:\n%s", f)
	}
}

// stepCmd runs cmd and applies its message, returning the next command.
func stepCmd(m Model, cmd tea.Cmd) (Model, tea.Cmd) {
	if cmd == nil {
		return m, nil
	}
	nm, next := m.Update(cmd())
	return nm.(Model), next
}

// compareFixture adds a newer classification evaluation to compare with #3.
func compareFixture() *fakeService {
	svc := evalFixture()
	svc.evals = append([]app.EvalRow{{ID: 4, Run: "20261125-190000-kd-77aa", Adapter: "kd-creditmix-0413", Kind: "classification",
		Metrics: "macro_f1 0.80", ReportPath: "runs/c/eval/classification.json", Age: time.Minute}}, svc.evals...)
	svc.reports["runs/c/eval/classification.json"] = app.EvalReport{ID: 4, Kind: "classification", Model: "models/qwen", Adapter: "kd-creditmix-0413",
		Calibrated: classEval([][]int{{52, 6, 2}, {8, 44, 8}, {6, 9, 45}}),
		Raw:        classEval([][]int{{50, 10, 0}, {20, 35, 5}, {10, 15, 35}})}
	return svc
}

func TestEvalsCompare(t *testing.T) {
	for _, s := range sizes {
		m := evalsModel(compareFixture(), s.w, s.h)
		m = step(m, keys(" "))                     // mark #4
		m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // cursor on #3
		m, cmd := stepCmd(m, func() tea.Msg { return keys("c") })
		m, _ = stepCmd(m, cmd)
		if m.evals.cmp == nil || m.evals.cmp.a.ID != 3 || m.evals.cmp.b.ID != 4 {
			t.Fatalf("compare did not open #3 (baseline) and #4:\n%s", m.View())
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		// Good→Good went 49 → 52: +3 on the diagonal; macro-F1 rises.
		if !strings.Contains(frame, "Δ count") || !strings.Contains(frame, "+3") || !strings.Contains(frame, "macro-F1") {
			t.Errorf("no per-cell difference or scores:\n%s", frame)
		}
		golden(t, sizeName("evals-compare", s.w, s.h), frame)
		m = step(m, tea.KeyMsg{Type: tea.KeyRight})
		if !m.evals.raw || !strings.Contains(m.View(), "· raw ·") {
			t.Errorf("→ did not switch the comparison to raw:\n%s", m.View())
		}
		m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
		if m.evals.cmp != nil {
			t.Fatal("esc did not leave the comparison")
		}
		// #4 is still marked; comparing it with the IDP evaluation is refused.
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
		m, cmd = stepCmd(m, func() tea.Msg { return keys("c") })
		m, _ = stepCmd(m, cmd)
		if f := m.View(); !strings.Contains(f, "cannot compare an idp evaluation with a classification one") &&
			!strings.Contains(f, "cannot compare a classification evaluation with an idp one") {
			t.Errorf("mixed kinds not refused:\n%s", f)
		}
	}
}

func TestEvalsCompareNeedsTwo(t *testing.T) {
	m := evalsModel(compareFixture(), 80, 24)
	m = step(m, keys("c"))
	if !strings.Contains(m.View(), "mark two evaluations with space") {
		t.Errorf("c without marks:\n%s", m.View())
	}
}

func codeEvalWithFailures() *app.CodeEval {
	return &app.CodeEval{N: 40, BuildRate: 0.9, LintRate: 0.8, PassAt1: 0.55, WithTests: 20, Failures: []app.CodeFailure{
		{Task: "tasks.jsonl:7", Failure: "build go build: ./solution.go:12:2: undefined: strings.Revers"},
		{Task: "tasks.jsonl:19", Failure: "test go test: --- FAIL: TestSum (0.00s)"},
	}}
}

// Without colour the row under the cursor still shows: a ▸ before it.
func TestEvalsCursorShowsWithoutColour(t *testing.T) {
	m := evalsModel(evalFixture(), 80, 24)
	checkCursor(t, m.View(), "classify")
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	checkCursor(t, m.View(), "idp")
	m = step(m, keys(" "))
	checkCursor(t, m.View(), "▸✓2")
}

// An open report's help lists its own keys, not the list's.
func TestEvalsReportHelp(t *testing.T) {
	m := openEval(evalsModel(evalFixture(), 80, 24), 0) // classification: calibrated and raw
	bar := lastLine(m.View())
	for _, want := range []string{"← calibrated", "→ raw", "t toggle", "esc back"} {
		if !strings.Contains(bar, want) {
			t.Errorf("the report's help lacks %q: %q", want, bar)
		}
	}
	for _, not := range []string{"open", "mark", "compare"} {
		if strings.Contains(bar, not) {
			t.Errorf("the report's help offers the list's %q: %q", not, bar)
		}
	}
	m = step(m, keys("?"))
	if f := m.View(); strings.Contains(f, "compare two") || strings.Contains(f, "space") {
		t.Errorf("the full help offers the list's keys:\n%s", f)
	}
	m = step(m, keys("?"))
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	m = openEval(m, 1) // idp: nothing to choose
	bar = lastLine(m.View())
	if !strings.Contains(bar, "esc back") || strings.Contains(bar, "calibrated") || strings.Contains(bar, "compare") {
		t.Errorf("the IDP report's help: %q", bar)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	if bar = lastLine(m.View()); !strings.Contains(bar, "compare two") {
		t.Errorf("back on the list, its help: %q", bar)
	}
}

// The empty list says how to evaluate from here.
func TestEvalsEmptySaysHowFromHere(t *testing.T) {
	f := evalsModel(&fakeService{}, 80, 24).View()
	if !strings.Contains(f, "press e to evaluate it") {
		t.Errorf("the empty list does not point to e:\n%s", f)
	}
}

// The database holds absolute paths: the report's title names the run, an
// adapter's run folder or the base's folder, and the data's telling part,
// never a whole path cut off at the edge.
func TestEvalsTitleNamesNotPaths(t *testing.T) {
	cases := []struct {
		run  string
		r    app.EvalReport
		want string
	}{
		{"20261125-182700-sft-ab12", app.EvalReport{Model: "/srv/models/qwen2.5-0.5b", Adapter: "/home/u/runs/20261125-182700-sft-ab12/adapter"}, "20261125-182700-sft-ab12"},
		{"", app.EvalReport{Model: "/srv/models/qwen2.5-0.5b", Adapter: "/home/u/runs/20261125-182700-sft-ab12/adapter/"}, "20261125-182700-sft-ab12"},
		{"", app.EvalReport{Model: "/srv/models/qwen2.5-0.5b", Adapter: "/home/u/adapters/invoices-v2"}, "invoices-v2"},
		{"", app.EvalReport{Model: "/srv/models/qwen2.5-0.5b/"}, "qwen2.5-0.5b (base)"},
	}
	for _, c := range cases {
		if got := evalSubject(c.run, &c.r); got != c.want {
			t.Errorf("evalSubject(%q, %q) = %q, want %q", c.run, c.r.Adapter, got, c.want)
		}
	}
	svc := evalFixture()
	row := &svc.evals[0]
	row.ReportPath = "/home/u/a-long-folder/of-many-parts/runs/20261125-182700-sft-ab12/eval/classification.json"
	rep := svc.reports["runs/a/eval/classification.json"]
	rep.Model, rep.Adapter, rep.Data = "/srv/models/qwen", "/home/u/runs/20261125-182700-sft-ab12/adapter", "/home/u/data/creditmix/val.jsonl"
	svc.reports[row.ReportPath] = rep
	m := openEval(evalsModel(svc, 100, 30), 0)
	frame := m.View()
	checkFrame(t, frame, 100, 30)
	for _, want := range []string{"eval #3 · classification · 20261125-182700-sft-ab12 · creditmix/val", "…", "sft-ab12/eval/classification.json"} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	if strings.Contains(frame, "/home/u/runs") {
		t.Errorf("title shows the adapter's path:\n%s", frame)
	}
}
