package app

import (
	"testing"
	"time"
)

// TestPauseHoldsTheRun: a run paused from the workstation takes no step
// until resumed, then finishes every step; its elapsed time leaves the
// pause out. A run of another process cannot be paused from here.
func TestPauseHoldsTheRun(t *testing.T) {
	const total = 40
	w, cfg := tinyWorkstation(t, "../examples/chat/train.jsonl", 20, total, 128, 1e-2)
	id, ch, err := w.LaunchRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var steps []Progress
	take := func(p Progress) {
		if p.Err != nil {
			t.Fatal(p.Err)
		}
		if p.Done {
			t.Fatal("the run finished while paused")
		}
		if p.IsStep() {
			steps = append(steps, p)
		}
	}
	for len(steps) == 0 {
		take(<-ch)
	}
	if paused, ok := w.PauseRun(id); !paused || !ok {
		t.Fatalf("PauseRun: paused %v ok %v", paused, ok)
	}
	time.Sleep(300 * time.Millisecond) // a step under way when the pause came ends
	for len(ch) > 0 {
		take(<-ch)
	}
	held := len(steps)
	time.Sleep(500 * time.Millisecond)
	if len(ch) > 0 {
		t.Fatalf("steps went on while paused: at step %d, then %d more", steps[held-1].Step, len(ch))
	}
	if paused, ok := w.PauseRun(id); paused || !ok {
		t.Fatalf("resume: paused %v ok %v", paused, ok)
	}
	for p := range ch {
		if p.Done {
			if p.Err != nil {
				t.Fatal(p.Err)
			}
			break
		}
		take(p)
	}
	if last := steps[len(steps)-1]; last.Step != total || held >= total {
		t.Errorf("paused at step %d of %d, ended at %d", steps[held-1].Step, total, last.Step)
	}
	if gap := steps[held].Elapsed - steps[held-1].Elapsed; gap >= 500*time.Millisecond {
		t.Errorf("the step after the pause counts it: %v after the one before", gap)
	}
	if _, ok := w.PauseRun("another-process-run"); ok {
		t.Error("a run of another process was paused")
	}
}

// TestHeadlessResumesPausedRuns: closing the window with "keep training"
// lets a paused run go on — no key can resume it after.
func TestHeadlessResumesPausedRuns(t *testing.T) {
	w, cfg := tinyWorkstation(t, "../examples/chat/train.jsonl", 20, 3, 128, 1e-2)
	id, ch, err := w.LaunchRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := <-ch; p.Err != nil {
		t.Fatal(p.Err)
	}
	if paused, _ := w.PauseRun(id); !paused {
		t.Fatal("not paused")
	}
	done := make(chan struct{})
	go func() { w.Wait(make(chan struct{})); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Wait did not return: the paused run never went on")
	}
}
