package views

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

// TestLiveRunSurvivesBrowsing: opening another run from Runs and coming
// back to the one this window trains keeps following it — its total, its
// steps from the store and then from its channel — and the bottom bar
// shows it throughout, not the finished run on screen.
func TestLiveRunSurvivesBrowsing(t *testing.T) {
	const live, old = "20261127-121742-sft-ca48", "20261127-121203-sft-f9a0"
	steps := syntheticSteps(live, 12, 40)
	for i := range steps {
		steps[i].Elapsed = time.Duration(i+1) * time.Second
	}
	svc := &fakeService{runs: threeRuns(), history: map[string][]app.Progress{live: steps[:8], old: syntheticSteps(old, 5, 5)}}
	m := newTestModel(svc, 120, 40)
	ch := make(chan app.Progress, 16)
	m = step(m, WatchMsg{RunID: live, Ch: ch})
	for _, p := range steps[:6] {
		m = step(m, ProgressMsg{Progress: p, from: ch})
	}
	m = stepRun(m, openRunMsg{id: old, status: "completed"})
	if m.train.runID != old {
		t.Fatalf("the Train view shows %s", m.train.runID)
	}
	for _, p := range steps[6:8] { // the root still reads the channel
		m = step(m, ProgressMsg{Progress: p, from: ch})
	}
	if bar := m.bottomBar(""); !strings.Contains(bar, live) || !strings.Contains(bar, "step 8/40") {
		t.Errorf("bottom bar while browsing a finished run: %q", bar)
	}
	m = stepRun(m, openRunMsg{id: live, status: "running"})
	if m.train.runID != live || m.train.ch != ch || m.train.last.Total != 40 || m.train.last.Step != 8 || len(m.train.losses) != 8 {
		t.Fatalf("back on the live run: ch followed %v, step %d/%d, %d points", m.train.ch == ch, m.train.last.Step, m.train.last.Total, len(m.train.losses))
	}
	m = step(m, ProgressMsg{Progress: steps[8], from: ch})
	if m.train.last.Step != 9 || len(m.train.losses) != 9 {
		t.Errorf("a step after coming back: at %d with %d points", m.train.last.Step, len(m.train.losses))
	}
	if d, ok := m.train.eta(); !ok || d != 31*time.Second {
		t.Errorf("ETA %v (%v), want 31 s: 1 s a step, 31 to go", d, ok)
	}
}

// TestResumedRunChartsFromItsStart: a run resumed in this window (steps on
// its channel from step 7) charts the store's steps before it too.
func TestResumedRunChartsFromItsStart(t *testing.T) {
	const id = "20261127-121742-sft-ca48"
	steps := syntheticSteps(id, 10, 10)
	m := newTestModel(&fakeService{}, 100, 30)
	ch := make(chan app.Progress, 16)
	m = step(m, WatchMsg{RunID: id, Ch: ch}) // asks for the history
	for _, p := range steps[6:8] {           // the channel's steps arrive before it
		m = step(m, ProgressMsg{Progress: p, from: ch})
	}
	m = step(m, historyMsg{id: id, steps: steps[:6]})
	if m.train.first != 1 || len(m.train.losses) != 8 || m.train.last.Step != 8 {
		t.Fatalf("chart from step %d with %d points, at step %d; want 1, 8, 8", m.train.first, len(m.train.losses), m.train.last.Step)
	}
}

// TestLiveRunWithoutHistory: a run this window just started may not be in
// the store yet; its history's error is no note (its steps come on the
// channel), unlike a run followed through the store.
func TestLiveRunWithoutHistory(t *testing.T) {
	ctx := &Context{Svc: launchService(), Width: 100, Height: 30, Styles: DefaultStyles()}
	v := newTrainView()
	v, _ = v.update(ctx, WatchMsg{RunID: "r", Ch: make(chan app.Progress)})
	v, _ = v.update(ctx, historyMsg{id: "r", err: errors.New("metrics of run r: not found")})
	if v.note != "" {
		t.Errorf("a live run notes %q", v.note)
	}
	v, _ = v.update(ctx, openRunMsg{id: "r", status: "running"})
	v, _ = v.update(ctx, historyMsg{id: "r", err: errors.New("metrics of run r: not found")})
	if !strings.Contains(v.note, "not found") {
		t.Errorf("a run followed through the store notes %q", v.note)
	}
}

// TestNarrowBarKeepsFormKeys: at 80 columns with a run training, the
// bottom bar keeps a form's keys ("esc leave form") and shortens the run's
// line to its id and step, instead of dropping the keys.
func TestNarrowBarKeepsFormKeys(t *testing.T) {
	const id = "20261127-121742-sft-ca48"
	m := newTestModel(&fakeService{runs: threeRuns()}, 80, 24)
	ch := make(chan app.Progress, 4)
	m = step(m, WatchMsg{RunID: id, Ch: ch})
	m = step(m, ProgressMsg{Progress: syntheticSteps(id, 3, 40)[2], from: ch})
	m = step(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("2")})
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	lines := strings.Split(m.View(), "\n")
	bar := lines[len(lines)-1]
	if !strings.Contains(bar, "esc") || !strings.Contains(bar, id) || !strings.Contains(bar, "step 3/40") {
		t.Errorf("bottom bar at 80 columns: %q", bar)
	}
}

// TestPauseKey: p pauses the run on screen (through the service) and p
// again resumes it; the view says so and shows no ETA while paused.
func TestPauseKey(t *testing.T) {
	const id = "20261127-121742-sft-ca48"
	svc := &fakeService{runs: threeRuns()}
	m := newTestModel(svc, 100, 30)
	ch := make(chan app.Progress, 4)
	m = step(m, WatchMsg{RunID: id, Ch: ch})
	m = step(m, ProgressMsg{Progress: syntheticSteps(id, 3, 40)[2], from: ch})
	m = step(m, keys("p"))
	if !svc.paused || !m.train.paused || !strings.Contains(m.View(), "paused between steps") || strings.Contains(m.train.view(&m.ctx), "ETA") {
		t.Fatalf("after p: service paused %v, view paused %v\n%s", svc.paused, m.train.paused, m.View())
	}
	m = step(m, keys("p"))
	if svc.paused || m.train.paused || strings.Contains(m.View(), "paused between steps") {
		t.Errorf("after p again: service paused %v, view paused %v", svc.paused, m.train.paused)
	}
}

// TestTrainBarShowsItsKeys: at 120 columns a training run's bar keeps the
// Train view's keys (p, c) with the run and its step, rather than its loss
// and tok/s; a paused run's bar shows no ETA.
func TestTrainBarShowsItsKeys(t *testing.T) {
	const id = "20261127-121742-sft-ca48"
	m := newTestModel(&fakeService{runs: threeRuns()}, 120, 40)
	ch := make(chan app.Progress, 4)
	m = step(m, WatchMsg{RunID: id, Ch: ch})
	m = step(m, ProgressMsg{Progress: syntheticSteps(id, 3, 40)[2], from: ch})
	lines := strings.Split(m.View(), "\n")
	if bar := lines[len(lines)-1]; !strings.Contains(bar, "p pause") || !strings.Contains(bar, "step 3/40") {
		t.Errorf("bar %q", bar)
	}
	m = step(m, keys("p"))
	if bar := m.bottomBar(""); strings.Contains(bar, "ETA") {
		t.Errorf("a paused run's bar shows an ETA: %q", bar)
	}
}
