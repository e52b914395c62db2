package codegen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const perfectSquare = `package solution

// IsPerfectSquare reports whether the non-negative integer n is a perfect square.
func IsPerfectSquare(n int) bool {
	i := 0
	for i*i < n {
		i++
	}
	return i*i == n
}
`

const perfectSquareTests = `package solution

import "testing"

func TestIsPerfectSquare(t *testing.T) {
	for n, want := range map[int]bool{0: true, 1: true, 15: false, 16: true, 99: false, 144: true} {
		if got := IsPerfectSquare(n); got != want {
			t.Errorf("IsPerfectSquare(%d) = %v, want %v", n, got, want)
		}
	}
}
`

// needTool skips a test whose toolchain is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := lookTool(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
}

// byName indexes check results.
func byName(res Result) map[string]CheckResult {
	m := map[string]CheckResult{}
	for _, c := range res.Checks {
		m[c.Name] = c
	}
	return m
}

func describe(res Result) string {
	var b strings.Builder
	for _, c := range res.Checks {
		fmt.Fprintf(&b, "--- %s (%s) ok=%v timedOut=%v skipped=%v %s\n%s\n", c.Name, c.Kind, c.OK, c.TimedOut, c.Skipped, c.Duration.Round(time.Millisecond), c.Output)
	}
	return b.String()
}

func TestGoCorrect(t *testing.T) {
	needTool(t, "go")
	res, err := CheckCode(context.Background(), Task{Language: "go", Tests: perfectSquareTests}, perfectSquare, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Built || !res.Linted || !res.TestsRun || !res.TestsPassed {
		t.Fatalf("want built, linted and tested: %+v\n%s", res, describe(res))
	}
	var names []string
	for _, c := range res.Checks {
		names = append(names, c.Name+"/"+c.Kind)
		if !c.OK || c.Duration <= 0 {
			t.Errorf("check %s: ok=%v duration=%s", c.Name, c.OK, c.Duration)
		}
	}
	if got := strings.Join(names, " "); got != "gofmt/lint build/build vet/lint test/test" {
		t.Errorf("checks %s", got)
	}
}

func TestGoSyntaxError(t *testing.T) {
	needTool(t, "go")
	code := "package solution\n\nfunc IsPerfectSquare(n int) bool {\n\treturn n ==\n}\n"
	res, err := CheckCode(context.Background(), Task{Tests: perfectSquareTests}, code, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checks := byName(res)
	if res.Built || res.Linted || res.TestsRun || res.TestsPassed || checks["build"].OK {
		t.Fatalf("a syntax error built: %+v\n%s", res, describe(res))
	}
	if !strings.Contains(checks["build"].Output, "solution.go:") {
		t.Errorf("build output does not point at the file: %q", checks["build"].Output)
	}
	if tc := checks["test"]; !tc.Skipped || tc.OK {
		t.Errorf("test check after a failed build: %+v", tc)
	}
}

func TestGoUnformatted(t *testing.T) {
	needTool(t, "go")
	code := "package solution\n\nfunc Twice(n int) int {\nreturn 2*n\n}\n"
	res, err := CheckCode(context.Background(), Task{}, code, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checks := byName(res)
	if !res.Built || res.Linted || checks["gofmt"].OK || !checks["vet"].OK {
		t.Fatalf("want built, gofmt failing, vet passing: %+v\n%s", res, describe(res))
	}
	if !strings.Contains(checks["gofmt"].Output, "solution.go") {
		t.Errorf("gofmt output %q", checks["gofmt"].Output)
	}
	if res.TestsRun || len(res.Checks) != 3 {
		t.Errorf("no tests given, yet: %+v", res)
	}
}

func TestGoFailingTest(t *testing.T) {
	needTool(t, "go")
	tests := strings.Replace(perfectSquareTests, "16: true", "16: false", 1)
	res, err := CheckCode(context.Background(), Task{Tests: tests}, perfectSquare, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := byName(res)["test"].Output
	if !res.Built || !res.TestsRun || res.TestsPassed || !strings.Contains(out, "IsPerfectSquare(16) = true, want false") {
		t.Fatalf("want a failing test: %+v\n%s", res, describe(res))
	}
}

func TestGoNoDownloads(t *testing.T) {
	needTool(t, "go")
	code := "package solution\n\nimport \"example.com/nowhere/pkg\"\n\nvar X = pkg.Y\n"
	res, err := CheckCode(context.Background(), Task{}, code, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out := byName(res)["build"].Output; res.Built || !strings.Contains(out, "GOPROXY=off") {
		t.Fatalf("an import outside the standard library: %+v\n%s", res, describe(res))
	}
}

// TestGoTimeout: a test that never ends is killed at the timeout — go test
// and the test binary it started.
func TestGoTimeout(t *testing.T) {
	needTool(t, "go")
	// Warm the build cache (a no-op after TestGoCorrect) so that the short
	// timeout is spent in the test, not in compiling.
	if res, err := CheckCode(context.Background(), Task{Tests: perfectSquareTests}, perfectSquare, Options{}); err != nil || !res.TestsPassed {
		t.Fatalf("warm-up: %v\n%s", err, describe(res))
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	tests := fmt.Sprintf(`package solution

import (
	"os"
	"strconv"
	"testing"
)

func TestForever(t *testing.T) {
	// /proc/self, not Getpid: the check runs in a PID namespace of its
	// own, and the host's /proc names the host's pid.
	self, err := os.Readlink("/proc/self")
	if err != nil {
		self = strconv.Itoa(os.Getpid())
	}
	if err := os.WriteFile(%q, []byte(self), 0o644); err != nil {
		t.Fatal(err)
	}
	for IsPerfectSquare(4) {
	}
}
`, pidFile)
	start := time.Now()
	// The pid file's folder made writable: an isolated check writes
	// nowhere else but its own.
	res, err := CheckCode(context.Background(), Task{Tests: tests}, perfectSquare,
		Options{Timeout: 3 * time.Second, Writable: []string{filepath.Dir(pidFile)}})
	if err != nil {
		t.Fatal(err)
	}
	tc := byName(res)["test"]
	if !tc.TimedOut || tc.OK || !res.TestsRun || res.TestsPassed || !strings.Contains(tc.Output, "timed out after 3s") {
		t.Fatalf("want a timeout: %+v\n%s", res, describe(res))
	}
	if tc.Duration < 3*time.Second || tc.Duration > 8*time.Second {
		t.Errorf("the test check took %s with a 3s timeout", tc.Duration)
	}
	t.Logf("CheckCode took %s", time.Since(start))
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the test binary never started (compiling took the whole timeout?): %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	if !gone(pid, 3*time.Second) {
		t.Errorf("the test binary (pid %d) is still running", pid)
	}
}

// gone reports whether process pid has exited (a zombie counts) within
// wait.
func gone(pid int, wait time.Duration) bool {
	for deadline := time.Now().Add(wait); ; {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			if _, err := os.Stat("/proc/self/stat"); err != nil {
				return true // no /proc: cannot tell
			}
			return true
		}
		// "pid (comm) S ...": the state follows the last ')'.
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPython(t *testing.T) {
	needTool(t, "python3")
	code := "def add(a, b):\n    return a + b\n"
	good := "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
	bad := "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 6\n"
	script := "from solution import add\n\nif __name__ == \"__main__\":\n    assert add(1, 1) == 2\n    print(\"main ran\")\n"
	ctx := context.Background()
	for _, c := range []struct {
		name, code, tests    string
		built, run, passed   bool
		testOutput, buildOut string
	}{
		{name: "compiles", code: code, built: true},
		{name: "syntax error", code: "def add(a, b)\n    return a + b\n", tests: good, buildOut: "SyntaxError"},
		{name: "tests pass", code: code, tests: good, built: true, run: true, passed: true},
		{name: "tests fail", code: code, tests: bad, built: true, run: true, testOutput: "assert"},
		{name: "script with a main block", code: code, tests: script, built: true, run: true, passed: true, testOutput: "main ran"},
		// A main block beside test functions must not stand in for them.
		{name: "tests and a main block", code: code, tests: bad + "\nif __name__ == \"__main__\":\n    print(\"run me with pytest\")\n", built: true, run: true, testOutput: "1 failed"},
		{name: "main mentioned in a comment", code: code, tests: "# not a __main__ block\n" + good, built: true, run: true, passed: true, testOutput: "1 passed"},
		{name: "no tests in the file", code: code, tests: "import solution\n", built: true, run: true},
		// py_compile accepts an empty file: no code must not count as built.
		{name: "no code", code: " \n", tests: good},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := CheckCode(ctx, Task{Language: "py", Tests: c.tests}, c.code, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Language != "python" || res.Built != c.built || res.TestsRun != c.run || res.TestsPassed != c.passed || res.Linted {
				t.Fatalf("got built=%v run=%v passed=%v linted=%v\n%s", res.Built, res.TestsRun, res.TestsPassed, res.Linted, describe(res))
			}
			checks := byName(res)
			if !strings.Contains(checks["test"].Output, c.testOutput) || !strings.Contains(checks["compile"].Output, c.buildOut) {
				t.Errorf("output:\n%s", describe(res))
			}
		})
	}
}

// TestPythonPytest: with pytest importable the test check hands the file
// to pytest.main (a stand-in module here: pytest is not installed).
func TestPythonPytest(t *testing.T) {
	needTool(t, "python3")
	dir := t.TempDir()
	fake := "def main(args):\n    print('fake pytest', args)\n    return 0\n"
	if err := os.WriteFile(filepath.Join(dir, "pytest.py"), []byte(fake), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := CheckCode(context.Background(), Task{Language: "python", Tests: "def test_x():\n    assert False\n"}, "x = 1\n",
		Options{Env: []string{"PYTHONPATH=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	if out := byName(res)["test"].Output; !res.TestsPassed || !strings.Contains(out, "fake pytest ['-q', '-p', 'no:cacheprovider', 'solution_test.py']") {
		t.Fatalf("%s", describe(res))
	}
}

func TestPythonTimeout(t *testing.T) {
	needTool(t, "python3")
	res, err := CheckCode(context.Background(), Task{Language: "python", Tests: "import time\n\ndef test_sleep():\n    while True:\n        time.sleep(0.01)\n"},
		"x = 1\n", Options{Timeout: 5 * time.Second}) // room for py_compile on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	if tc := byName(res)["test"]; !tc.TimedOut || res.TestsPassed || tc.Duration > 20*time.Second {
		t.Fatalf("want a timeout: %s", describe(res))
	}
}

func TestCustomChecks(t *testing.T) {
	needTool(t, "sh")
	opt := Options{Checks: map[string][]Check{
		"Text": {
			{Name: "exists", Kind: KindBuild, File: "answer.txt", Cmd: []string{"sh", "-c", `test -f "{dir}/{file}" && test "$(cat {file})" = hello`}},
			{Name: "quiet", Kind: KindLint, Cmd: []string{"sh", "-c", "cat {file}"}, FailOnOutput: true},
			{Name: "missing", Kind: KindLint, Cmd: []string{"distill-no-such-tool-xyz", "{file}"}},
			{Name: "tests", Kind: KindTest, TestFile: "t.txt", Cmd: []string{"sh", "-c", "grep -q hello {tests} && echo tests ok"}},
		},
	}}
	res, err := CheckCode(context.Background(), Task{Language: "text", Tests: "hello world"}, "hello\n", opt)
	if err != nil {
		t.Fatal(err)
	}
	checks := byName(res)
	if !res.Built || res.Linted || !res.TestsPassed || !strings.Contains(checks["tests"].Output, "tests ok") {
		t.Fatalf("%+v\n%s", res, describe(res))
	}
	if q := checks["quiet"]; q.OK || !strings.Contains(q.Output, "hello\n") || !strings.Contains(q.Output, "prints anything") {
		t.Errorf("FailOnOutput: %+v", q)
	}
	if m := checks["missing"]; m.OK || !m.Missing || !strings.Contains(m.Output, "distill-no-such-tool-xyz is not installed") {
		t.Errorf("a missing tool: %+v", m)
	}

	// A language without checks runs none; an empty list disables the
	// defaults.
	for _, c := range []struct {
		lang string
		opt  Options
	}{{"cobol", Options{}}, {"go", Options{Checks: map[string][]Check{"golang": {}}}}} {
		res, err := CheckCode(context.Background(), Task{Language: c.lang, Tests: "x"}, "x", c.opt)
		if err != nil || len(res.Checks) != 0 || res.Built || res.TestsRun {
			t.Errorf("%s: %+v %v", c.lang, res, err)
		}
	}

	// The tests may not overwrite the code.
	bad := Options{Checks: map[string][]Check{"text": {{Name: "b", Kind: KindBuild, Cmd: []string{"true"}}, {Name: "t", Kind: KindTest, TestFile: "solution.txt", Cmd: []string{"true"}}}}}
	if _, err := CheckCode(context.Background(), Task{Language: "text", Tests: "x"}, "x", bad); err == nil {
		t.Error("tests written over the code: no error")
	}
	for _, c := range []Check{{Name: "k", Kind: "style", Cmd: []string{"true"}}, {Name: "c", Kind: KindLint}} {
		if _, err := CheckCode(context.Background(), Task{Language: "text"}, "x", Options{Checks: map[string][]Check{"text": {c}}}); err == nil {
			t.Errorf("malformed check %+v: no error", c)
		}
	}
}

func TestOutputCut(t *testing.T) {
	needTool(t, "sh")
	res, err := CheckCode(context.Background(), Task{Language: "text"}, "x",
		Options{Checks: map[string][]Check{"text": {{Name: "loud", Kind: KindBuild, Cmd: []string{"sh", "-c", "echo FIRST; i=0; while [ $i -lt 5000 ]; do echo line $i; i=$((i+1)); done; echo LAST; exit 3"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Checks[0].Output
	if res.Built || len(out) > MaxOutput+200 || !strings.HasPrefix(out, "FIRST\n") || !strings.Contains(out, "bytes left out") ||
		!strings.HasSuffix(out, "LAST\nexit status 3") {
		t.Fatalf("%d bytes:\n%s", len(out), out)
	}
}

func TestCancelled(t *testing.T) {
	needTool(t, "sh")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	start := time.Now()
	res, err := CheckCode(ctx, Task{Language: "text"}, "x", Options{Checks: map[string][]Check{"text": {{Name: "sleep", Kind: KindBuild, Cmd: []string{"sleep", "30"}}}}})
	if err == nil || time.Since(start) > 5*time.Second || res.Checks[0].OK || res.Checks[0].TimedOut {
		t.Fatalf("cancelled: %v %s", err, describe(res))
	}
}
