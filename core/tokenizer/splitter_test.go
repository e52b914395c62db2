package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func spansOf(m matcher, s string) [][2]int {
	var out [][2]int
	m.matches(s, func(a, b int) { out = append(out, [2]int{a, b}) })
	return out
}

func piecesOf(s string, spans [][2]int) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, s[sp[0]:sp[1]])
	}
	return out
}

var knownPatterns = map[string]string{"gpt2": patternGPT2, "llama3": patternLlama3, "qwen2": patternQwen2}

// The hand-written scanners must agree with regexp2 running the original
// pattern.
func checkScanners(t *testing.T, s string) {
	t.Helper()
	for name, pat := range knownPatterns {
		fast, err := compileRegex(pat)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := newRegexMatcher(pat)
		if err != nil {
			t.Fatal(err)
		}
		got, want := spansOf(fast, s), spansOf(slow, s)
		if !slices.Equal(got, want) {
			t.Fatalf("%s on %q:\n scanner %q\n regexp2 %q", name, s, piecesOf(s, got), piecesOf(s, want))
		}
	}
}

// A corner of each pattern alternative, each kind of character.
var splitterCases = []string{
	"", " ", "  ", "a", "Hello world", "Hello  world", "  lead", "trail  ", "trail \n",
	"I'm you're we've he'd she'll it's they'RE I'M 'S 'x '", "don't", "'hello'",
	"12345678 1 12 123 1234", " 1", "a1b2", "x.y", " .", " ...\n\n", "?!\r\n\r\nx",
	"a\n\nb", "a \n b", "a\t\n\t b", "\n", "\r\n", " \n ", "\n \n  x", "  \t x", "\t\tx",
	"é中文 日本語 Ωmega", "e\u0301", "👍🏽 👨‍👩‍👧", "٣٤٥ ①② Ⅻ", "a\u00a0b\u3000c\u2028d", "\u0085x\ufeff",
	"func() {\n\treturn 1\n}\n", "    def f():\n        pass", "$$$ %%% @@@", "a'b", "' s", "''s",
	"\xff\xfe bad \xc3", "x\x00y",
}

func TestScannersMatchRegexp2(t *testing.T) {
	for _, s := range splitterCases {
		checkScanners(t, s)
	}
	for _, name := range refNames {
		for _, c := range loadGoldens(t, name) {
			if !newerThanGo(c.Text) { // regexp2's classes are Go's (Unicode 15.0)
				checkScanners(t, c.Text)
			}
		}
	}
	// Random strings over an alphabet of the characters that matter.
	alphabet := []string{"a", "Z", "é", "中", "1", "٣", "Ⅻ", " ", "  ", "\t", "\n", "\r", "\u00a0", "\u3000",
		"'", "s", "S", "l", "L", "r", "e", "v", "d", "m", "t", ".", "!", "-", "😀", "\u0301", "\xff", "_"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var sb strings.Builder
		for range rng.IntN(24) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		checkScanners(t, sb.String())
	}
}

func FuzzScanners(f *testing.F) {
	for _, s := range splitterCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkScanners(t, s) })
}

// Cutting long SentencePiece words before "▁" must not change any id.
func TestMetaspaceCutIsExact(t *testing.T) {
	tok := refTokenizer(t, "llama2")
	m := tok.model
	if m.cutRune == 0 {
		t.Fatal("cut optimisation not enabled for the Llama 2 vocabulary")
	}
	words := []string{"▁", "▁▁", "▁▁▁▁", "a", "the", "▁the", "▁▁▁▁return", "中文", "\n", "😀", "x"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		var sb strings.Builder
		for range 5 + rng.IntN(40) {
			sb.WriteString(words[rng.IntN(len(words))])
		}
		w := sb.String()
		ws := new(bpeWork)
		want := slices.Clone(m.merge(w, ws))
		var got []int
		got = m.tokenizeCut(w, got)
		if len(got) != len(want) {
			t.Fatalf("%q: cut gives %v, whole word %v", w, got, want)
		}
		for i := range got {
			if got[i] != int(want[i]) {
				t.Fatalf("%q: cut gives %v, whole word %v", w, got, want)
			}
		}
	}
}

// newerThanGo says s holds a letter or number that Go's unicode tables do
// not know: the scanners follow the references' newer Unicode there (the
// goldens check them), regexp2 cannot.
func newerThanGo(s string) bool {
	for _, r := range s {
		if unicode.Is(letterTable, r) && !unicode.IsLetter(r) || unicode.Is(numberTable, r) && !unicode.IsNumber(r) {
			return true
		}
	}
	return false
}

// The letter and number classes are the references' (the embedded table):
// a superset of Go's, and past it where Unicode grew (CJK Extension I's
// first character, a Garay digit).
func TestUnicodeClassesAreTheReferences(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.IsLetter(r) && !unicode.Is(letterTable, r) || unicode.IsNumber(r) && !unicode.Is(numberTable, r) {
			t.Fatalf("U+%04X is a letter or number to Go but not in the table", r)
		}
	}
	if classOf(0x2EBF0) != clsLetter || classOf(0x10D40) != clsNumber || classOf('!') != clsOther || classOf('\u00e9') != clsLetter {
		t.Error("classOf does not follow the table")
	}
}
