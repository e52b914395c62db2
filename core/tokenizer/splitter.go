package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// A matcher finds the non-overlapping matches of a pattern in s, left to
// right, and reports each as byte offsets [start, end). Empty matches are
// not reported.
type matcher interface {
	matches(s string, fn func(start, end int))
}

// The pre-tokenizer regexes of the common byte-level BPE families. They use
// a lookahead (\s+(?!\S)) that Go's regexp lacks, so they are matched by the
// hand-written scanners below; any other pattern goes to regexp2. The
// scanners are checked against regexp2 in splitter_test.go.
const (
	// GPT-2, RoBERTa, SmolLM, ...: the ByteLevel pre-tokenizer's own regex.
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Llama 3 (tiktoken cl100k style): digits in runs of at most three.
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2, Qwen2.5, Qwen3: as Llama 3 but one digit per pre-token.
	patternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// compileRegex returns a matcher for a tokenizer.json Regex pattern.
func compileRegex(pattern string) (matcher, error) {
	switch pattern {
	case patternGPT2:
		return gpt2Scanner{}, nil
	case patternLlama3:
		return llama3Scanner{maxDigits: 3}, nil
	case patternQwen2:
		return llama3Scanner{maxDigits: 1}, nil
	}
	return newRegexMatcher(pattern)
}

// regexMatcher runs a pattern with regexp2, whose syntax (.NET) covers the
// Oniguruma features tokenizer.json patterns use: lookaround, \p{..},
// (?i:...). It works on runes, so offsets are mapped back to bytes.
type regexMatcher struct {
	re *regexp2.Regexp
}

func newRegexMatcher(pattern string) (*regexMatcher, error) {
	re, err := regexp2.Compile(onigToDotNet(pattern), regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("compile regex %q: %w", pattern, err)
	}
	return &regexMatcher{re: re}, nil
}

func (m *regexMatcher) matches(s string, fn func(start, end int)) {
	if s == "" {
		return
	}
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1) // byte offset of each rune, plus len(s)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		runes = append(runes, r)
		offs = append(offs, i)
		i += size
	}
	offs = append(offs, len(s))
	match, err := m.re.FindRunesMatch(runes)
	for err == nil && match != nil {
		if match.Length > 0 {
			fn(offs[match.Index], offs[match.Index+match.Length])
		}
		match, err = m.re.FindNextMatch(match)
	}
}

// onigToDotNet rewrites the Oniguruma escapes whose .NET meaning differs:
// \w is Letter | Mark | Decimal_Number | Connector_Punctuation in Oniguruma
// but leaves out spacing marks (Mc) in .NET. \W inside a bracket class is
// left alone (rare, and not expressible as a union).
func onigToDotNet(p string) string {
	const word = `\p{L}\p{M}\p{Nd}\p{Pc}`
	var sb strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			switch n := p[i+1]; {
			case n == 'w' && inClass:
				sb.WriteString(word)
			case n == 'w':
				sb.WriteString("[" + word + "]")
			case n == 'W' && !inClass:
				sb.WriteString("[^" + word + "]")
			default:
				sb.WriteByte(c)
				sb.WriteByte(n)
			}
			i++
			continue
		case c == '[' && !inClass:
			inClass = true
			sb.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(p) && p[i+1] == '^' {
				sb.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				sb.WriteByte(']')
				i++
			}
			continue
		case c == ']' && inClass:
			inClass = false
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// literalMatcher matches a fixed string (a Split or Replace "String" pattern).
type literalMatcher struct {
	lit string
}

func (m literalMatcher) matches(s string, fn func(start, end int)) {
	if m.lit == "" {
		return
	}
	for i := 0; i <= len(s)-len(m.lit); {
		j := indexFrom(s, m.lit, i)
		if j < 0 {
			return
		}
		fn(j, j+len(m.lit))
		i = j + len(m.lit)
	}
}

func indexFrom(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i] == sub[0] && s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// Character classes used by the scanners.
const (
	clsOther   = iota // not a letter, number or whitespace
	clsLetter         // \p{L}
	clsNumber         // \p{N}
	clsSpace          // \s other than \r and \n
	clsNewline        // \r or \n
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		asciiClass[c] = uint8(classOf(rune(c)))
	}
}

func classOf(r rune) int {
	switch {
	case r == '\r' || r == '\n':
		return clsNewline
	case unicode.IsSpace(r): // Unicode White_Space, as Oniguruma's \s
		return clsSpace
	case unicode.Is(letterTable, r):
		return clsLetter
	case unicode.Is(numberTable, r):
		return clsNumber
	}
	return clsOther
}

// next decodes the rune at s[i:] and returns its class and byte width. An
// invalid byte is one U+FFFD-like "other" character of width 1.
func next(s string, i int) (cls, width int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return int(asciiClass[c]), 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return classOf(r), w
}

// scanClass returns the end of the run of class cls starting at i.
func scanClass(s string, i, cls int) int {
	for i < len(s) {
		c, w := next(s, i)
		if c != cls {
			break
		}
		i += w
	}
	return i
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at s[i:] (the
// apostrophe included), or 0. fold makes it ASCII case-insensitive.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	c1 := lower(s[i+1])
	switch c1 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			c2 := lower(s[i+2])
			if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
				return 3
			}
		}
	}
	return 0
}

// whitespaceEnd handles the trailing \s+(?!\S)|\s+ alternatives for a run
// of whitespace starting at i: the whole run when it ends the text or is a
// single character, else the run minus its last character (which then
// prefixes the following word).
func whitespaceEnd(s string, i int) int {
	j, lastW := i, 0
	for j < len(s) {
		c, w := next(s, j)
		if c != clsSpace && c != clsNewline {
			break
		}
		j += w
		lastW = w
	}
	if j == len(s) || j-lastW == i {
		return j
	}
	return j - lastW
}

// llama3Scanner matches patternLlama3 (maxDigits 3) and patternQwen2
// (maxDigits 1), alternative by alternative in the regex's order.
type llama3Scanner struct {
	maxDigits int
}

func (m llama3Scanner) matches(s string, fn func(start, end int)) {
	for i := 0; i < len(s); {
		j := m.end(s, i)
		fn(i, j)
		i = j
	}
}

func (m llama3Scanner) end(s string, i int) int {
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	c0, w0 := next(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == clsLetter {
		return scanClass(s, i+w0, clsLetter)
	}
	if c0 != clsNewline && c0 != clsNumber && i+w0 < len(s) {
		if c1, w1 := next(s, i+w0); c1 == clsLetter {
			return scanClass(s, i+w0+w1, clsLetter)
		}
	}
	// \p{N}{1,maxDigits}
	if c0 == clsNumber {
		j := i + w0
		for k := 1; k < m.maxDigits && j < len(s); k++ {
			c, w := next(s, j)
			if c != clsNumber {
				break
			}
			j += w
		}
		return j
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j := i
	if s[i] == ' ' {
		j++
	}
	if k := scanClass(s, j, clsOther); k > j {
		for k < len(s) && (s[k] == '\r' || s[k] == '\n') {
			k++
		}
		return k
	}
	// c0 is whitespace from here on.
	// \s*[\r\n]+ : up to the last newline of the whitespace run.
	lastNL := -1
	for k := i; k < len(s); {
		c, w := next(s, k)
		if c == clsNewline {
			lastNL = k + w
		} else if c != clsSpace {
			break
		}
		k += w
	}
	if lastNL > 0 {
		return lastNL
	}
	// \s+(?!\S)|\s+
	return whitespaceEnd(s, i)
}

// gpt2Scanner matches patternGPT2.
type gpt2Scanner struct{}

func (gpt2Scanner) matches(s string, fn func(start, end int)) {
	for i := 0; i < len(s); {
		j := gpt2End(s, i)
		fn(i, j)
		i = j
	}
}

func gpt2End(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	// ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+'
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		j++
	}
	if c, _ := next(s, j); c == clsLetter || c == clsNumber || c == clsOther {
		return scanClass(s, j, c)
	}
	return whitespaceEnd(s, i)
}
