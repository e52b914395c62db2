package app

import (
	"context"
	"encoding/json"
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

// The REPL asks a model with a chat template as a chat, as `distill
// generate --chat` does (the demo and chat adapters answer nothing useful
// to a bare continuation): the same tokens, seed for seed.
func TestAskGenerateUsesTheChatTemplate(t *testing.T) {
	dir := tinyModel(t)
	var w Workstation
	var text string
	for a := range w.Ask(context.Background(), Ask{Model: dir, Task: "generate", Input: "Classify this customer", MaxTokens: 6}) {
		if a.Err != nil {
			t.Fatal(a.Err)
		}
		text += a.Piece
	}
	code, out, stderr := run("generate", "--model", dir, "--prompt", "Classify this customer", "--chat", "--max-tokens", "6", "--seed", "0", "--json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var want struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if text != want.Text {
		t.Errorf("REPL %q, generate --chat %q", text, want.Text)
	}
}
