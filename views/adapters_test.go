package views

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

func threeAdapters() []app.AdapterRow {
	return []app.AdapterRow{
		{Name: "sft-creditmix-0412", Base: "Qwen2.5-0.5B-Instruct", Method: "sft", Task: "classification",
			Metrics: "macro_f1 0.713 · accuracy 0.717", Tags: []string{"prod"}, Age: 6 * time.Minute},
		{Name: "kd-creditmix-0411", Base: "SmolLM2-360M", Method: "kd", Task: "classification",
			Metrics: "macro_f1 0.68", Age: 71 * time.Minute, RunID: "20261125-171500-kd-03f1"},
		{Name: "dpo-invoices-0410", Base: "Qwen2.5-0.5B-Instruct", Method: "dpo", Task: "idp",
			Metrics: "-", Tags: []string{"exp", "v2"}, Age: 33 * time.Hour},
	}
}

// adaptersModel is the root on the Adapters tab with the adapters loaded.
func adaptersModel(svc *fakeService, w, h int) Model {
	m := newTestModel(svc, w, h)
	return stepRun(m, keys("6"))
}

func TestAdaptersEmpty(t *testing.T) {
	for _, s := range sizes {
		m := adaptersModel(&fakeService{}, s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("adapters-empty", s.w, s.h), frame)
	}
}

func TestAdaptersThree(t *testing.T) {
	for _, s := range sizes {
		m := adaptersModel(&fakeService{adapters: threeAdapters()}, s.w, s.h)
		if m.tab != TabAdapters || len(m.adapters.all) != 3 {
			t.Fatalf("tab %d, %d adapters", m.tab, len(m.adapters.all))
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("adapters", s.w, s.h), frame)
	}
}

func typeText(m Model, s string) Model {
	for _, r := range s {
		m = step(m, keys(string(r)))
	}
	return m
}

func TestAdaptersRename(t *testing.T) {
	for _, s := range sizes {
		svc := &fakeService{adapters: threeAdapters()}
		m := adaptersModel(svc, s.w, s.h)
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
		m = stepRun(m, keys("r"))
		if m.adapters.mode != "rename" || m.adapters.target != "kd-creditmix-0411" {
			t.Fatalf("mode %q target %q", m.adapters.mode, m.adapters.target)
		}
		for range len("0411") {
			m = step(m, tea.KeyMsg{Type: tea.KeyBackspace})
		}
		m = typeText(m, "best-q") // q is typed, not quit
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("adapters-rename", s.w, s.h), frame)
		m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter}) // adapterDoneMsg
		m = stepRun(m, adapterDoneMsg{action: "rename", name: "kd-creditmix-0411", arg: "kd-creditmix-best-q"})
		if svc.adapters[1].Name != "kd-creditmix-best-q" || m.adapters.all[1].Name != "kd-creditmix-best-q" {
			t.Fatalf("after rename: %+v", m.adapters.all)
		}
	}
}

func TestAdaptersRenameErrorInPlace(t *testing.T) {
	svc := &fakeService{adapters: threeAdapters()}
	m := adaptersModel(svc, 80, 24)
	m = stepRun(m, keys("r"))
	m.adapters.input.SetValue("kd-creditmix-0411")
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if !m.adapters.noteBad || !strings.Contains(m.View(), "already exists") {
		t.Fatalf("no error shown:\n%s", m.View())
	}
	if m.adapters.mode != "rename" || m.adapters.input.Value() != "kd-creditmix-0411" {
		t.Fatalf("the prompt did not reopen with the typed name: mode %q value %q", m.adapters.mode, m.adapters.input.Value())
	}
	checkFrame(t, m.View(), 80, 24)
	golden(t, "adapters-rename-error-80x24", m.View())
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	if m.adapters.capturing() {
		t.Error("esc left the prompt open")
	}
}

func TestFullHelpOnNewViews(t *testing.T) {
	for _, tab := range []string{"4", "6"} {
		m := stepRun(newTestModel(&fakeService{adapters: threeAdapters()}, 80, 24), keys(tab))
		m = step(m, keys("?"))
		checkFrame(t, m.View(), 80, 24)
	}
}

func TestAdaptersTagAndDelete(t *testing.T) {
	svc := &fakeService{adapters: threeAdapters()}
	m := adaptersModel(svc, 100, 30)
	m = stepRun(m, keys("t"))
	m = typeText(m, "best")
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	m = stepRun(m, adapterDoneMsg{action: "tag", name: "sft-creditmix-0412", arg: "best"})
	if got := strings.Join(m.adapters.all[0].Tags, ","); got != "prod,best" {
		t.Fatalf("tags %q", got)
	}
	m = step(m, keys("d"))
	if !m.adapters.confirm || !strings.Contains(m.View(), "y/n") {
		t.Fatal("d asks no confirmation")
	}
	m = step(m, keys("n"))
	if len(svc.adapters) != 3 {
		t.Fatal("n deleted")
	}
	m = step(m, keys("d"))
	m = stepRun(m, keys("y"))
	m = stepRun(m, adapterDoneMsg{action: "delete", name: "sft-creditmix-0412"})
	if len(svc.adapters) != 2 || len(m.adapters.all) != 2 {
		t.Fatalf("after delete: %d / %d", len(svc.adapters), len(m.adapters.all))
	}
}

// x asks PEFT, merged, GGUF or 4-bit GGUF; the answer exports in a command and the outcome
// shows; any other key cancels.
func TestAdaptersExport(t *testing.T) {
	svc := &fakeService{adapters: threeAdapters()}
	m := adaptersModel(svc, 80, 24)
	m = step(m, keys("x"))
	// Every choice visible at 80 columns.
	if f := m.View(); !strings.Contains(f, "export: p PEFT · m merged HF · g GGUF · 4 GGUF q4_k_m · other keys cancel") {
		t.Fatalf("no export choice:\n%s", f)
	}
	m = step(m, keys("q")) // cancels the choice; does not quit
	if m.adapters.export || len(svc.exported) != 0 {
		t.Fatalf("q did not cancel the export: %v", svc.exported)
	}
	m = step(m, keys("x"))
	m, cmd := stepCmd(m, func() tea.Msg { return keys("m") })
	m, _ = stepCmd(m, cmd)
	if len(svc.exported) != 1 || svc.exported[0] != "sft-creditmix-0412:merged" {
		t.Fatalf("exported %v", svc.exported)
	}
	if f := m.View(); !strings.Contains(f, "exported sft-creditmix-0412 to exports/sft-creditmix-0412-merged") {
		t.Errorf("outcome not shown:\n%s", f)
	}
	// 4: GGUF at llama.cpp's 4-bit mix.
	m = step(m, keys("x"))
	m, cmd = stepCmd(m, func() tea.Msg { return keys("4") })
	stepCmd(m, cmd)
	if len(svc.exported) != 2 || svc.exported[1] != "sft-creditmix-0412:gguf-q4_k_m" {
		t.Fatalf("exported %v", svc.exported)
	}
}

// x on a finished run opens the Adapters view on the adapter that run
// registered, its export choice asked; a running run, or one with no
// adapter, says why not.
func TestRunsExport(t *testing.T) {
	svc := &fakeService{runs: threeRuns(), adapters: threeAdapters()}
	m := newTestModel(svc, 100, 30)
	m = step(m, keys("x")) // the first run is still running
	if !strings.Contains(m.View(), "export it when it has finished") || m.tab != TabRuns {
		t.Fatalf("x on a running run:\n%s", m.View())
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m, cmd := stepCmd(m, func() tea.Msg { return keys("x") })
	for cmd != nil && !m.adapters.export {
		m, cmd = stepCmd(m, cmd)
	}
	if m.tab != TabAdapters || m.adapters.target != "kd-creditmix-0411" {
		t.Fatalf("tab %v, export target %q", m.tab, m.adapters.target)
	}
	if f := m.View(); !strings.Contains(f, "g GGUF") {
		t.Fatalf("no export choice:\n%s", f)
	}
	m, cmd = stepCmd(m, func() tea.Msg { return keys("g") })
	m, _ = stepCmd(m, cmd)
	if len(svc.exported) != 1 || svc.exported[0] != "kd-creditmix-0411:gguf" {
		t.Fatalf("exported %v", svc.exported)
	}

	// The failed run, the last, registered no adapter.
	m = stepRun(m, keys("1"))
	m = step(m, tea.KeyMsg{Type: tea.KeyEnd})
	m, cmd = stepCmd(m, func() tea.Msg { return keys("x") })
	for i := 0; cmd != nil && i < 5; i++ {
		m, cmd = stepCmd(m, cmd)
	}
	if !strings.Contains(m.View(), "has no registered adapter") || m.adapters.export {
		t.Errorf("x on a run without an adapter:\n%s", m.View())
	}
}

// Without colour the row under the cursor still shows: a ▸ before it.
func TestAdaptersCursorShowsWithoutColour(t *testing.T) {
	m := adaptersModel(&fakeService{adapters: threeAdapters()}, 80, 24)
	checkCursor(t, m.View(), "sft-creditmix")
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	checkCursor(t, m.View(), "dpo-invoices")
}

// TestAdaptersShortBase: a base recorded as an absolute path (runs record
// them so) shows its folder's name, as Runs does.
func TestAdaptersShortBase(t *testing.T) {
	ads := threeAdapters()
	ads[0].Base = "/home/ann/work/models/qwen2.5-0.5b"
	m := adaptersModel(&fakeService{adapters: ads}, 120, 40)
	if frame := m.View(); !strings.Contains(frame, "qwen2.5-0.5b") || strings.Contains(frame, "/home/ann") {
		t.Errorf("base column:\n%s", frame)
	}
}
