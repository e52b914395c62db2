package codegen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Kinds of checks.
const (
	KindBuild = "build" // the code compiles (or parses); gates the tests
	KindLint  = "lint"  // style and static checks
	KindTest  = "test"  // the task's tests; run only when Task.Tests is set
)

// Check is one command run on the code.
type Check struct {
	Name string // shown in results, e.g. "vet"
	Kind string // KindBuild, KindLint or KindTest
	// Cmd is the program and its arguments. In each, {file} becomes the
	// code file's name, {tests} the test file's name (both relative to the
	// work directory, which is the command's working directory) and {dir}
	// the work directory's absolute path. The program is looked up in
	// PATH ("go" and "gofmt" also in $GOROOT/bin and /usr/local/go/bin).
	Cmd []string
	// File is the code file's name in the work directory; "" means the
	// language's default: Go main.go for "package main", else solution.go;
	// Python solution.py; others "solution" plus the language's usual
	// extension (".txt" if unknown).
	File string
	// TestFile is where Task.Tests is written before the test checks; ""
	// means solution_test.go, solution_test.py, or "solution_test" plus
	// the extension.
	TestFile string
	// FailOnOutput fails the check when the command writes anything but
	// white space to stdout, even if it exits 0 (gofmt -l lists the files
	// it would change).
	FailOnOutput bool
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name string
	Kind string
	OK   bool
	// Output is the command's stdout and stderr together, cut to about
	// MaxOutput bytes (the head and the tail are kept), followed by a note
	// on why the check failed (exit status, timeout, output printed) when
	// it did.
	Output   string
	Duration time.Duration
	TimedOut bool // killed (with its process group) at Options.Timeout
	Missing  bool // the program is not installed; Output says which
	Skipped  bool // not run: a test check after a failed build check
	// Unisolated: the command ran without its own PID and network
	// namespaces (not Linux, or the kernel refused them): with network
	// access, and able to leave processes behind.
	Unisolated bool
}

// MaxOutput bounds CheckResult.Output.
const MaxOutput = 4096

// pythonTestRunner runs a Python test file (argv[1]): with pytest when it
// is installed (python3 -m pytest -q), else by calling its test* functions
// and running its unittest.TestCase classes, else — a file with neither —
// as a script (python3 solution_test.py) when it has a __main__ block. A
// file of tests with a __main__ block too has its tests run: the block
// alone may run none of them.
const pythonTestRunner = `import os, re, sys, runpy, traceback, unittest
path = sys.argv[1]
sys.path.insert(0, os.getcwd())
try:
    import pytest
except ImportError:
    pytest = None
if pytest is not None:
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", path]))
with open(path) as f:
    src = f.read()
has_tests = re.search(r"^[ \t]*(def[ \t]+test|class[ \t]+\w+[ \t]*\(.*TestCase)", src, re.M)
if not has_tests and re.search(r"__name__[ \t]*==[ \t]*['\"]__main__['\"]", src):
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")
    sys.exit(0)
ns = runpy.run_path(path, run_name="solution_test")
funcs = [(k, v) for k, v in ns.items() if k.startswith("test") and callable(v) and not isinstance(v, type) and getattr(v, "__module__", None) == "solution_test"]
cases = [v for v in ns.values() if isinstance(v, type) and issubclass(v, unittest.TestCase) and v.__module__ == "solution_test"]
if not funcs and not cases:
    print("no tests found in " + path)
    sys.exit(5)
failed = 0
for name, fn in funcs:
    try:
        fn()
    except Exception:
        failed += 1
        print("FAILED " + name)
        etype, e, tb = sys.exc_info()
        traceback.print_exception(etype, e, tb.tb_next, file=sys.stdout)
total = len(funcs)
if cases:
    suite = unittest.TestSuite([unittest.defaultTestLoader.loadTestsFromTestCase(c) for c in cases])
    total += suite.countTestCases()
    r = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    failed += len(r.failures) + len(r.errors)
print("%d passed, %d failed" % (total - failed, failed))
sys.exit(1 if failed else 0)
`

// DefaultChecks are the checks of a language when Options.Checks does not
// name it:
//
//	go      lint  gofmt   gofmt -l .      (fails if it lists a file)
//	        build build   go build .
//	        lint  vet     go vet .
//	        test  test    go test .       (solution_test.go)
//	python  build compile python3 -m py_compile solution.py
//	        test  test    python3 -m pytest -q when pytest is installed,
//	                      else its test* functions and TestCase classes,
//	                      else python3 solution_test.py (a __main__ block)
//
// Go code is written as main.go for "package main", else as solution.go
// (its package clause is kept), next to a go.mod of "module solution" and
// "go 1.21", and built without cgo: a file that imports "C" is left out,
// and "." (not "./...", which would match nothing and pass) fails. Other
// languages have none.
func DefaultChecks(language string) []Check {
	switch NormalizeLanguage(language) {
	case "go":
		return []Check{
			{Name: "gofmt", Kind: KindLint, Cmd: []string{"gofmt", "-l", "."}, FailOnOutput: true},
			{Name: "build", Kind: KindBuild, Cmd: []string{"go", "build", "."}},
			{Name: "vet", Kind: KindLint, Cmd: []string{"go", "vet", "."}},
			{Name: "test", Kind: KindTest, Cmd: []string{"go", "test", "."}},
		}
	case "python":
		return []Check{
			{Name: "compile", Kind: KindBuild, Cmd: []string{"python3", "-m", "py_compile", "{file}"}},
			{Name: "test", Kind: KindTest, Cmd: []string{"python3", "-c", pythonTestRunner, "{tests}"}},
		}
	}
	return nil
}

// checksFor picks the checks of lang from opt.
func checksFor(lang string, opt Options) []Check {
	for k, v := range opt.Checks {
		if NormalizeLanguage(k) == lang {
			return v
		}
	}
	return DefaultChecks(lang)
}

// CheckCode runs the checks of task.Language on code (already extracted)
// in a fresh temporary directory, removed afterwards: the code file(s)
// (and for Go a go.mod) are written, the build and lint checks run in
// their order, then — if task.Tests is set and every build check passed —
// the tests are written and the test checks run. Each command has
// opt.Timeout. The Result has Language, Code, Checks and the summary flags
// set. The error is a malformed check (a kind other than build, lint or
// test, or no command), a failure to set up the directory, or the
// context's.
func CheckCode(ctx context.Context, task Task, code string, opt Options) (Result, error) {
	lang := NormalizeLanguage(task.Language)
	res := Result{Language: lang, Code: code}
	checks := checksFor(lang, opt)
	if len(checks) == 0 {
		return res, ctx.Err()
	}
	for _, c := range checks {
		if c.Kind != KindBuild && c.Kind != KindLint && c.Kind != KindTest {
			return res, fmt.Errorf("codegen: check %q: kind %q; want %q, %q or %q", c.Name, c.Kind, KindBuild, KindLint, KindTest)
		}
		if len(c.Cmd) == 0 {
			return res, fmt.Errorf("codegen: check %q has no command", c.Name)
		}
	}
	if strings.TrimSpace(code) == "" {
		// No code is a failed build, whatever the compiler says of an empty
		// file (Python's py_compile accepts one).
		res.Checks = []CheckResult{{Name: "code", Kind: KindBuild, Output: "no code was generated"}}
		return res, ctx.Err()
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dir, err := os.MkdirTemp("", "distill-codegen-*")
	if err != nil {
		return res, fmt.Errorf("codegen: work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	extra := opt.Env
	if len(opt.Writable) > 0 {
		extra = append([]string{writableEnv + "=" + strings.Join(opt.Writable, string(os.PathListSeparator))}, extra...)
	}
	env, err := checkEnv(lang, dir, extra)
	if err != nil {
		return res, err
	}

	// The code files.
	codeFiles := map[string]bool{}
	for _, c := range checks {
		if c.Kind != KindTest {
			codeFiles[codeFile(lang, code, c)] = true
		}
	}
	for _, c := range checks {
		if c.Kind == KindTest && codeFiles[testFile(lang, c)] {
			return res, fmt.Errorf("codegen: check %q would write the tests over the code file %s", c.Name, testFile(lang, c))
		}
	}
	for name := range codeFiles {
		if err := writeFile(dir, name, code); err != nil {
			return res, err
		}
	}
	if lang == "go" {
		if err := writeFile(dir, "go.mod", "module solution\n\ngo 1.21\n"); err != nil {
			return res, err
		}
	}

	built, nBuild, linted, nLint := true, 0, true, 0
	run := func(c Check) CheckResult {
		file, tests := codeFile(lang, code, c), testFile(lang, c)
		argv := make([]string, len(c.Cmd))
		for i, a := range c.Cmd {
			a = strings.ReplaceAll(a, "{file}", file)
			a = strings.ReplaceAll(a, "{tests}", tests)
			argv[i] = strings.ReplaceAll(a, "{dir}", dir)
		}
		r := runCommand(ctx, dir, argv, env, timeout, c.FailOnOutput)
		r.Name, r.Kind = c.Name, c.Kind
		return r
	}
	for _, c := range checks {
		if c.Kind == KindTest {
			continue
		}
		r := run(c)
		res.Checks = append(res.Checks, r)
		switch c.Kind {
		case KindBuild:
			nBuild++
			built = built && r.OK
		case KindLint:
			nLint++
			linted = linted && r.OK
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	res.Built = nBuild > 0 && built
	res.Linted = nLint > 0 && linted

	if task.Tests == "" {
		return res, ctx.Err()
	}
	passed := true
	for _, c := range checks {
		if c.Kind != KindTest {
			continue
		}
		if !built {
			res.Checks = append(res.Checks, CheckResult{Name: c.Name, Kind: c.Kind, Skipped: true,
				Output: "skipped: a build check failed"})
			continue
		}
		if err := writeFile(dir, testFile(lang, c), task.Tests); err != nil {
			return res, err
		}
		r := run(c)
		res.Checks = append(res.Checks, r)
		res.TestsRun = true
		passed = passed && r.OK
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	res.TestsPassed = res.TestsRun && passed
	return res, ctx.Err()
}

// extensions of languages' code files.
var extensions = map[string]string{
	"go": ".go", "python": ".py", "javascript": ".js", "js": ".js", "typescript": ".ts", "ts": ".ts",
	"rust": ".rs", "c": ".c", "cpp": ".cpp", "c++": ".cpp", "java": ".java", "sh": ".sh", "bash": ".sh",
	"ruby": ".rb", "rb": ".rb", "kotlin": ".kt", "swift": ".swift", "lua": ".lua", "sql": ".sql",
}

func extension(lang string) string {
	if e, ok := extensions[lang]; ok {
		return e
	}
	return ".txt"
}

var goPackageMain = regexp.MustCompile(`(?m)^\s*package\s+main\s*(?://.*|/\*.*)?$`)

// codeFile is the name c writes the code to.
func codeFile(lang, code string, c Check) string {
	if c.File != "" {
		return c.File
	}
	if lang == "go" && goPackageMain.MatchString(code) {
		return "main.go"
	}
	return "solution" + extension(lang)
}

// testFile is the name c writes the tests to.
func testFile(lang string, c Check) string {
	if c.TestFile != "" {
		return c.TestFile
	}
	return "solution_test" + extension(lang)
}

func writeFile(dir, name, text string) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("codegen: file %q is not a relative path inside the work directory", name)
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("codegen: %w", err)
	}
	return nil
}

// GoCacheDir is the build cache shared by the Go checks of every run: in
// the user's cache folder (a fixed name in the shared temporary folder
// could be made first by another user), else a folder of this process's.
func GoCacheDir() (string, error) {
	goCache.once.Do(func() {
		if base, err := os.UserCacheDir(); err == nil {
			goCache.dir = filepath.Join(base, "distill", "codegen-gocache")
			if goCache.err = os.MkdirAll(goCache.dir, 0o700); goCache.err == nil {
				return
			}
		}
		goCache.dir, goCache.err = os.MkdirTemp("", "distill-codegen-gocache-*")
	})
	return goCache.dir, goCache.err
}

var goCache struct {
	once sync.Once
	dir  string
	err  error
}

// writableEnv carries Options.Writable to the check's sandbox
// (landlock_linux.go), a path list.
const writableEnv = "DISTILL_CODEGEN_WRITABLE"

// keptEnv are the variables a check inherits: where programs are and how
// text is encoded. Nothing else — tokens and keys in the environment stay
// out of reach of the generated code.
var keptEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "GOROOT", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT"}

// checkEnv is the environment of the checks run in dir: keptEnv, a home
// and temporary folder inside dir, the Go settings for Go (no network, no
// cgo: a cgo preamble could #include any file into the compiler's error
// output), unbuffered output for Python, then extra.
func checkEnv(lang, dir string, extra []string) ([]string, error) {
	var env []string
	for _, k := range keptEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	// Not dir itself: go ignores a go.mod in the temporary folder's root.
	tmp := filepath.Join(dir, ".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("codegen: %w", err)
	}
	env = append(env, "HOME="+dir, "TMPDIR="+tmp)
	if lang == "go" {
		cache, err := GoCacheDir()
		if err != nil {
			return nil, fmt.Errorf("codegen: Go build cache: %w", err)
		}
		env = append(env, "GOFLAGS=-mod=mod", "GOCACHE="+cache, "GOPATH="+filepath.Join(dir, ".gopath"), "GOPROXY=off", "GOSUMDB=off",
			"GOTOOLCHAIN=local", "GOWORK=off", "GO111MODULE=on", "CGO_ENABLED=0")
	}
	if lang == "python" {
		env = append(env, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
		// HOME is the work folder now: keep the user's own packages
		// (pip install --user pytest) where Python would look for them.
		if base, ok := os.LookupEnv("PYTHONUSERBASE"); ok {
			env = append(env, "PYTHONUSERBASE="+base)
		} else if home, err := os.UserHomeDir(); err == nil {
			env = append(env, "PYTHONUSERBASE="+filepath.Join(home, ".local"))
		}
	}
	// exec takes the last value of a repeated key.
	return append(env, extra...), nil
}
