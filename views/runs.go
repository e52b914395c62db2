package views

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

type runsKeys struct {
	Filter, Sort, Open, Delete, Evaluate, Resume, Export, Mark, Compare, Back, Refresh, Up, Down key.Binding
}

func (k runsKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Filter, k.Sort, k.Open, k.Evaluate, k.Compare, k.Delete}
}

func (k runsKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.Open, k.Back}, {k.Filter, k.Sort, k.Evaluate, k.Resume, k.Export, k.Delete, k.Refresh}, {k.Mark, k.Compare}}
}

var defaultRunsKeys = runsKeys{
	Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
	Sort:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
	Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
	Delete:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "delete")),
	Evaluate: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "evaluate")),
	Mark:     key.NewBinding(key.WithKeys(" "), key.WithHelp("space", "mark")),
	Compare:  key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "compare two")),
	Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
	Refresh:  key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "refresh")),
	Resume:   key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "resume")),
	Export:   key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "export")),
	Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
	Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
}

// runsLoadedMsg carries the runs that a loadRuns command read.
type runsLoadedMsg struct {
	rows []app.RunRow
	err  error
}

// runDeletedMsg reports a DeleteRun command's outcome.
type runDeletedMsg struct {
	id  string
	err error
}

// resumeMsg asks the root to resume a stopped run from its checkpoint.
type resumeMsg struct{ id string }

// resumeFailedMsg says why a run did not resume.
type resumeFailedMsg struct {
	id  string
	err error
}

func resumeRun(svc Service, id string) tea.Cmd {
	return func() tea.Msg {
		ch, err := svc.ResumeRun(id)
		if err != nil {
			return resumeFailedMsg{id, err}
		}
		return WatchMsg{RunID: id, Ch: ch}
	}
}

// exportRunMsg asks the root to export a run's adapter from the Adapters
// view.
type exportRunMsg struct{ id string }

// openRunMsg asks the root to show a run in the Train view.
type openRunMsg struct {
	id     string
	status string
}

func loadRuns(svc Service) tea.Cmd {
	return func() tea.Msg {
		rows, err := svc.ListRuns()
		return runsLoadedMsg{rows, err}
	}
}

func deleteRun(svc Service, id string) tea.Cmd {
	return func() tea.Msg { return runDeletedMsg{id, svc.DeleteRun(id)} }
}

// sortKeys are the columns that `s` cycles through; age is the store's
// order, newest first.
var sortKeys = []string{"age", "run", "method", "status", "best"}

// runsView lists the recorded runs.
type runsView struct {
	keys    runsKeys
	all     []app.RunRow
	shown   []app.RunRow
	loaded  bool
	err     error
	note    string // the outcome of the last action
	table   table.Model
	filter  textinput.Model
	sortBy  int
	confirm string   // the run awaiting a y/n to delete
	marked  []string // runs marked for comparison, oldest first
	cmp     *runComparison
}

func newRunsView() runsView {
	ti := newTextInput()
	ti.Prompt = "/ "
	ti.Placeholder = "filter by id, method, base, data or status"
	t := table.New(table.WithFocused(true))
	st := table.DefaultStyles()
	st.Header = st.Header.BorderStyle(lipgloss.NormalBorder()).BorderBottom(true).Bold(true)
	st.Selected = st.Selected.Bold(true).Foreground(accent)
	t.SetStyles(st)
	return runsView{keys: defaultRunsKeys, table: t, filter: ti}
}

// capturing reports whether the view takes every key (typing a filter or
// answering a confirmation), so the root must not act on them.
func (v runsView) capturing() bool { return v.filter.Focused() || v.confirm != "" }

func (v runsView) update(ctx *Context, msg tea.Msg) (runsView, tea.Cmd) {
	switch msg := msg.(type) {
	case runsLoadedMsg:
		v.loaded, v.err = true, msg.err
		if msg.err == nil {
			v.all = msg.rows
		}
		v.apply(ctx)
		return v, nil
	case runDeletedMsg:
		if msg.err != nil {
			v.note = "delete failed: " + msg.err.Error()
			return v, nil
		}
		v.note = "removed " + msg.id
		return v, loadRuns(ctx.Svc)
	case runsCompareReady:
		if msg.err != nil {
			v.note = "cannot compare: " + msg.err.Error()
			return v, nil
		}
		v.cmp, v.note = &msg.cmp, ""
		return v, nil
	case tea.KeyMsg:
		return v.key(ctx, msg)
	}
	return v, nil
}

// compare starts comparing the two marked runs, or the one marked and the
// one under the cursor.
func (v runsView) compare(ctx *Context) (runsView, tea.Cmd) {
	var cursor *app.RunRow
	if r, ok := v.selected(); ok {
		cursor = &r
	}
	rows, want := markedPair(v.marked, cursor, v.all, func(r app.RunRow) string { return r.ID })
	if want != 2 {
		v.note = "mark two runs with space, then c compares them"
		return v, nil
	}
	if len(rows) != 2 {
		v.marked, v.note = nil, "a marked run is gone: mark two again"
		return v, nil
	}
	v.note = "comparing " + rows[0].ID + " with " + rows[1].ID + "…"
	return v, loadRunComparison(ctx.Svc, rows[0], rows[1])
}

func (v runsView) key(ctx *Context, msg tea.KeyMsg) (runsView, tea.Cmd) {
	if v.confirm != "" {
		id := v.confirm
		v.confirm = ""
		if s := msg.String(); s == "y" || s == "Y" {
			v.note = "removing " + id + "…"
			return v, deleteRun(ctx.Svc, id)
		}
		v.note = "kept " + id
		return v, nil
	}
	if v.filter.Focused() {
		switch msg.Type {
		case tea.KeyEnter:
			v.filter.Blur()
		case tea.KeyEsc:
			v.filter.Blur()
			v.filter.SetValue("")
		default:
			var cmd tea.Cmd
			v.filter, cmd = editField(v.filter, msg)
			v.apply(ctx)
			return v, cmd
		}
		v.apply(ctx)
		return v, nil
	}
	if v.cmp != nil {
		if key.Matches(msg, v.keys.Back) {
			v.cmp = nil
		}
		return v, nil
	}
	switch {
	case key.Matches(msg, v.keys.Back):
		if v.filter.Value() != "" { // esc drops the filter that narrows the list
			v.filter.SetValue("")
			v.apply(ctx)
		}
		return v, nil
	case key.Matches(msg, v.keys.Mark):
		if r, ok := v.selected(); ok {
			v.marked = toggleMark(v.marked, r.ID)
			v.apply(ctx)
		}
		return v, nil
	case key.Matches(msg, v.keys.Compare):
		return v.compare(ctx)
	case key.Matches(msg, v.keys.Filter):
		v.note = ""
		return v, v.filter.Focus()
	case key.Matches(msg, v.keys.Sort):
		v.sortBy = (v.sortBy + 1) % len(sortKeys)
		v.apply(ctx)
		return v, nil
	case key.Matches(msg, v.keys.Refresh):
		return v, loadRuns(ctx.Svc)
	case key.Matches(msg, v.keys.Open):
		if r, ok := v.selected(); ok {
			return v, func() tea.Msg { return openRunMsg{r.ID, r.Status} }
		}
		return v, nil
	case key.Matches(msg, v.keys.Evaluate):
		if r, ok := v.selected(); ok {
			if r.Active() {
				v.note = fmt.Sprintf("%s is %s: evaluate it when it has finished", r.ID, r.Status)
				return v, nil
			}
			return v, func() tea.Msg { return evaluateMsg{r.ID} }
		}
		return v, nil
	case key.Matches(msg, v.keys.Resume):
		if r, ok := v.selected(); ok {
			if r.Status != "canceled" && r.Status != "failed" {
				v.note = fmt.Sprintf("%s is %s: only a canceled or failed run resumes", r.ID, statusLabel(r.Status))
				return v, nil
			}
			return v, func() tea.Msg { return resumeMsg{r.ID} }
		}
		return v, nil
	case key.Matches(msg, v.keys.Export):
		if r, ok := v.selected(); ok {
			if r.Active() {
				v.note = fmt.Sprintf("%s is %s: export it when it has finished", r.ID, r.Status)
				return v, nil
			}
			return v, func() tea.Msg { return exportRunMsg{r.ID} }
		}
		return v, nil
	case key.Matches(msg, v.keys.Delete):
		if r, ok := v.selected(); ok {
			if r.Active() {
				v.note = fmt.Sprintf("%s is %s: stop it first", r.ID, r.Status)
			} else {
				v.confirm, v.note = r.ID, ""
			}
		}
		return v, nil
	}
	var cmd tea.Cmd
	v.table, cmd = v.table.Update(msg)
	return v, cmd
}

func (v runsView) selected() (app.RunRow, bool) {
	i := v.table.Cursor()
	if i < 0 || i >= len(v.shown) {
		return app.RunRow{}, false
	}
	return v.shown[i], true
}

// apply filters and sorts the runs into the table and sizes it.
func (v *runsView) apply(ctx *Context) {
	q := strings.ToLower(strings.TrimSpace(v.filter.Value()))
	v.shown = v.shown[:0]
	for _, r := range v.all {
		if q == "" || strings.Contains(strings.ToLower(strings.Join([]string{r.ID, r.Method, r.Base, r.Dataset, r.Status}, " ")), q) {
			v.shown = append(v.shown, r)
		}
	}
	by := sortKeys[v.sortBy]
	slices.SortStableFunc(v.shown, func(a, b app.RunRow) int {
		switch by {
		case "run":
			return strings.Compare(a.ID, b.ID)
		case "method":
			return strings.Compare(a.Method, b.Method)
		case "status":
			return strings.Compare(a.Status, b.Status)
		case "best":
			return strings.Compare(b.Best, a.Best)
		}
		return int(a.Age - b.Age)
	})
	cols := runColumns(ctx.Width)
	v.table.SetColumns(cols)
	idW := cols[0].Width - 2 // the cursor's and the mark's columns
	rows := make([]table.Row, len(v.shown))
	for i, r := range v.shown {
		id := rowSlot(slices.Contains(v.marked, r.ID)) + cutRunID(r.ID, idW)
		rows[i] = table.Row{id, strings.ToUpper(r.Method), shortBase(r.Base), shortData(r.Dataset), statusLabel(r.Status), metricNames.Replace(r.Best), humanAge(r.Age)}
	}
	v.table.SetRows(rows)
	v.table.SetWidth(ctx.Width)
	v.table.SetHeight(max(3, ctx.Height-3))
	if c := v.table.Cursor(); len(rows) > 0 && (c < 0 || c >= len(rows)) {
		v.table.SetCursor(min(max(c, 0), len(rows)-1))
	}
}

// runColumns shares width among the columns; the table pads each cell by
// one on either side. The run id comes first: it is what tells runs apart,
// so it gets its full width (24, after the cursor's and the mark's columns)
// as soon as base and data keep 9 each; "best" fits "vloss 0.0412" from
// 90 columns on.
func runColumns(width int) []table.Column {
	const method, status, age = 6, 10, 4
	const idFull, other = 2 + 24, 9
	avail := width - 7*2 - method - status - age // run, base, data and best
	best := 12
	if avail < idFull+best+2*other {
		best = 10
	}
	rest := max(36, avail-best)
	id := min(idFull, max(12, rest-2*other))
	base := (rest - id) / 2
	data := rest - id - base
	return []table.Column{{Title: "  run", Width: id}, {Title: "method", Width: method}, {Title: "base", Width: base},
		{Title: "data", Width: data}, {Title: "status", Width: status}, {Title: "best", Width: best}, {Title: "age", Width: age}}
}

// runIDTail is how much of a run id's end a cut keeps when it can: the time
// of day, the method and the random suffix ("182700-sft-ab12" and the dash
// before), which tell runs of one day apart.
const runIDTail = 16

// cutRunID shortens a run id to n cells by cutting its middle (the date
// first), never its suffix: "2026…-182700-sft-ab12", or "…182700-sft-ab12"
// when there is no room for a useful head.
func cutRunID(id string, n int) string {
	r := []rune(id)
	switch {
	case len(r) <= n:
		return id
	case n <= 1:
		return string([]rune("…")[:max(n, 0)])
	}
	tail := min(runIDTail, n-1)
	head := n - 1 - tail
	if head < 4 {
		head, tail = 0, n-1
	}
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

func statusLabel(s string) string {
	switch s {
	case "running":
		return "● running"
	case "queued":
		return "○ queued"
	case "completed":
		return "✓ done"
	case "failed":
		return "✗ failed"
	case "canceled":
		return "– canceled"
	}
	return s
}

func (v runsView) view(ctx *Context) string {
	st := ctx.Styles
	if v.cmp != nil {
		body := strings.Join(v.cmp.view(st, ctx.Width, ctx.Height-1), "\n")
		foot := st.Muted.Render("A " + v.cmp.a.ID + " · B " + v.cmp.b.ID + " · esc back")
		return lipgloss.JoinVertical(lipgloss.Left, lipgloss.NewStyle().Height(ctx.Height-1).MaxHeight(ctx.Height-1).Render(body), fit(" "+foot, ctx.Width))
	}
	head := st.Title.Render("Runs") + st.Muted.Render(fmt.Sprintf("  (%d", len(v.shown)))
	if len(v.shown) != len(v.all) {
		head += st.Muted.Render(fmt.Sprintf(" of %d", len(v.all)))
	}
	head += st.Muted.Render(")  sorted by " + sortKeys[v.sortBy])
	hint := st.Muted.Render("/ filter  s sort  enter open  e eval  space·c compare  x export  d delete ")
	if lipgloss.Width(head)+lipgloss.Width(hint)+2 > ctx.Width {
		hint = st.Muted.Render("enter open  e eval  space·c compare ")
	}
	lines := []string{barLine(" "+head, hint, ctx.Width)}
	switch {
	case !v.loaded:
		lines = append(lines, "", " loading runs…")
	case v.err != nil:
		lines = append(lines, "", " "+st.Bad.Render("cannot list runs: "+v.err.Error()))
	case len(v.all) == 0:
		lines = append(lines, "", " No runs yet.", "",
			" Press 2 to launch one from the form, or start one from the CLI, e.g.",
			"   distill train sft --model DIR --data FILE.jsonl",
			" and it appears here.")
	default:
		lines = append(lines, tableWithCursor(v.table))
	}
	var foot string
	switch {
	case v.confirm != "":
		foot = st.Warn.Render(fmt.Sprintf("delete %s and its folder? y/n", v.confirm))
	case v.filter.Focused():
		foot = v.filter.View()
	case v.filter.Value() != "":
		foot = v.filter.View() + st.Muted.Render("   esc clears the filter")
	case v.note != "":
		foot = v.note
	}
	body := strings.Join(lines, "\n")
	return lipgloss.JoinVertical(lipgloss.Left, lipgloss.NewStyle().Height(ctx.Height-1).MaxHeight(ctx.Height-1).Render(body), " "+foot)
}

// shortBase is a base model's name as a column shows it: its folder's or
// hub repository's last part ("models/qwen2.5-0.5b" → "qwen2.5-0.5b").
func shortBase(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

// shortData is a data file as a column shows it: its folder and name
// without the extension ("examples/tickets/train.jsonl" → "tickets/train"),
// the part that tells runs apart.
func shortData(p string) string {
	dir, file := path.Split(strings.ReplaceAll(p, "\\", "/"))
	file = strings.TrimSuffix(file, path.Ext(file))
	if d := shortBase(dir); d != "" && d != "." {
		return d + "/" + file
	}
	return file
}
