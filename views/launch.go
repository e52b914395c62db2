package views

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

type launchKeys struct {
	Enter, Move, Field, Cycle, Back, Pull key.Binding

	form bool // the cursor is in the form: the help shows how to leave it
}

func (k launchKeys) ShortHelp() []key.Binding {
	if k.form {
		return []key.Binding{k.Field, k.Cycle, k.Back}
	}
	return []key.Binding{k.Move, k.Cycle, k.Enter}
}

func (k launchKeys) FullHelp() [][]key.Binding {
	if k.form {
		return [][]key.Binding{{k.Field, k.Cycle}, {k.Back, k.Pull}}
	}
	return [][]key.Binding{{k.Move, k.Cycle}, {k.Enter, k.Pull}}
}

var defaultLaunchKeys = launchKeys{
	Pull:  key.NewBinding(key.WithKeys("ctrl+p"), key.WithHelp("ctrl+p", "pull base owner/name")),
	Enter: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "launch")),
	Move:  key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "edit fields")),
	Field: key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "field")),
	Cycle: key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←/→", "choose")),
	Back:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "leave form")),
}

// The form's fields, in order.
const (
	fMethod = iota
	fModel
	fData
	fVal
	fSchema
	fTeacher
	fBeta
	fRank
	fAlpha
	fTargets
	fQuant
	fLR
	fWarmup
	fEpochs
	fSteps
	fSeqLen
	fAccum
	fLaunch
	numFields
)

var fieldLabels = [numFields]string{"Method", "Base model", "Train data", "Validation", "Schema", "KD teacher", "DPO beta",
	"LoRA r", "LoRA alpha", "Targets", "Quant", "Learning rate", "Warmup steps", "Epochs", "Steps", "Seq len", "Grad accum", ""}

var (
	methods = []string{"sft", "kd", "dpo"}
	quants  = []string{"nf4", "q8", "none"}
	// targetSets are the modules an adapter may cover: every linear layer
	// (QLoRA's choice: best quality) or attention's alone (fewer parameters).
	targetSets  = []string{"all linear", "attention"}
	targetLists = []string{"q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "q_proj,k_proj,v_proj,o_proj"}
)

// modelsRoot is where the form looks for base models; defaultModel and
// defaultData are its defaults when they exist.
const (
	modelsRoot   = "models"
	defaultModel = "models/demo"
	defaultData  = "examples/tickets/train.jsonl"
	defaultVal   = "examples/tickets/val.jsonl"
	demoLR       = 0.003
	demoEpochs   = 5
)

// planMsg carries a memory plan computed for the form's seq'th state.
type planMsg struct {
	seq  int
	plan app.PlanRow
	err  error
}

// dataMsg carries what DataInfo read about the file at path, the training
// (field fData) or the validation file (fVal).
type dataMsg struct {
	field int
	path  string
	info  app.DataInfo
	err   error
}

// readData reads the file at path for field as a run would.
func readData(svc Service, field int, path string) tea.Cmd {
	return func() tea.Msg {
		info, err := svc.DataInfo(path)
		return dataMsg{field, path, info, err}
	}
}

// launchedMsg reports a run started from the form.
type launchedMsg struct {
	id  string
	ch  <-chan app.Progress
	err error
}

// pullMsg is a base model's pull moving on (or ending: p.Finished).
type pullMsg struct {
	p  app.PullProgress
	ch <-chan app.PullProgress
}

func waitPull(ch <-chan app.PullProgress) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		if !ok {
			return nil
		}
		return pullMsg{p, ch}
	}
}

// launchView is the form that configures and starts a training run.
type launchView struct {
	keys    launchKeys
	inited  bool
	method  int
	quant   int
	targets int // index into targetSets
	folders []string
	inputs  [numFields]textinput.Model
	errs    [numFields]string
	focus   int  // the field under the cursor
	inForm  bool // the form takes every key (esc leaves it)
	seq     int  // bumps on every change the plan depends on
	plan    *app.PlanRow
	planSeq int // the seq the plan on screen was made for
	planErr string
	note    string // the launch's error
	dataFor string // the training file data describes
	data    *app.DataInfo
	dataErr string
	valFor  string // the validation file val describes
	val     *app.DataInfo
	valErr  string
	// A base model being pulled from the hub: its latest progress, and
	// what the last pull ended with.
	pulling  *app.PullProgress
	pullNote string
	pullBad  bool
}

func newLaunchView() launchView {
	v := launchView{keys: defaultLaunchKeys}
	for i := range v.inputs {
		ti := newTextInput()
		ti.Prompt = ""
		ti.CharLimit = 256
		v.inputs[i] = ti
	}
	return v
}

// capturing reports whether the form takes every key: while a text field
// has the cursor (it types q, ?, 1–6; tab moves on). On a choice or the
// Launch button the workstation's keys work (esc leaves the form).
func (v launchView) capturing() bool { return v.inForm && isText(v.focus) }

// init fills the defaults from the service the first time the view shows.
func (v launchView) init(ctx *Context) (launchView, tea.Cmd) {
	if v.inited {
		return v, nil
	}
	v.inited = true
	d := app.DefaultRunConfig("sft")
	v.folders = ctx.Svc.ModelFolders(modelsRoot)
	if ok, dir := ctx.Svc.StatPath(defaultModel); ok && dir {
		v.inputs[fModel].SetValue(defaultModel)
	}
	if ok, dir := ctx.Svc.StatPath(defaultData); ok && !dir {
		v.inputs[fData].SetValue(defaultData)
		if ok, dir := ctx.Svc.StatPath(defaultVal); ok && !dir {
			v.inputs[fVal].SetValue(defaultVal)
		}
	}
	v.quant = slices.Index(quants, d.Quant)
	v.targets = max(0, slices.Index(targetLists, d.LoRA.Targets))
	v.inputs[fWarmup].SetValue(strconv.Itoa(d.Warmup))
	v.inputs[fAccum].SetValue(strconv.Itoa(d.Accum))
	v.inputs[fBeta].SetValue(fmtFloat(d.DPO.Beta))
	v.inputs[fRank].SetValue(strconv.Itoa(d.LoRA.R))
	v.inputs[fAlpha].SetValue(fmtFloat(d.LoRA.Alpha))
	v.inputs[fLR].SetValue(fmtFloat(d.LR))
	v.inputs[fEpochs].SetValue(strconv.Itoa(d.Epochs))
	if v.inputs[fModel].Value() == defaultModel {
		// The demo base is tiny (2 layers × 64): an adapter on it needs a
		// higher rate and a few passes to learn the ticket set (~3 s here).
		v.inputs[fLR].SetValue(fmtFloat(demoLR))
		v.inputs[fEpochs].SetValue(strconv.Itoa(demoEpochs))
	}
	v.inputs[fSteps].SetValue(strconv.Itoa(d.Steps))
	v.inputs[fSeqLen].SetValue(strconv.Itoa(d.SeqLen))
	return v.changed(ctx)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// visible reports whether field f belongs to the chosen method's form.
func (v launchView) visible(f int) bool {
	switch f {
	case fTeacher:
		return methods[v.method] == "kd"
	case fBeta:
		return methods[v.method] == "dpo"
	case fSchema: // IDP targets' JSON Schema: what evaluating the run checks
		return v.data != nil && v.data.Format == "idp"
	}
	return true
}

func isChoice(f int) bool { return f == fMethod || f == fQuant || f == fModel || f == fTargets }
func isText(f int) bool   { return f != fMethod && f != fQuant && f != fTargets && f != fLaunch }

// move puts the cursor d visible fields on, wrapping.
func (v launchView) move(d int) (launchView, tea.Cmd) {
	v.inputs[v.focus].Blur()
	for {
		v.focus = (v.focus + d + numFields) % numFields
		if v.visible(v.focus) {
			break
		}
	}
	if v.inForm && isText(v.focus) {
		return v, v.inputs[v.focus].Focus()
	}
	return v, nil
}

// config reads the form into a run config, with an error per field that does
// not parse or is out of range.
func (v launchView) config(ctx *Context) (app.RunConfig, [numFields]string) {
	var errs [numFields]string
	c := app.DefaultRunConfig(methods[v.method])
	val := func(f int) string { return strings.TrimSpace(v.inputs[f].Value()) }
	c.Model, c.Data, c.Val = val(fModel), val(fData), val(fVal)
	c.Quant = quants[v.quant]
	c.LoRA.Targets = targetLists[v.targets]
	path := func(f int, p string, wantDir bool) {
		switch ok, dir := ctx.Svc.StatPath(p); {
		case p == "":
			errs[f] = "required"
		case !ok:
			errs[f] = p + ": not found"
		case wantDir && !dir:
			errs[f] = p + ": not a folder"
		case !wantDir && dir:
			errs[f] = p + ": is a folder, want a file"
		}
	}
	path(fModel, c.Model, true)
	if ok, _ := ctx.Svc.StatPath(c.Model); !ok && app.LooksLikeRepo(c.Model) {
		errs[fModel] = c.Model + ": not here; ctrl+p pulls it from the hub"
	}
	path(fData, c.Data, false)
	if n, isBalanced := strings.CutPrefix(c.Val, "balanced "); isBalanced {
		// "balanced N": hold out N rows of each class (classification)
		per, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || per < 1 {
			errs[fVal] = fmt.Sprintf("%q: want balanced N, N rows of each class", c.Val)
		}
		c.Val, c.ValPerClass = "", per
	} else if c.Val != "" {
		path(fVal, c.Val, false)
	}
	if c.Method == "kd" {
		c.KD.Teacher = val(fTeacher)
		path(fTeacher, c.KD.Teacher, true)
	}
	if v.visible(fSchema) {
		c.Schema = val(fSchema)
		path(fSchema, c.Schema, false)
	}
	intField := func(f, lo, hi int) int {
		n, err := strconv.Atoi(val(f))
		if err != nil {
			errs[f] = fmt.Sprintf("%q is not a whole number", val(f))
		} else if n < lo || n > hi {
			errs[f] = fmt.Sprintf("want %d to %d", lo, hi)
		}
		return n
	}
	floatField := func(f int, lo, hi float64) float64 {
		x, err := strconv.ParseFloat(val(f), 64)
		if err != nil {
			errs[f] = fmt.Sprintf("%q is not a number", val(f))
		} else if x <= lo || x > hi {
			errs[f] = fmt.Sprintf("want more than %g, at most %g", lo, hi)
		}
		return x
	}
	if c.Method == "dpo" {
		c.DPO.Beta = floatField(fBeta, 0, 100)
	}
	c.LoRA.R = intField(fRank, 1, 1024)
	c.LoRA.Alpha = floatField(fAlpha, 0, 1e4)
	c.LR = floatField(fLR, 0, 1)
	c.Warmup = intField(fWarmup, 0, 1e7)
	c.Accum = intField(fAccum, 1, 4096)
	c.Epochs = intField(fEpochs, 0, 1000)
	c.Steps = intField(fSteps, 0, 1e7)
	c.SeqLen = intField(fSeqLen, 8, 1<<17)
	if errs[fEpochs] == "" && errs[fSteps] == "" && c.Epochs == 0 && c.Steps == 0 {
		errs[fSteps] = "give steps or epochs"
	}
	return c, errs
}

// ok reports whether no field has an error.
func ok(errs [numFields]string) bool {
	for _, e := range errs {
		if e != "" {
			return false
		}
	}
	return true
}

// changed revalidates the form, reads the training and validation files
// when they changed and, when the form is valid, replans its memory.
func (v launchView) changed(ctx *Context) (launchView, tea.Cmd) {
	cfg, errs := v.config(ctx)
	v.errs = errs
	v.seq++
	var readTrain, readVal tea.Cmd
	if path := cfg.Data; path != v.dataFor {
		v.dataFor, v.data, v.dataErr = path, nil, ""
		if errs[fData] == "" {
			readTrain = readData(ctx.Svc, fData, path)
		}
	}
	if path := cfg.Val; path != v.valFor { // "" for a hold-out from the training file
		v.valFor, v.val, v.valErr = path, nil, ""
		if path != "" && errs[fVal] == "" {
			readVal = readData(ctx.Svc, fVal, path)
		}
	}
	reads := tea.Batch(readTrain, readVal)
	v.errs = v.withData(cfg, v.errs)
	if !ok(v.errs) {
		v.plan, v.planErr = nil, ""
		return v, reads
	}
	if err := app.ValidateRunConfig(cfg); err != nil {
		v.errs[fLaunch] = err.Error()
		v.plan, v.planErr = nil, ""
		return v, reads
	}
	svc, seq := ctx.Svc, v.seq
	return v, tea.Batch(reads, func() tea.Msg {
		p, err := svc.PlanRun(cfg)
		return planMsg{seq, p, err}
	})
}

// withData adds what the data files' contents say about the form: each
// file's own problems, a format the method cannot use, a validation file
// that does not match the training file, and balanced validation on data
// without classes.
func (v launchView) withData(cfg app.RunConfig, errs [numFields]string) [numFields]string {
	errs[fData] = v.dataProblem(errs[fData])
	errs[fVal] = v.valProblem(cfg, errs[fVal])
	return errs
}

// dataProblem is the training file's error to show in place: the path's
// own, the file's, or a format the chosen method cannot train on.
func (v launchView) dataProblem(pathErr string) string {
	switch {
	case pathErr != "":
		return pathErr
	case v.dataErr != "":
		return v.dataErr
	case v.data == nil:
		return ""
	}
	pref := v.data.Format == "preference"
	switch method := methods[v.method]; {
	case method == "dpo" && !pref:
		return "DPO trains on preference pairs (prompt, chosen, rejected); this file is " + v.data.Format
	case method != "dpo" && pref:
		return "preference pairs train DPO: choose DPO, or another file"
	}
	return ""
}

// valProblem is the Validation field's error to show in place, checked as
// a run checks its validation file: the path's own, the file's, a format
// the chosen method cannot validate on or other than the training file's,
// or labels the training file lacks.
func (v launchView) valProblem(cfg app.RunConfig, pathErr string) string {
	switch {
	case pathErr != "":
		return pathErr
	case cfg.ValPerClass > 0: // balanced N: held out from the training file
		if v.data != nil && v.data.Format != "classification" {
			return "balanced validation needs classification data; the training file is " + v.data.Format
		}
		return ""
	case cfg.Val == "":
		return ""
	case v.valErr != "":
		return v.valErr
	case v.val == nil:
		return ""
	}
	pref := v.val.Format == "preference"
	switch method := methods[v.method]; {
	case method == "dpo" && !pref:
		return "DPO validates on preference pairs, not " + v.val.Format
	case method != "dpo" && pref:
		return "preference pairs validate DPO only: choose DPO, or another file"
	}
	d := v.data
	if d == nil || v.dataProblem("") != "" {
		return "" // the training file's own problem comes first
	}
	if d.Format != v.val.Format { // a run reads the validation file in the training file's format
		return fmt.Sprintf("this file is %s; the training file is %s", v.val.Format, d.Format)
	}
	var unseen []string
	for _, l := range v.val.Labels {
		if !slices.Contains(d.Labels, l) {
			unseen = append(unseen, strconv.Quote(l))
		}
	}
	if len(unseen) > 0 {
		return "labels the training file lacks: " + strings.Join(unseen, ", ")
	}
	return ""
}

// dataLine summarises a data file under its field.
func dataLine(d *app.DataInfo) string {
	if d == nil {
		return ""
	}
	line := fmt.Sprintf("%d rows · %s", d.Rows, d.Format)
	if d.Skipped > 0 {
		line += fmt.Sprintf(" · %d bad rows skipped", d.Skipped)
	}
	for i, l := range d.Labels {
		if i == 4 {
			line += fmt.Sprintf(" · +%d more", len(d.Labels)-i)
			break
		}
		line += fmt.Sprintf(" · %s %.0f%%", l, 100*d.Shares[i])
	}
	return line
}

func (v launchView) update(ctx *Context, msg tea.Msg) (launchView, tea.Cmd) {
	v, cmd := v.handle(ctx, msg)
	v.keys.form = v.inForm
	return v, cmd
}

func (v launchView) handle(ctx *Context, msg tea.Msg) (launchView, tea.Cmd) {
	switch msg := msg.(type) {
	case planMsg:
		if msg.seq != v.seq {
			return v, nil // a later change replans
		}
		v.plan, v.planErr = nil, ""
		var fe *app.FieldError
		if errors.As(msg.err, &fe) && fe.Field == "kd.teacher" {
			v.errs[fTeacher] = fe.Error() // beside the field it is about
			return v, nil
		}
		if msg.err != nil {
			v.planErr = msg.err.Error()
		} else {
			p := msg.plan
			v.plan, v.planSeq = &p, msg.seq
		}
		return v, nil
	case dataMsg:
		var info *app.DataInfo
		var infoErr string
		if msg.err != nil {
			infoErr = msg.err.Error()
		} else {
			info = &msg.info
		}
		wasOK := ok(v.errs)
		switch {
		case msg.field == fData && msg.path == v.dataFor:
			v.data, v.dataErr = info, infoErr
			if info != nil && info.Format == "idp" && v.inputs[fSchema].Value() == "" {
				// The bundled sets keep their schema beside the data.
				if p := filepath.Join(filepath.Dir(msg.path), "schema.json"); statFile(ctx, p) {
					v.inputs[fSchema].SetValue(p)
				}
			}
		case msg.field == fVal && msg.path == v.valFor:
			v.val, v.valErr = info, infoErr
		default:
			return v, nil // the field has changed since
		}
		// Only a data file's verdict changed: replan only if the form just
		// became valid.
		cfg, errs := v.config(ctx)
		v.errs = v.withData(cfg, errs)
		if !ok(v.errs) {
			v.plan, v.planErr = nil, ""
			v.seq++ // a plan still in flight is for a form now invalid
			return v, nil
		}
		if !wasOK { // no plan was asked for while the file was in doubt
			return v.changed(ctx)
		}
		return v, nil
	case pullMsg:
		p := msg.p
		if !p.Finished {
			v.pulling = &p
			return v, waitPull(msg.ch)
		}
		v.pulling = nil
		if p.Err != nil {
			v.pullNote, v.pullBad = "pull "+p.Repo+": "+p.Err.Error(), true
			return v, nil
		}
		v.pullNote, v.pullBad = fmt.Sprintf("pulled %s at %.12s", p.Repo, p.Commit), false
		v.folders = ctx.Svc.ModelFolders(modelsRoot)
		v.inputs[fModel].SetValue(p.Dir)
		v.inputs[fModel].CursorEnd()
		return v.changed(ctx)
	case launchedMsg:
		if msg.err != nil {
			v.note = msg.err.Error()
			return v, nil
		}
		v.note = ""
		v.inForm = false
		v.inputs[v.focus].Blur()
		id, ch := msg.id, msg.ch
		return v, func() tea.Msg { return WatchMsg{RunID: id, Ch: ch} }
	case tea.KeyMsg:
		return v.key(ctx, msg)
	}
	return v, nil
}

func (v launchView) key(ctx *Context, msg tea.KeyMsg) (launchView, tea.Cmd) {
	if key.Matches(msg, v.keys.Pull) {
		return v.pull(ctx)
	}
	if !v.inForm {
		// Outside the form, enter launches what the form shows (the bundled
		// demo's defaults on a new workspace): one key from opening the
		// workstation to a training run. ↑/↓ enter the form to edit it.
		switch msg.String() {
		case "enter":
			return v.launch(ctx)
		case "down", "up", "j", "k":
			v.inForm = true
			if msg.String() == "up" || msg.String() == "k" {
				return v.move(-1)
			}
			return v.move(1)
		case "left", "right":
			return v.cycle(ctx, msg.String())
		}
		return v, nil
	}
	switch msg.String() {
	case "esc":
		v.inputs[v.focus].Blur()
		v.inForm = false
		return v.changed(ctx)
	case "tab", "down":
		return v.blurMove(ctx, 1)
	case "shift+tab", "up":
		return v.blurMove(ctx, -1)
	case "enter":
		if v.focus == fLaunch {
			return v.launch(ctx)
		}
		return v.blurMove(ctx, 1)
	case "left", "right":
		if isChoice(v.focus) {
			return v.cycle(ctx, msg.String())
		}
	}
	if isText(v.focus) {
		var cmd tea.Cmd
		v.inputs[v.focus], cmd = editField(v.inputs[v.focus], msg)
		return v, cmd
	}
	return v, nil
}

// blurMove leaves a field, revalidating and replanning, and moves on.
func (v launchView) blurMove(ctx *Context, d int) (launchView, tea.Cmd) {
	v, c1 := v.changed(ctx)
	v, c2 := v.move(d)
	return v, tea.Batch(c1, c2)
}

// cycle steps a choice field: method, quant, or the base model through the
// folders under models/.
func (v launchView) cycle(ctx *Context, dir string) (launchView, tea.Cmd) {
	d := 1
	if dir == "left" {
		d = -1
	}
	switch v.focus {
	case fMethod:
		v.method = (v.method + d + len(methods)) % len(methods)
	case fQuant:
		v.quant = (v.quant + d + len(quants)) % len(quants)
	case fTargets:
		v.targets = (v.targets + d + len(targetSets)) % len(targetSets)
	case fModel:
		if len(v.folders) == 0 {
			return v, nil
		}
		i := slices.Index(v.folders, strings.TrimSpace(v.inputs[fModel].Value()))
		if i < 0 && d < 0 {
			i = 0
		}
		i = (i + d + len(v.folders)) % len(v.folders)
		v.inputs[fModel].SetValue(v.folders[i])
		v.inputs[fModel].CursorEnd()
	default:
		return v, nil
	}
	return v.changed(ctx)
}

// pull fetches the Base model field's owner/name from the hub into
// models/, in the background; the field shows its progress and takes the
// folder when it lands.
func (v launchView) pull(ctx *Context) (launchView, tea.Cmd) {
	spec := strings.TrimSpace(v.inputs[fModel].Value())
	switch ok, _ := ctx.Svc.StatPath(spec); {
	case v.pulling != nil:
		v.pullNote, v.pullBad = "a pull is running: "+v.pulling.Repo, true
		return v, nil
	case ok || !app.LooksLikeRepo(spec):
		v.pullNote, v.pullBad = "type a hub repository (owner/name[@revision]) in Base model, then ctrl+p", true
		return v, nil
	}
	v.pulling = &app.PullProgress{Repo: spec}
	v.pullNote = ""
	return v, waitPull(ctx.Svc.PullModel(context.Background(), spec, modelsRoot))
}

// pullLine is the Base model field's pull, under it.
func (v launchView) pullLine() string {
	p := v.pulling
	if p == nil {
		return v.pullNote
	}
	if p.Total == 0 {
		return "pulling " + p.Repo + "…"
	}
	return fmt.Sprintf("pulling %s · %s · %s of %s (%.0f%%)", p.Repo, p.File, humanBytes(p.Done), humanBytes(p.Total), 100*float64(p.Done)/float64(p.Total))
}

// launch starts the run when the form is valid.
func (v launchView) launch(ctx *Context) (launchView, tea.Cmd) {
	cfg, errs := v.config(ctx)
	errs = v.withData(cfg, errs)
	if te := v.errs[fTeacher]; te != "" && errs[fTeacher] == "" && cfg.Method == "kd" {
		errs[fTeacher] = te // the plan found it (the teacher's files), not the form
	}
	v.errs = errs
	if !ok(errs) {
		v.note = "fix the fields marked above first (↑/↓ to reach them)"
		return v, nil
	}
	// What the memory plan found wrong would fail the run as it starts.
	if v.plan != nil && v.planSeq != v.seq {
		v.note = "the memory plan is being remade for the changed fields: launch once it shows"
		return v, nil
	}
	if v.planErr != "" {
		v.note = "the memory plan cannot be made (see Memory plan): fix the model or the fields first"
		return v, nil
	}
	if total := ctx.Svc.TotalMemory(); v.plan != nil && total > 0 && v.plan.Total > total {
		v.note = fmt.Sprintf("the run does not fit: the plan needs %s of %s; lower Seq len or LoRA r, or quantise to NF4", humanBytes(v.plan.Total), humanBytes(total))
		return v, nil
	}
	svc := ctx.Svc
	return v, func() tea.Msg {
		id, ch, err := svc.LaunchRun(cfg)
		return launchedMsg{id, ch, err}
	}
}

func (v launchView) view(ctx *Context) string {
	st := ctx.Styles
	var b strings.Builder
	b.WriteString(" " + st.Title.Render("Launch a run") + "\n")
	inW := max(10, min(44, ctx.Width-22))
	focusLine := 0
	for f := range numFields {
		if !v.visible(f) {
			continue
		}
		cursor := "  "
		if f == v.focus {
			cursor = st.Active.Render("▸ ")
			focusLine = strings.Count(b.String(), "\n")
		}
		var field string
		switch f {
		case fMethod:
			field = radio(st, methods, v.method)
		case fQuant:
			field = radio(st, quants, v.quant)
		case fTargets:
			field = radio(st, targetSets, v.targets)
		case fLaunch:
			label := "[ Launch ]"
			if f == v.focus {
				field = st.Active.Render(label)
			} else {
				field = label
			}
		default:
			in := v.inputs[f]
			in.Width = inW - 1 // the cursor takes a cell
			text := fit(in.View(), inW)
			if !in.Focused() {
				text = fit(in.Value(), inW)
				if in.Value() == "" && f == fVal {
					text = st.Muted.Render(fit("(hold out 10%; a file; or balanced N)", inW))
				}
			}
			field = "[" + text + "]"
			if f == fModel && len(v.folders) > 0 {
				field += st.Muted.Render(" ←/→")
			}
		}
		b.WriteString(" " + cursor + fit(fieldLabels[f], 14) + field + "\n")
		if line := v.pullLine(); f == fModel && line != "" {
			style := st.Muted
			if v.pullBad {
				style = st.Bad
			} else if v.pulling == nil {
				style = st.Good
			}
			b.WriteString(fit("", 17) + style.Render(cut(line, max(0, ctx.Width-18))) + "\n")
			if v.pulling != nil {
				continue // the progress stands in for "not here"
			}
		}
		if e := v.errs[f]; e != "" {
			b.WriteString(fit("", 17) + st.Bad.Render(fit("✗ "+e, max(0, ctx.Width-18))) + "\n")
		} else if d := v.infoFor(f); d != nil {
			b.WriteString(fit("", 17) + st.Muted.Render(cut(dataLine(d), max(0, ctx.Width-18))) + "\n")
		}
	}
	b.WriteString(" " + fit("  Memory plan", 16) + v.planLine(ctx) + "\n")
	if v.note != "" {
		b.WriteString(strings.Join(wrapped(st.Bad, v.note, ctx.Width-2), "\n") + "\n")
	}
	return scrollTo(fitLines(b.String(), ctx.Width), focusLine, ctx.Height)
}

// scrollTo shows height lines of s around line focus, the first (the
// title) always: a form longer than the terminal scrolls with its cursor.
func scrollTo(s string, focus, height int) string {
	lines := strings.Split(s, "\n")
	if height <= 1 || len(lines) <= height {
		return s
	}
	body, room := lines[1:], height-1
	start := min(max(0, focus-1-room/2), len(body)-room)
	return strings.Join(append(lines[:1:1], body[start:start+room]...), "\n")
}

// infoFor is what was read of field f's data file, if f names one.
func (v launchView) infoFor(f int) *app.DataInfo {
	switch f {
	case fData:
		return v.data
	case fVal:
		return v.val
	}
	return nil
}

// fitLines cuts every line of s to width cells.
func fitLines(s string, width int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = fit(l, width)
	}
	return strings.Join(lines, "\n")
}

func radio(st Styles, opts []string, sel int) string {
	parts := make([]string, len(opts))
	for i, o := range opts {
		if i == sel {
			parts[i] = st.Active.Render("(•) " + strings.ToUpper(o))
		} else {
			parts[i] = "( ) " + strings.ToUpper(o)
		}
	}
	return strings.Join(parts, "  ")
}

func (v launchView) planLine(ctx *Context) string {
	st := ctx.Styles
	switch {
	case v.planErr != "":
		return st.Bad.Render(v.planErr)
	case v.plan == nil && !ok(v.errs):
		return st.Muted.Render("— (fix the fields first)")
	case v.plan == nil:
		return st.Muted.Render("planning…")
	}
	p := v.plan
	line := "total " + humanBytes(p.Total)
	mark := ""
	if total := ctx.Svc.TotalMemory(); total > 0 {
		line += " of " + humanBytes(total)
		if p.Total > total {
			line, mark = st.Bad.Render(line), st.Bad.Render(" ✗")
		} else {
			mark = st.Good.Render(" ✓")
		}
	}
	weights := "weights " + humanBytes(p.Weights)
	if p.Teacher > 0 {
		weights += " + teacher " + humanBytes(p.Teacher)
	}
	if v.planSeq != v.seq { // a field changed since: this plan is the last form's
		mark += st.Muted.Render(" (replanning…)")
	}
	return line + mark + st.Muted.Render(fmt.Sprintf("  %s · adapter+opt %s · act %s", weights,
		humanBytes(p.Adapter+p.Grads+p.Optimizer), humanBytes(p.Activations+p.Workspace)))
}

// statFile says p is a file (not a folder) the service can see.
func statFile(ctx *Context, p string) bool {
	ok, dir := ctx.Svc.StatPath(p)
	return ok && !dir
}
