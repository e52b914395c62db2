package views

import (
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

type adaptersKeys struct {
	Rename, Tag, Delete, Export, Refresh, Up, Down key.Binding
}

func (k adaptersKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Rename, k.Tag, k.Export, k.Delete}
}

func (k adaptersKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down}, {k.Rename, k.Tag, k.Export, k.Delete, k.Refresh}}
}

var defaultAdaptersKeys = adaptersKeys{
	Rename:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rename")),
	Tag:     key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "tag")),
	Delete:  key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "delete")),
	Export:  key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "export")),
	Refresh: key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "refresh")),
	Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
	Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
}

// adaptersLoadedMsg carries the adapters that loadAdapters read.
type adaptersLoadedMsg struct {
	rows []app.AdapterRow
	err  error
}

// adapterDoneMsg reports a rename, tag or delete.
type adapterDoneMsg struct {
	action, name, arg string
	err               error
}

func loadAdapters(svc Service) tea.Cmd {
	return func() tea.Msg {
		rows, err := svc.ListAdapters()
		return adaptersLoadedMsg{rows, err}
	}
}

// adaptersView lists the registered adapters and renames, tags and deletes
// their registrations.
type adaptersView struct {
	keys    adaptersKeys
	all     []app.AdapterRow
	loaded  bool
	err     error
	note    string // the outcome of the last action
	noteBad bool
	table   table.Model
	input   textinput.Model
	mode    string // "rename" or "tag" while the input is open
	target  string // the adapter the input or confirmation is about
	confirm bool   // awaiting y/n to delete target
	export  bool   // awaiting p (PEFT), m (merged), g (GGUF) or 4 (GGUF q4_k_m) to export target
	// exportRun is a run whose adapter the Runs view asked to export: once
	// the list has loaded, its adapter is selected and the export prompt
	// opens.
	exportRun string
}

func newAdaptersView() adaptersView {
	t := table.New(table.WithFocused(true))
	st := table.DefaultStyles()
	st.Header = st.Header.BorderStyle(lipgloss.NormalBorder()).BorderBottom(true).Bold(true)
	st.Selected = st.Selected.Bold(true).Foreground(accent)
	t.SetStyles(st)
	ti := newTextInput()
	ti.CharLimit = 64
	return adaptersView{keys: defaultAdaptersKeys, table: t, input: ti}
}

// capturing reports whether the view takes every key (typing a name or tag,
// or answering a confirmation).
func (v adaptersView) capturing() bool { return v.mode != "" || v.confirm || v.export }

func (v adaptersView) update(ctx *Context, msg tea.Msg) (adaptersView, tea.Cmd) {
	switch msg := msg.(type) {
	case adaptersLoadedMsg:
		v.loaded, v.err = true, msg.err
		if msg.err == nil {
			v.all = msg.rows
		}
		v.apply(ctx)
		if run := v.exportRun; run != "" && msg.err == nil {
			v.exportRun = ""
			i := slices.IndexFunc(v.all, func(a app.AdapterRow) bool { return a.RunID == run })
			if i < 0 {
				v.note, v.noteBad = "run "+run+" has no registered adapter: a run registers one when it finishes", true
				return v, nil
			}
			v.table.SetCursor(i)
			v.export, v.target, v.note, v.noteBad = true, v.all[i].Name, "", false
		}
		return v, nil
	case adapterDoneMsg:
		if msg.err != nil {
			v.note, v.noteBad = msg.action+" "+msg.name+" failed: "+msg.err.Error(), true
			if msg.action == "rename" || msg.action == "tag" {
				// reopen the prompt with what was typed, the error beside it
				v = v.prompt(msg.action, msg.name)
				v.input.SetValue(msg.arg)
				v.input.CursorEnd()
				return v, v.input.Focus()
			}
			return v, nil
		}
		switch msg.action {
		case "rename":
			v.note = "renamed " + msg.name + " to " + msg.arg
		case "tag":
			v.note = "tagged " + msg.name + " " + msg.arg
		case "delete":
			v.note = "removed " + msg.name + " (its files stay on disk)"
		case "export":
			v.note = "exported " + msg.name + " to " + msg.arg
			v.noteBad = false
			return v, nil
		}
		v.noteBad = false
		return v, loadAdapters(ctx.Svc)
	case tea.KeyMsg:
		return v.key(ctx, msg)
	}
	return v, nil
}

func (v adaptersView) key(ctx *Context, msg tea.KeyMsg) (adaptersView, tea.Cmd) {
	svc := ctx.Svc
	if v.export {
		name := v.target
		v.export, v.target = false, ""
		kind := map[string]string{"p": "peft", "m": "merged", "g": "gguf", "4": "gguf-q4_k_m"}[msg.String()]
		if kind == "" {
			v.note, v.noteBad = "", false
			return v, nil
		}
		v.note, v.noteBad = "exporting "+name+" ("+kind+")…", false
		return v, func() tea.Msg {
			dir, err := svc.ExportAdapter(name, kind)
			return adapterDoneMsg{"export", name, dir, err}
		}
	}
	if v.confirm {
		name := v.target
		v.confirm, v.target = false, ""
		if s := msg.String(); s == "y" || s == "Y" {
			v.note, v.noteBad = "removing "+name+"…", false
			return v, func() tea.Msg { return adapterDoneMsg{"delete", name, "", svc.DeleteAdapter(name)} }
		}
		v.note, v.noteBad = "kept "+name, false
		return v, nil
	}
	if v.mode != "" {
		switch msg.Type {
		case tea.KeyEsc:
			v.mode, v.target = "", ""
			v.input.Blur()
			return v, nil
		case tea.KeyEnter:
			val := strings.TrimSpace(v.input.Value())
			if val == "" {
				v.note, v.noteBad = "type a "+map[string]string{"rename": "new name", "tag": "tag"}[v.mode]+", or esc", true
				return v, nil
			}
			mode, name := v.mode, v.target
			v.mode, v.target = "", ""
			v.input.Blur()
			v.note, v.noteBad = "", false
			if mode == "rename" {
				return v, func() tea.Msg { return adapterDoneMsg{"rename", name, val, svc.RenameAdapter(name, val)} }
			}
			return v, func() tea.Msg { return adapterDoneMsg{"tag", name, val, svc.TagAdapter(name, val)} }
		}
		var cmd tea.Cmd
		v.input, cmd = editField(v.input, msg)
		return v, cmd
	}
	switch {
	case key.Matches(msg, v.keys.Refresh):
		return v, loadAdapters(svc)
	case key.Matches(msg, v.keys.Rename), key.Matches(msg, v.keys.Tag):
		a, ok := v.selected()
		if !ok {
			return v, nil
		}
		v.note, v.noteBad = "", false
		if key.Matches(msg, v.keys.Rename) {
			v = v.prompt("rename", a.Name)
			v.input.SetValue(a.Name)
		} else {
			v = v.prompt("tag", a.Name)
		}
		v.input.CursorEnd()
		return v, v.input.Focus()
	case key.Matches(msg, v.keys.Delete):
		if a, ok := v.selected(); ok {
			v.confirm, v.target, v.note = true, a.Name, ""
		}
		return v, nil
	case key.Matches(msg, v.keys.Export):
		if a, ok := v.selected(); ok {
			v.export, v.target, v.note = true, a.Name, ""
		}
		return v, nil
	}
	var cmd tea.Cmd
	v.table, cmd = v.table.Update(msg)
	return v, cmd
}

// prompt opens the input to rename or tag the adapter name.
func (v adaptersView) prompt(mode, name string) adaptersView {
	v.mode, v.target = mode, name
	if mode == "rename" {
		v.input.Prompt = "rename " + name + " to: "
		v.input.Placeholder = "new name (no spaces or slashes)"
	} else {
		v.input.Prompt = "tag " + name + ": "
		v.input.Placeholder = "e.g. prod"
	}
	v.input.SetValue("")
	return v
}

func (v adaptersView) selected() (app.AdapterRow, bool) {
	i := v.table.Cursor()
	if i < 0 || i >= len(v.all) {
		return app.AdapterRow{}, false
	}
	return v.all[i], true
}

// metricNames shortens the store's metric names for the table.
var metricNames = strings.NewReplacer("macro_f1", "F1", "field_f1", "F1", "val_loss", "vloss", "val_accuracy", "vacc",
	"accuracy", "acc", "schema_valid_rate", "valid", "exact_match_rate", "exact", "build_success_rate", "build",
	"lint_pass_rate", "lint", "pass_at_1", "pass@1")

// taskNames shortens tasks for the table.
var taskNames = strings.NewReplacer("classification", "classify")

// apply puts the adapters into the table and sizes it.
func (v *adaptersView) apply(ctx *Context) {
	v.table.SetColumns(adapterColumns(ctx.Width))
	rows := make([]table.Row, len(v.all))
	for i, a := range v.all {
		tags := strings.Join(a.Tags, ",")
		if tags == "" {
			tags = "-"
		}
		rows[i] = table.Row{rowSlot(false) + a.Name, strings.ToUpper(a.Method), shortBase(a.Base), taskNames.Replace(a.Task), metricNames.Replace(a.Metrics), tags, humanAge(a.Age)}
	}
	v.table.SetRows(rows)
	v.table.SetWidth(ctx.Width)
	v.table.SetHeight(max(3, ctx.Height-3))
	if c := v.table.Cursor(); len(rows) > 0 && (c < 0 || c >= len(rows)) {
		v.table.SetCursor(min(max(c, 0), len(rows)-1))
	}
}

func adapterColumns(width int) []table.Column {
	const method, task, tags, age = 6, 8, 8, 4
	rest := max(30, width-7*2-method-task-tags-age)
	name := 2 + (rest-2)*2/5 // the cursor's columns, then the name
	base := (rest - name) * 2 / 5
	metrics := rest - name - base
	return []table.Column{{Title: "  adapter", Width: name}, {Title: "method", Width: method}, {Title: "base", Width: base},
		{Title: "task", Width: task}, {Title: "metrics", Width: metrics}, {Title: "tags", Width: tags}, {Title: "age", Width: age}}
}

func (v adaptersView) view(ctx *Context) string {
	st := ctx.Styles
	head := st.Title.Render("Adapters") + st.Muted.Render(fmt.Sprintf("  (%d)", len(v.all)))
	hint := st.Muted.Render("r rename  t tag  x export  d delete ")
	lines := []string{barLine(" "+head, hint, ctx.Width)}
	switch {
	case !v.loaded:
		lines = append(lines, "", " loading adapters…")
	case v.err != nil:
		lines = append(lines, "", " "+st.Bad.Render("cannot list adapters: "+v.err.Error()))
	case len(v.all) == 0:
		lines = append(lines, "", " No adapters registered yet.", "",
			" A training run registers its adapter when it finishes, e.g.",
			"   distill train sft --model DIR --data FILE.jsonl",
			" and it appears here.")
	default:
		lines = append(lines, tableWithCursor(v.table))
	}
	var foot []string // below the table; an error sits above an open prompt
	switch {
	case v.confirm:
		foot = []string{st.Warn.Render(fmt.Sprintf("delete the registration of %s (its files stay)? y/n", v.target))}
	case v.export:
		// Short enough for 80 columns: the choice is the point, the row
		// above shows which adapter, and the outcome names the folder.
		foot = []string{st.Warn.Render("export: p PEFT · m merged HF · g GGUF · 4 GGUF q4_k_m · other keys cancel")}
	case v.mode != "" && v.note != "":
		foot = []string{st.Bad.Render(v.note), v.input.View()}
	case v.mode != "":
		foot = []string{v.input.View()}
	case v.note != "" && v.noteBad:
		foot = []string{st.Bad.Render(v.note)}
	default:
		foot = []string{v.note}
	}
	for i, f := range foot {
		foot[i] = fit(" "+f, ctx.Width)
	}
	h := max(1, ctx.Height-len(foot))
	body := lipgloss.NewStyle().Height(h).MaxHeight(h).Render(strings.Join(lines, "\n"))
	return lipgloss.JoinVertical(lipgloss.Left, append([]string{body}, foot...)...)
}
