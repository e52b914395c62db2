package views

import (
	"context"
	"fmt"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

// Service is what the views need from the application; *app.Workstation
// satisfies it, tests use a fake.
type Service interface {
	ListRuns() ([]app.RunRow, error)
	DeleteRun(id string) error
	StopRun(id string) bool
	PauseRun(id string) (paused, ok bool)
	RunHistory(id string) ([]app.Progress, error)
	RunInfo(id string) (app.RunInfo, error)
	Device() string
	ResidentBytes() int64
	GPUMemory() (app.GPU, bool)
	TotalMemory() int64
	ListAdapters() ([]app.AdapterRow, error)
	AdapterLabels(name string) ([]string, error)
	RenameAdapter(oldName, newName string) error
	TagAdapter(name, tag string) error
	DeleteAdapter(name string) error
	ExportAdapter(name, kind string) (string, error)
	ListEvaluations() ([]app.EvalRow, error)
	EvalReport(path string) (app.EvalReport, error)
	EvaluateRun(id string) (app.EvalRow, error)
	PlanRun(cfg app.RunConfig) (app.PlanRow, error)
	DataInfo(path string) (app.DataInfo, error)
	LaunchRun(cfg app.RunConfig) (string, <-chan app.Progress, error)
	ResumeRun(id string) (<-chan app.Progress, error)
	ModelFolders(root string) []string
	PullModel(ctx context.Context, spec, root string) <-chan app.PullProgress
	StatPath(path string) (exists, dir bool)
	Ask(ctx context.Context, req app.Ask) <-chan app.Answer
	Running() int // runs this process is training
}

var _ Service = (*app.Workstation)(nil)

// Context is shared by every view: the service, the content area's size and
// the styles.
type Context struct {
	Svc           Service
	Width, Height int // of the area a view draws in
	Styles        Styles
}

// Styles are the workstation's lipgloss styles; colours adapt to light and
// dark terminals and vanish with NO_COLOR.
type Styles struct {
	Title, Active, Tab, Muted, Rule, Good, Bad, Warn, Key lipgloss.Style
}

var (
	accent = lipgloss.AdaptiveColor{Light: "#5A3FC0", Dark: "#B7A6FF"}
	muted  = lipgloss.AdaptiveColor{Light: "#6B6B6B", Dark: "#8A8A8A"}
	good   = lipgloss.AdaptiveColor{Light: "#1E7B34", Dark: "#6BD68A"}
	bad    = lipgloss.AdaptiveColor{Light: "#B3261E", Dark: "#FF7A70"}
	warn   = lipgloss.AdaptiveColor{Light: "#8A5A00", Dark: "#F2C14E"}
)

// DefaultStyles returns the workstation's styles.
func DefaultStyles() Styles {
	return Styles{
		Title:  lipgloss.NewStyle().Bold(true).Foreground(accent),
		Active: lipgloss.NewStyle().Bold(true).Foreground(accent),
		Tab:    lipgloss.NewStyle(),
		Muted:  lipgloss.NewStyle().Foreground(muted),
		Rule:   lipgloss.NewStyle().Foreground(muted),
		Good:   lipgloss.NewStyle().Foreground(good),
		Bad:    lipgloss.NewStyle().Foreground(bad),
		Warn:   lipgloss.NewStyle().Foreground(warn),
		Key:    lipgloss.NewStyle().Bold(true),
	}
}

// humanAge is "42s", "6m", "3h" or "2d".
func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// humanBytes is "812 MB" or "1.3 GB".
func humanBytes(b int64) string {
	// Decimal units, as the CLI's plan and the run log print them: the
	// same plan must read the same in both.
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%d MB", b/1e6)
	}
	return fmt.Sprintf("%d KB", b/1e3)
}

// humanDuration is "4m12s" or "1h03m", rounded to the second.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.String()
}

// fit pads or cuts s (plain or styled) to exactly width cells.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if lipgloss.Width(s) > width {
		return lipgloss.NewStyle().MaxWidth(width).Render(s)
	}
	return s + spaces(width-lipgloss.Width(s))
}

func spaces(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	return string(b)
}

// newTextInput is a text field whose alt+d (delete the word after the
// cursor) is editField's: bubbles v1.0.0's deleteWordForward indexes past
// the value's end and panics when the cursor is not at the end.
func newTextInput() textinput.Model {
	ti := textinput.New()
	ti.KeyMap.DeleteWordForward.SetEnabled(false)
	return ti
}

// editField passes msg to the text field ti, doing alt+d (delete the word
// after the cursor, as readline does) itself.
func editField(ti textinput.Model, msg tea.Msg) (textinput.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || !k.Alt || k.Type != tea.KeyRunes || string(k.Runes) != "d" {
		return ti.Update(msg)
	}
	r, pos := []rune(ti.Value()), ti.Position()
	end := pos
	for end < len(r) && unicode.IsSpace(r[end]) {
		end++
	}
	for end < len(r) && !unicode.IsSpace(r[end]) {
		end++
	}
	ti.SetValue(string(r[:pos]) + string(r[end:]))
	ti.SetCursor(pos)
	return ti, nil
}

// wrapped is s in style, wrapped to width cells and indented one cell, a
// line each: errors keep their advice, which is at their end, where a cut
// would lose it.
func wrapped(style lipgloss.Style, s string, width int) []string {
	lines := strings.Split(lipgloss.NewStyle().Width(max(10, width)).Render(s), "\n")
	for i, l := range lines {
		lines[i] = " " + style.Render(strings.TrimRight(l, " "))
	}
	return lines
}
