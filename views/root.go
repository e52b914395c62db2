package views

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

// Tab is one of the workstation's views.
type Tab int

const (
	TabRuns Tab = iota
	TabLaunch
	TabTrain
	TabEvals
	TabREPL
	TabAdapters
	numTabs
)

var tabNames = [numTabs]string{"Runs", "Launch", "Train", "Evals", "REPL", "Adapters"}

type globalKeys struct {
	Next, Prev, Jump, Help, Quit key.Binding
}

var defaultGlobalKeys = globalKeys{
	Next: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
	Prev: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous view")),
	Jump: key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6"), key.WithHelp("1-6", "view")),
	Help: key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
	Quit: key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
}

// keyMap joins the active view's keys with the global ones for the help.
type keyMap struct {
	view   help.KeyMap
	global globalKeys
	typing bool // a text field takes the keys: tab moves between fields, not views
}

func (k keyMap) ShortHelp() []key.Binding {
	var b []key.Binding
	if k.view != nil {
		b = append(b, k.view.ShortHelp()...)
	}
	return append(b, k.global.Help, k.global.Quit)
}

func (k keyMap) FullHelp() [][]key.Binding {
	var b [][]key.Binding
	if k.view != nil {
		b = append(b, k.view.FullHelp()...)
	}
	g := k.global
	if k.typing {
		return b
	}
	return append(b, []key.Binding{g.Next, g.Prev, g.Jump, g.Help, g.Quit})
}

// memMsg carries the process's resident memory and, on a machine with an
// NVIDIA GPU, the GPU's memory, for the top bar.
type memMsg struct {
	rss    int64
	gpu    app.GPU
	hasGPU bool
}

// tickEvery is how often the top bar's memory and the run list refresh.
const tickEvery = 2 * time.Second

// Model is the workstation's root: it routes keys to the active view and
// messages to the view that owns them, and draws the bars.
type Model struct {
	ctx      Context
	width    int
	height   int
	tab      Tab
	keys     globalKeys
	help     help.Model
	rss      int64
	gpu      app.GPU // the first NVIDIA GPU's memory, when hasGPU
	hasGPU   bool
	runs     runsView
	train    trainView
	adapters adaptersView
	evals    evalsView
	launch   launchView
	repl     replView
	ticks    bool    // refresh periodically (off in tests)
	listed   bool    // the runs have been listed once
	active   string  // a running run from the last listing, for the bottom bar
	live     liveRun // the run this window trains, whichever run the Train view shows
	quitting bool    // asked to quit while a run trains here: stop it or keep it?
	headless bool    // the user chose to keep training after the window closes
}

// liveRun is a run this process trains: the root reads its steps off the
// channel (one reader, whatever the Train view shows) and forwards them.
type liveRun struct {
	id   string
	ch   <-chan app.Progress
	last app.Progress // its latest step, for the bottom bar
	done bool
}

// going says a run of this window trains now.
func (l liveRun) going() bool { return l.id != "" && !l.done }

// Headless reports whether the user quit with "keep training": the caller
// then waits for the runs instead of cancelling them.
func (m Model) Headless() bool { return m.headless }

// New returns the root model over svc.
func New(svc Service) Model {
	h := help.New()
	return Model{ctx: Context{Svc: svc, Styles: DefaultStyles()}, keys: defaultGlobalKeys, help: h,
		runs: newRunsView(), train: newTrainView(), adapters: newAdaptersView(), evals: newEvalsView(), launch: newLaunchView(), repl: newREPLView(), width: 80, height: 24, ticks: true}
}

// Init loads the runs and starts the periodic refresh.
func (m Model) Init() tea.Cmd {
	cmds := []tea.Cmd{loadRuns(m.ctx.Svc), readMem(m.ctx.Svc), loadAdapters(m.ctx.Svc), loadEvals(m.ctx.Svc)}
	if m.ticks {
		cmds = append(cmds, tick())
	}
	return tea.Batch(cmds...)
}

type tickMsg struct{}

func tick() tea.Cmd { return tea.Tick(tickEvery, func(time.Time) tea.Msg { return tickMsg{} }) }

func readMem(svc Service) tea.Cmd {
	return func() tea.Msg {
		g, ok := svc.GPUMemory()
		return memMsg{svc.ResidentBytes(), g, ok}
	}
}

// Update implements tea.Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tickMsg:
		return m, tea.Batch(loadRuns(m.ctx.Svc), readMem(m.ctx.Svc), tick())
	case memMsg:
		m.rss, m.gpu, m.hasGPU = msg.rss, msg.gpu, msg.hasGPU
		return m, nil
	case runsLoadedMsg:
		m.active = ""
		for _, r := range msg.rows {
			if r.Status == "running" {
				m.active = r.ID
				break
			}
		}
		first := !m.listed
		m.listed = true
		var c2 tea.Cmd
		m.runs, cmd = m.runs.update(&m.ctx, msg)
		m.train, c2 = m.train.update(&m.ctx, msg)
		if first && msg.err == nil && len(msg.rows) == 0 && m.tab == TabRuns {
			// A new workspace opens on the Launch form, filled with the
			// bundled demo, so the first run is one key away.
			nm, c3 := m.show(TabLaunch)
			return nm, tea.Batch(cmd, c2, c3)
		}
		return m, tea.Batch(cmd, c2)
	case runDeletedMsg, runsCompareReady:
		m.runs, cmd = m.runs.update(&m.ctx, msg)
		return m, cmd
	case openRunMsg:
		m.tab = TabTrain
		if msg.id == m.train.runID && m.train.watching() {
			return m, nil
		}
		if msg.id == m.live.id && m.live.going() { // this window's run: its history, then its channel
			return m, m.follow(WatchMsg{RunID: m.live.id, Ch: m.live.ch})
		}
		m.train, cmd = m.train.update(&m.ctx, msg)
		return m, cmd
	case exportRunMsg:
		m.adapters.exportRun = msg.id
		return m.show(TabAdapters)
	case resumeMsg:
		return m, resumeRun(m.ctx.Svc, msg.id)
	case resumeFailedMsg:
		note := "cannot resume: " + msg.err.Error()
		if m.tab == TabTrain {
			m.train.note = note
		} else {
			m.runs.note = note
		}
		return m, nil
	case WatchMsg:
		m.tab = TabTrain
		reading := m.live.ch == msg.Ch && m.live.going()
		m.live = liveRun{id: msg.RunID, ch: msg.Ch}
		cmd = m.follow(msg)
		if reading || msg.Ch == nil {
			return m, cmd
		}
		return m, tea.Batch(cmd, waitProgress(msg.Ch))
	case ProgressMsg:
		if msg.from != nil && msg.from != m.live.ch {
			return m, nil // a channel of a run no longer followed
		}
		if msg.RunID == m.live.id || msg.from != nil {
			if msg.IsStep() {
				m.live.last = msg.Progress
			}
			m.live.done = m.live.done || msg.Done
		}
		m.train, cmd = m.train.update(&m.ctx, msg)
		if msg.from != nil && !msg.Done {
			cmd = tea.Batch(cmd, waitProgress(msg.from))
		}
		return m, cmd
	case historyMsg, pollMsg, infoMsg:
		m.train, cmd = m.train.update(&m.ctx, msg)
		return m, cmd
	case adaptersLoadedMsg:
		m.adapters, cmd = m.adapters.update(&m.ctx, msg)
		m.repl, _ = m.repl.update(&m.ctx, msg)
		return m, cmd
	case adapterDoneMsg:
		m.adapters, cmd = m.adapters.update(&m.ctx, msg)
		return m, cmd
	case answerMsg, labelsMsg:
		m.repl, cmd = m.repl.update(&m.ctx, msg)
		return m, cmd
	case evaluateMsg:
		m.tab = TabEvals
		m.evals, cmd = m.evals.update(&m.ctx, msg)
		return m, cmd
	case evaluatedMsg, evalsLoadedMsg, evalReportMsg, compareReady:
		m.evals, cmd = m.evals.update(&m.ctx, msg)
		return m, cmd
	case planMsg, launchedMsg, dataMsg, pullMsg:
		m.launch, cmd = m.launch.update(&m.ctx, msg)
		return m, cmd
	case tea.KeyMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m Model) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.Type == tea.KeyCtrlC {
		return m, tea.Quit
	}
	if m.quitting { // s: stop (checkpoint) and quit · k: keep training headless · anything else: stay
		m.quitting = false
		switch msg.String() {
		case "s":
			return m, tea.Quit
		case "k":
			m.headless = true
			return m, tea.Quit
		}
		return m, nil
	}
	var cmd tea.Cmd
	if m.tab == TabRuns && m.runs.capturing() {
		m.runs, cmd = m.runs.update(&m.ctx, msg)
		return m, cmd
	}
	if m.tab == TabLaunch && m.launch.capturing() {
		m.launch, cmd = m.launch.update(&m.ctx, msg)
		return m, cmd
	}
	if m.tab == TabREPL && m.repl.capturing() {
		m.repl, cmd = m.repl.update(&m.ctx, msg)
		return m, cmd
	}
	if m.tab == TabAdapters && m.adapters.capturing() {
		m.adapters, cmd = m.adapters.update(&m.ctx, msg)
		return m, cmd
	}
	// In a form, tab moves between its fields whatever the field (a
	// form's convention); the other keys of the workstation work on its
	// choices.
	if s := msg.String(); s == "tab" || s == "shift+tab" {
		switch {
		case m.tab == TabLaunch && m.launch.inForm:
			m.launch, cmd = m.launch.update(&m.ctx, msg)
			return m, cmd
		case m.tab == TabREPL && m.repl.inForm:
			m.repl, cmd = m.repl.update(&m.ctx, msg)
			return m, cmd
		}
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		if m.ctx.Svc.Running() > 0 {
			m.quitting = true
			return m, nil
		}
		return m, tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.layout()
		return m, nil
	case key.Matches(msg, m.keys.Next):
		return m.show((m.tab + 1) % numTabs)
	case key.Matches(msg, m.keys.Prev):
		return m.show((m.tab + numTabs - 1) % numTabs)
	case key.Matches(msg, m.keys.Jump):
		return m.show(Tab(msg.Runes[0] - '1'))
	}
	switch m.tab {
	case TabRuns:
		m.runs, cmd = m.runs.update(&m.ctx, msg)
	case TabTrain:
		m.train, cmd = m.train.update(&m.ctx, msg)
	case TabAdapters:
		m.adapters, cmd = m.adapters.update(&m.ctx, msg)
	case TabEvals:
		m.evals, cmd = m.evals.update(&m.ctx, msg)
	case TabLaunch:
		m.launch, cmd = m.launch.update(&m.ctx, msg)
	case TabREPL:
		m.repl, cmd = m.repl.update(&m.ctx, msg)
	}
	return m, cmd
}

// show switches to tab and refreshes what it lists.
func (m Model) show(tab Tab) (tea.Model, tea.Cmd) {
	m.tab = tab
	switch tab {
	case TabAdapters:
		return m, loadAdapters(m.ctx.Svc)
	case TabEvals:
		return m, loadEvals(m.ctx.Svc)
	case TabLaunch:
		var cmd tea.Cmd
		m.launch, cmd = m.launch.init(&m.ctx)
		return m, cmd
	case TabREPL:
		m.repl = m.repl.init(&m.ctx)
		return m, loadAdapters(m.ctx.Svc)
	}
	return m, nil
}

// bars are the top bar and rule, and the rule and bottom bar.
const barLines = 4

// layout sizes the views' area after a resize.
func (m *Model) layout() {
	m.ctx.Width = m.width
	m.ctx.Height = max(3, m.height-barLines-m.helpLines())
	m.help.Width = m.width
	m.runs.apply(&m.ctx)
	m.adapters.apply(&m.ctx)
	m.evals.apply(&m.ctx)
}

// helpLines is how many lines the full help takes below the bottom bar
// (none while the short help sits in the bottom bar).
func (m Model) helpLines() int {
	if !m.help.ShowAll {
		return 0
	}
	return lipgloss.Height(m.help.View(m.keyMap()))
}

func (m Model) keyMap() keyMap {
	var v help.KeyMap
	switch m.tab {
	case TabRuns:
		v = m.runs.keys
	case TabTrain:
		v = m.train.keys
	case TabAdapters:
		v = m.adapters.keys
	case TabEvals:
		v = m.evals.keys
	case TabLaunch:
		v = m.launch.keys
	case TabREPL:
		v = m.repl.keys
	}
	return keyMap{view: v, global: m.keys, typing: m.typing()}
}

// View implements tea.Model.
func (m Model) View() string {
	ctx := m.ctx
	ctx.Height = max(3, m.height-barLines-m.helpLines())
	st := ctx.Styles
	rule := st.Rule.Render(strings.Repeat("─", m.width))

	var content string
	switch m.tab {
	case TabRuns:
		content = m.runs.view(&ctx)
	case TabTrain:
		content = m.train.view(&ctx)
	case TabAdapters:
		content = m.adapters.view(&ctx)
	case TabEvals:
		content = m.evals.view(&ctx)
	case TabLaunch:
		content = m.launch.view(&ctx)
	case TabREPL:
		content = m.repl.view(&ctx)
	}
	content = lipgloss.NewStyle().Height(ctx.Height).MaxHeight(ctx.Height).MaxWidth(m.width).Render(content)

	parts := []string{m.topBar(), rule, content, rule}
	if m.help.ShowAll {
		parts = append(parts, m.bottomBar(""), m.help.View(m.keyMap()))
	} else {
		parts = append(parts, m.bottomBar(m.help.ShortHelpView(m.keyMap().ShortHelp())))
	}
	return strings.Join(parts, "\n")
}

func (m Model) topBar() string {
	st := m.ctx.Styles
	var tabs []string
	for i, name := range tabNames {
		if Tab(i) == m.tab {
			tabs = append(tabs, st.Active.Render("◆ "+name))
		} else {
			tabs = append(tabs, st.Tab.Render("  "+name))
		}
	}
	left := " " + st.Title.Render("distill") + " " + strings.Join(tabs, " ")
	mem := "RSS " + humanBytes(m.rss)
	if m.hasGPU { // VRAM through NVML, next to the process's own memory
		mem = "VRAM " + humanBytes(m.gpu.Used) + "/" + humanBytes(m.gpu.Total) + " · " + mem
	}
	right := m.ctx.Svc.Device() + " · " + mem + " "
	if lipgloss.Width(left)+lipgloss.Width(right)+1 > m.width {
		device, _, _ := strings.Cut(m.ctx.Svc.Device(), " ")
		right = device + " · " + mem + " "
	}
	return barLine(left, right, m.width)
}

func (m Model) bottomBar(keys string) string {
	st := m.ctx.Styles
	if m.quitting {
		return fit(" "+st.Warn.Render("a run is training:")+" s stop & quit · k keep training headless · other: stay", m.width)
	}
	left := " " + st.Muted.Render("no active run")
	if m.active != "" {
		left = " " + st.Good.Render("●") + " " + m.active + st.Muted.Render("  running")
	}
	// The run training now, wherever the user is: this window's, or one
	// the Train view follows through the store (another process's).
	id, p := m.live.id, m.live.last
	if !m.live.going() {
		id, p = "", app.Progress{}
		if t := m.train; t.runID != "" && t.runID == m.active {
			id, p = t.runID, t.last
		}
	}
	brief := left // the run and its step: what is left when the view's keys need the room
	if id != "" {
		steps := fmt.Sprintf("step %d", p.Step)
		if p.Total > 0 {
			steps = fmt.Sprintf("step %d/%d", p.Step, p.Total)
		}
		brief = fmt.Sprintf(" %s %s  %s", st.Good.Render("●"), id, steps)
		left = fmt.Sprintf("%s  loss %.3f  %.0f tok/s", brief, p.Loss, p.TokensPerSec)
		if d, ok := etaOf(p); ok && m.width >= 100 && !(m.train.runID == id && m.train.paused) {
			left += "  ETA " + humanDuration(d)
		}
	}
	if keys == "" {
		return fit(left, m.width)
	}
	// What fits, best first: the run's figures and the view's keys; the
	// run and its step with the view's keys (a view's keys — the Train
	// view's p and c, a form's "esc leave form" — matter more than loss
	// and tok/s); in a text field, where q and ? are typed, not obeyed,
	// the form's keys alone; then the figures with "? help • q quit".
	fits := func(l, k string) bool { return lipgloss.Width(l)+lipgloss.Width(k)+2 <= m.width }
	short := m.help.ShortHelpView([]key.Binding{m.keys.Help, m.keys.Quit})
	cands := [][2]string{{left, keys}, {brief, keys}}
	if v := m.keyMap().view; v != nil && m.typing() {
		cands = append(cands, [2]string{brief, m.help.ShortHelpView(v.ShortHelp())})
	}
	cands = append(cands, [2]string{left, short}, [2]string{brief, short})
	for _, c := range cands {
		if fits(c[0], c[1]) {
			return barLine(c[0], c[1]+" ", m.width)
		}
	}
	// still too narrow: cut the run's line, keep the keys
	return barLine(fit(brief, max(0, m.width-lipgloss.Width(short)-2)), short+" ", m.width)
}

// barLine puts left and right at the two ends of a line width cells wide.
func barLine(left, right string, width int) string {
	gap := width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return fit(left+" "+right, width)
	}
	return left + spaces(gap) + right
}

// follow shows the run of msg in the Train view, following its channel
// (the root reads it).
func (m *Model) follow(msg WatchMsg) tea.Cmd {
	var cmd tea.Cmd
	m.train, cmd = m.train.update(&m.ctx, msg)
	return cmd
}

// typing says the view on screen sends keys to a text field.
func (m Model) typing() bool {
	switch m.tab {
	case TabRuns:
		return m.runs.capturing()
	case TabLaunch:
		return m.launch.capturing()
	case TabREPL:
		return m.repl.capturing()
	case TabAdapters:
		return m.adapters.capturing()
	}
	return false
}
