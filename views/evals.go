package views

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

type evalsKeys struct {
	Open, Back, Calibrated, Raw, Toggle, Mark, Compare, Refresh, Up, Down key.Binding
	// What the help describes: the list, an open report (hasRaw: one with
	// calibrated and raw scores) or a comparison; each has its own keys.
	mode   evalsMode
	hasRaw bool
}

type evalsMode int

const (
	evalsList evalsMode = iota
	evalsReport
	evalsComparing
)

// scoreKeys are the keys that choose calibrated or raw scores.
func (k evalsKeys) scoreKeys() []key.Binding { return []key.Binding{k.Calibrated, k.Raw, k.Toggle} }

func (k evalsKeys) ShortHelp() []key.Binding {
	switch {
	case k.mode == evalsComparing || k.mode == evalsReport && k.hasRaw:
		return append(k.scoreKeys(), k.Back)
	case k.mode == evalsReport:
		return []key.Binding{k.Back}
	}
	return []key.Binding{k.Open, k.Mark, k.Compare}
}

func (k evalsKeys) FullHelp() [][]key.Binding {
	switch {
	case k.mode == evalsComparing || k.mode == evalsReport && k.hasRaw:
		return [][]key.Binding{k.scoreKeys(), {k.Back}}
	case k.mode == evalsReport:
		return [][]key.Binding{{k.Back}}
	}
	return [][]key.Binding{{k.Up, k.Down, k.Open}, {k.Mark, k.Compare, k.Refresh}}
}

var defaultEvalsKeys = evalsKeys{
	Open:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
	Back:       key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
	Calibrated: key.NewBinding(key.WithKeys("left"), key.WithHelp("←", "calibrated")),
	Raw:        key.NewBinding(key.WithKeys("right"), key.WithHelp("→", "raw")),
	Toggle:     key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "toggle")),
	Mark:       key.NewBinding(key.WithKeys(" "), key.WithHelp("space", "mark")),
	Compare:    key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "compare two")),
	Refresh:    key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "refresh")),
	Up:         key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
	Down:       key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
}

// evalsLoadedMsg carries the evaluations that loadEvals read.
type evalsLoadedMsg struct {
	rows []app.EvalRow
	err  error
}

// evalReportMsg carries a report that loadReport read.
type evalReportMsg struct {
	row app.EvalRow
	rep app.EvalReport
	err error
}

// evaluateMsg asks the root to evaluate a finished run (from Runs or
// Train); the Evals view shows the progress and then the report.
type evaluateMsg struct{ id string }

// evaluatedMsg reports an EvaluateRun's outcome.
type evaluatedMsg struct {
	id  string
	row app.EvalRow
	err error
}

func evaluateRun(svc Service, id string) tea.Cmd {
	return func() tea.Msg {
		row, err := svc.EvaluateRun(id)
		return evaluatedMsg{id, row, err}
	}
}

func loadEvals(svc Service) tea.Cmd {
	return func() tea.Msg {
		rows, err := svc.ListEvaluations()
		return evalsLoadedMsg{rows, err}
	}
}

func loadReport(svc Service, row app.EvalRow) tea.Cmd {
	return func() tea.Msg {
		rep, err := svc.EvalReport(row.ReportPath)
		return evalReportMsg{row, rep, err}
	}
}

// evalsView lists the recorded evaluations and shows one report in detail.
type evalsView struct {
	keys   evalsKeys
	all    []app.EvalRow
	loaded bool
	err    error
	note   string // an error opening a report
	table  table.Model
	open   *app.EvalReport // the report shown, nil for the list
	row    app.EvalRow
	raw    bool    // show the uncalibrated classification report
	busy   string  // the run being evaluated, if any
	marked []int64 // evaluations marked for comparison, oldest first
	cmp    *comparison
}

func newEvalsView() evalsView {
	t := table.New(table.WithFocused(true))
	st := table.DefaultStyles()
	st.Header = st.Header.BorderStyle(lipgloss.NormalBorder()).BorderBottom(true).Bold(true)
	st.Selected = st.Selected.Bold(true).Foreground(accent)
	t.SetStyles(st)
	return evalsView{keys: defaultEvalsKeys, table: t}
}

func (v evalsView) update(ctx *Context, msg tea.Msg) (evalsView, tea.Cmd) {
	v, cmd := v.handle(ctx, msg)
	// the help describes what the view shows now
	v.keys.mode, v.keys.hasRaw = evalsList, false
	switch {
	case v.cmp != nil:
		v.keys.mode = evalsComparing
	case v.open != nil:
		v.keys.mode, v.keys.hasRaw = evalsReport, v.open.Raw != nil
	}
	return v, cmd
}

func (v evalsView) handle(ctx *Context, msg tea.Msg) (evalsView, tea.Cmd) {
	switch msg := msg.(type) {
	case evalsLoadedMsg:
		v.loaded, v.err = true, msg.err
		if msg.err == nil {
			v.all = msg.rows
		}
		v.apply(ctx)
		return v, nil
	case evalReportMsg:
		if msg.err != nil {
			v.note = fmt.Sprintf("cannot open evaluation %d: %v", msg.row.ID, msg.err)
			return v, nil
		}
		rep := msg.rep
		v.open, v.row, v.raw, v.note = &rep, msg.row, false, ""
		return v, nil
	case evaluateMsg:
		if v.busy != "" {
			v.note = "still evaluating " + v.busy + ": one evaluation at a time"
			return v, nil
		}
		v.busy, v.open = msg.id, nil
		v.note = "evaluating " + msg.id + " on its validation rows… the report opens when done"
		return v, evaluateRun(ctx.Svc, msg.id)
	case evaluatedMsg:
		v.busy = ""
		if msg.err != nil {
			v.note = "cannot evaluate: " + msg.err.Error()
			return v, nil
		}
		v.note = "evaluated " + msg.id
		return v, tea.Batch(loadEvals(ctx.Svc), loadReport(ctx.Svc, msg.row))
	case compareReady:
		if msg.err != nil {
			v.note = "cannot compare: " + msg.err.Error()
			return v, nil
		}
		v.cmp, v.open, v.raw, v.note = &msg.cmp, nil, false, ""
		return v, nil
	case tea.KeyMsg:
		return v.key(ctx, msg)
	}
	return v, nil
}

// loadComparison reads the reports of two evaluations.
func loadComparison(svc Service, a, b app.EvalRow) tea.Cmd {
	return func() tea.Msg {
		ra, err := svc.EvalReport(a.ReportPath)
		if err != nil {
			return compareReady{err: fmt.Errorf("evaluation %d: %w", a.ID, err)}
		}
		rb, err := svc.EvalReport(b.ReportPath)
		if err != nil {
			return compareReady{err: fmt.Errorf("evaluation %d: %w", b.ID, err)}
		}
		return compareReady{cmp: comparison{a: ra, b: rb, rowA: a, rowB: b}}
	}
}

// compare starts comparing the two marked evaluations, or the one marked
// and the one under the cursor; the older is the baseline.
func (v evalsView) compare(ctx *Context) (evalsView, tea.Cmd) {
	var cursor *app.EvalRow
	if i := v.table.Cursor(); i >= 0 && i < len(v.all) {
		cursor = &v.all[i]
	}
	rows, want := markedPair(v.marked, cursor, v.all, func(e app.EvalRow) int64 { return e.ID })
	if want != 2 {
		v.note = "mark two evaluations with space, then c compares them"
		return v, nil
	}
	if len(rows) != 2 {
		v.note = "a marked evaluation is gone: mark two again"
		v.marked = nil
		return v, nil
	}
	if rows[0].ID > rows[1].ID {
		rows[0], rows[1] = rows[1], rows[0]
	}
	v.note = fmt.Sprintf("comparing #%d with #%d…", rows[0].ID, rows[1].ID)
	return v, loadComparison(ctx.Svc, rows[0], rows[1])
}

func (v evalsView) key(ctx *Context, msg tea.KeyMsg) (evalsView, tea.Cmd) {
	if v.cmp != nil {
		if key.Matches(msg, v.keys.Back) {
			v.cmp = nil
		}
		v.raw = v.chooseScores(msg)
		return v, nil
	}
	if v.open != nil {
		if key.Matches(msg, v.keys.Back) {
			v.open = nil
		} else if v.open.Raw != nil {
			v.raw = v.chooseScores(msg)
		}
		return v, nil
	}
	switch {
	case key.Matches(msg, v.keys.Refresh):
		return v, loadEvals(ctx.Svc)
	case key.Matches(msg, v.keys.Mark):
		if i := v.table.Cursor(); i >= 0 && i < len(v.all) {
			id := v.all[i].ID
			v.marked = toggleMark(v.marked, id)
			v.apply(ctx)
		}
		return v, nil
	case key.Matches(msg, v.keys.Compare):
		return v.compare(ctx)
	case key.Matches(msg, v.keys.Open):
		i := v.table.Cursor()
		if i >= 0 && i < len(v.all) {
			v.note = "opening " + v.all[i].ReportPath + "…"
			return v, loadReport(ctx.Svc, v.all[i])
		}
		return v, nil
	}
	var cmd tea.Cmd
	v.table, cmd = v.table.Update(msg)
	return v, cmd
}

// chooseScores is whether raw scores show after msg: ← calibrated,
// → raw, t the other.
func (v evalsView) chooseScores(msg tea.KeyMsg) bool {
	switch {
	case key.Matches(msg, v.keys.Calibrated):
		return false
	case key.Matches(msg, v.keys.Raw):
		return true
	case key.Matches(msg, v.keys.Toggle):
		return !v.raw
	}
	return v.raw
}

// apply puts the evaluations into the table and sizes it.
func (v *evalsView) apply(ctx *Context) {
	const id, kind, age = 2 + 4, 8, 4 // id: the cursor's and the mark's columns, then the number
	rest := max(30, ctx.Width-6*2-id-kind-age)
	run := (rest - 2) * 3 / 10 // the cursor's columns came out of run and adapter, not metrics
	adapter := (rest - 2) * 3 / 10
	runW := run
	v.table.SetColumns([]table.Column{{Title: "  id", Width: id}, {Title: "kind", Width: kind}, {Title: "run", Width: run},
		{Title: "adapter", Width: adapter}, {Title: "metrics", Width: rest - run - adapter}, {Title: "age", Width: age}})
	rows := make([]table.Row, len(v.all))
	for i, e := range v.all {
		run, adapter := cutRunID(e.Run, runW), e.Adapter // the run's suffix tells it apart
		if run == "" {
			run = "-"
		}
		if adapter == "" {
			adapter = "(base)"
		}
		id := rowSlot(slices.Contains(v.marked, e.ID)) + fmt.Sprint(e.ID)
		rows[i] = table.Row{id, taskNames.Replace(e.Kind), run, adapter, metricNames.Replace(e.Metrics), humanAge(e.Age)}
	}
	v.table.SetRows(rows)
	v.table.SetWidth(ctx.Width)
	v.table.SetHeight(max(3, ctx.Height-3))
	if c := v.table.Cursor(); len(rows) > 0 && (c < 0 || c >= len(rows)) {
		v.table.SetCursor(min(max(c, 0), len(rows)-1))
	}
}

func (v evalsView) view(ctx *Context) string {
	if v.cmp != nil {
		st := ctx.Styles
		body := strings.Join(v.cmp.view(st, v.raw, ctx.Width, ctx.Height-1), "\n")
		mode := "calibrated"
		if v.raw {
			mode = "raw"
		}
		foot := st.Muted.Render(fmt.Sprintf("baseline #%d · candidate #%d · %s · ← calibrated · → raw · esc back", v.cmp.a.ID, v.cmp.b.ID, mode))
		return lipgloss.JoinVertical(lipgloss.Left, lipgloss.NewStyle().Height(ctx.Height-1).MaxHeight(ctx.Height-1).MaxWidth(ctx.Width).Render(body), fit(" "+foot, ctx.Width))
	}
	if v.open != nil {
		return v.detail(ctx)
	}
	st := ctx.Styles
	head := st.Title.Render("Evals") + st.Muted.Render(fmt.Sprintf("  (%d)", len(v.all)))
	hint := st.Muted.Render("enter open  space mark  c compare ")
	lines := []string{barLine(" "+head, hint, ctx.Width)}
	switch {
	case !v.loaded:
		lines = append(lines, "", " loading evaluations…")
	case v.err != nil:
		lines = append(lines, "", " "+st.Bad.Render("cannot list evaluations: "+v.err.Error()))
	case len(v.all) == 0:
		lines = append(lines, "", " No evaluations yet.", "",
			" Press 1 for Runs, choose a finished run and press e to evaluate it",
			" on its validation rows (or, from the CLI,",
			"   distill eval classify --run ID --data FILE.jsonl);",
			" the report appears here.")
	default:
		lines = append(lines, tableWithCursor(v.table))
	}
	style := lipgloss.NewStyle()
	if strings.HasPrefix(v.note, "cannot") || strings.HasPrefix(v.note, "still") {
		style = st.Bad
	}
	foot := []string{""}
	if v.note != "" {
		foot = wrapped(style, v.note, ctx.Width-2) // its advice is at its end
	}
	bodyH := max(1, ctx.Height-len(foot))
	body := strings.Join(lines, "\n")
	return lipgloss.JoinVertical(lipgloss.Left, lipgloss.NewStyle().Height(bodyH).MaxHeight(bodyH).Render(body), strings.Join(foot, "\n"))
}

// detail draws the open report.
func (v evalsView) detail(ctx *Context) string {
	st := ctx.Styles
	r := v.open
	title := fmt.Sprintf("eval #%d · %s · %s", r.ID, r.Kind, evalSubject(v.row.Run, r))
	if r.Data != "" {
		title += " · " + shortData(r.Data)
	}
	right := ""
	if r.Kind == "classification" && r.Raw != nil {
		if v.raw {
			right = "calibrated ◂ ▸ " + st.Active.Render("[raw]") + " "
		} else {
			right = st.Active.Render("[calibrated]") + " ◂ ▸ raw "
		}
	}
	title = " " + st.Title.Render(cut(title, max(10, ctx.Width-lipgloss.Width(right)-3)))
	lines := []string{barLine(title, right, ctx.Width), ""}
	switch {
	case r.Calibrated != nil:
		c := r.Calibrated
		if v.raw && r.Raw != nil {
			c = r.Raw
		}
		lines = append(lines, classDetail(st, c, ctx.Width)...)
	case r.IDP != nil:
		lines = append(lines, idpDetail(st, r.IDP, ctx.Height-4)...)
	case r.Code != nil:
		lines = append(lines, codeDetail(st, r.Code, ctx.Width, ctx.Height-4)...)
	default:
		lines = append(lines, " "+st.Warn.Render("this report holds nothing to show"))
	}
	if p := peersLine(st, r.Peers, v.raw, ctx.Width); p != "" {
		lines = append(lines, "", p)
	}
	body := strings.Join(lines, "\n")
	label := r.Kind + " report · "
	foot := st.Muted.Render(label + cutHead(v.row.ReportPath, max(10, ctx.Width-1-len([]rune(label)))))
	return lipgloss.JoinVertical(lipgloss.Left, lipgloss.NewStyle().Height(ctx.Height-1).MaxHeight(ctx.Height-1).MaxWidth(ctx.Width).Render(body), fit(" "+foot, ctx.Width))
}

// evalSubject names what an evaluation scored, as the Runs and Adapters
// views name it: the run's id, an adapter's folder, or the base's folder
// (paths are absolute in the database, too long for a title).
func evalSubject(run string, r *app.EvalReport) string {
	switch {
	case run != "":
		return run
	case r.Adapter != "":
		a := strings.TrimRight(r.Adapter, "/")
		if path.Base(a) == "adapter" { // a run folder's adapter/: name the run
			a = path.Dir(a)
		}
		return shortBase(a)
	}
	return shortBase(r.Model) + " (base)"
}

// cutHead keeps the end of s within n cells ("…runs/ID/eval.json"): a
// path's end is the part that tells it apart.
func cutHead(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 1 {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// peersLine sets the report against the same data's other evaluations:
// "vs base: macro-F1 +0.290 · vs 20261127-…-ca48: +0.030".
func peersLine(st Styles, peers []app.EvalPeer, raw bool, width int) string {
	if len(peers) == 0 {
		return ""
	}
	parts := make([]string, len(peers))
	for i, p := range peers {
		name := p.Name
		if name != "base" {
			name = cutRunID(name, 18)
		}
		delta, metric := p.Delta, p.Metric
		if raw && p.HasRaw { // the figures on screen: the raw scores'
			delta, metric = p.RawDelta, "raw "+p.Metric
		}
		d := signed(st, delta, ".3f", true)
		if i == 0 {
			d = metric + " " + d
		}
		parts[i] = "vs " + name + ": " + d
	}
	return strings.TrimRight(fit(" "+strings.Join(parts, " · "), width), " ")
}

// shade is a block character for a row share in percent.
func shade(pct float64) string {
	switch {
	case pct < 5:
		return "·"
	case pct < 25:
		return "░"
	case pct < 50:
		return "▒"
	case pct < 75:
		return "▓"
	}
	return "█"
}

// classDetail is the confusion matrix (rows gold, columns predicted), the
// per-class scores beside or below it, and the margin histogram.
func classDetail(st Styles, c *app.ClassEval, width int) []string {
	lw := labelWidth(c.Labels)
	matrix := matrixLines(st, c, lw)

	var scores []string
	scores = append(scores, st.Muted.Render(fmt.Sprintf("%-*s %6s %6s %6s %5s", lw, "per class", "P", "R", "F1", "n")))
	for _, p := range c.PerClass {
		scores = append(scores, fmt.Sprintf("%-*s %6.2f %6.2f %6.2f %5d", lw, cut(p.Label, lw), p.Precision, p.Recall, p.F1, p.Support))
	}
	scores = append(scores, fmt.Sprintf("macro-F1 %.3f · accuracy %.3f · n %d", c.MacroF1, c.Accuracy, c.N))

	out := besideOrBelow(matrix, scores, width)
	if m := c.Margins; m != nil && len(m.Bins) > 0 {
		peak := 0
		for _, b := range m.Bins {
			peak = max(peak, b.Count)
		}
		bar := func(n int) string {
			if n == 0 || peak == 0 {
				return "  "
			}
			lv := []rune("▁▂▃▄▅▆▇█")
			return strings.Repeat(string(lv[min(7, (n*8-1)/peak)]), 2)
		}
		var all, wrong strings.Builder
		for _, b := range m.Bins {
			all.WriteString(bar(b.Count))
			wrong.WriteString(bar(b.Wrong))
		}
		lo, hi := m.Bins[0].Lo, m.Bins[len(m.Bins)-1].Hi
		out = append(out, "",
			fmt.Sprintf(" top-2 margin  %s  %.2f–%.2f · median %.2f", all.String(), lo, hi, m.Median),
			fmt.Sprintf("        wrong  %s", st.Bad.Render(wrong.String())))
	}
	return out
}

// cut shortens s to n cells with an ellipsis.
func cut(s string, n int) string {
	if lipgloss.Width(s) <= n {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > n {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// idpDetail is the schema-valid and exact-match rates and the per-field
// table, worst fields first, in at most height lines.
func idpDetail(st Styles, r *app.IDPEval, height int) []string {
	out := []string{
		fmt.Sprintf(" schema-valid %.1f%% · exact match %.1f%% · n %d", 100*r.SchemaValidRate, 100*r.ExactMatchRate, r.N),
		fmt.Sprintf(" micro  P %.3f  R %.3f  F1 %.3f", r.Micro.Precision, r.Micro.Recall, r.Micro.F1),
		"",
	}
	fw := 8
	for _, f := range r.PerField {
		fw = max(fw, min(28, lipgloss.Width(f.Field)))
	}
	out = append(out, st.Muted.Render(fmt.Sprintf(" %-*s %6s %6s %6s %7s %5s %5s %5s", fw, "field", "P", "R", "F1", "support", "tp", "fp", "fn")))
	fields := slices.Clone(r.PerField)
	slices.SortStableFunc(fields, func(a, b app.FieldScore) int {
		switch {
		case a.F1 < b.F1:
			return -1
		case a.F1 > b.F1:
			return 1
		}
		return strings.Compare(a.Field, b.Field)
	})
	room := max(1, height-len(out))
	for i, f := range fields {
		if i == room-1 && len(fields) > room {
			out = append(out, st.Muted.Render(fmt.Sprintf(" … %d more fields", len(fields)-i)))
			break
		}
		line := fmt.Sprintf(" %-*s %6.2f %6.2f %6.2f %7d %5d %5d %5d", fw, cut(f.Field, fw), f.Precision, f.Recall, f.F1, f.Support, f.TP, f.FP, f.FN)
		if f.F1 < 0.5 {
			line = st.Bad.Render(line)
		}
		out = append(out, line)
	}
	return out
}

// codeDetail is the build, lint and pass@1 rates as gauges and the failing
// cases, as many as fit in height lines.
func codeDetail(st Styles, r *app.CodeEval, width, height int) []string {
	gw := max(10, min(40, width-30))
	gauge := func(name string, rate float64, note string) string {
		n := int(rate*float64(gw) + 0.5)
		n = min(max(n, 0), gw)
		return fmt.Sprintf(" %-8s ▕%s%s▏ %5.1f%%%s", name, st.Good.Render(strings.Repeat("█", n)), strings.Repeat("░", gw-n), 100*rate, note)
	}
	pass := fmt.Sprintf("  of %d with tests", r.WithTests)
	if r.WithTests == 0 {
		pass = "  (no task carries tests)"
	}
	out := []string{
		fmt.Sprintf(" %d tasks", r.N), "",
		gauge("build", r.BuildRate, ""),
		gauge("lint", r.LintRate, ""),
		gauge("pass@1", r.PassAt1, pass),
	}
	if r.LintRan != nil && *r.LintRan == 0 {
		out[3] = fmt.Sprintf(" %-8s %s", "lint", st.Muted.Render("n/a (no lint check for the language)"))
	}
	if len(r.Failures) == 0 {
		return out
	}
	out = append(out, "", " "+st.Muted.Render(fmt.Sprintf("failing cases (%d)", len(r.Failures))))
	room := max(1, height-len(out))
	tw := 4
	for _, f := range r.Failures {
		tw = max(tw, min(24, lipgloss.Width(f.Task)))
	}
	for i, f := range r.Failures {
		if i == room-1 && len(r.Failures) > room {
			out = append(out, st.Muted.Render(fmt.Sprintf(" … %d more in the report", len(r.Failures)-i)))
			break
		}
		out = append(out, " "+fit(cut(f.Task, tw), tw)+"  "+st.Bad.Render(cut(f.Failure, max(10, width-tw-4))))
	}
	return out
}

// labelWidth is the cells a label column takes: 4 to 10.
func labelWidth(labels []string) int {
	lw := 4
	for _, l := range labels {
		lw = max(lw, min(10, lipgloss.Width(l)))
	}
	return lw
}

// matrixLines draws a confusion matrix as a heat map: rows gold, columns
// predicted, each cell shaded by its share of the row, with count and share.
func matrixLines(st Styles, c *app.ClassEval, lw int) []string {
	const cw = 11 // "██  49  82%"
	var matrix []string
	matrix = append(matrix, spaces(lw+2)+st.Muted.Render("predicted →"))
	hdr := spaces(lw + 2)
	for _, l := range c.Labels {
		hdr += fit(l, cw) + " "
	}
	matrix = append(matrix, hdr)
	for i, l := range c.Labels {
		line := " " + fit(l, lw) + " "
		for j := range c.Labels {
			n, pct := 0, 0.0
			if i < len(c.Confusion) && j < len(c.Confusion[i]) {
				n = c.Confusion[i][j]
			}
			if i < len(c.RowPct) && j < len(c.RowPct[i]) {
				pct = c.RowPct[i][j]
			}
			s := strings.Repeat(shade(pct), 2)
			if i == j {
				s = st.Good.Render(s)
			} else if pct >= 25 {
				s = st.Bad.Render(s)
			}
			line += s + fmt.Sprintf(" %3d %3.0f%%", n, pct) + " "
		}
		matrix = append(matrix, line)
	}
	matrix = append(matrix, " "+st.Muted.Render("rows: gold · ░▒▓█ share of the row"))

	return matrix
}

// besideOrBelow sets the lines of right beside those of left when both fit
// in width, else below them (indented by one, after a blank line).
func besideOrBelow(left, right []string, width int) []string {
	lw := 0
	for _, l := range left {
		lw = max(lw, lipgloss.Width(l))
	}
	rw := 0
	for _, l := range right {
		rw = max(rw, lipgloss.Width(l))
	}
	var out []string
	if lw+3+rw <= width {
		for i := range max(len(left), len(right)) {
			l, r := "", ""
			if i < len(left) {
				l = left[i]
			}
			if i < len(right) {
				r = right[i]
			}
			out = append(out, fit(l, lw+3)+r)
		}
		return out
	}
	out = append(out, left...)
	out = append(out, "")
	for _, r := range right {
		out = append(out, " "+r)
	}
	return out
}
