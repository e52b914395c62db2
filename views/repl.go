package views

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

type replKeys struct {
	Edit, Enter, Field, Cycle, History, Tab, Back key.Binding

	form bool // the cursor is in the form: the help shows how to leave it
}

func (k replKeys) ShortHelp() []key.Binding {
	if k.form {
		return []key.Binding{k.Field, k.Cycle, k.Enter, k.Back}
	}
	return []key.Binding{k.Edit, k.Cycle}
}

func (k replKeys) FullHelp() [][]key.Binding {
	if k.form {
		return [][]key.Binding{{k.Field, k.Tab, k.Cycle, k.History}, {k.Enter, k.Back}}
	}
	return [][]key.Binding{{k.Edit, k.Cycle}}
}

var defaultREPLKeys = replKeys{
	Edit:    key.NewBinding(key.WithKeys("enter", "down"), key.WithHelp("enter", "edit")),
	Enter:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run")),
	Field:   key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "field")),
	Tab:     key.NewBinding(key.WithKeys("tab", "shift+tab"), key.WithHelp("tab/shift+tab", "field")),
	Cycle:   key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←/→", "choose")),
	History: key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "history (in Input)")),
	Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "leave")),
}

// The REPL's fields.
const (
	rModel = iota
	rAdapter
	rTask
	rParam // labels (classify) or schema file (extract)
	rInput
	numREPLFields
)

var replTasks = []string{"generate", "classify", "extract"}

// answerMsg is one value drained from an Ask channel.
type answerMsg struct {
	seq int
	app.Answer
	ch <-chan app.Answer
}

func waitAnswer(seq int, ch <-chan app.Answer) tea.Cmd {
	return func() tea.Msg {
		a, ok := <-ch
		if !ok {
			return answerMsg{seq: seq, Answer: app.Answer{Done: true}}
		}
		return answerMsg{seq, a, ch}
	}
}

// replView asks a base model (and adapter) to generate, classify or
// extract, and shows the answer.
type replView struct {
	keys     replKeys
	inited   bool
	folders  []string
	adapters []app.AdapterRow
	adapter  int // 0: none; i: adapters[i-1]
	task     int
	inputs   [numREPLFields]textinput.Model
	focus    int
	inForm   bool
	history  []string
	hist     int // index into history while recalling; len(history): the new line
	seq      int
	busy     bool
	cancel   context.CancelFunc
	asked    string
	text     string // generated so far
	answer   *app.Answer
	err      string
	scroll   int // answer lines scrolled up from its end (pgup/pgdn)
	// autoLabels: the labels field holds what the chosen adapter was
	// trained on, filled by the view, so choosing another replaces them.
	autoLabels bool
}

// labelsMsg carries the labels an adapter was trained on.
type labelsMsg struct {
	adapter string
	labels  []string
}

func loadLabels(svc Service, name string) tea.Cmd {
	return func() tea.Msg {
		labels, _ := svc.AdapterLabels(name) // none: the user types them
		return labelsMsg{name, labels}
	}
}

func newREPLView() replView {
	v := replView{keys: defaultREPLKeys}
	for i := range v.inputs {
		ti := newTextInput()
		ti.Prompt = ""
		ti.CharLimit = 1024
		v.inputs[i] = ti
	}
	v.inputs[rInput].Placeholder = "type an input, enter to run"
	return v
}

// capturing reports whether the form takes every key: while a text field
// has the cursor (it types q, ?, 1–6; tab moves on). On the adapter and
// task choices the workstation's keys work (esc leaves the form).
func (v replView) capturing() bool { return v.inForm && v.isText(v.focus) }

func (v replView) init(ctx *Context) replView {
	if v.inited {
		return v
	}
	v.inited = true
	v.folders = ctx.Svc.ModelFolders(modelsRoot)
	if ok, dir := ctx.Svc.StatPath(defaultModel); ok && dir {
		v.inputs[rModel].SetValue(defaultModel)
	}
	return v
}

// isText reports whether field f takes typing: the model, the labels or
// schema (the generate task has neither) and the input.
func (v replView) isText(f int) bool {
	return f == rModel || f == rInput || f == rParam && replTasks[v.task] != "generate"
}

func (v replView) move(d int) (replView, tea.Cmd) {
	v.inputs[v.focus].Blur()
	v.focus = (v.focus + d + numREPLFields) % numREPLFields
	if v.inForm && v.isText(v.focus) {
		return v, v.inputs[v.focus].Focus()
	}
	return v, nil
}

func (v replView) update(ctx *Context, msg tea.Msg) (replView, tea.Cmd) {
	v, cmd := v.handle(ctx, msg)
	v.keys.form = v.inForm
	return v, cmd
}

func (v replView) handle(ctx *Context, msg tea.Msg) (replView, tea.Cmd) {
	switch msg := msg.(type) {
	case adaptersLoadedMsg:
		if msg.err == nil {
			v.adapters = msg.rows
			if v.adapter > len(v.adapters) {
				v.adapter = 0
			}
		}
		return v, nil
	case labelsMsg:
		cur := ""
		if v.adapter > 0 {
			cur = v.adapters[v.adapter-1].Name
		}
		empty := strings.TrimSpace(v.inputs[rParam].Value()) == ""
		if msg.adapter == cur && len(msg.labels) > 0 && replTasks[v.task] == "classify" && (empty || v.autoLabels) {
			v.inputs[rParam].SetValue(strings.Join(msg.labels, ","))
			v.inputs[rParam].CursorEnd()
			v.autoLabels = true
		}
		return v, nil
	case answerMsg:
		if msg.seq != v.seq {
			return v, nil
		}
		if !msg.Done {
			v.text += msg.Piece
			return v, waitAnswer(msg.seq, msg.ch)
		}
		v.busy = false
		if v.cancel != nil {
			v.cancel()
			v.cancel = nil
		}
		if msg.Err != nil {
			v.err = msg.Err.Error()
			return v, nil
		}
		a := msg.Answer
		if a.Probs != nil || a.JSON != "" || a.Tokens > 0 {
			v.answer = &a
		}
		return v, nil
	case tea.KeyMsg:
		return v.key(ctx, msg)
	}
	return v, nil
}

func (v replView) key(ctx *Context, msg tea.KeyMsg) (replView, tea.Cmd) {
	s := msg.String()
	switch s { // the answer scrolls whatever has the cursor
	case "pgup":
		v.scroll += max(1, ctx.Height/2)
		return v, nil
	case "pgdown":
		v.scroll = max(0, v.scroll-max(1, ctx.Height/2))
		return v, nil
	}
	if !v.inForm {
		switch s {
		case "enter", "down", "j":
			v.inForm = true
			if v.isText(v.focus) {
				return v, v.inputs[v.focus].Focus()
			}
			return v, nil
		case "left", "right":
			return v.cycle(ctx, s)
		}
		return v, nil
	}
	switch s {
	case "esc":
		if v.busy && v.cancel != nil {
			v.cancel()
			return v, nil
		}
		v.inputs[v.focus].Blur()
		v.inForm = false
		return v, nil
	case "tab":
		return v.move(1)
	case "shift+tab":
		return v.move(-1)
	case "up", "down":
		if v.focus != rInput {
			d := 1
			if s == "up" {
				d = -1
			}
			return v.move(d)
		}
		return v.recall(s), nil
	case "left", "right":
		if v.focus == rAdapter || v.focus == rTask || (v.focus == rModel && len(v.folders) > 0) {
			return v.cycle(ctx, s)
		}
	case "enter":
		if v.focus == rInput {
			return v.ask(ctx)
		}
		return v.move(1)
	}
	if v.isText(v.focus) {
		if v.focus == rParam {
			v.autoLabels = false // the user's own labels now
		}
		var cmd tea.Cmd
		v.inputs[v.focus], cmd = editField(v.inputs[v.focus], msg)
		return v, cmd
	}
	return v, nil
}

// recall steps through the inputs asked before.
func (v replView) recall(dir string) replView {
	if len(v.history) == 0 {
		return v
	}
	if dir == "up" {
		v.hist = max(0, v.hist-1)
	} else {
		v.hist = min(len(v.history), v.hist+1)
	}
	if v.hist == len(v.history) {
		v.inputs[rInput].SetValue("")
	} else {
		v.inputs[rInput].SetValue(v.history[v.hist])
	}
	v.inputs[rInput].CursorEnd()
	return v
}

func (v replView) cycle(ctx *Context, dir string) (replView, tea.Cmd) {
	d := 1
	if dir == "left" {
		d = -1
	}
	switch v.focus {
	case rTask:
		v.task = (v.task + d + len(replTasks)) % len(replTasks)
		v.inputs[rParam].SetValue("")
		v.autoLabels = false
		return v, v.offerLabels(ctx)
	case rAdapter:
		n := len(v.adapters) + 1
		v.adapter = (v.adapter + d + n) % n
		return v, v.offerLabels(ctx)
	case rModel:
		if len(v.folders) == 0 {
			return v, nil
		}
		i := slices.Index(v.folders, strings.TrimSpace(v.inputs[rModel].Value()))
		if i < 0 && d < 0 {
			i = 0
		}
		i = (i + d + len(v.folders)) % len(v.folders)
		v.inputs[rModel].SetValue(v.folders[i])
		v.inputs[rModel].CursorEnd()
	}
	return v, nil
}

// offerLabels asks for the chosen adapter's labels when the task is
// classify and the labels are empty or were filled for another adapter.
func (v replView) offerLabels(ctx *Context) tea.Cmd {
	if replTasks[v.task] != "classify" || v.adapter == 0 {
		return nil
	}
	if strings.TrimSpace(v.inputs[rParam].Value()) != "" && !v.autoLabels {
		return nil
	}
	return loadLabels(ctx.Svc, v.adapters[v.adapter-1].Name)
}

// ask sends the input line to the service and drains its answer.
func (v replView) ask(ctx *Context) (replView, tea.Cmd) {
	in := strings.TrimSpace(v.inputs[rInput].Value())
	if in == "" || v.busy {
		return v, nil
	}
	req := app.Ask{Model: strings.TrimSpace(v.inputs[rModel].Value()), Task: replTasks[v.task], Input: in}
	if v.adapter > 0 {
		req.Adapter = v.adapters[v.adapter-1].Path
	}
	param := strings.TrimSpace(v.inputs[rParam].Value())
	switch req.Task {
	case "classify":
		for _, l := range strings.Split(param, ",") {
			if l = strings.TrimSpace(l); l != "" {
				req.Labels = append(req.Labels, l)
			}
		}
	case "extract":
		req.Schema = param
	}
	if n := len(v.history); n == 0 || v.history[n-1] != in {
		v.history = append(v.history, in)
	}
	v.hist = len(v.history)
	v.inputs[rInput].SetValue("")
	v.seq++
	v.busy, v.asked, v.text, v.answer, v.err, v.scroll = true, in, "", nil, "", 0
	c, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	ch := ctx.Svc.Ask(c, req)
	return v, waitAnswer(v.seq, ch)
}

func (v replView) view(ctx *Context) string {
	st := ctx.Styles
	var b strings.Builder
	b.WriteString(" " + st.Title.Render("REPL") + "\n")
	inW := max(10, min(44, ctx.Width-22))
	line := func(f int, label, field string) {
		cursor := "  "
		if f == v.focus {
			cursor = st.Active.Render("▸ ")
		}
		b.WriteString(" " + cursor + fit(label, 10) + field + "\n")
	}
	text := func(f int, hint string) string {
		in := v.inputs[f]
		in.Width = inW - 1
		if in.Focused() {
			return "[" + fit(in.View(), inW) + "]"
		}
		if in.Value() == "" && hint != "" {
			return "[" + st.Muted.Render(fit(hint, inW)) + "]"
		}
		return "[" + fit(in.Value(), inW) + "]"
	}
	model := text(rModel, "")
	if len(v.folders) > 0 {
		model += st.Muted.Render(" ←/→")
	}
	line(rModel, "Model", model)
	adapter := "none"
	if v.adapter > 0 {
		adapter = v.adapters[v.adapter-1].Name
	}
	line(rAdapter, "Adapter", "‹ "+adapter+" ›"+st.Muted.Render(fmt.Sprintf("  %d registered", len(v.adapters))))
	line(rTask, "Task", radio(st, replTasks, v.task))
	switch replTasks[v.task] {
	case "classify":
		line(rParam, "Labels", text(rParam, "comma-separated, e.g. yes,no"))
	case "extract":
		line(rParam, "Schema", text(rParam, "JSON Schema file"))
	default:
		line(rParam, "", st.Muted.Render("(no options)"))
	}
	line(rInput, "Input", text(rInput, "type an input, enter to run")+st.Muted.Render(fmt.Sprintf(" %d in history", len(v.history))))
	b.WriteString(" " + st.Rule.Render(strings.Repeat("─", max(0, ctx.Width-2))) + "\n")
	w := max(10, ctx.Width-2)
	if v.asked != "" {
		b.WriteString(" " + st.Muted.Render("› "+v.asked) + "\n")
	}
	var out []string // the answer, a line each
	switch {
	case v.err != "":
		out = wrapped(st.Bad, "✗ "+v.err, w)
	case v.answer != nil && v.answer.Probs != nil:
		out = strings.Split(strings.TrimSuffix(probBars(st, v.answer, w), "\n"), "\n")
	case v.answer != nil && v.answer.JSON != "":
		for _, l := range strings.Split(v.answer.JSON, "\n") {
			out = append(out, " "+l)
		}
		if !v.answer.Valid {
			out = append(out, " "+st.Warn.Render("does not satisfy the schema"))
		}
	case v.text != "" || v.busy:
		for _, l := range strings.Split(lipgloss.NewStyle().Width(w).Render(v.text), "\n") {
			out = append(out, " "+l)
		}
		if v.busy {
			out = append(out, " "+st.Muted.Render("… (esc stops)"))
		}
	default:
		out = []string{" " + st.Muted.Render("No answer yet: choose a model and a task, type an input and press enter.")}
	}
	room := ctx.Height - strings.Count(b.String(), "\n")
	b.WriteString(strings.Join(scrolled(st, out, room, v.scroll), "\n") + "\n")
	return fitLines(b.String(), ctx.Width)
}

// scrolled is the window of lines that fits room, scroll lines up from the
// end (the end shows by default: a streamed answer's newest text, whether
// an extraction satisfies its schema), with a line saying what is hidden.
func scrolled(st Styles, lines []string, room, scroll int) []string {
	if len(lines) <= room || room < 2 {
		return lines
	}
	shown := room - 1
	scroll = min(max(scroll, 0), len(lines)-shown)
	end := len(lines) - scroll
	start := end - shown
	var hint []string
	if start > 0 {
		hint = append(hint, fmt.Sprintf("↑ %d lines above", start))
	}
	if scroll > 0 {
		hint = append(hint, fmt.Sprintf("↓ %d below", scroll))
	}
	return append(lines[start:end:end], " "+st.Muted.Render(strings.Join(hint, " · ")+" · pgup/pgdn scroll"))
}

// probBars draws each label's probability as a bar, most likely first.
func probBars(st Styles, a *app.Answer, width int) string {
	labels := make([]string, 0, len(a.Probs))
	lw := 0
	for l := range a.Probs {
		labels = append(labels, l)
		lw = max(lw, lipgloss.Width(l))
	}
	sort.Slice(labels, func(i, j int) bool {
		if a.Probs[labels[i]] != a.Probs[labels[j]] {
			return a.Probs[labels[i]] > a.Probs[labels[j]]
		}
		return labels[i] < labels[j]
	})
	lw = min(lw, 20)
	barW := max(5, min(40, width-lw-10))
	var b strings.Builder
	for _, l := range labels {
		p := a.Probs[l]
		n := 0 // a NaN or out-of-range probability (a broken adapter's logits) draws an empty bar, not a panic
		if p > 0 {
			n = min(int(p*float64(barW)+0.5), barW)
		}
		bar := strings.Repeat("█", n) + strings.Repeat("░", barW-n)
		if l == a.Label {
			bar = st.Good.Render(bar)
		}
		b.WriteString(fmt.Sprintf(" %s %s %.3f\n", fit(l, lw), bar, p))
	}
	note := fmt.Sprintf(" margin %.3f", a.Margin)
	if len(a.RawProbs) > 0 {
		note += " · raw:"
		for _, l := range labels {
			note += fmt.Sprintf(" %s %.3f", l, a.RawProbs[l])
		}
		note = " calibrated ·" + note
	}
	b.WriteString(st.Muted.Render(cut(note, width)) + "\n")
	return b.String()
}
