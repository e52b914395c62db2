package views

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

// cursorRows are the lines of frame that a list marks as its cursor's row.
func cursorRows(frame string) []string {
	var out []string
	for _, l := range strings.Split(frame, "\n") {
		if strings.HasPrefix(l, " ▸") {
			out = append(out, l)
		}
	}
	return out
}

// checkCursor asserts that frame (drawn without colour, as with NO_COLOR)
// marks exactly one row, the one holding want.
func checkCursor(t *testing.T, frame, want string) {
	t.Helper()
	rows := cursorRows(frame)
	if len(rows) != 1 || !strings.Contains(rows[0], want) {
		t.Errorf("want one row marked ▸, holding %q; marked %q:\n%s", want, rows, frame)
	}
}

// Without colour the row under the cursor still shows: a ▸ before it.
func TestRunsCursorShowsWithoutColour(t *testing.T) {
	m := newTestModel(&fakeService{runs: threeRuns()}, 80, 24)
	checkCursor(t, m.View(), "182700-sft-ab12")
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	checkCursor(t, m.View(), "171500-kd-03f1")
	m = step(m, keys(" ")) // marked for comparison, and under the cursor
	checkCursor(t, m.View(), "▸✓")
}

func sameDayRuns() []app.RunRow {
	return []app.RunRow{
		{ID: "20261127-121742-sft-ca48", Method: "sft", Base: "demo", Dataset: "tickets", Status: "completed", Best: "val_loss 0.0412", Age: 2 * time.Minute},
		{ID: "20261127-121658-dpo-08df", Method: "dpo", Base: "demo", Dataset: "preferences", Status: "failed", Best: "-", Age: 3 * time.Minute},
		{ID: "20261127-121203-sft-f9a0", Method: "sft", Base: "demo", Dataset: "tickets", Status: "completed", Best: "val_loss 0.0398", Age: 8 * time.Minute},
		{ID: "20261127-121043-sft-1082", Method: "sft", Base: "demo", Dataset: "tickets", Status: "canceled", Best: "-", Age: 9 * time.Minute},
	}
}

// Runs of one day differ in their time and suffix: at 80 columns the id
// is cut in the middle, keeping them; at 120 the ids and "best" are whole.
func TestRunsIDsTellRunsApart(t *testing.T) {
	for _, s := range []struct {
		w, h int
		want []string
	}{
		{80, 24, []string{"121742-sft-ca48", "121658-dpo-08df", "121203-sft-f9a0", "121043-sft-1082"}},
		{100, 30, []string{"20261127-121742-sft-ca48", "20261127-121043-sft-1082", "vloss 0.0412"}},
		{120, 40, []string{"20261127-121742-sft-ca48", "20261127-121658-dpo-08df", "20261127-121203-sft-f9a0", "20261127-121043-sft-1082", "vloss 0.0412", "vloss 0.0398"}},
	} {
		m := newTestModel(&fakeService{runs: sameDayRuns()}, s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		for _, w := range s.want {
			if !strings.Contains(frame, w) {
				t.Errorf("%dx%d: no %q:\n%s", s.w, s.h, w, frame)
			}
		}
	}
}

func TestCutRunID(t *testing.T) {
	const id = "20261125-182700-sft-ab12"
	for _, c := range []struct {
		n    int
		want string
	}{
		{30, id},
		{24, id},
		{21, "2026…-182700-sft-ab12"},
		{19, "…25-182700-sft-ab12"},
		{16, "…182700-sft-ab12"},
		{8, "…ft-ab12"},
		{1, "…"},
		{0, ""},
	} {
		if got := cutRunID(id, c.n); got != c.want {
			t.Errorf("cutRunID(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

// esc on the list drops a filter typed before (enter kept it).
func TestRunsEscClearsTheFilter(t *testing.T) {
	m := newTestModel(&fakeService{runs: sameDayRuns()}, 80, 24)
	m = stepRun(m, keys("/"))
	m = step(m, keys("f"))
	m = step(m, keys("9"))
	m = step(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(m.runs.shown) != 1 || m.runs.filter.Focused() {
		t.Fatalf("after / f 9 enter: %d shown, typing %v", len(m.runs.shown), m.runs.filter.Focused())
	}
	if f := m.View(); !strings.Contains(f, "esc clears the filter") {
		t.Errorf("the kept filter does not say how to drop it:\n%s", f)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	if len(m.runs.shown) != 4 || m.runs.filter.Value() != "" || m.tab != TabRuns {
		t.Errorf("after esc: %d shown, filter %q, tab %d", len(m.runs.shown), m.runs.filter.Value(), m.tab)
	}
}

// TestRunsShortNames: the base and data columns show the parts that tell
// runs apart, not the paths' common prefixes.
func TestRunsShortNames(t *testing.T) {
	for in, want := range map[string]string{"models/demo": "demo", "Qwen/Qwen2.5-0.5B-Instruct": "Qwen2.5-0.5B-Instruct", "m/": "m", "base": "base"} {
		if got := shortBase(in); got != want {
			t.Errorf("shortBase(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"examples/tickets/train.jsonl": "tickets/train", "/data/x/creditmix.csv": "x/creditmix", "train.jsonl": "train"} {
		if got := shortData(in); got != want {
			t.Errorf("shortData(%q) = %q, want %q", in, got, want)
		}
	}
}
