package codegen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// script is a fake Generator standing in for the model: it answers the
// calls in turn and records the prompts and budgets it was given.
type script struct {
	answers []string
	prompts []string
	budgets []int
}

func (s *script) gen(ctx context.Context, prompt string, maxTokens int) (string, error) {
	s.prompts = append(s.prompts, prompt)
	s.budgets = append(s.budgets, maxTokens)
	if len(s.answers) == 0 {
		return "", errors.New("script: no answer left")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

// exampleRow is the first row of examples/codegen/train.jsonl.
func exampleRow(t *testing.T) (prompt, plan, completion, tests string) {
	t.Helper()
	f, err := os.Open("../../../examples/codegen/train.jsonl")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Fatal("empty examples")
	}
	var row struct{ Prompt, Plan, Completion, Tests string }
	if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
		t.Fatal(err)
	}
	return row.Prompt, row.Plan, row.Completion, row.Tests
}

// TestRunPlanThenCode: with Plan the generator is asked for a plan, then
// for code with the plan in the prompt; the code is checked for real.
func TestRunPlanThenCode(t *testing.T) {
	needTool(t, "go")
	prompt, plan, completion, tests := exampleRow(t)
	s := &script{answers: []string{"Plan: " + plan + "\n\n```go\npackage solution\n```", "Here is the code.\n" + completion + "\nIt loops."}}
	res, err := Run(context.Background(), s.gen, Task{Prompt: prompt, Language: "go", Tests: tests}, Options{Plan: true, PlanTokens: 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.prompts) != 2 || s.budgets[0] != 64 || s.budgets[1] != DefaultCodeTokens {
		t.Fatalf("calls %d, budgets %v", len(s.prompts), s.budgets)
	}
	if s.prompts[0] != res.PlanPrompt || !strings.HasPrefix(res.PlanPrompt, prompt+"\n\n") || !strings.HasSuffix(res.PlanPrompt, "\n\nPlan:\n") ||
		!strings.Contains(res.PlanPrompt, "numbered list") {
		t.Errorf("plan prompt %q", s.prompts[0])
	}
	if res.Plan != plan {
		t.Errorf("plan %q, want %q", res.Plan, plan)
	}
	want := prompt + "\n\nPlan:\n" + plan + "\n\nWrite the complete Go code that follows this plan, in a single ```go fenced code block.\n"
	if s.prompts[1] != want || res.CodePrompt != want {
		t.Errorf("code prompt\n%q\nwant\n%q", s.prompts[1], want)
	}
	if !strings.HasSuffix(res.Raw, "It loops.") || "```go\n"+res.Code+"```" != completion {
		t.Errorf("raw %q code %q", res.Raw, res.Code)
	}
	if !res.Built || !res.Linted || !res.TestsRun || !res.TestsPassed {
		t.Errorf("the reference completion: %+v\n%s", res, describe(res))
	}
}

// A task's own plan (Task.Plan) conditions the code without a plan stage:
// one call, the code stage's prompt as with a generated plan.
func TestRunGivenPlan(t *testing.T) {
	prompt, plan, completion, _ := exampleRow(t)
	s := &script{answers: []string{completion}}
	res, err := Run(context.Background(), s.gen, Task{Prompt: prompt, Language: "go", Plan: "Plan: " + plan}, Options{Checks: map[string][]Check{"go": {}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.prompts) != 1 || res.PlanPrompt != "" || res.Plan != plan || s.prompts[0] != CodePrompt(Task{Prompt: prompt, Language: "go"}, plan) {
		t.Fatalf("calls %q, plan %q", s.prompts, res.Plan)
	}
}

// TestRunDirect: without Plan the task prompt goes to the generator as it
// is, once.
func TestRunDirect(t *testing.T) {
	s := &script{answers: []string{"```python\ndef f():\n    return 1\n```"}}
	task := Task{Prompt: "Write f.", Language: "python"}
	res, err := Run(context.Background(), s.gen, task, Options{CodeTokens: 99, Checks: map[string][]Check{"python": nil}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.prompts) != 1 || s.prompts[0] != "Write f." || s.budgets[0] != 99 || res.PlanPrompt != "" || res.Plan != "" {
		t.Fatalf("prompts %q budgets %v", s.prompts, s.budgets)
	}
	if res.Code != "def f():\n    return 1\n" || res.Language != "python" || len(res.Checks) != 0 {
		t.Errorf("%+v", res)
	}

	// An empty plan falls back to the direct prompt.
	s = &script{answers: []string{"```go\n", "package p\n"}}
	res, err = Run(context.Background(), s.gen, Task{Prompt: "Write p."}, Options{Plan: true, Checks: map[string][]Check{"go": nil}})
	if err != nil || len(s.prompts) != 2 || s.prompts[1] != "Write p." || res.Code != "package p\n" {
		t.Errorf("empty plan: %v %q %+v", err, s.prompts, res)
	}
	if got := CodePrompt(Task{Prompt: "Write f.\n", Language: "py"}, "1. Return 1."); got != "Write f.\n\nPlan:\n1. Return 1.\n\nWrite the complete Python code that follows this plan, in a single ```python fenced code block.\n" {
		t.Errorf("python code prompt %q", got)
	}
}

func TestRunGeneratorError(t *testing.T) {
	s := &script{answers: []string{"1. Think."}} // no answer for the code stage
	res, err := Run(context.Background(), s.gen, Task{Prompt: "Write p."}, Options{Plan: true})
	if err == nil || !strings.Contains(err.Error(), "codegen: code: script: no answer left") || res.Plan != "1. Think." {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := Run(context.Background(), nil, Task{}, Options{}); err == nil {
		t.Error("nil generator: no error")
	}
}
