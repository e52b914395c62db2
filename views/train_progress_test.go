package views

import (
	"strings"
	"testing"

	"distill/app"
)

// A step that arrives on the channel of a run the view no longer follows
// that way (it was reopened from the store since) is dropped: it used to
// rewind the view to an old step and draw the loss curve twice.
func TestTrainViewDropsStaleProgress(t *testing.T) {
	old := make(chan app.Progress, 1)
	ctx := &Context{Svc: launchService(), Width: 80, Height: 24, Styles: DefaultStyles()}
	v := newTrainView()
	v, _ = v.update(ctx, WatchMsg{RunID: "r", Ch: old})
	v, _ = v.update(ctx, ProgressMsg{Progress: app.Progress{RunID: "r", Step: 1, Loss: 2}, from: old})
	v, _ = v.update(ctx, openRunMsg{id: "r", status: "completed"})
	v, _ = v.update(ctx, historyMsg{id: "r", steps: []app.Progress{{RunID: "r", Step: 1, Loss: 2}, {RunID: "r", Step: 2, Loss: 1.5}}})
	v, _ = v.update(ctx, ProgressMsg{Progress: app.Progress{RunID: "r", Step: 1, Loss: 2}, from: old})
	if v.last.Step != 2 || len(v.losses) != 2 {
		t.Errorf("after a stale step: at step %d with %d points, want 2 and 2", v.last.Step, len(v.losses))
	}
}

// The title names the run's method, base, quant and r (UX.md's Train), and
// the memory gauge its plan; at 80 columns a long run name keeps the bar on
// the title line by leaving them out.
func TestTrainViewTitleAndPlan(t *testing.T) {
	svc := launchService()
	id := "20261127-101500-sft-ab12"
	svc.infos = map[string]app.RunInfo{id: {Method: "sft", Base: "models/SmolLM2-135M", Quant: "nf4", Rank: 16}}
	ctx := &Context{Svc: svc, Width: 120, Height: 24, Styles: DefaultStyles()}
	v := newTrainView()
	v, _ = v.update(ctx, openRunMsg{id: id, status: "running"})
	msg := loadHistory(svc, id)()
	v, _ = v.update(ctx, msg)
	v, _ = v.update(ctx, ProgressMsg{Progress: app.Progress{RunID: id, Step: 3, Total: 10, Loss: 2, RSS: 1300e6, Plan: 1240e6}})
	out := v.view(ctx)
	for _, want := range []string{id + " · SFT · SmolLM2-135M · nf4 · r16  step 3/10 ▕", "1.3 GB / ", "(plan 1.2 GB)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	ctx.Width = 80
	out = v.view(ctx)
	if first := strings.SplitN(out, "\n", 2)[0]; strings.Contains(first, "SFT") || !strings.Contains(first, "▕") {
		t.Errorf("at 80 columns the title line is %q: want the bar without the run's details", first)
	}
}

// A run launched from this window is recorded only once its job starts, after
// WatchMsg first read it: its first step asks for the title again.
func TestTrainViewTitleOfALaunchedRun(t *testing.T) {
	svc := launchService()
	id := "20261127-101500-sft-ab12"
	ch := make(chan app.Progress, 4)
	ctx := &Context{Svc: svc, Width: 140, Height: 24, Styles: DefaultStyles()}
	v := newTrainView()
	v, cmd := v.update(ctx, WatchMsg{RunID: id, Ch: ch})
	msg := cmd() // not recorded yet
	svc.infos = map[string]app.RunInfo{id: {Method: "sft", Base: "models/SmolLM2-135M", Quant: "nf4", Rank: 16}}
	v, _ = v.update(ctx, msg)
	for s := 1; s <= 3; s++ {
		v, cmd = v.update(ctx, ProgressMsg{Progress: app.Progress{RunID: id, Step: s, Total: 10, Loss: 2}, from: ch})
		if cmd != nil {
			v, _ = v.update(ctx, cmd())
		}
	}
	if first := strings.SplitN(v.view(ctx), "\n", 2)[0]; !strings.Contains(first, "SFT · SmolLM2-135M · nf4 · r16") {
		t.Errorf("title after 3 live steps: %q", first)
	}
}
