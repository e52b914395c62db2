package app

import (
	"path/filepath"
	"strings"
	"testing"

	"distill/core/data"
	"distill/core/task/codegen"
)

// --plan-stages trains each row with a plan as codegen --plan asks for it:
// the plan after the plan stage's prompt, the completion after the code
// stage's prompt (task and plan); rows without a plan stay as they are.
func TestPlanStagesExpandRowsWithAPlan(t *testing.T) {
	src := smallData(t, "../examples/codegen/train.jsonl", 3)
	ds, err := data.Load(src, data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds.Rows[1].Plan = "" // one row without a plan
	got, n, err := planStages(ds, "go")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(got.Rows) != 5 {
		t.Fatalf("%d rows expanded into %d, want 2 into 5", n, len(got.Rows))
	}
	r0 := ds.Rows[0]
	task := codegen.Task{Prompt: r0.Prompt, Language: "go"}
	plan, code := got.Rows[0], got.Rows[1]
	if plan.Prompt != codegen.PlanPrompt(task) || plan.Completion != r0.Plan || plan.Line != r0.Line {
		t.Errorf("plan stage row %+v", plan)
	}
	if code.Prompt != codegen.CodePrompt(task, r0.Plan) || code.Completion != r0.Completion {
		t.Errorf("code stage row %+v", code)
	}
	if got.Rows[2].Prompt != ds.Rows[1].Prompt {
		t.Errorf("the row without a plan changed: %+v", got.Rows[2])
	}
	// End to end: a run with --plan-stages says what it trained on, and a
	// file of other rows is refused.
	m := tinyModel(t)
	tickets := smallData(t, "../examples/tickets/train.jsonl", 5)
	t.Chdir(t.TempDir()) // eval writes its report under runs/eval here
	out, db := filepath.Join(t.TempDir(), "run"), filepath.Join(t.TempDir(), "runs.db")
	code2, stdout, stderr := run("train", "sft", "--model", m, "--data", src, "--steps", "1", "--seq-len", "512", "--plan-stages", "go", "--val-fraction", "0", "--out", out, "--db", db)
	if code2 != 0 || !strings.Contains(stdout, "3 of 3 rows carry a plan") {
		t.Fatalf("exit %d: %s%s", code2, stdout, stderr)
	}
	code2, _, stderr = run("train", "sft", "--model", m, "--data", tickets, "--steps", "1", "--plan-stages", "go", "--out", filepath.Join(t.TempDir(), "r2"), "--db", db)
	if code2 == 0 || !strings.Contains(stderr, "--plan-stages reads prompt/completion rows") {
		t.Errorf("classification rows with --plan-stages: exit %d: %s", code2, stderr)
	}
	if code2, _, stderr = run("train", "sft", "--model", m, "--data", src, "--steps", "1", "--plan-stages", "cobol", "--out", filepath.Join(t.TempDir(), "r3"), "--db", db); code2 == 0 || !strings.Contains(stderr, "--plan-stages \"cobol\"") {
		t.Errorf("--plan-stages cobol: exit %d: %s", code2, stderr)
	}
	// eval codegen --given-plan conditions the code on each task's plan.
	code2, stdout, stderr = run("eval", "codegen", "--model", m, "--data", src, "--given-plan", "--max-tokens", "4", "--db", db, "--json")
	if code2 != 0 || !strings.Contains(stdout, "build_success_rate") {
		t.Errorf("eval codegen --given-plan: exit %d: %s%s", code2, stdout, stderr)
	}
	if code2, _, stderr = run("eval", "codegen", "--model", m, "--data", src, "--given-plan", "--plan", "--db", db); code2 == 0 || !strings.Contains(stderr, "choose one") {
		t.Errorf("--plan with --given-plan: exit %d: %s", code2, stderr)
	}
}
