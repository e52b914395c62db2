package views

import (
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
