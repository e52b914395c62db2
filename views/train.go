package views

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

type trainKeys struct{ Pause, Cancel, Evaluate, Resume key.Binding }

func (k trainKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Pause, k.Cancel, k.Resume, k.Evaluate}
}
func (k trainKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Pause, k.Cancel, k.Resume, k.Evaluate}}
}

var defaultTrainKeys = trainKeys{
	Pause:    key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
	Cancel:   key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "cancel (checkpoints)")),
	Evaluate: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "evaluate")),
	Resume:   key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "resume")),
}

// ProgressMsg is one step of the watched run, drained from its channel.
type ProgressMsg struct {
	app.Progress
	from <-chan app.Progress // the channel it came on (waitProgress); nil: any
}

// WatchMsg makes the Train view follow a run started in this process,
// whose steps arrive on Ch (app.Workstation.StartRun's channel).
type WatchMsg struct {
	RunID string
	Ch    <-chan app.Progress
}

// historyMsg carries a run's recorded steps, read from the store, for a run
// that another process trains.
type historyMsg struct {
	id    string
	steps []app.Progress
	info  app.RunInfo // for the title; zero when the run is not recorded yet
	err   error
}

// pollMsg asks for the watched run's history again.
type pollMsg struct{ id string }

// waitProgress waits for the next step on ch; the root model issues it
// again after each one, so the channel is drained without blocking Update
// whichever run the Train view shows.
func waitProgress(ch <-chan app.Progress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		if !ok {
			return nil
		}
		return ProgressMsg{Progress: p, from: ch}
	}
}

// infoMsg carries a run's RunInfo, read again once it is recorded.
type infoMsg struct {
	id   string
	info app.RunInfo
}

func loadInfo(svc Service, id string) tea.Cmd {
	return func() tea.Msg {
		info, _ := svc.RunInfo(id)
		return infoMsg{id, info}
	}
}

func loadHistory(svc Service, id string) tea.Cmd {
	return func() tea.Msg {
		steps, err := svc.RunHistory(id)
		info, _ := svc.RunInfo(id) // a title without it is still a title
		return historyMsg{id: id, steps: steps, info: info, err: err}
	}
}

// pollEvery is how often the Train view rereads a run that another process
// trains.
const pollEvery = 2 * time.Second

// maxPoints bounds the loss history kept for the chart.
const maxPoints = 4096

// trainView monitors one run.
type trainView struct {
	keys  trainKeys
	runID string
	info  app.RunInfo // method, base, quant, r: the title's
	// infoAsked: the info was asked for again on a step (once a view)
	infoAsked bool
	ch        <-chan app.Progress // nil when the run is followed through the store
	last      app.Progress
	losses    []float64
	first     int // the step of losses[0]
	done      bool
	note      string
	bar       progress.Model
	vals      []chartMark // validation losses by step
	valAcc    float64     // the last DPO validation accuracy
	log       []string    // the last lines of the run's log
	// canceling: the user asked to cancel, so the run's end is a cancel
	canceling bool
	paused    bool // the user paused it (p); steps resume on p
}

// logLines is how many lines of a run's log the Train view keeps.
const logLines = 3

func newTrainView() trainView {
	return trainView{keys: defaultTrainKeys,
		bar: progress.New(progress.WithSolidFill("#7D56F4"), progress.WithoutPercentage(), progress.WithFillCharacters('█', '░'),
			progress.WithColorProfile(lipgloss.ColorProfile()))}
}

// watching reports whether a run is on screen and still going.
func (v trainView) watching() bool { return v.runID != "" && !v.done }

func (v trainView) reset(id string) trainView {
	nv := newTrainView()
	nv.runID = id
	return nv
}

func (v trainView) update(ctx *Context, msg tea.Msg) (trainView, tea.Cmd) {
	switch msg := msg.(type) {
	case WatchMsg:
		// Steps come on the channel (the root reads it); the store has
		// those before it (a resumed run's earlier sessions).
		v = v.reset(msg.RunID)
		v.ch = msg.Ch
		return v, loadHistory(ctx.Svc, msg.RunID)
	case openRunMsg:
		v = v.reset(msg.id)
		if msg.status != "running" && msg.status != "queued" {
			v.done, v.note = true, "run "+msg.status
		}
		return v, loadHistory(ctx.Svc, msg.id)
	case ProgressMsg:
		// Another run's, or this run's from a channel no longer followed
		// (the view reopened it from the store since: an old step would
		// rewind it).
		if msg.RunID != v.runID && msg.RunID != "" || msg.from != nil && msg.from != v.ch {
			return v, nil
		}
		if msg.IsStep() && len(v.losses) > 0 && msg.Step <= v.last.Step {
			return v, nil // the store's history had it already
		}
		v.add(msg.Progress)
		if msg.IsStep() && v.info.Method == "" && !v.infoAsked {
			// A run launched here is recorded only once its job has
			// started: by its first step it is, so its title can be read.
			v.infoAsked = true
			return v, loadInfo(ctx.Svc, v.runID)
		}
		return v, nil
	case infoMsg:
		if msg.id == v.runID {
			v.info = msg.info
		}
		return v, nil
	case historyMsg:
		if msg.id != v.runID {
			return v, nil
		}
		if msg.info.Method != "" {
			v.info = msg.info
		}
		if msg.err != nil && v.ch == nil { // a run of this window may not be recorded yet: its steps come on the channel
			v.note = "cannot read the run's steps: " + msg.err.Error()
		}
		if len(v.losses) > 0 && len(msg.steps) > 0 && msg.steps[0].Step < v.first {
			v = v.withEarlier(msg.steps) // steps came on the channel first
		}
		for _, p := range msg.steps {
			if p.Step > v.last.Step || len(v.losses) == 0 {
				v.add(p)
			}
		}
		if v.done || v.ch != nil { // a run of this process needs no polling
			return v, nil
		}
		id := v.runID
		return v, tea.Tick(pollEvery, func(time.Time) tea.Msg { return pollMsg{id} })
	case pollMsg:
		if msg.id != v.runID || v.done {
			return v, nil
		}
		return v, loadHistory(ctx.Svc, msg.id)
	case runsLoadedMsg:
		// a run followed through the store is done once it is no longer active
		for _, r := range msg.rows {
			if r.ID == v.runID && v.ch == nil && !r.Active() {
				v.done, v.note = true, "run "+r.Status
			}
		}
	case tea.KeyMsg:
		if key.Matches(msg, v.keys.Evaluate) && v.runID != "" {
			if v.watching() {
				v.note = "the run is still training: evaluate it when it has finished"
				return v, nil
			}
			id := v.runID
			return v, func() tea.Msg { return evaluateMsg{id} }
		}
		if key.Matches(msg, v.keys.Resume) && v.runID != "" {
			if v.watching() {
				v.note = "the run is still training"
				return v, nil
			}
			id := v.runID
			return v, func() tea.Msg { return resumeMsg{id} }
		}
		if key.Matches(msg, v.keys.Pause) && v.watching() {
			switch paused, ok := ctx.Svc.PauseRun(v.runID); {
			case !ok:
				v.note = "this run belongs to another process: it cannot be paused from here"
			case paused:
				v.note, v.paused = "paused between steps · p resumes (c cancels with a checkpoint)", true
			default:
				v.note, v.paused = "", false
			}
			return v, nil
		}
		if key.Matches(msg, v.keys.Cancel) && v.watching() {
			if ctx.Svc.StopRun(v.runID) {
				v.note, v.canceling = "cancelling: writing a checkpoint…", true
			} else {
				v.note = "this run belongs to another process: stop it there (Ctrl-C checkpoints)"
			}
		}
	}
	return v, nil
}

func (v *trainView) add(p app.Progress) {
	switch {
	case p.Log != "":
		v.log = append(v.log, p.Log)
		if len(v.log) > logLines {
			v.log = v.log[len(v.log)-logLines:]
		}
		return
	case p.Validation:
		if p.ValLoss > 0 {
			v.vals = append(v.vals, chartMark{p.Step, p.ValLoss})
		}
		if p.ValAccuracy > 0 {
			v.valAcc = p.ValAccuracy
		}
		return
	}
	if p.ValLoss > 0 { // a recorded step that was also validated
		v.vals = append(v.vals, chartMark{p.Step, p.ValLoss})
	}
	if p.Done {
		v.done = true
		switch {
		case p.Err != nil && !p.Resumable: // no checkpoint to resume from
			v.note = "failed: " + p.Err.Error()
		case p.Err != nil:
			v.note = "failed: " + p.Err.Error() + " · r resumes from its last checkpoint"
		case v.canceling:
			v.note = "canceled with a checkpoint · r resumes it"
		case p.Evaluable:
			v.note = "finished · e evaluates it"
		default:
			v.note = "finished · evaluate it from the CLI (distill eval …)"
		}
		return
	}
	if p.Total == 0 {
		p.Total = v.last.Total
	}
	if len(v.losses) == 0 {
		v.first = p.Step
	}
	v.losses = append(v.losses, p.Loss)
	v.thin()
	v.last = p
}

// thin keeps the chart within maxPoints: every other point of the older
// half, averaged, while there are more.
func (v *trainView) thin() {
	for len(v.losses) > maxPoints {
		half := v.losses[:maxPoints/2]
		for i := range len(half) / 2 {
			half[i] = (half[2*i] + half[2*i+1]) / 2
		}
		v.losses = append(half[:len(half)/2], v.losses[maxPoints/2:]...)
	}
}

// withEarlier is v with the store's steps from before v's first one in
// front: a run this view began following mid-way (reopened from Runs, or
// resumed) charts from its first step.
func (v trainView) withEarlier(steps []app.Progress) trainView {
	nv := v.reset(v.runID)
	for _, p := range steps {
		if p.Step < v.first {
			nv.add(p)
		}
	}
	if len(nv.losses) == 0 {
		return v
	}
	nv.losses = append(nv.losses, v.losses...)
	nv.thin()
	nv.vals = append(nv.vals, v.vals...)
	nv.ch, nv.last, nv.done, nv.note, nv.log, nv.valAcc, nv.canceling, nv.paused = v.ch, v.last, v.done, v.note, v.log, v.valAcc, v.canceling, v.paused
	return nv
}

// eta estimates the time left from the mean time per step so far.
func (v trainView) eta() (time.Duration, bool) { return etaOf(v.last) }

// etaOf estimates the time left after step p from its mean time per step.
func etaOf(p app.Progress) (time.Duration, bool) {
	if p.Total == 0 || p.Step <= 0 || p.Elapsed <= 0 || p.Step >= p.Total {
		return 0, false
	}
	per := p.Elapsed / time.Duration(p.Step)
	return per * time.Duration(p.Total-p.Step), true
}

func (v trainView) view(ctx *Context) string {
	st := ctx.Styles
	w := ctx.Width
	if v.runID == "" {
		return strings.Join([]string{" " + st.Title.Render("Train"), "",
			" No run is being watched.",
			" Open a running run from Runs (enter), or start one with `distill train sft …`."}, "\n")
	}
	p := v.last
	lines := []string{}
	steps := fmt.Sprintf("step %d", p.Step)
	frac := 0.0
	if p.Total > 0 {
		steps = fmt.Sprintf("step %d/%d", p.Step, p.Total)
		frac = float64(p.Step) / float64(p.Total)
	}
	pct := fmt.Sprintf(" %3.0f%%", frac*100)
	// The run's method, base, quant and r, as UX.md's title has them, where
	// they leave the bar room; else the bar gets its own line.
	title := " " + st.Title.Render(v.runID) + runTitle(v.info) + "  " + steps
	if short := " " + st.Title.Render(v.runID) + "  " + steps; w-lipgloss.Width(title)-len(pct)-3 < 10 && w-lipgloss.Width(short)-len(pct)-3 >= 10 {
		title = short
	}
	barW := w - lipgloss.Width(title) - len(pct) - 3
	if p.Total > 0 && barW >= 10 {
		v.bar.Width = barW
		lines = append(lines, title+" ▕"+v.bar.ViewAs(frac)+"▏"+pct)
	} else {
		lines = append(lines, title)
		if p.Total > 0 {
			v.bar.Width = max(10, w-len(pct)-4)
			lines = append(lines, " ▕"+v.bar.ViewAs(frac)+"▏"+pct)
		}
	}
	stats := fmt.Sprintf(" loss %.4f · lr %.2e · grad-norm %.2f · %.0f tok/s", p.Loss, p.LR, p.GradNorm, p.TokensPerSec)
	if n := len(v.vals); n > 0 {
		stats += fmt.Sprintf(" · val %.4f", v.vals[n-1].value)
	}
	if v.valAcc > 0 {
		stats += fmt.Sprintf(" · val acc %.3f", v.valAcc)
	}
	timing := " elapsed " + humanDuration(p.Elapsed)
	if d, ok := v.eta(); ok && !v.paused {
		timing = " ETA " + humanDuration(d) + " ·" + timing
	}
	lines = append(lines, stats, timing)
	if p.RSS > 0 {
		mem := " memory "
		if total := ctx.Svc.TotalMemory(); total > 0 {
			gauge := progress.New(progress.WithoutPercentage(), progress.WithFillCharacters('█', '░'),
				progress.WithSolidFill("#2E9E5B"), progress.WithWidth(min(20, max(5, w/5))),
				progress.WithColorProfile(lipgloss.ColorProfile()))
			mem += "▕" + gauge.ViewAs(float64(p.RSS)/float64(total)) + "▏ " + humanBytes(p.RSS) + " / " + humanBytes(total)
		} else {
			mem += humanBytes(p.RSS)
		}
		if p.Plan > 0 {
			mem += " (plan " + humanBytes(p.Plan) + ")"
		}
		lines = append(lines, mem)
	}
	status := []string{""}
	if v.note != "" {
		style := lipgloss.NewStyle()
		if strings.HasPrefix(v.note, "failed") {
			style = st.Bad
		}
		status = wrapped(style, v.note, w-2) // the advice at its end must show
	}
	tail := v.log
	if ctx.Height < 18 { // keep the chart at 80×24
		tail = tail[max(0, len(tail)-1):]
	}
	chartH := ctx.Height - len(lines) - len(status) - 3 - len(tail) // title row, x-axis rows, status, log
	if chartH >= 2 && len(v.losses) > 0 {
		legend := "loss ▇ train"
		if len(v.vals) > 0 {
			legend += " · • validation"
		}
		lines = append(lines, " "+st.Muted.Render(legend))
		lines = append(lines, columnChart(v.losses, v.first, p.Step, w-1, chartH, v.vals...)...)
	} else if len(v.losses) > 0 {
		lines = append(lines, " loss "+sparkline(v.losses, max(5, w-8)))
	} else {
		lines = append(lines, "", " waiting for the first step…")
	}
	for _, l := range tail {
		lines = append(lines, " "+st.Muted.Render("log ")+cut(l, max(5, w-6)))
	}
	bodyH := max(1, ctx.Height-len(status))
	body := lipgloss.NewStyle().Height(bodyH).MaxHeight(bodyH).Render(strings.Join(lines, "\n"))
	return body + "\n" + strings.Join(status, "\n")
}

// runTitle is " · SFT · SmolLM2-135M · nf4 · r16" (what is known of i).
func runTitle(i app.RunInfo) string {
	if i.Method == "" {
		return ""
	}
	parts := []string{strings.ToUpper(i.Method), shortBase(i.Base)}
	if i.Quant != "" {
		parts = append(parts, i.Quant)
	}
	switch {
	case i.Full:
		parts = append(parts, "full")
	case i.Rank > 0:
		parts = append(parts, fmt.Sprintf("r%d", i.Rank))
	}
	return " · " + strings.Join(parts, " · ")
}
