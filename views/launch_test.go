package views

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"distill/app"
)

func launchService() *fakeService {
	return &fakeService{
		paths: map[string]bool{"models/demo": true, "models/demo-init": true, "examples/tickets/train.jsonl": false},
		plan: app.PlanRow{Total: 1331 << 20, Weights: 320 << 20, Adapter: 30 << 20, Grads: 30 << 20, Optimizer: 60 << 20,
			Activations: 700 << 20, Workspace: 91 << 20, Runtime: 100 << 20},
	}
}

// openLaunch is the Launch view with its defaults filled and planned.
func openLaunch(svc *fakeService, w, h int) Model {
	m := newTestModel(svc, w, h)
	return stepRun(m, keys("2"))
}

func TestLaunchDefaults(t *testing.T) {
	for _, s := range sizes {
		m := openLaunch(launchService(), s.w, s.h)
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, "models/demo") || !strings.Contains(frame, "total 1.4 GB") {
			t.Errorf("defaults or plan line missing:\n%s", frame)
		}
		golden(t, sizeName("launch", s.w, s.h), frame)
	}
}

func TestLaunchValidation(t *testing.T) {
	for _, s := range sizes {
		m := openLaunch(launchService(), s.w, s.h)
		// down to the LoRA r field: method, model, data, val, r
		for range 4 {
			m = step(m, tea.KeyMsg{Type: tea.KeyDown})
		}
		m = step(m, tea.KeyMsg{Type: tea.KeyBackspace})
		m = step(m, tea.KeyMsg{Type: tea.KeyBackspace})
		m = step(m, keys("x"))
		m = step(m, tea.KeyMsg{Type: tea.KeyEnter})
		frame := m.View()
		checkFrame(t, frame, s.w, s.h)
		if !strings.Contains(frame, `"x" is not a whole number`) {
			t.Errorf("no error under the field:\n%s", frame)
		}
		golden(t, sizeName("launch-invalid", s.w, s.h), frame)
	}
}

func TestLaunchCyclesAndStarts(t *testing.T) {
	svc := launchService()
	m := openLaunch(svc, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // enter the form, on the model
	m = step(m, tea.KeyMsg{Type: tea.KeyRight})
	if got := m.launch.inputs[fModel].Value(); got != "models/demo-init" {
		t.Errorf("→ on the model: %q", got)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyShiftTab}) // back to the method
	m = step(m, tea.KeyMsg{Type: tea.KeyRight})
	if methods[m.launch.method] != "kd" {
		t.Errorf("→ on the method: %s", methods[m.launch.method])
	}
	if m.launch.errs[fTeacher] == "" {
		t.Error("kd without a teacher shows no error")
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft})
	m.launch.focus = fLaunch
	nm, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	m = nm.(Model)
	if cmd == nil {
		t.Fatal("enter on Launch returned no command")
	}
	m = stepRun(m, cmd())
	if len(svc.launched) != 1 || svc.launched[0].Model != "models/demo-init" || svc.launched[0].Method != "sft" {
		t.Fatalf("launched %+v", svc.launched)
	}
	if m.tab != TabTrain || m.train.runID != "20261125-190000-sft-0001" {
		t.Errorf("after launch: tab %d, train run %q", m.tab, m.train.runID)
	}
}

// A new workspace opens on the form filled with the demo, and enter launches
// it at once: the first run is one key away.
func TestNewWorkspaceLaunchesWithEnter(t *testing.T) {
	svc := launchService()
	svc.paths["examples/tickets/val.jsonl"] = false
	m := newTestModel(svc, 80, 24)
	if m.tab != TabLaunch {
		t.Fatalf("opened on tab %d, want Launch", m.tab)
	}
	if got := m.launch.inputs[fVal].Value(); got != "examples/tickets/val.jsonl" {
		t.Errorf("validation default %q", got)
	}
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 1 || svc.launched[0].Model != "models/demo" || svc.launched[0].Val != "examples/tickets/val.jsonl" {
		t.Fatalf("launched %+v", svc.launched)
	}
}

// Enter on an invalid form launches nothing and says what to fix.
func TestLaunchRefusesInvalidForm(t *testing.T) {
	svc := launchService()
	svc.paths = map[string]bool{}
	m := newTestModel(svc, 80, 24)
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 0 {
		t.Fatalf("launched %+v", svc.launched)
	}
	if f := m.View(); !strings.Contains(f, "fix the fields marked above") || !strings.Contains(f, "required") {
		t.Errorf("no explanation:\n%s", f)
	}
}

// The training file is read as a run would read it: its summary shows under
// the field, a broken file or a format the method cannot train on is an
// error in place, and launching is refused.
func TestLaunchChecksTheData(t *testing.T) {
	svc := launchService()
	m := openLaunch(svc, 80, 24)
	if f := m.View(); !strings.Contains(f, "600 rows · classification · account 34%") {
		t.Fatalf("no data summary:\n%s", f)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft}) // method: DPO (from SFT, wrapping)
	if methods[m.launch.method] != "dpo" {
		t.Fatalf("method %s", methods[m.launch.method])
	}
	if f := m.View(); !strings.Contains(f, "DPO trains on preference pairs") {
		t.Errorf("DPO on classification data not refused:\n%s", f)
	}
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 0 {
		t.Fatalf("launched %+v", svc.launched)
	}

	svc = launchService()
	svc.dataErr = errors.New("examples/tickets/train.jsonl:3: invalid JSON: unexpected end of input")
	m = openLaunch(svc, 80, 24)
	if f := m.View(); !strings.Contains(f, "train.jsonl:3: invalid JSON") || strings.Contains(f, "total 1.4 GB") {
		t.Errorf("a broken file is not shown in place, or was planned:\n%s", f)
	}
}

// A teacher the plan refuses is marked beside the teacher field.
func TestLaunchForeignTeacherInPlace(t *testing.T) {
	svc := launchService()
	svc.paths["models/teacher"] = true
	svc.planErr = &app.FieldError{Field: "kd.teacher", Err: errors.New("models/teacher uses a different tokenizer from models/demo: logit KD needs a shared vocabulary")}
	m := openLaunch(svc, 100, 30)
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyRight}) // method: KD
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})     // into the form: model
	for range 4 {                                  // data, validation, teacher
		m = step(m, tea.KeyMsg{Type: tea.KeyDown})
		if m.launch.focus == fTeacher {
			break
		}
	}
	m = step(m, keys("models/teacher"))
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	f := m.View()
	lines := strings.Split(f, "\n")
	for i, l := range lines {
		if strings.Contains(l, "KD teacher") {
			if i+1 >= len(lines) || !strings.Contains(lines[i+1], "different tokenizer") {
				t.Errorf("no error under the teacher:\n%s", f)
			}
			return
		}
	}
	t.Errorf("no teacher field:\n%s", f)
}

// "balanced N" in Validation holds out N rows per class; a bad N is marked.
func TestLaunchBalancedValidation(t *testing.T) {
	svc := launchService()
	m := openLaunch(svc, 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // model
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // data
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // validation
	m = step(m, keys("balanced x"))
	m = step(m, tea.KeyMsg{Type: tea.KeyEnter})
	if !strings.Contains(m.View(), `"balanced x": want balanced N`) {
		t.Fatalf("bad N not marked:\n%s", m.View())
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyShiftTab})
	for range 10 {
		m = step(m, tea.KeyMsg{Type: tea.KeyBackspace})
	}
	m = step(m, keys("balanced 20"))
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 1 || svc.launched[0].ValPerClass != 20 || svc.launched[0].Val != "" {
		t.Fatalf("launched %+v", svc.launched)
	}
}

// A hub repository typed as the base model is offered for pulling; ctrl+p
// pulls it, the field shows the pull, then takes the folder and replans.
func TestLaunchPullsBaseModel(t *testing.T) {
	svc := launchService()
	m := openLaunch(svc, 100, 30)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // enter the form, on the model
	m.launch.inputs[fModel].SetValue("acme/tiny-chat")
	m = step(m, tea.KeyMsg{Type: tea.KeyEnter}) // leave the field: revalidate
	if e := m.launch.errs[fModel]; !strings.Contains(e, "ctrl+p pulls it from the hub") {
		t.Fatalf("an unknown owner/name: %q", e)
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyUp})
	nm, cmd := m.Update(tea.KeyMsg{Type: tea.KeyCtrlP})
	m = nm.(Model)
	if cmd == nil || len(svc.pulled) != 1 || svc.pulled[0] != "acme/tiny-chat" {
		t.Fatalf("ctrl+p pulled %v", svc.pulled)
	}
	msg := cmd()
	nm, cmd = m.Update(msg)
	m = nm.(Model)
	if frame := m.View(); !strings.Contains(frame, "pulling acme/tiny-chat · model.safetensors · 1 MB of 3 MB (33%)") || strings.Contains(frame, "not here") {
		t.Errorf("no progress under the field:\n%s", frame)
	}
	m = stepRun(m, cmd()) // the last message: the folder arrived
	if got := m.launch.inputs[fModel].Value(); got != "models/tiny-chat" {
		t.Errorf("after the pull the field holds %q", got)
	}
	frame := m.View()
	if !strings.Contains(frame, "pulled acme/tiny-chat at 89abcdef0123") || !strings.Contains(frame, "total 1.4 GB") || m.launch.errs[fModel] != "" {
		t.Errorf("after the pull:\n%s", frame)
	}

	// A failed pull says why, under the field.
	svc.pullErr = errors.New("acme/private: HTTP 401: no such repository, or it is private or gated; check the name, or set HF_TOKEN (or --token)")
	m.launch.inputs[fModel].SetValue("acme/private")
	nm, cmd = m.Update(tea.KeyMsg{Type: tea.KeyCtrlP})
	m = nm.(Model)
	m = step(m, cmd())
	nm, cmd = m.Update(cmd())
	m = nm.(Model)
	if frame := m.View(); !strings.Contains(frame, "pull acme/private: acme/private: HTTP 401") {
		t.Errorf("failed pull:\n%s", frame)
	}
	// ctrl+p on a folder that exists pulls nothing.
	m.launch.inputs[fModel].SetValue("models/demo")
	m = step(m, tea.KeyMsg{Type: tea.KeyCtrlP})
	if len(svc.pulled) != 2 || !strings.Contains(m.View(), "type a hub repository") {
		t.Errorf("ctrl+p on a folder: %v", svc.pulled)
	}
}

// dataByPath answers DataInfo per file, as the files a form names differ.
type dataByPath struct {
	*fakeService
	info map[string]app.DataInfo
}

func (s dataByPath) DataInfo(path string) (app.DataInfo, error) {
	if info, ok := s.info[path]; ok {
		return info, nil
	}
	return s.fakeService.DataInfo(path)
}

// The Validation file is read as a run reads it and checked in place, as
// the training file is: a format the method cannot validate on, one other
// than the training file's, or labels the training file lacks are marked
// under the field, and launching is refused until the file fits.
func TestLaunchChecksTheValidationFile(t *testing.T) {
	const (
		prefTrain = "examples/preferences/train.jsonl"
		prefVal   = "examples/preferences/val.jsonl"
		chatVal   = "examples/chat/val.jsonl"
		odd       = "examples/tickets/odd.jsonl"
	)
	svc := launchService()
	for _, p := range []string{defaultVal, prefTrain, prefVal, chatVal, odd} {
		svc.paths[p] = false
	}
	tickets := app.DataInfo{Format: "classification", Rows: 60, Labels: []string{"account", "billing", "technical"}, Shares: []float64{0.4, 0.3, 0.3}}
	ds := dataByPath{svc, map[string]app.DataInfo{
		prefTrain:  {Format: "preference", Rows: 200},
		prefVal:    {Format: "preference", Rows: 20},
		defaultVal: tickets,
		chatVal:    {Format: "messages", Rows: 30},
		odd:        {Format: "classification", Rows: 10, Labels: []string{"billing", "refund"}, Shares: []float64{0.5, 0.5}},
	}}
	m := newTestModel(ds, 100, 30) // a new workspace: the form, with the ticket files
	if m.tab != TabLaunch || m.launch.inputs[fVal].Value() != defaultVal {
		t.Fatalf("tab %d, validation %q", m.tab, m.launch.inputs[fVal].Value())
	}
	if f := m.View(); !strings.Contains(f, "60 rows · classification") || m.launch.errs[fVal] != "" {
		t.Errorf("no summary under the validation file, or an error (%q):\n%s", m.launch.errs[fVal], f)
	}
	// set puts a path in a field and leaves it (revalidating), back out of the form.
	set := func(m Model, f int, path string) Model {
		m.launch.inputs[f].SetValue(path)
		m.launch.inForm, m.launch.focus = true, f
		m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
		m = stepRun(m, tea.KeyMsg{Type: tea.KeyEsc})
		m.launch.focus = fMethod // ←/→ choose the method
		return m
	}
	underVal := func(m Model) string {
		lines := strings.Split(m.View(), "\n")
		for i, l := range lines {
			if strings.Contains(l, "Validation") && i+1 < len(lines) {
				return lines[i+1]
			}
		}
		return ""
	}

	// DPO on preference pairs, validated on the ticket set: refused in place.
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft}) // method: DPO
	m = set(m, fData, prefTrain)
	if methods[m.launch.method] != "dpo" || m.launch.errs[fData] != "" {
		t.Fatalf("method %s, train error %q", methods[m.launch.method], m.launch.errs[fData])
	}
	if got := underVal(m); !strings.Contains(got, "DPO validates on preference pairs") || !strings.Contains(got, "not classification") {
		t.Errorf("ticket validation for DPO not marked under the field: %q\n%s", got, m.View())
	}
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 0 || !strings.Contains(m.View(), "fix the fields marked above") {
		t.Fatalf("launched %+v", svc.launched)
	}

	// SFT on tickets: a chat validation file, then labels the training file lacks.
	m = set(m, fData, defaultData)
	m = step(m, tea.KeyMsg{Type: tea.KeyRight}) // method: SFT
	m = set(m, fVal, chatVal)
	if got := m.launch.errs[fVal]; !strings.Contains(got, "this file is messages; the training file is classification") {
		t.Errorf("a validation file of another format: %q", got)
	}
	m = set(m, fVal, odd)
	if got := m.launch.errs[fVal]; got != `labels the training file lacks: "refund"` {
		t.Errorf("unseen labels: %q", got)
	}
	m = set(m, fVal, prefVal)
	if got := m.launch.errs[fVal]; !strings.Contains(got, "preference pairs validate DPO only") {
		t.Errorf("preference validation for SFT: %q", got)
	}

	// DPO validated on preference pairs launches.
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft}) // method: DPO
	m = set(m, fData, prefTrain)
	if !ok(m.launch.errs) {
		t.Fatalf("errors left: %q", m.launch.errs)
	}
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 1 || svc.launched[0].Method != "dpo" || svc.launched[0].Val != prefVal {
		t.Fatalf("launched %+v", svc.launched)
	}
}

// quits reports whether cmd quits the program.
func quits(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// In the form only a text field takes every key: on a choice (or the
// Launch button) ?, 1–6 and q act as everywhere else (tab moves between
// the form's fields, as in any form), and the help says how to leave it.
func TestLaunchGlobalKeysOffTextFields(t *testing.T) {
	m := openLaunch(launchService(), 80, 24)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown}) // into the form: the base model, a text field
	m = step(m, keys("?"))
	if m.help.ShowAll || !strings.HasSuffix(m.launch.inputs[fModel].Value(), "?") {
		t.Fatalf("? on a text field: help %v, field %q", m.help.ShowAll, m.launch.inputs[fModel].Value())
	}
	m.launch.inputs[fModel].SetValue(defaultModel)
	m = step(m, tea.KeyMsg{Type: tea.KeyUp}) // the method: a choice
	if m.launch.focus != fMethod || !m.launch.inForm {
		t.Fatalf("focus %d, in form %v", m.launch.focus, m.launch.inForm)
	}
	if bar := lastLine(m.View()); !strings.Contains(bar, "esc leave form") {
		t.Errorf("the help does not say how to leave the form: %q", bar)
	}
	m = step(m, keys("?"))
	if !m.help.ShowAll {
		t.Error("? on a choice did not open the help")
	}
	m = step(m, keys("?"))
	m = step(m, keys("3"))
	if m.tab != TabTrain {
		t.Errorf("3 on a choice: tab %d", m.tab)
	}
	m = step(m, keys("2"))
	m = step(m, tea.KeyMsg{Type: tea.KeyTab}) // in a form tab moves fields, whatever the field
	if m.tab != TabLaunch || m.launch.focus != fModel {
		t.Errorf("tab on a choice: tab %d, focus %d", m.tab, m.launch.focus)
	}
	m.launch.focus = fLaunch
	if _, cmd := m.Update(keys("q")); !quits(cmd) {
		t.Error("q on the Launch button does not quit")
	}
	m = step(m, tea.KeyMsg{Type: tea.KeyEsc})
	if m.launch.inForm || strings.Contains(lastLine(m.View()), "esc leave form") {
		t.Errorf("esc did not leave the form, or the help still offers it: %q", lastLine(m.View()))
	}
}

func lastLine(frame string) string { return frame[strings.LastIndex(frame, "\n")+1:] }

// TestLaunchFormScrolls: at 80×24 the KD form, with its teacher and both
// files' summaries, is longer than the screen; moving down to the Launch
// button keeps the cursor's field in view.
func TestLaunchFormScrolls(t *testing.T) {
	ctx := &Context{Svc: launchService(), Width: 80, Height: 12, Styles: DefaultStyles()}
	v := newLaunchView()
	v, _ = v.init(ctx)
	v.focus = fLaunch
	out := v.view(ctx)
	if n := strings.Count(out, "\n") + 1; n > ctx.Height {
		t.Fatalf("%d lines on a %d-line screen", n, ctx.Height)
	}
	if !strings.Contains(out, "[ Launch ]") || !strings.Contains(out, "Launch a run") {
		t.Errorf("the Launch button or the title is off screen:\n%s", out)
	}
	v.focus = fMethod
	if out := v.view(ctx); !strings.Contains(out, "Method") {
		t.Errorf("back at the top, Method is off screen:\n%s", out)
	}
}

// TestLaunchTargetsWarmupAccum: the form sets the adapter's modules
// (every linear layer, or attention's), the warm-up and the gradient
// accumulation of the run it launches.
func TestLaunchTargetsWarmupAccum(t *testing.T) {
	ctx := &Context{Svc: launchService(), Width: 100, Height: 30, Styles: DefaultStyles()}
	v := newLaunchView()
	v, _ = v.init(ctx)
	v.focus = fTargets
	v, _ = v.cycle(ctx, "right")
	v.inputs[fWarmup].SetValue("25")
	v.inputs[fAccum].SetValue("4")
	c, errs := v.config(ctx)
	if !ok(errs) {
		t.Fatalf("errors %q", errs)
	}
	if c.LoRA.Targets != "q_proj,k_proj,v_proj,o_proj" || c.Warmup != 25 || c.Accum != 4 {
		t.Errorf("targets %q warmup %d accum %d", c.LoRA.Targets, c.Warmup, c.Accum)
	}
	v.inputs[fAccum].SetValue("0")
	if _, errs := v.config(ctx); errs[fAccum] == "" {
		t.Error("grad accum 0 accepted")
	}
}

// alt+d in a text field with the cursor before its end panicked inside
// bubbles' textinput (deleteWordForward indexes past the value) and
// killed the window: the binding is off in every field.
func TestAltDInTextFieldsDoesNotPanic(t *testing.T) {
	m := openLaunch(launchService(), 100, 30)
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m = step(m, tea.KeyMsg{Type: tea.KeyDown})
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft})
	m = step(m, tea.KeyMsg{Type: tea.KeyLeft})
	m = step(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("d"), Alt: true})
	_ = m.View()
	ti := newTextInput()
	ti.SetValue("hello world")
	ti.Focus()
	ti.SetCursor(3)
	ti, _ = editField(ti, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("d"), Alt: true})
	if ti.Value() != "hel world" || ti.Position() != 3 {
		t.Errorf("alt+d made the field %q, cursor %d; want \"hel world\", 3", ti.Value(), ti.Position())
	}
	ti, _ = editField(ti, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("d"), Alt: true})
	if ti.Value() != "hel" {
		t.Errorf("a second alt+d made the field %q, want \"hel\"", ti.Value())
	}
}

// What the memory plan finds wrong blocks the launch as the form's own
// errors do: a plan that cannot be made (a broken model folder) and one
// past the machine's memory would only fail the run as it starts.
func TestLaunchRefusesWhatThePlanRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*fakeService)
		want string
	}{
		{"plan error", func(s *fakeService) { s.planErr = errors.New("models/broken/config.json: invalid character") }, "the memory plan cannot be made"},
		{"does not fit", func(s *fakeService) { s.plan = app.PlanRow{Total: 200 << 30} }, "the run does not fit"},
	} {
		svc := launchService()
		c.set(svc)
		m := openLaunch(svc, 100, 30)
		m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
		if len(svc.launched) != 0 {
			t.Errorf("%s: launched %+v", c.name, svc.launched)
		}
		if f := m.View(); !strings.Contains(f, c.want) {
			t.Errorf("%s: no %q:\n%s", c.name, c.want, f)
		}
	}
}

// An IDP training file shows a Schema field, filled with the schema.json
// beside the data when there is one (as the bundled sets keep it): the run
// records it, and evaluating the run checks outputs against it.
func TestLaunchTakesAnIDPSchema(t *testing.T) {
	svc := launchService()
	svc.data = app.DataInfo{Format: "idp", Rows: 40}
	svc.paths["examples/tickets/schema.json"] = false
	m := openLaunch(svc, 100, 34)
	if f := m.View(); !strings.Contains(f, "Schema") || !strings.Contains(f, "examples/tickets/schema.json") {
		t.Fatalf("no Schema field filled for IDP data:\n%s", f)
	}
	m = stepRun(m, tea.KeyMsg{Type: tea.KeyEnter})
	if len(svc.launched) != 1 || svc.launched[0].Schema != "examples/tickets/schema.json" {
		t.Fatalf("launched %+v", svc.launched)
	}
	svc = launchService() // classification data: no Schema field
	if f := openLaunch(svc, 100, 34).View(); strings.Contains(f, "Schema") {
		t.Errorf("a Schema field for classification data:\n%s", f)
	}
}
