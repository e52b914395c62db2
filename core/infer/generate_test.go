package infer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// letters spells token id i as one letter, so stop-string and streaming
// logic can be checked on a real model without a tokenizer.
type letters struct{}

func (letters) Decode(ids []int, _ bool) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteByte(byte('a' + id%26))
	}
	return b.String()
}

func load(t *testing.T) (tensor.Backend, *model.Model) {
	t.Helper()
	be, err := tensor.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load("../model/testdata/llama3-f32")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return be, m
}

func TestGenerateGreedyIsDeterministicAndStreams(t *testing.T) {
	be, m := load(t)
	prompt := []int{1, 5, 9, 14}
	var streamed strings.Builder
	a, err := Generate(context.Background(), be, m, letters{}, prompt, GenerateOptions{MaxTokens: 12, OnText: func(s string) bool { streamed.WriteString(s); return true }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(context.Background(), be, m, letters{}, prompt, GenerateOptions{MaxTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a.IDs) != fmt.Sprint(b.IDs) || len(a.IDs) != 12 || a.StopReason != "length" {
		t.Fatalf("greedy runs differ or wrong length: %v / %v (%s)", a.IDs, b.IDs, a.StopReason)
	}
	if streamed.String() != a.Text {
		t.Fatalf("streamed %q, result text %q", streamed.String(), a.Text)
	}
	// Greedy generation must agree with the scorer: each chosen token is the
	// argmax of the full-sequence forward at its position.
	seq := append(append([]int(nil), prompt...), a.IDs...)
	lp, err := LogProbs(be, m, seq)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.IDs {
		if lp[len(prompt)-1+i] < -5 {
			t.Errorf("generated token %d has logprob %.2f under the scorer: not a greedy choice", i, lp[len(prompt)-1+i])
		}
	}
}

func TestGenerateStopsAtEOSAndStopStrings(t *testing.T) {
	be, m := load(t)
	prompt := []int{1, 5, 9, 14}
	full, err := Generate(context.Background(), be, m, letters{}, prompt, GenerateOptions{MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	eos, err := Generate(context.Background(), be, m, letters{}, prompt, GenerateOptions{MaxTokens: 10, EOS: []int{full.IDs[3]}})
	if err != nil {
		t.Fatal(err)
	}
	if eos.StopReason != "eos" || fmt.Sprint(eos.IDs) != fmt.Sprint(full.IDs[:indexOf(full.IDs, full.IDs[3])]) {
		t.Fatalf("EOS stop: %v (%s), full %v", eos.IDs, eos.StopReason, full.IDs)
	}
	stop := full.Text[4:6]
	var streamed strings.Builder
	st, err := Generate(context.Background(), be, m, letters{}, prompt, GenerateOptions{MaxTokens: 10, Stop: []string{stop}, OnText: func(s string) bool { streamed.WriteString(s); return true }})
	if err != nil {
		t.Fatal(err)
	}
	want := full.Text[:strings.Index(full.Text, stop)]
	if st.StopReason != "stop" || st.Text != want || streamed.String() != want {
		t.Fatalf("stop %q: text %q streamed %q (%s), want %q", stop, st.Text, streamed.String(), st.StopReason, want)
	}
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestGenerateRejectsEmptyPromptAndHonoursCancel(t *testing.T) {
	be, m := load(t)
	if _, err := Generate(context.Background(), be, m, letters{}, nil, GenerateOptions{}); !errors.Is(err, ErrEmptyPrompt) {
		t.Fatalf("empty prompt: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err := Generate(ctx, be, m, letters{}, []int{1, 2}, GenerateOptions{MaxTokens: 50, OnText: func(string) bool {
		if n++; n == 3 {
			cancel()
		}
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != "cancelled" || len(res.IDs) != 3 {
		t.Fatalf("cancel after 3 tokens: %d tokens, %s", len(res.IDs), res.StopReason)
	}
}
