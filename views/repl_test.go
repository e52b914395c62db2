package views

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

func openREPL(svc *fakeService, w, h int) Model {
	return stepRun(newTestModel(svc, w, h), keys("5"))
}

func TestREPLEmpty(t *testing.T) {
	for _, s := range sizes {
		m := openREPL(launchService(), s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		golden(t, sizeName("repl", s.w, s.h), frame)
	}
}

// drain applies a command's messages until the answer channel is done.
func drain(t *testing.T, m Model, cmd tea.Cmd) Model {
	t.Helper()
	for i := 0; cmd != nil && i < 100; i++ {
		var nm tea.Model
		nm, cmd = m.Update(cmd())
		m = nm.(Model)
	}
	return m
}

func TestREPLClassify(t *testing.T) {
	for _, s := range sizes {
		svc := launchService()
		svc.adapters = []app.AdapterRow{{Name: "tickets-sft", Path: "runs/r1/adapter"}}
		svc.answers = []app.Answer{{Done: true, Label: "billing", Probs: map[string]float64{"billing": 0.82, "bug": 0.13, "other": 0.05},
			RawProbs: map[string]float64{"billing": 0.52, "bug": 0.41, "other": 0.07}, Margin: 0.69}}
		m := openREPL(svc, s.w, s.h)
		m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // enter the form, on the model
		m = step(m, tea.KeyMsg{Type: tea.KeyTab})  // adapter (tab moves on from a text field)
		m = step(m, tea.KeyMsg{Type: tea.KeyRight})
		m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // task
		m = step(m, tea.KeyMsg{Type: tea.KeyRight})
		m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // labels
		m = step(m, keys("billing,bug,other"))
		m = step(m, tea.KeyMsg{Type: tea.KeyTab}) // input
		m = step(m, keys("I was charged twice"))
		nm, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
		m = drain(t, nm.(Model), cmd)
		if len(svc.asked) != 1 {
			t.Fatalf("asked %d times", len(svc.asked))
		}
		q := svc.asked[0]
		if q.Task != "classify" || q.Adapter != "runs/r1/adapter" || len(q.Labels) != 3 || q.Input != "I was charged twice" {
			t.Errorf("ask: %+v", q)
		}
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "0.820") || !strings.Contains(frame, "margin 0.690") || !strings.Contains(frame, "billing 0.520") {
			t.Errorf("no calibrated bars, margin or raw probabilities:\n%s", frame)
		}
		golden(t, sizeName("repl-classify", s.w, s.h), frame)
		m = step(m, tea.KeyMsg{Type: tea.KeyUp})
		if got := m.repl.inputs[rInput].Value(); got != "I was charged twice" {
			t.Errorf("↑ recalled %q", got)
		}
	}
}

func TestREPLStreamsGeneration(t *testing.T) {
	svc := launchService()
	svc.answers = []app.Answer{{Piece: "Once"}, {Piece: " upon"}, {Done: true, Tokens: 2}}
	m := openREPL(svc, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	for range 4 { // adapter, task, (no options), input
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	}
	m = step(m, keys("Tell me"))
	nm, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	m = drain(t, nm.(Model), cmd)
	if m.repl.text != "Once upon" || m.repl.busy {
		t.Errorf("streamed %q, busy %v", m.repl.text, m.repl.busy)
	}
}

// Choosing an adapter trained on classification data fills the labels it
// was trained on; labels the user typed are kept.
func TestREPLOffersTheAdapterLabels(t *testing.T) {
	svc := launchService()
	svc.adapters = []app.AdapterRow{{Name: "tickets-sft", Path: "runs/r1/adapter", Task: "classification"}}
	svc.labels = map[string][]string{"tickets-sft": {"account", "billing", "technical"}}
	m := openREPL(svc, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // into the form, on the model
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // adapter
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyRight})
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // task: classify
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyRight})
	if got := m.repl.inputs[rParam].Value(); got != "account,billing,technical" {
		t.Fatalf("labels %q", got)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // labels: the user's own
	m = step(m, keys(",other"))
	m = step(m, tea.KeyMsg{Type: tea.KeyShiftTab})
	m = step(m, tea.KeyMsg{Type: tea.KeyUp}) // adapter: none, then back
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyLeft})
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyRight})
	if got := m.repl.inputs[rParam].Value(); got != "account,billing,technical,other" {
		t.Errorf("the user's labels were replaced: %q", got)
	}
}

// A classify answer whose probabilities are NaN or out of range (a broken
// adapter's logits) draws empty or full bars; it used to panic on a
// negative repeat count and take the workstation down.
func TestProbBarsTakeBadProbabilities(t *testing.T) {
	nan := 0.0
	nan /= nan
	a := &app.Answer{Label: "a", Probs: map[string]float64{"a": nan, "b": 1.7, "c": -0.2}}
	for _, w := range []int{0, 10, 80} {
		out := probBars(DefaultStyles(), a, w)
		if !strings.Contains(out, "NaN") || !strings.Contains(out, "1.700") {
			t.Errorf("width %d: %q", w, out)
		}
	}
}

// In the REPL form only a text field takes every key: on the adapter and
// task choices ?, 1–6 and q act as everywhere else; the help says how to
// leave the form.
func TestREPLGlobalKeysOffTextFields(t *testing.T) {
	m := openREPL(launchService(), 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // into the form: the model
	if bar := lastLine(m.View()); !strings.Contains(bar, "esc leave") {
		t.Errorf("the help does not say how to leave the form: %q", bar)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // the adapter: a choice
	if m.repl.focus != rAdapter {
		t.Fatalf("focus %d", m.repl.focus)
	}
	m = step(m, keys("?"))
	if !m.help.ShowAll {
		t.Error("? on a choice did not open the help")
	}
	m = step(m, keys("?"))
	m = step(m, keys("1"))
	if m.tab != TabRuns {
		t.Fatalf("1 on a choice: tab %d", m.tab)
	}
	m = step(m, keys("5"))
	if _, cmd := m.Update(keys("q")); !quits(cmd) {
		t.Error("q on a choice does not quit")
	}
	for range 3 { // task, (no options for generate), input
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	}
	m = step(m, keys("q1?"))
	if m.tab != TabREPL || m.help.ShowAll || m.repl.inputs[rInput].Value() != "q1?" {
		t.Errorf("typing in the input: tab %d, help %v, input %q", m.tab, m.help.ShowAll, m.repl.inputs[rInput].Value())
	}
}

// An answer taller than the screen shows its end (whether the extraction
// satisfies the schema), says what is above, and pgup/pgdn scroll it.
func TestREPLScrollsALongAnswer(t *testing.T) {
	svc := launchService()
	var js []string
	for i := range 60 {
		js = append(js, fmt.Sprintf("  \"field_%02d\": %d,", i, i))
	}
	svc.answers = []app.Answer{{Done: true, JSON: "{\n" + strings.Join(js, "\n") + "\n}", Valid: false}}
	m := openREPL(svc, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	for range 4 {
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	}
	m = step(m, keys("an invoice"))
	nm, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	m = drain(t, nm.(Model), cmd)
	frame := m.View()
	checkFrame(t, frame, 80, 24)
	if !strings.Contains(frame, "does not satisfy the schema") || !strings.Contains(frame, "lines above") || strings.Contains(frame, "field_00") {
		t.Fatalf("the end of a long answer:\n%s", frame)
	}
	for range 10 {
		m = step(m, tea.KeyMsg{Type: tea.KeyPgUp})
	}
	if frame = m.View(); !strings.Contains(frame, "field_00") || strings.Contains(frame, "does not satisfy") {
		t.Errorf("after pgup, the answer's start:\n%s", frame)
	}
}
