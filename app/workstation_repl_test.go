package app

import (
	"context"
	"math"
	"testing"
)

func TestAskGenerateStreamsAndClassifies(t *testing.T) {
	dir := tinyModel(t)
	var w Workstation
	var pieces, text string
	var last Answer
	for a := range w.Ask(context.Background(), Ask{Model: dir, Task: "generate", Input: "Once upon a time", MaxTokens: 5}) {
		if a.Done {
			last = a
		} else {
			pieces += a.Piece
		}
	}
	text = pieces
	if last.Err != nil || last.Tokens == 0 {
		t.Fatalf("generate: %+v (text %q)", last, text)
	}
	for a := range w.Ask(context.Background(), Ask{Model: dir, Task: "classify", Labels: []string{"yes", "no"}, Input: "is it?"}) {
		last = a
	}
	if last.Err != nil || last.Label == "" || math.Abs(last.Probs["yes"]+last.Probs["no"]-1) > 1e-6 {
		t.Fatalf("classify: %+v", last)
	}
}
