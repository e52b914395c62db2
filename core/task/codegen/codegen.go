// Package codegen generates code with a model, optionally planning first,
// and checks it with real toolchains.
//
// # Pipeline
//
// Run asks a Generator (the caller's model: chat-templated or plain) for
// code and checks what comes back:
//
//  1. With Options.Plan, the generator is first asked for a short numbered
//     plan (PlanPrompt). The answer is cleaned (a leading "Plan:" and
//     anything from the first code fence on are dropped) and kept as
//     Result.Plan.
//  2. The generator is asked for the code (CodePrompt): with a plan, the
//     task and the plan; without one, the task prompt exactly as it is,
//     which is how prompt/completion rows such as examples/codegen are
//     trained (the prompt followed directly by the fenced completion).
//  3. The code is extracted from the answer (ExtractCode) and checked
//     (CheckCode): the language's build, lint and test commands run in a
//     fresh temporary directory, each under a timeout.
//
// # Prompt formats
//
// The plan prompt is
//
//	<task prompt>
//
//	Before writing any code, write a short plan as a numbered list of at
//	most 6 steps, one line each: first what the code must do (inputs,
//	output, edge cases), then how to do it. Do not write code yet.
//
//	Plan:
//
// (the instruction is one line in the prompt; it ends with "Plan:\n"). The
// code prompt with a plan is
//
//	<task prompt>
//
//	Plan:
//	<plan>
//
//	Write the complete Go code that follows this plan, in a single ```go fenced code block.
//
// ("Go"/"go" become "Python"/"python" and so on for other languages). An
// empty plan falls back to the direct prompt.
//
// # Checks
//
// See Check and DefaultChecks. Go checks run with GOFLAGS=-mod=mod,
// GOPROXY=off (nothing is ever downloaded: an import outside the standard
// library fails the build), GOTOOLCHAIN=local, GOWORK=off and GOCACHE set
// to a cache shared by all runs under os.TempDir(), so repeated builds
// reuse compiled packages.
package codegen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Generator produces a completion of prompt of at most maxTokens tokens.
// The caller wires the model: it may render the prompt as a user turn of a
// chat template or feed it to a plain model as it is.
type Generator func(ctx context.Context, prompt string, maxTokens int) (string, error)

// Task is one code generation task.
type Task struct {
	Prompt string
	// Language is "go" (the default when empty) or "python"; aliases such
	// as "golang", "py" and "python3" are accepted (NormalizeLanguage).
	// Other languages are checked only by Options.Checks.
	Language string
	// Tests is an optional test file (Go: a _test.go file in the package
	// of the solution; Python: a pytest-style file). When set, the test
	// checks run after the build checks pass.
	Tests string
	// Plan, when set, is the plan the code is conditioned on (a dataset's
	// reference plan): Run generates none, and scores the code stage alone.
	Plan string
}

// Options configure Run and CheckCode. The zero value generates code
// directly and runs the default checks with DefaultTimeout.
type Options struct {
	Plan       bool // plan first, then code conditioned on the plan
	PlanTokens int  // token budget of the plan; 0 means DefaultPlanTokens
	CodeTokens int  // token budget of the code; 0 means DefaultCodeTokens
	// Checks replaces the default checks of a language (keys are
	// normalised with NormalizeLanguage). A language absent from the map
	// uses DefaultChecks; a language present with an empty list runs no
	// checks.
	Checks map[string][]Check
	// Timeout bounds each check command; 0 means DefaultTimeout.
	Timeout time.Duration
	// Env is added to the environment of every check ("KEY=value"; it
	// overrides the Go settings, e.g. "GOCACHE=..."). Checks inherit only
	// PATH, the locale and the language's own paths (keptEnv), never the
	// caller's tokens or keys.
	Env []string
	// Writable names directories beyond the work directory (its
	// temporary folder inside it) and the Go build cache that a check may
	// write beneath; on Linux with Landlock it can write nowhere else
	// (landlock_linux.go).
	Writable []string
}

// Defaults of Options.
const (
	DefaultPlanTokens = 128
	DefaultCodeTokens = 512
	DefaultTimeout    = 60 * time.Second
)

// Result is a generation and its checks.
type Result struct {
	Language   string // normalised language
	PlanPrompt string // the prompt of the plan stage ("" without Plan)
	Plan       string // the cleaned plan ("" without Plan)
	CodePrompt string // the prompt of the code stage
	Raw        string // the code stage's answer as generated
	Code       string // the code extracted from Raw
	Checks     []CheckResult

	// Built: at least one build check ran and all passed.
	Built bool
	// Linted: at least one lint check ran and all passed.
	Linted bool
	// TestsRun: the task had tests, the build checks passed and at least
	// one test check ran.
	TestsRun bool
	// TestsPassed: TestsRun and every test check passed.
	TestsPassed bool
}

// Run generates code for task with gen, planning first with opt.Plan, and
// checks it. A failing check is reported in the Result, not as an error;
// the error is the generator's, a failure to set up the work directory, or
// the context's. The Result holds whatever was done before an error.
func Run(ctx context.Context, gen Generator, task Task, opt Options) (Result, error) {
	if gen == nil {
		return Result{}, errors.New("codegen: no generator")
	}
	lang := NormalizeLanguage(task.Language)
	res := Result{Language: lang}
	planTokens, codeTokens := opt.PlanTokens, opt.CodeTokens
	if planTokens <= 0 {
		planTokens = DefaultPlanTokens
	}
	if codeTokens <= 0 {
		codeTokens = DefaultCodeTokens
	}
	switch {
	case task.Plan != "":
		res.Plan = CleanPlan(task.Plan)
	case opt.Plan:
		res.PlanPrompt = PlanPrompt(task)
		raw, err := gen(ctx, res.PlanPrompt, planTokens)
		if err != nil {
			return res, fmt.Errorf("codegen: plan: %w", err)
		}
		res.Plan = CleanPlan(raw)
	}
	res.CodePrompt = CodePrompt(task, res.Plan)
	raw, err := gen(ctx, res.CodePrompt, codeTokens)
	if err != nil {
		return res, fmt.Errorf("codegen: code: %w", err)
	}
	res.Raw = raw
	res.Code = ExtractCode(raw, lang)
	checked, err := CheckCode(ctx, task, res.Code, opt)
	res.Checks = checked.Checks
	res.Built, res.Linted = checked.Built, checked.Linted
	res.TestsRun, res.TestsPassed = checked.TestsRun, checked.TestsPassed
	return res, err
}

// planInstruction is the plan stage's instruction (see the package doc).
const planInstruction = "Before writing any code, write a short plan as a numbered list of at most 6 steps, one line each: " +
	"first what the code must do (inputs, output, edge cases), then how to do it. Do not write code yet."

// PlanPrompt is the prompt of the plan stage.
func PlanPrompt(task Task) string {
	return strings.TrimRight(task.Prompt, " \t\r\n") + "\n\n" + planInstruction + "\n\nPlan:\n"
}

// CodePrompt is the prompt of the code stage: the task prompt as it is
// when plan is empty, else the task, the plan and an instruction to write
// the code in one fenced block.
func CodePrompt(task Task, plan string) string {
	plan = strings.TrimSpace(plan)
	if plan == "" {
		return task.Prompt
	}
	lang := NormalizeLanguage(task.Language)
	return strings.TrimRight(task.Prompt, " \t\r\n") + "\n\nPlan:\n" + plan + "\n\n" +
		"Write the complete " + displayName(lang) + " code that follows this plan, in a single ```" + fenceTag(lang) + " fenced code block.\n"
}

// CleanPlan tidies a generated plan: CRLF line ends become LF, a leading
// "Plan:" is dropped, and so is everything from the first code fence on (a
// model that starts writing code has finished planning).
func CleanPlan(raw string) string {
	s := strings.ReplaceAll(raw, "\r\n", "\n")
	if i := strings.Index(s, "```"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "~~~"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if len(s) >= 5 && strings.EqualFold(s[:5], "plan:") {
		s = strings.TrimSpace(s[5:])
	}
	return s
}

// NormalizeLanguage maps a language name or fence tag to the name used by
// this package: "" and "golang" → "go"; "py", "python3", "py3" →
// "python"; others lower-cased.
func NormalizeLanguage(lang string) string {
	l := strings.ToLower(strings.TrimSpace(lang))
	switch l {
	case "", "go", "golang":
		return "go"
	case "python", "py", "python3", "py3":
		return "python"
	}
	return l
}

func displayName(lang string) string {
	switch lang {
	case "go":
		return "Go"
	case "python":
		return "Python"
	}
	return lang
}

func fenceTag(lang string) string { return lang }
