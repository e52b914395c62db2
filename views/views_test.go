package views

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"distill/app"
)

// updating reports whether -update was given: the flag is the one that
// teatest's golden package registers, shared by this package's goldens
// (`go test ./views -update` rewrites testdata/*.golden).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	lipgloss.SetHasDarkBackground(true)
	os.Exit(m.Run())
}

// fakeService is a Service with fixed answers, for deterministic frames.
type fakeService struct {
	runs      []app.RunRow
	deleted   []string
	stopped   []string
	paused    bool
	history   map[string][]app.Progress
	infos     map[string]app.RunInfo
	adapters  []app.AdapterRow
	evals     []app.EvalRow
	reports   map[string]app.EvalReport
	paths     map[string]bool // existing paths: true for a folder
	plan      app.PlanRow
	launched  []app.RunConfig
	launchCh  chan app.Progress
	answers   []app.Answer // what Ask streams
	running   int          // runs "training in this process"
	asked     []app.Ask
	gpu       app.GPU  // NVML's answer; none when Total is 0
	evalErr   error    // what EvaluateRun fails with
	resumed   []string // the runs ResumeRun was asked for
	exported  []string // name:kind of each ExportAdapter
	data      app.DataInfo
	labels    map[string][]string // AdapterLabels' answers
	planErr   error
	dataErr   error
	resumeErr error
	evalued   []string // the runs EvaluateRun was asked for
	pulled    []string // the specs PullModel was asked for
	pullErr   error    // what a pull ends with
}

func (f *fakeService) ListRuns() ([]app.RunRow, error) {
	return append([]app.RunRow(nil), f.runs...), nil
}
func (f *fakeService) DeleteRun(id string) error {
	for i, r := range f.runs {
		if r.ID == id {
			f.runs = append(f.runs[:i], f.runs[i+1:]...)
			f.deleted = append(f.deleted, id)
			return nil
		}
	}
	return errors.New("no such run")
}
func (f *fakeService) StopRun(id string) bool { f.stopped = append(f.stopped, id); return true }
func (f *fakeService) PauseRun(id string) (bool, bool) {
	f.paused = !f.paused
	return f.paused, true
}
func (f *fakeService) RunHistory(id string) ([]app.Progress, error) {
	return f.history[id], nil
}
func (f *fakeService) RunInfo(id string) (app.RunInfo, error) {
	if i, ok := f.infos[id]; ok {
		return i, nil
	}
	return app.RunInfo{}, errors.New("run " + id + ": not found")
}
func (f *fakeService) Device() string       { return "cpu · 8 cores" }
func (f *fakeService) ResidentBytes() int64 { return 1288 << 20 }
func (f *fakeService) Running() int         { return f.running }
func (f *fakeService) GPUMemory() (app.GPU, bool) {
	return f.gpu, f.gpu.Total > 0
}
func (f *fakeService) TotalMemory() int64 { return 16 << 30 }

func (f *fakeService) ListAdapters() ([]app.AdapterRow, error) {
	return append([]app.AdapterRow(nil), f.adapters...), nil
}
func (f *fakeService) adapter(name string) (int, error) {
	for i, a := range f.adapters {
		if a.Name == name {
			return i, nil
		}
	}
	return -1, errors.New("adapter " + name + ": not found")
}
func (f *fakeService) RenameAdapter(oldName, newName string) error {
	if _, err := f.adapter(newName); err == nil {
		return errors.New("adapter " + newName + " already exists")
	}
	i, err := f.adapter(oldName)
	if err == nil {
		f.adapters[i].Name = newName
	}
	return err
}
func (f *fakeService) TagAdapter(name, tag string) error {
	i, err := f.adapter(name)
	if err == nil {
		f.adapters[i].Tags = append(f.adapters[i].Tags, tag)
	}
	return err
}
func (f *fakeService) DeleteAdapter(name string) error {
	i, err := f.adapter(name)
	if err == nil {
		f.adapters = append(f.adapters[:i], f.adapters[i+1:]...)
	}
	return err
}
func (f *fakeService) ListEvaluations() ([]app.EvalRow, error) {
	return append([]app.EvalRow(nil), f.evals...), nil
}
func (f *fakeService) EvalReport(path string) (app.EvalReport, error) {
	r, ok := f.reports[path]
	if !ok {
		return app.EvalReport{}, errors.New("open " + path + ": no such file or directory")
	}
	return r, nil
}

func (f *fakeService) ExportAdapter(name, kind string) (string, error) {
	f.exported = append(f.exported, name+":"+kind)
	return "exports/" + name + "-" + kind, nil
}

func (f *fakeService) ResumeRun(id string) (<-chan app.Progress, error) {
	f.resumed = append(f.resumed, id)
	if f.resumeErr != nil {
		return nil, f.resumeErr
	}
	ch := make(chan app.Progress, 1)
	ch <- app.Progress{RunID: id, Step: 7, Total: 10, Loss: 1.5}
	return ch, nil
}

func (f *fakeService) EvaluateRun(id string) (app.EvalRow, error) {
	f.evalued = append(f.evalued, id)
	if f.evalErr != nil {
		return app.EvalRow{}, f.evalErr
	}
	return f.evals[0], nil
}

func (f *fakeService) AdapterLabels(name string) ([]string, error) {
	return f.labels[name], nil
}

func (f *fakeService) DataInfo(path string) (app.DataInfo, error) {
	if f.dataErr != nil {
		return app.DataInfo{}, f.dataErr
	}
	if f.data.Rows > 0 {
		return f.data, nil
	}
	return app.DataInfo{Format: "classification", Rows: 600, Labels: []string{"account", "billing", "technical"}, Shares: []float64{0.34, 0.33, 0.33}}, nil
}

func (f *fakeService) PlanRun(cfg app.RunConfig) (app.PlanRow, error) { return f.plan, f.planErr }
func (f *fakeService) LaunchRun(cfg app.RunConfig) (string, <-chan app.Progress, error) {
	f.launched = append(f.launched, cfg)
	if f.launchCh == nil {
		f.launchCh = make(chan app.Progress, 4)
	}
	return "20261125-190000-" + cfg.Method + "-0001", f.launchCh, nil
}
func (f *fakeService) ModelFolders(root string) []string {
	var out []string
	for p, dir := range f.paths {
		if dir && strings.HasPrefix(p, root+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// PullModel streams a pull of 3 MB in two steps; the folder then exists
// (unless pullErr).
func (f *fakeService) PullModel(_ context.Context, spec, root string) <-chan app.PullProgress {
	f.pulled = append(f.pulled, spec)
	dir := root + "/" + spec[strings.LastIndex(spec, "/")+1:]
	ch := make(chan app.PullProgress, 3)
	ch <- app.PullProgress{Repo: spec, File: "model.safetensors", Done: 1 << 20, Total: 3 << 20}
	if f.pullErr != nil {
		ch <- app.PullProgress{Repo: spec, Finished: true, Err: f.pullErr}
	} else {
		f.paths[dir] = true
		ch <- app.PullProgress{Repo: spec, Finished: true, Dir: dir, Commit: "89abcdef0123456789abcdef"}
	}
	close(ch)
	return ch
}

func (f *fakeService) StatPath(path string) (exists, dir bool) {
	dir, exists = f.paths[path]
	return exists, dir
}

func (f *fakeService) Ask(_ context.Context, req app.Ask) <-chan app.Answer {
	f.asked = append(f.asked, req)
	ch := make(chan app.Answer, len(f.answers))
	for _, a := range f.answers {
		ch <- a
	}
	close(ch)
	return ch
}

func threeRuns() []app.RunRow {
	return []app.RunRow{
		{ID: "20261125-182700-sft-ab12", Method: "sft", Base: "Qwen2.5-0.5B-Instruct", Dataset: "creditmix", Status: "running", Best: "-", Age: 6 * time.Minute},
		{ID: "20261125-171500-kd-03f1", Method: "kd", Base: "SmolLM2-360M", Dataset: "creditmix", Status: "completed", Best: "f1 0.6800", Age: 71 * time.Minute},
		{ID: "20261124-090000-dpo-9c2e", Method: "dpo", Base: "Qwen2.5-0.5B-Instruct", Dataset: "invoice-pref", Status: "failed", Best: "-", Age: 33 * time.Hour},
	}
}

// newTestModel is the root at w×h with the messages applied, each command
// run synchronously one level deep (no ticks, no channels).
func newTestModel(svc Service, w, h int) Model {
	m := New(svc)
	m.ticks = false
	m = step(m, tea.WindowSizeMsg{Width: w, Height: h})
	g, ok := svc.GPUMemory()
	m = step(m, memMsg{svc.ResidentBytes(), g, ok})
	rows, err := svc.ListRuns()
	return stepRun(m, runsLoadedMsg{rows, err})
}

func step(m Model, msg tea.Msg) Model {
	nm, _ := m.Update(msg)
	return nm.(Model)
}

// stepRun applies msg and then the message of the command it returns, if
// that command answers at once (no ticks or channel waits).
func stepRun(m Model, msg tea.Msg) Model {
	nm, cmd := m.Update(msg)
	m = nm.(Model)
	if cmd == nil {
		return m
	}
	switch out := cmd().(type) {
	case nil:
		return m
	case tea.BatchMsg: // each command that answers at once; ticks are left
		return stepBatch(m, out, 3)
	default:
		return step(m, out)
	}
}

// stepBatch applies the messages of a batch's commands that answer at once,
// nested batches depth levels deep.
func stepBatch(m Model, batch tea.BatchMsg, depth int) Model {
	for _, c := range batch {
		msg, ok := quickMsg(c)
		if !ok {
			continue
		}
		if inner, nested := msg.(tea.BatchMsg); nested {
			if depth > 0 {
				m = stepBatch(m, inner, depth-1)
			}
			continue
		}
		m = step(m, msg)
	}
	return m
}

// quickMsg runs c and returns its message if it answers within 200 ms (a
// tick or a channel wait does not).
func quickMsg(c tea.Cmd) (tea.Msg, bool) {
	if c == nil {
		return nil, false
	}
	ch := make(chan tea.Msg, 1)
	go func() { ch <- c() }()
	select {
	case msg := <-ch:
		return msg, msg != nil
	case <-time.After(200 * time.Millisecond):
		return nil, false
	}
}

func keys(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updating() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./views -update` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden frame:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// checkFrame asserts the frame is exactly w×h cells.
func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) != h {
		t.Errorf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			t.Errorf("line %d is %d cells wide, want at most %d: %q", i+1, lipgloss.Width(l), w, l)
		}
	}
}

var sizes = []struct{ w, h int }{{80, 24}, {100, 30}}

func sizeName(name string, w, h int) string {
	return name + "-" + itoa(w) + "x" + itoa(h)
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestEmptyWorkspace(t *testing.T) {
	for _, s := range sizes {
		m := newTestModel(&fakeService{}, s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("empty", s.w, s.h), frame)
		m = step(m, keys("1"))
		frame = m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "No runs yet") {
			t.Errorf("empty Runs view:\n%s", frame)
		}
		golden(t, sizeName("runs-empty", s.w, s.h), frame)
	}
}

func TestRunsThree(t *testing.T) {
	for _, s := range sizes {
		m := newTestModel(&fakeService{runs: threeRuns()}, s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("runs", s.w, s.h), frame)
	}
}

func TestRunsFilterAndSort(t *testing.T) {
	m := newTestModel(&fakeService{runs: threeRuns()}, 100, 30)
	m = stepRun(m, keys("/"))
	for _, r := range "kd" {
		m = step(m, keys(string(r)))
	}
	if got := len(m.runs.shown); got != 1 || m.runs.shown[0].Method != "kd" {
		t.Fatalf("filter kd: %d runs shown: %+v", got, m.runs.shown)
	}
	m = step(m, keys("q")) // typed into the filter, does not quit
	if m.runs.filter.Value() != "kdq" {
		t.Errorf("filter = %q, want kdq", m.runs.filter.Value())
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	if len(m.runs.shown) != 3 {
		t.Fatalf("after esc: %d runs shown, want 3", len(m.runs.shown))
	}
	m = step(m, keys("s")) // sort by run id
	if got := m.runs.shown[0].ID; got != "20261124-090000-dpo-9c2e" {
		t.Errorf("sorted by run: first is %s", got)
	}
	golden(t, "runs-sorted-100x30", m.View())
}

func TestRunsDeleteConfirms(t *testing.T) {
	svc := &fakeService{runs: threeRuns()}
	m := newTestModel(svc, 80, 24)
	m = step(m, keys("d")) // the running run: refused
	if m.runs.confirm != "" || !strings.Contains(m.runs.note, "stop it first") {
		t.Fatalf("delete of a running run: confirm %q, note %q", m.runs.confirm, m.runs.note)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m = step(m, keys("d"))
	if m.runs.confirm != "20261125-171500-kd-03f1" {
		t.Fatalf("confirm = %q", m.runs.confirm)
	}
	golden(t, "runs-confirm-80x24", m.View())
	m = stepRun(m, keys("y")) // runDeletedMsg
	m = stepRun(m, runDeletedMsg{id: "20261125-171500-kd-03f1"})
	if len(svc.deleted) != 1 || len(m.runs.all) != 2 {
		t.Fatalf("deleted %v, %d runs listed", svc.deleted, len(m.runs.all))
	}
}

func syntheticSteps(id string, n, total int) []app.Progress {
	var out []app.Progress
	for i := 1; i <= n; i++ {
		out = append(out, app.Progress{RunID: id, Step: i, Total: total, Loss: 2.4/float64(1+i/4) + 0.3,
			LR: 2e-4 * float64(i) / float64(n), GradNorm: 1.2 - float64(i)/float64(2*n), TokensPerSec: 61,
			Elapsed: time.Duration(i) * 520 * time.Millisecond, RSS: 1300 << 20})
	}
	return out
}

func TestTrainMonitor(t *testing.T) {
	for _, s := range sizes {
		svc := &fakeService{runs: threeRuns()}
		m := newTestModel(svc, s.w, s.h)
		ch := make(chan app.Progress, 100)
		id := "20261125-182700-sft-ab12"
		m = step(m, WatchMsg{RunID: id, Ch: ch})
		if m.tab != TabTrain {
			t.Fatalf("WatchMsg: tab %d, want Train", m.tab)
		}
		m = step(m, ProgressMsg{Progress: app.Progress{RunID: id, Log: "600 rows · classification · 3 labels"}})
		for _, p := range syntheticSteps(id, 60, 200) {
			m = step(m, ProgressMsg{Progress: p})
			if p.Step%20 == 0 {
				m = step(m, ProgressMsg{Progress: app.Progress{RunID: id, Step: p.Step, Validation: true, ValLoss: p.Loss + 0.15}})
				m = step(m, ProgressMsg{Progress: app.Progress{RunID: id, Log: fmt.Sprintf("step %d: val_loss %.4f", p.Step, p.Loss+0.15)}})
			}
		}
		if m.train.last.Step != 60 || len(m.train.losses) != 60 || len(m.train.vals) != 3 {
			t.Fatalf("step %d, %d losses, %d validations: log lines or validations were taken for steps", m.train.last.Step, len(m.train.losses), len(m.train.vals))
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "val 0.6000") || !strings.Contains(frame, "• validation") || !strings.Contains(frame, "log step 60: val_loss 0.6000") {
			t.Errorf("no validation loss, marks or log tail:\n%s", frame)
		}
		golden(t, sizeName("train", s.w, s.h), frame)
	}
}

func TestTrainDone(t *testing.T) {
	m := newTestModel(&fakeService{}, 80, 24)
	id := "r1"
	m = step(m, WatchMsg{RunID: id, Ch: make(chan app.Progress)})
	for _, p := range syntheticSteps(id, 10, 10) {
		m = step(m, ProgressMsg{Progress: p})
	}
	nm, cmd := m.Update(ProgressMsg{Progress: app.Progress{RunID: id, Done: true, Err: errors.New("out of memory")}})
	m = nm.(Model)
	if cmd != nil {
		t.Error("after Done the view still waits on the channel")
	}
	if !m.train.done || !strings.Contains(m.View(), "failed: out of memory") {
		t.Errorf("done %v; frame:\n%s", m.train.done, m.View())
	}
}

func TestOpenRunningFromRuns(t *testing.T) {
	id := "20261125-182700-sft-ab12"
	svc := &fakeService{runs: threeRuns(), history: map[string][]app.Progress{id: syntheticSteps(id, 30, 0)}}
	m := newTestModel(svc, 80, 24)
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter}) // openRunMsg
	m = step(m, loadHistory(svc, id)())
	if m.train.done {
		t.Error("a running run opened as done")
	}
	if m.tab != TabTrain || m.train.runID != id || m.train.last.Step != 30 {
		t.Fatalf("tab %d, run %q, step %d", m.tab, m.train.runID, m.train.last.Step)
	}
	m = step(m, keys("c"))
	if len(svc.stopped) != 1 {
		t.Errorf("c did not stop the run")
	}
	golden(t, "train-history-80x24", m.View())
}

func TestTabsAndQuit(t *testing.T) {
	m := newTestModel(&fakeService{}, 80, 24)
	if m.tab != TabLaunch {
		t.Errorf("a new workspace opens on tab %d, want Launch", m.tab)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyTab})
	if m.tab != TabTrain {
		t.Errorf("tab: %d", m.tab)
	}
	for range 3 {
		m = step(m, tea.KeyMsg{Type: tea.KeyShiftTab})
	}
	if m.tab != TabAdapters {
		t.Errorf("shift+tab thrice from Train: %d", m.tab)
	}
	m = step(m, keys("5"))
	if m.tab != TabREPL {
		t.Errorf("5: %d", m.tab)
	}
	golden(t, "repl-tabs-80x24", m.View())
	_, cmd := m.Update(keys("q"))
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q does not quit")
	}
}

func TestResize(t *testing.T) {
	m := newTestModel(&fakeService{runs: threeRuns()}, 100, 30)
	for _, s := range []struct{ w, h int }{{80, 24}, {120, 40}, {60, 16}, {100, 30}} {
		m = step(m, tea.WindowSizeMsg{Width: s.w, Height: s.h})
		checkFrame(t, m.View(), s.w, s.h)
	}
	golden(t, "runs-resized-100x30", m.View())
	fresh := newTestModel(&fakeService{runs: threeRuns()}, 100, 30)
	if m.View() != fresh.View() {
		t.Error("a resize round trip changes the frame")
	}
}

func TestChart(t *testing.T) {
	lines := columnChart([]float64{3, 2, 1, 1, 0.5}, 1, 5, 20, 3)
	golden(t, "chart", strings.Join(lines, "\n")+"\n"+sparkline([]float64{1, 2, 3, 4, 5, 6, 7, 8}, 8)+"\n")
}

// TestWatchDrainsChannel follows a run through its channel: each ProgressMsg
// re-issues the wait until the Done value, after which nothing waits.
func TestWatchDrainsChannel(t *testing.T) {
	m := newTestModel(&fakeService{}, 80, 24)
	ch := make(chan app.Progress, 16)
	for _, p := range syntheticSteps("r1", 5, 5) {
		ch <- p
	}
	ch <- app.Progress{RunID: "r1", Done: true}
	close(ch)
	nm, cmd := m.Update(WatchMsg{RunID: "r1", Ch: ch})
	m = nm.(Model)
	n := 0
	for queue := []tea.Cmd{cmd}; len(queue) > 0; queue = queue[1:] {
		if queue[0] == nil {
			continue
		}
		msg := queue[0]()
		if batch, ok := msg.(tea.BatchMsg); ok {
			queue = append(queue, batch...)
			continue
		}
		if msg == nil {
			continue
		}
		if _, ok := msg.(ProgressMsg); ok {
			n++
		}
		nm, cmd = m.Update(msg)
		m = nm.(Model)
		queue = append(queue, cmd)
	}
	if n != 6 || !m.train.done || m.train.last.Step != 5 {
		t.Fatalf("drained %d messages; done %v at step %d", n, m.train.done, m.train.last.Step)
	}
	if !strings.Contains(m.View(), "finished") {
		t.Errorf("no finished note:\n%s", m.View())
	}
}

func TestOpenFinishedRun(t *testing.T) {
	m := newTestModel(&fakeService{runs: threeRuns()}, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if m.tab != TabTrain || !m.train.done || m.train.note != "run completed" {
		t.Fatalf("tab %d, done %v, note %q", m.tab, m.train.done, m.train.note)
	}
}

func TestFullHelpKeepsTheFrame(t *testing.T) {
	m := newTestModel(&fakeService{runs: threeRuns()}, 80, 24)
	m = step(m, keys("?"))
	frame := m.View()
	checkFrame(t, frame, 80, 24)
	golden(t, "runs-help-80x24", frame)
}

// TestQuitWithARunTrainingAsks: q while a run trains here asks first; s
// quits (the run is stopped with a checkpoint on the way out), k quits in
// headless mode, any other key stays.
func TestQuitWithARunTrainingAsks(t *testing.T) {
	svc := &fakeService{running: 1}
	m := New(svc)
	m.ticks = false
	quits := func(cmd tea.Cmd) bool {
		if cmd == nil {
			return false
		}
		_, ok := cmd().(tea.QuitMsg)
		return ok
	}
	next, cmd := m.Update(keys("q"))
	m = next.(Model)
	if quits(cmd) || !m.quitting || !strings.Contains(m.View(), "keep training headless") {
		t.Fatal("q with a run training should ask, not quit")
	}
	next, cmd = m.Update(keys("x"))
	m = next.(Model)
	if quits(cmd) || m.quitting {
		t.Fatal("another key should cancel the question")
	}
	next, _ = m.Update(keys("q"))
	next, cmd = next.(Model).Update(keys("k"))
	if !quits(cmd) || !next.(Model).Headless() {
		t.Fatal("k should quit headless")
	}
	next, _ = New(svc).Update(keys("q"))
	next, cmd = next.(Model).Update(keys("s"))
	if !quits(cmd) || next.(Model).Headless() {
		t.Fatal("s should quit and stop the run")
	}
	svc.running = 0
	if _, cmd := New(svc).Update(keys("q")); !quits(cmd) {
		t.Fatal("q with nothing training should quit at once")
	}
}

func TestRunsCompare(t *testing.T) {
	hist := func(losses ...float64) []app.Progress {
		var out []app.Progress
		for i, l := range losses {
			out = append(out, app.Progress{Step: i + 1, Total: len(losses), Loss: l, TokensPerSec: 100, Elapsed: time.Duration(i+1) * time.Second})
		}
		return out
	}
	for _, s := range sizes {
		svc := &fakeService{runs: threeRuns(), history: map[string][]app.Progress{
			"20261125-182700-sft-ab12": hist(2.4, 1.9, 1.2, 0.9),
			"20261125-171500-kd-03f1":  hist(2.6, 2.0, 1.6, 1.4, 1.1, 0.7),
		}}
		m := newTestModel(svc, s.w, s.h)
		m = step(m, keys(" "))
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
		m, cmd := stepCmd(m, func() tea.Msg { return keys("c") })
		m, _ = stepCmd(m, cmd)
		if m.runs.cmp == nil {
			t.Fatalf("no comparison:\n%s", m.View())
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		for _, want := range []string{"final loss", "0.9000", "0.7000", "lowest loss", "one scale 0.700–2.600"} {
			if !strings.Contains(frame, want) {
				t.Errorf("comparison lacks %q:\n%s", want, frame)
			}
		}
		golden(t, sizeName("runs-compare", s.w, s.h), frame)
		m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
		if m.runs.cmp != nil || m.tab != TabRuns {
			t.Error("esc did not return to the list")
		}
	}
	m := newTestModel(&fakeService{runs: threeRuns()}, 80, 24)
	m = step(m, keys("c"))
	if !strings.Contains(m.View(), "mark two runs with space") {
		t.Errorf("c without marks:\n%s", m.View())
	}
}

// On a machine with an NVIDIA GPU the top bar shows its memory (NVML).
func TestTopBarShowsVRAM(t *testing.T) {
	svc := &fakeService{runs: threeRuns(), gpu: app.GPU{Name: "NVIDIA RTX 4060", Used: 1536 << 20, Total: 8 << 30}}
	m := newTestModel(svc, 100, 30)
	frame := m.View()
	checkFrame(t, frame, 100, 30)
	if top := strings.SplitN(frame, "\n", 2)[0]; !strings.Contains(top, "VRAM 1.6 GB/8.6 GB · RSS 1.4 GB") {
		t.Errorf("top bar: %q", top)
	}
}

// r on a canceled or failed run resumes it and the Train view follows it; on
// another run it explains why not, and a refusal from the service shows.
func TestResumeFromRuns(t *testing.T) {
	svc := &fakeService{runs: append(threeRuns(), app.RunRow{ID: "20261123-080000-sft-dead", Method: "sft", Status: "canceled", Best: "-", Age: 50 * time.Hour})}
	m := newTestModel(svc, 80, 24)
	m = stepRun(m, keys("r")) // the running run
	if len(svc.resumed) != 0 || !strings.Contains(m.View(), "only a canceled or failed run resumes") {
		t.Fatalf("resumed %v:\n%s", svc.resumed, m.View())
	}
	for range 3 {
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	}
	m, cmd := stepCmd(m, func() tea.Msg { return keys("r") })
	m, cmd = stepCmd(m, cmd) // resumeMsg → ResumeRun
	m, _ = stepCmd(m, cmd)   // WatchMsg
	if len(svc.resumed) != 1 || svc.resumed[0] != "20261123-080000-sft-dead" || m.tab != TabTrain || m.train.runID != "20261123-080000-sft-dead" {
		t.Fatalf("resumed %v, tab %d, train %q", svc.resumed, m.tab, m.train.runID)
	}
	svc.resumeErr = errors.New("20261123-080000-sft-dead has no checkpoint to resume from: launch it again")
	m = step(m, keys("1"))
	m, cmd = stepCmd(m, func() tea.Msg { return keys("r") })
	m, cmd = stepCmd(m, cmd)
	m, _ = stepCmd(m, cmd)
	if f := m.View(); !strings.Contains(f, "cannot resume:") {
		t.Errorf("refusal not shown:\n%s", f)
	}
}

// A run's end says what can be done next, whole: a failure before any
// step offers no resume (there is no checkpoint), a long error wraps with
// its advice, and only a run e can score says e evaluates it.
func TestTrainEndSaysWhatsNext(t *testing.T) {
	end := func(p app.Progress, steps int) string {
		m := newTestModel(&fakeService{}, 80, 24)
		m = step(m, WatchMsg{RunID: "r1", Ch: make(chan app.Progress)})
		for _, s := range syntheticSteps("r1", steps, 10) {
			m = step(m, ProgressMsg{Progress: s})
		}
		nm, _ := m.Update(ProgressMsg{Progress: p})
		frame := nm.(Model).View()
		checkFrame(t, frame, 80, 24)
		return frame
	}
	long := errors.New("models/broken/config.json: invalid character 'g' looking for beginning of value: re-download the model folder")
	if f := end(app.Progress{RunID: "r1", Done: true, Err: long}, 0); strings.Contains(f, "resumes") || !strings.Contains(f, "re-download the model folder") {
		t.Errorf("a failure before any step:\n%s", f)
	}
	if f := end(app.Progress{RunID: "r1", Done: true, Err: errors.New("out of memory")}, 5); strings.Contains(f, "resumes") {
		t.Errorf("a failure after steps but before any checkpoint:\n%s", f)
	}
	if f := end(app.Progress{RunID: "r1", Done: true, Err: errors.New("out of memory"), Resumable: true}, 5); !strings.Contains(f, "r resumes from its last checkpoint") {
		t.Errorf("a failure after steps:\n%s", f)
	}
	if f := end(app.Progress{RunID: "r1", Done: true}, 5); strings.Contains(f, "e evaluates it") || !strings.Contains(f, "evaluate it from the CLI") {
		t.Errorf("a finished run e cannot score:\n%s", f)
	}
	if f := end(app.Progress{RunID: "r1", Done: true, Evaluable: true}, 5); !strings.Contains(f, "finished · e evaluates it") {
		t.Errorf("a finished classification run:\n%s", f)
	}
}
