package eval

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestCodegen(t *testing.T) {
	r := Codegen([]CodeResult{
		{Built: true, Linted: true, LintRun: true, TestsRun: true, TestsPassed: true},    // passes
		{Built: true, Linted: false, LintRun: true, TestsRun: true, TestsPassed: false},  // tests fail
		{Built: false, Linted: false, LintRun: true, TestsRun: true, TestsPassed: false}, // build fails: a pass@1 failure
		{Built: true, Linted: true, LintRun: true},                                       // no tests
		{Built: false, Linted: true, LintRun: true},                                      // no tests
		{Built: false, Linted: false, LintRun: true, TestsRun: true, TestsPassed: true},  // claims a pass without a build: not a pass
	})
	// Built: rows 0, 1, 3 → 3/6. Linted: rows 0, 3, 4 → 3/6.
	// With tests: rows 0, 1, 2, 5 → 4; passed: row 0 only → pass@1 1/4.
	want := CodeReport{N: 6, Built: 3, BuildRate: 0.5, Linted: 3, LintChecked: 6, LintRate: 0.5, WithTests: 4, Passed: 1, PassAt1: 0.25}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report = %+v, want %+v", r, want)
	}
	s := r.Summary()
	if len(s) != 3 || s["pass_at_1"] != 0.25 || s["build_success_rate"] != 0.5 || s["lint_pass_rate"] != 0.5 {
		t.Errorf("summary = %v", s)
	}
	b, _ := json.Marshal(r)
	if got := `{"n":6,"built":3,"build_success_rate":0.5,"linted":3,"lint_checked":6,"lint_pass_rate":0.5,"with_tests":4,"passed":1,"pass_at_1":0.25}`; string(b) != got {
		t.Errorf("json = %s", b)
	}
}

// Failing tasks are listed with what failed first, in order; passing ones
// and results without a Failure are not.
func TestCodegenListsFailures(t *testing.T) {
	r := Codegen([]CodeResult{
		{Built: true, Linted: true, Task: "t.jsonl:1"},
		{Task: "t.jsonl:2", Failure: "build go build: ./main.go:3:1: syntax error"},
		{Built: true, Task: "t.jsonl:3", Failure: "lint go vet: unreachable code"},
	})
	want := []CodeFailure{{"t.jsonl:2", "build go build: ./main.go:3:1: syntax error"}, {"t.jsonl:3", "lint go vet: unreachable code"}}
	if !reflect.DeepEqual(r.Failures, want) {
		t.Errorf("failures %+v, want %+v", r.Failures, want)
	}
}

func TestCodegenWithoutTests(t *testing.T) {
	// No task carries tests: pass@1 is 0/0 → 0 and left out of the summary.
	// Built 2/3, linted 1/3.
	r := Codegen([]CodeResult{{Built: true, Linted: true, LintRun: true}, {Built: true, LintRun: true}, {LintRun: true}})
	checkF(t, "build rate", r.BuildRate, 2.0/3)
	checkF(t, "lint rate", r.LintRate, 1.0/3)
	if r.WithTests != 0 || r.Passed != 0 || r.PassAt1 != 0 {
		t.Errorf("report = %+v", r)
	}
	if _, ok := r.Summary()["pass_at_1"]; ok {
		t.Error("summary has pass_at_1 without tests")
	}
	// No results at all: everything 0.
	if r := Codegen(nil); !reflect.DeepEqual(r, CodeReport{}) {
		t.Errorf("empty = %+v", r)
	}
	// All passing.
	r = Codegen([]CodeResult{{Built: true, Linted: true, LintRun: true, TestsRun: true, TestsPassed: true}, {Built: true, Linted: true, LintRun: true, TestsRun: true, TestsPassed: true}})
	if r.BuildRate != 1 || r.LintRate != 1 || r.PassAt1 != 1 {
		t.Errorf("all passing = %+v", r)
	}
}

// TestCodegenLintRateOverLintedTasks: the lint rate counts only tasks a
// lint check ran on (Python's checks have none): a language without one
// has no lint rate, not a rate of 0.
func TestCodegenLintRateOverLintedTasks(t *testing.T) {
	r := Codegen([]CodeResult{{Built: true}, {Built: true}})
	if r.LintChecked != 0 || r.LintRate != 0 {
		t.Errorf("unlinted = %+v", r)
	}
	if _, ok := r.Summary()["lint_pass_rate"]; ok {
		t.Error("summary has lint_pass_rate without a lint check")
	}
	r = Codegen([]CodeResult{{Built: true, Linted: true, LintRun: true}, {Built: true}, {Built: true, LintRun: true}})
	if r.LintChecked != 2 || r.Linted != 1 || r.LintRate != 0.5 {
		t.Errorf("half linted = %+v", r)
	}
}
