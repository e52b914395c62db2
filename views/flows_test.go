package views

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"distill/app"
)

// Multi-step flows through a real Bubble Tea program (teatest): keys go in
// as a terminal would send them, commands run on the program's goroutines,
// and the test waits for what the screen shows.

const flowWait = 10 * time.Second // only a hang reaches it

func flowProgram(t *testing.T, svc Service, w, h int) *teatest.TestModel {
	t.Helper()
	m := New(svc)
	m.ticks = false // no periodic refresh: the frames depend on the keys only
	return teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h))
}

func waitScreen(t *testing.T, tm *teatest.TestModel, want ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, w := range want {
			if !bytes.Contains(b, []byte(w)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(flowWait), teatest.WithCheckInterval(5*time.Millisecond))
}

func finalModel(t *testing.T, tm *teatest.TestModel) Model {
	t.Helper()
	return tm.FinalModel(t, teatest.WithFinalTimeout(flowWait)).(Model)
}

// TestFlowLaunchWatchEvaluate: a new workspace opens on the form; enter
// launches; the Train view follows synthetic steps to the end; e evaluates
// the run and the Evals view opens its confusion matrix.
func TestFlowLaunchWatchEvaluate(t *testing.T) {
	svc := evalFixture()
	for p, dir := range launchService().paths {
		if svc.paths == nil {
			svc.paths = map[string]bool{}
		}
		svc.paths[p] = dir
	}
	svc.plan = launchService().plan
	svc.launchCh = make(chan app.Progress, 8)
	tm := flowProgram(t, svc, 100, 30)
	waitScreen(t, tm, "Launch a run", "total 1.4 GB")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitScreen(t, tm, "20261125-190000-sft-0001", "waiting for the first step")
	for i := 1; i <= 3; i++ {
		svc.launchCh <- app.Progress{RunID: "20261125-190000-sft-0001", Step: i, Total: 3, Loss: 3 - float64(i)/2, LR: 2e-4,
			TokensPerSec: 90, Elapsed: time.Duration(i) * time.Second, RSS: 300 << 20}
	}
	svc.launchCh <- app.Progress{RunID: "20261125-190000-sft-0001", Done: true, Evaluable: true}
	waitScreen(t, tm, "step 3/3", "finished · e evaluates it")
	tm.Send(keys("e"))
	waitScreen(t, tm, "predicted →", "macro-F1 0.714")
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	m := finalModel(t, tm)
	if len(svc.launched) != 1 || len(svc.evalued) != 1 || svc.evalued[0] != "20261125-190000-sft-0001" {
		t.Fatalf("launched %d runs, evaluated %v", len(svc.launched), svc.evalued)
	}
	frame := m.View()
	checkFrame(t, frame, 100, 30)
	golden(t, "flow-evaluated-100x30", frame)
}

// TestFlowQuitKeepsTrainingHeadless: q while a run trains asks; k quits and
// leaves the run to finish headless.
func TestFlowQuitKeepsTrainingHeadless(t *testing.T) {
	svc := &fakeService{runs: threeRuns(), running: 1}
	tm := flowProgram(t, svc, 80, 24)
	waitScreen(t, tm, "Runs", "…182700-sft-ab12")
	tm.Send(keys("q"))
	waitScreen(t, tm, "a run is training:")
	tm.Send(keys("x")) // anything else: stay
	tm.Send(keys("q"))
	tm.Send(keys("k"))
	m := finalModel(t, tm)
	if !m.Headless() {
		t.Fatal("k did not ask to keep training headless")
	}
	if len(svc.stopped) != 0 {
		t.Errorf("a run was stopped: %v", svc.stopped)
	}
}

// TestFlowCompareEvaluations: mark two evaluations, compare, toggle raw,
// go back, open one.
func TestFlowCompareEvaluations(t *testing.T) {
	svc := compareFixture()
	svc.runs = threeRuns()
	tm := flowProgram(t, svc, 100, 30)
	waitScreen(t, tm, "Runs")
	tm.Send(keys("4"))
	waitScreen(t, tm, "kd-creditmix-0413")
	tm.Send(keys(" "))
	tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	tm.Send(keys("c"))
	waitScreen(t, tm, "compare #3", "Δ count")
	tm.Send(tea.KeyMsg{Type: tea.KeyRight})
	waitScreen(t, tm, "· raw ·")
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitScreen(t, tm, "eval #3")
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	m := finalModel(t, tm)
	if m.evals.open == nil || m.evals.open.ID != 3 || m.evals.cmp != nil {
		t.Fatalf("final state: open %v, comparing %v", m.evals.open, m.evals.cmp != nil)
	}
	if f := m.View(); !strings.Contains(f, "predicted →") {
		t.Errorf("the opened report:\n%s", f)
	}
}

// TestFlowWatchRunningRun: a run's steps, validations and log lines arrive
// on its channel while the program runs; the Train view keeps up without
// blocking and the final frame is the golden one.
func TestFlowWatchRunningRun(t *testing.T) {
	svc := &fakeService{runs: threeRuns()}
	tm := flowProgram(t, svc, 100, 30)
	waitScreen(t, tm, "Runs")
	id := "20261125-182700-sft-ab12"
	ch := make(chan app.Progress, 128)
	tm.Send(WatchMsg{RunID: id, Ch: ch})
	ch <- app.Progress{RunID: id, Log: "600 rows · classification · 3 labels"}
	for _, p := range syntheticSteps(id, 40, 120) {
		ch <- p
		if p.Step%20 == 0 {
			ch <- app.Progress{RunID: id, Step: p.Step, Validation: true, ValLoss: p.Loss + 0.1}
		}
	}
	waitScreen(t, tm, "step 40/120", "val 0.6182") // the last event has been drawn
	tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
	m := finalModel(t, tm)
	frame := m.View()
	checkFrame(t, frame, 100, 30)
	golden(t, "flow-running-100x30", frame)
}
