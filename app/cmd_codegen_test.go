package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/task/codegen"
)

// TestReadCodegenRows: a task file is {"prompt", "tests"?} lines — no
// reference completion needed, a byte-order mark and blank lines skipped,
// the first task's tests kept — and a line that is not a task names its
// line.
func TestReadCodegenRows(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("tasks.jsonl", "\xef\xbb\xbf"+`{"prompt": "Write Add", "tests": "T1", "plan": "1. add"}`+"\n\n"+`{"prompt": "Write Sub", "completion": "ref"}`+"\n")
	rows, err := readCodegenRows(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []codegenRow{{1, "Write Add", "T1", "1. add"}, {3, "Write Sub", "", ""}}
	if len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for name, text := range map[string]string{
		"no prompt":   `{"tests": "T"}` + "\n",
		"not JSON":    `{"prompt": "a"}` + "\n" + `{"prompt": ` + "\n",
		"tests typed": `{"prompt": "a", "tests": 3}` + "\n",
		"empty":       "\n",
	} {
		if _, err := readCodegenRows(write("bad.jsonl", text)); err == nil || !strings.Contains(err.Error(), "bad.jsonl") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMissingToolIsNotAFailedBuild: a check whose program is not installed
// stops the evaluation (the machine's fault) instead of counting as the
// model's failed build.
func TestMissingToolIsNotAFailedBuild(t *testing.T) {
	res, err := codegen.CheckCode(t.Context(), codegen.Task{Language: "python"}, "x = 1\n",
		codegen.Options{Checks: map[string][]codegen.Check{"python": {{Name: "compile", Kind: codegen.KindBuild, Cmd: []string{"distill-no-such-python", "{file}"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if tool := missingTool(res); !strings.Contains(tool, "distill-no-such-python") {
		t.Fatalf("missingTool = %q for %+v", tool, res.Checks)
	}
	if lintRan(res) {
		t.Error("a lint check ran?")
	}
}

// No code at all counts against the lint rate where the language has lint
// checks: a model that writes nothing must not lint perfectly.
func TestEmptyCodeFailsLint(t *testing.T) {
	res, err := codegen.CheckCode(t.Context(), codegen.Task{Language: "go"}, " \n", codegen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !lintRan(res) || res.Linted {
		t.Errorf("empty Go code: lint ran %v, linted %v", lintRan(res), res.Linted)
	}
	if res, _ = codegen.CheckCode(t.Context(), codegen.Task{Language: "python"}, "", codegen.Options{}); lintRan(res) {
		t.Error("Python has no lint checks, yet empty code counted as linted")
	}
}

// TestCodegenJSONMatchesTheAPI: `codegen --json` writes the fields the
// HTTP API does (snake_case, durations in milliseconds), not Go's names.
func TestCodegenJSONMatchesTheAPI(t *testing.T) {
	m := tinyModel(t)
	code, out, stderr := run("codegen", "--model", m, "--task", "Write Add", "--max-tokens", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"language", "code", "raw", "checks", "built", "linted"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %v", k, got)
		}
	}
	if _, ok := got["PlanPrompt"]; ok {
		t.Errorf("Go field names: %v", got)
	}
	for _, c := range got["checks"].([]any) {
		if _, ok := c.(map[string]any)["duration_ms"]; !ok {
			t.Errorf("check without duration_ms: %v", c)
		}
	}
}

// A failing Go build's first line is its "# package" header: the failure
// named is the error after it.
func TestFirstFailureSkipsGoBuildsHeader(t *testing.T) {
	res := codegen.Result{Checks: []codegen.CheckResult{{Name: "build", Kind: codegen.KindBuild, Output: "# solution\n./solution.go:3:2: undefined: x\nexit status 1"}}}
	if got := firstFailure(res); !strings.Contains(got, "undefined: x") {
		t.Errorf("firstFailure = %q", got)
	}
}
