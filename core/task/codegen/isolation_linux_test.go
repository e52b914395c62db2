package codegen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Generated code runs in the checks: they see none of the caller's
// secrets, no network, and nothing they start outlives them — not even a
// process in a session of its own, which a process-group kill misses.
func TestChecksAreIsolated(t *testing.T) {
	needTool(t, "sh")
	needTool(t, "setsid")
	t.Setenv("HF_TOKEN", "hf_secret_0123456789")
	const marker = "31.4159" // sleep's argument: finds the escaped process
	script := `env; echo ---; cat /proc/net/dev; setsid sleep ` + marker + ` </dev/null >/dev/null 2>&1 & echo started`
	opt := Options{Checks: map[string][]Check{"go": {{Name: "probe", Kind: KindBuild, Cmd: []string{"sh", "-c", script}}}}}
	res, err := CheckCode(context.Background(), Task{Language: "go"}, "package solution\n", opt)
	if err != nil {
		t.Fatal(err)
	}
	r := byName(res)["probe"]
	if !r.OK {
		t.Fatalf("probe failed: %s", describe(res))
	}
	if r.Unisolated {
		t.Skip("the kernel refused the check its namespaces here")
	}
	env, netdev, _ := strings.Cut(r.Output, "---")
	if strings.Contains(env, "hf_secret") || !strings.Contains(env, "CGO_ENABLED=0") || !strings.Contains(env, "PATH=") {
		t.Errorf("environment of the check:\n%s", env)
	}
	for _, line := range strings.Split(netdev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) != "lo" {
			t.Errorf("the check sees network interface %q:\n%s", strings.TrimSpace(name), netdev)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for running(marker) {
		if time.Now().After(deadline) {
			t.Fatalf("a process the check started with setsid is still running")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether a live process has arg among its arguments.
func running(arg string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		return true
	}
	return false
}

// A cgo preamble could #include any file into the compiler's error
// output, which serve returns to the client: Go checks build without cgo.
func TestGoBuildsWithoutCgo(t *testing.T) {
	needTool(t, "go")
	code := "package solution\n\n/*\n#include \"/etc/passwd\"\n*/\nimport \"C\"\n"
	res, err := CheckCode(context.Background(), Task{Language: "go"}, code, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Built || strings.Contains(describe(res), "root:") {
		t.Fatalf("cgo was enabled:\n%s", describe(res))
	}
}

// The check's network namespace has its own loopback, up: code that
// listens on 127.0.0.1 and talks to itself (httptest, a local socket)
// works, as it would outside.
func TestChecksHaveALoopback(t *testing.T) {
	needTool(t, "python3")
	probe := "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(1)\nc = socket.create_connection(s.getsockname())\nc.sendall(b'hi')\nprint(s.accept()[0].recv(2).decode())\n"
	opt := Options{Checks: map[string][]Check{"python": {{Name: "loopback", Kind: KindBuild, Cmd: []string{"python3", "-c", probe}}}}}
	res, err := CheckCode(context.Background(), Task{Language: "python"}, "x = 1\n", opt)
	if err != nil {
		t.Fatal(err)
	}
	if r := byName(res)["loopback"]; !r.OK || !strings.Contains(r.Output, "hi") {
		t.Fatalf("loopback in the check: %s", describe(res))
	}
}

// A check writes only beneath its work folder (and the Go cache and
// Options.Writable): generated code that removes or rewrites the user's
// files fails — isolated, and where the kernel refused the namespaces (run
// here by marking them refused). Skipped where the kernel has no Landlock.
func TestChecksWriteOnlyTheirOwn(t *testing.T) {
	needTool(t, "sh")
	if landlockABI() < 1 {
		t.Skip("no Landlock in this kernel")
	}
	for _, refused := range []bool{false, true} {
		t.Run(map[bool]string{false: "isolated", true: "namespaces-refused"}[refused], func(t *testing.T) {
			if refused {
				was := namespacesRefused.Swap(true)
				t.Cleanup(func() { namespacesRefused.Store(was) })
			}
			checkWritesConfined(t, refused)
		})
	}
}

func checkWritesConfined(t *testing.T, refused bool) {
	victim, open := t.TempDir(), t.TempDir()
	keep := filepath.Join(victim, "keep.txt")
	if err := os.WriteFile(keep, []byte("the user's"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`echo mine > own.txt && echo wrote-own
echo theirs > %[1]s/new.txt && echo wrote-new
rm -f %[2]s && echo removed-keep
echo over > %[2]s && echo rewrote-keep
mkdir %[1]s/dir && echo made-dir
echo allowed > %[3]s/ok.txt && echo wrote-writable
true`, victim, keep, open)
	opt := Options{Writable: []string{open},
		Checks: map[string][]Check{"go": {{Name: "probe", Kind: KindBuild, Cmd: []string{"sh", "-c", script}}}}}
	res, err := CheckCode(context.Background(), Task{Language: "go"}, "package solution\n", opt)
	if err != nil {
		t.Fatal(err)
	}
	r := byName(res)["probe"]
	if r.Unisolated != refused {
		t.Skipf("the kernel refused the check its namespaces here (unisolated %v)", r.Unisolated)
	}
	for _, want := range []string{"wrote-own", "wrote-writable"} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("the check could not write its own (%s):\n%s", want, r.Output)
		}
	}
	for _, bad := range []string{"wrote-new", "removed-keep", "rewrote-keep", "made-dir", "not confined"} {
		if strings.Contains(r.Output, bad) {
			t.Errorf("the check got out (%s):\n%s", bad, r.Output)
		}
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "the user's" {
		t.Errorf("the user's file: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 1 {
		t.Errorf("the user's folder holds %d entries, want 1", len(entries))
	}
}
