package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"distill/core/eval"
	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/codegen"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/store"
)

func init() {
	register(command{name: "codegen", usage: "--model DIR [--adapter DIR] [--plan] --task TEXT [--language go|python] --json", run: runCodegen})
}

// modelGenerator wires a model into codegen: greedy decoding of a prompt,
// through the chat template when asked.
func modelGenerator(be tensor.Backend, m *model.Model, tok *tokenizer.Tokenizer, tmpl *chat.Template, eos []int) codegen.Generator {
	return func(ctx context.Context, prompt string, maxTokens int) (string, error) {
		var ids []int
		if tmpl != nil {
			var err error
			if _, ids, err = tmpl.Encode(tok, []chat.Message{{Role: "user", Content: prompt}}, true); err != nil {
				return "", err
			}
		} else {
			ids = tok.Encode(prompt, true)
		}
		res, err := infer.Generate(ctx, be, m, tok, ids, infer.GenerateOptions{MaxTokens: maxTokens, EOS: eos})
		if err != nil {
			return "", err
		}
		return res.Text, nil
	}
}

// openGenerator loads what a codegen run needs.
func openGenerator(eng engineFlags, dir string, useChat bool) (codegen.Generator, func(), error) {
	tok, be, m, err := openForTask(eng, dir)
	if err != nil {
		return nil, nil, err
	}
	gc, err := model.LoadGenerationConfig(dir)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	eos := m.EOSIDs(gc)
	if id, ok := tok.EOS(); ok {
		eos = append(eos, id)
	}
	var tmpl *chat.Template
	if useChat {
		if tmpl, err = chat.Load(dir); err != nil {
			m.Close()
			return nil, nil, err
		}
	}
	return modelGenerator(be, m, tok, tmpl, eos), func() { m.Close() }, nil
}

func runCodegen(env *Env, args []string) error {
	fs := newFlags(env, "codegen", "--model DIR [--adapter DIR] [--plan] --task TEXT --json")
	dir := fs.String("model", "", "model folder")
	task := fs.String("task", "", "what to write")
	lang := fs.String("language", "go", "go or python (checks: gofmt, go vet, go build; py_compile)")
	plan := fs.Bool("plan", false, "plan first (spec and outline), then write code conditioned on the plan")
	useChat := fs.Bool("chat", false, "send the prompts through the model's chat template")
	maxTokens := fs.Int("max-tokens", codegen.DefaultCodeTokens, "most tokens of code")
	timeout := fs.Duration("timeout", codegen.DefaultTimeout, "per check command")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	eng := addEngineFlags(fs, env.Stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *task == "" {
		return fmt.Errorf("--model and --task are required")
	}
	if err := checkCodegenFlags(*lang, *maxTokens, *timeout); err != nil {
		return err
	}
	gen, closeModel, err := openGenerator(eng, *dir, *useChat)
	if err != nil {
		return err
	}
	defer closeModel()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := codegen.Run(ctx, gen, codegen.Task{Prompt: *task, Language: *lang}, codegen.Options{Plan: *plan, CodeTokens: *maxTokens, Timeout: *timeout})
	if err != nil {
		return err
	}
	warnUnisolated(env.Stderr, res)
	if *plan && res.Plan == "" {
		fmt.Fprintln(env.Stderr, "warning: the plan stage wrote no plan (nothing before its first code fence): the code was written from the task alone")
	}
	if *asJSON {
		return writeJSON(env.Stdout, codegenJSON(res))
	}
	if res.Plan != "" {
		fmt.Fprintf(env.Stdout, "plan:\n%s\n\n", res.Plan)
	}
	fmt.Fprintf(env.Stdout, "%s\n\n", res.Code)
	for _, c := range res.Checks {
		fmt.Fprintf(env.Stdout, "%-6s %-10s ok=%v %s\n", c.Kind, c.Name, c.OK, c.Duration.Round(time.Millisecond))
	}
	return nil
}

// evalCodegen generates code for every row of a codegen set (prompt and
// optional tests) and reports build, lint and pass@1 rates.
func evalCodegen(env *Env, args []string) error {
	fs := newFlags(env, "eval codegen", "--model DIR [--adapter DIR] --data FILE [--plan] [--run ID] --json")
	f := addEvalFlags(fs)
	f.eng = addEngineFlags(fs, env.Stderr)
	plan := fs.Bool("plan", false, "plan first, then code")
	givenPlan := fs.Bool("given-plan", false, "condition the code on each task's own \"plan\" instead of generating one (scores the code stage alone)")
	useChat := fs.Bool("chat", false, "send the prompts through the model's chat template")
	lang := fs.String("language", "go", "language of the tasks")
	maxTokens := fs.Int("max-tokens", codegen.DefaultCodeTokens, "most tokens of code per task")
	timeout := fs.Duration("timeout", codegen.DefaultTimeout, "per check command")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.classesOnly("codegen evaluates every task"); err != nil {
		return err
	}
	if *f.data == "" {
		return fmt.Errorf("--data is required")
	}
	if err := checkCodegenFlags(*lang, *maxTokens, *timeout); err != nil {
		return err
	}
	if *plan && *givenPlan {
		return fmt.Errorf("--plan generates a plan and --given-plan takes the task's: choose one")
	}
	// What the figures depend on besides model, adapter and data: peers
	// with other settings are not set against this evaluation.
	f.settings = map[string]any{"plan": *plan, "given_plan": *givenPlan, "chat": *useChat, "language": codegen.NormalizeLanguage(*lang), "max_tokens": *maxTokens}
	db, err := store.Open(*f.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := f.resolveRun(db); err != nil {
		return err
	}
	rows, err := readCodegenRows(*f.data)
	if err != nil {
		return err
	}
	gen, closeModel, err := openGenerator(f.eng, *f.dir, *useChat)
	if err != nil {
		return err
	}
	defer closeModel()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var results []eval.CodeResult
	warned, noPlan := false, 0
	for _, r := range rows {
		task := codegen.Task{Prompt: r.Prompt, Language: *lang, Tests: r.Tests}
		if *givenPlan {
			if strings.TrimSpace(r.Plan) == "" {
				return fmt.Errorf("%s:%d: --given-plan: the task has no \"plan\"", *f.data, r.Line)
			}
			task.Plan = r.Plan
		}
		res, err := codegen.Run(ctx, gen, task, codegen.Options{Plan: *plan, CodeTokens: *maxTokens, Timeout: *timeout})
		if err != nil {
			return fmt.Errorf("%s:%d: %w", *f.data, r.Line, err)
		}
		if tool := missingTool(res); tool != "" {
			return fmt.Errorf("%s:%d: %s: install it, or every task would count as failing its checks", *f.data, r.Line, tool)
		}
		if !warned {
			warned = warnUnisolated(env.Stderr, res)
		}
		if *plan && res.Plan == "" {
			noPlan++
		}
		// A task with tests counts against pass@1 even when it did not build.
		results = append(results, eval.CodeResult{Built: res.Built, Linted: res.Linted, LintRun: lintRan(res), TestsRun: r.Tests != "", TestsPassed: res.TestsPassed,
			Task: fmt.Sprintf("%s:%d", *f.data, r.Line), Failure: firstFailure(res)})
	}
	if noPlan > 0 {
		fmt.Fprintf(env.Stderr, "warning: for %d of %d tasks the plan stage wrote no plan: their code was written from the task alone\n", noPlan, len(rows))
	}
	rep := eval.Codegen(results)
	path, err := f.record(db, store.KindCodegen, rep.Summary(), rep)
	if err != nil {
		return err
	}
	if *f.asJSON {
		return writeJSON(env.Stdout, map[string]any{"report": rep, "report_path": path})
	}
	rep.Table(env.Stdout)
	fmt.Fprintf(env.Stdout, "report: %s\n", path)
	return nil
}

// codegenLanguages are the languages codegen has checks for, as
// --language takes them.
var codegenLanguages = []string{"go", "python"}

// checkCodegenFlags refuses a --language codegen has no checks for (its
// code would count as built without a compiler looking at it), a
// non-positive --max-tokens and a non-positive --timeout.
func checkCodegenFlags(lang string, maxTokens int, timeout time.Duration) error {
	if codegen.DefaultChecks(lang) == nil {
		return fmt.Errorf("--language %q: codegen knows %s (also golang, py, python3)", lang, strings.Join(codegenLanguages, " and "))
	}
	if maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive, got %d", maxTokens)
	}
	if timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration per check command, e.g. 60s", timeout)
	}
	return nil
}

// warnUnisolated says on w, and reports, when res's checks ran without
// namespaces of their own: the generated code (and its tests) had the
// network and could leave processes running.
func warnUnisolated(w io.Writer, res codegen.Result) bool {
	for _, c := range res.Checks {
		if c.Unisolated {
			fmt.Fprintln(w, "warning: this system refused the checks their own PID and network namespaces (Linux user namespaces off?): generated code runs with network access and could leave processes running")
			return true
		}
	}
	return false
}

// codegenRow is one task of a codegen set.
type codegenRow struct {
	Line                int
	Prompt, Tests, Plan string
}

// codegenJSON is a codegen result as the CLI's --json and the HTTP API
// both give it: snake_case fields, durations in milliseconds.
func codegenJSON(res codegen.Result) map[string]any {
	checks := make([]map[string]any, 0, len(res.Checks))
	for _, c := range res.Checks {
		checks = append(checks, map[string]any{"name": c.Name, "kind": c.Kind, "ok": c.OK, "output": c.Output,
			"duration_ms": c.Duration.Milliseconds(), "timed_out": c.TimedOut, "missing": c.Missing, "skipped": c.Skipped,
			"isolated": !c.Unisolated && !c.Skipped})
	}
	return map[string]any{"language": res.Language, "plan": res.Plan, "code": res.Code, "raw": res.Raw,
		"checks": checks, "built": res.Built, "linted": res.Linted, "tests_run": res.TestsRun, "tests_passed": res.TestsPassed}
}

// readCodegenRows reads {"prompt", "tests"?, "plan"?} rows (other keys,
// such as a reference "completion", ignored).
func readCodegenRows(path string) ([]codegenRow, error) {
	objs, err := readJSONLObjects(path)
	if err != nil {
		return nil, err
	}
	var out []codegenRow
	for _, o := range objs {
		prompt, err := o.str(path, "prompt")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(prompt) == "" {
			return nil, fmt.Errorf("%s:%d: the task has no \"prompt\"", path, o.Line)
		}
		tests, err := o.str(path, "tests")
		if err != nil {
			return nil, err
		}
		plan, err := o.str(path, "plan")
		if err != nil {
			return nil, err
		}
		out = append(out, codegenRow{Line: o.Line, Prompt: prompt, Tests: tests, Plan: plan})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no task: want {\"prompt\": …, \"tests\": …} lines", path)
	}
	return out, nil
}

// missingTool is the Output of the first check whose program is not
// installed ("" when every one ran): a missing toolchain is the machine's
// fault, not the model's.
func missingTool(res codegen.Result) string {
	for _, c := range res.Checks {
		if c.Missing {
			return c.Output
		}
	}
	return ""
}

// lintRan says a lint check ran on res's code, or would have: no code at
// all, in a language that has lint checks, counts as linted and failed
// (else a model that writes nothing would have a perfect lint rate).
func lintRan(res codegen.Result) bool {
	if strings.TrimSpace(res.Code) == "" {
		for _, c := range codegen.DefaultChecks(res.Language) {
			if c.Kind == codegen.KindLint {
				return true
			}
		}
	}
	for _, c := range res.Checks {
		if c.Kind == codegen.KindLint && !c.Skipped && !c.Missing {
			return true
		}
	}
	return false
}

// firstFailure is the gravest failed check of res (build, then test, then
// lint) as "kind name: the first line of its output", or "" when every
// check passed.
func firstFailure(res codegen.Result) string {
	severity := func(kind string) int {
		switch kind {
		case codegen.KindBuild:
			return 0
		case codegen.KindTest:
			return 1
		}
		return 2
	}
	var failed *codegen.CheckResult
	for i, c := range res.Checks {
		if !c.OK && !c.Skipped && (failed == nil || severity(c.Kind) < severity(failed.Kind)) {
			failed = &res.Checks[i]
		}
	}
	if failed == nil {
		return ""
	}
	line := ""
	for _, l := range strings.Split(failed.Output, "\n") {
		// Not go build's "# package" header: the error after it tells.
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "# ") {
			line = l
			break
		}
	}
	if r := []rune(line); len(r) > 160 { // whole characters: output may be any UTF-8
		line = string(r[:160]) + "…"
	}
	return failed.Kind + " " + failed.Name + ": " + line
}
