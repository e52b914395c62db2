package eval

import (
	"bufio"
	"fmt"
	"io"
)

// CodeResult is the outcome of one code-generation task (one sample).
type CodeResult struct {
	Built  bool // the generated code compiled
	Linted bool // the linter reported nothing
	// LintRun says a lint check ran (Python's checks have none): the lint
	// rate is over these tasks only.
	LintRun bool
	// TestsRun says the task carries tests. Set it for every task that has
	// tests, even when the build failed and they could not run, so the
	// failure counts against pass@1.
	TestsRun bool
	// TestsPassed says every test passed. It counts only when Built and
	// TestsRun are both true.
	TestsPassed bool
	// Task names the task (e.g. "tasks.jsonl:7") and Failure says what
	// failed first ("build: …"), for the report's list of failing cases.
	Task, Failure string
}

// CodeFailure is one task that did not build, lint or pass its tests.
type CodeFailure struct {
	Task    string `json:"task"`
	Failure string `json:"failure"`
}

// maxFailures bounds the failing cases a report lists.
const maxFailures = 100

// CodeReport is the evaluation of code generation over N tasks.
type CodeReport struct {
	N         int     `json:"n"`
	Built     int     `json:"built"`
	BuildRate float64 `json:"build_success_rate"` // Built / N
	Linted    int     `json:"linted"`
	// LintChecked counts the tasks a lint check ran on; LintRate = Linted /
	// LintChecked, 0 (and left out of Summary) when none was linted.
	LintChecked int     `json:"lint_checked"`
	LintRate    float64 `json:"lint_pass_rate"`
	// WithTests is the number of tasks that carry tests, Passed of those the
	// ones that built and passed all their tests, and PassAt1 = Passed /
	// WithTests (one sample per task), 0 when no task carries tests.
	WithTests int     `json:"with_tests"`
	Passed    int     `json:"passed"`
	PassAt1   float64 `json:"pass_at_1"`
	// Failures lists the failing tasks that carry a Failure, in order, at
	// most maxFailures of them.
	Failures []CodeFailure `json:"failures,omitempty"`
}

// Codegen scores code-generation results: build success rate and lint pass
// rate over all tasks, pass@1 over the tasks that carry tests. With no
// results every rate is 0.
func Codegen(results []CodeResult) CodeReport {
	r := CodeReport{N: len(results)}
	for _, c := range results {
		if c.Built {
			r.Built++
		}
		if c.LintRun {
			r.LintChecked++
			if c.Linted {
				r.Linted++
			}
		}
		if c.TestsRun {
			r.WithTests++
			if c.Built && c.TestsPassed {
				r.Passed++
			}
		}
		if c.Failure != "" && len(r.Failures) < maxFailures {
			r.Failures = append(r.Failures, CodeFailure{Task: c.Task, Failure: c.Failure})
		}
	}
	r.BuildRate = ratio(float64(r.Built), float64(r.N))
	r.LintRate = ratio(float64(r.Linted), float64(r.LintChecked))
	r.PassAt1 = ratio(float64(r.Passed), float64(r.WithTests))
	return r
}

// Summary is the report's headline numbers: build_success_rate, and
// lint_pass_rate when some task was linted and pass_at_1 when some task
// carries tests.
func (r CodeReport) Summary() map[string]float64 {
	m := map[string]float64{"build_success_rate": r.BuildRate}
	if r.LintChecked > 0 {
		m["lint_pass_rate"] = r.LintRate
	}
	if r.WithTests > 0 {
		m["pass_at_1"] = r.PassAt1
	}
	return m
}

// Table writes the report as plain text, one rate a line.
func (r CodeReport) Table(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "codegen: %s\n", plural(r.N, "task"))
	t := newTable(false, true, false)
	t.add("build success", pct1(r.BuildRate), fmt.Sprintf("(%d/%d)", r.Built, r.N))
	if r.LintChecked > 0 {
		t.add("lint pass", pct1(r.LintRate), fmt.Sprintf("(%d/%d tasks linted)", r.Linted, r.LintChecked))
	} else {
		t.add("lint pass", "n/a", "(no lint check for the language)")
	}
	if r.WithTests > 0 {
		t.add("pass@1", pct1(r.PassAt1), fmt.Sprintf("(%d/%d tasks with tests)", r.Passed, r.WithTests))
	} else {
		t.add("pass@1", "n/a", "(no task carries tests)")
	}
	t.write(bw, "")
	return bw.Flush()
}
