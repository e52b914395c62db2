package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is one pre-token on its way to the model.
type piece struct {
	s string
	// first: the piece starts at offset 0 of the original input; Metaspace's
	// prepend_scheme "first" only prepends to such a piece.
	first bool
}

// preTokenizer splits pieces into smaller pieces (and may rewrite them).
type preTokenizer interface {
	// split appends the pieces p splits into to out.
	split(p piece, out []piece) []piece
}

// preTokenizerSeq is a Sequence pre-tokenizer. The loader flattens it into
// the Tokenizer's list of steps; it is kept only while loading.
type preTokenizerSeq []preTokenizer

func (seq preTokenizerSeq) split(p piece, out []piece) []piece {
	cur := []piece{p}
	for _, pt := range seq {
		var nxt []piece
		for _, q := range cur {
			nxt = pt.split(q, nxt)
		}
		cur = nxt
	}
	return append(out, cur...)
}

// flattenPre lists the steps of a (possibly nested) Sequence in order,
// leaving out lazy ByteLevel steps that change nothing.
func flattenPre(p preTokenizer, out []preTokenizer) []preTokenizer {
	switch p := p.(type) {
	case preTokenizerSeq:
		for _, q := range p {
			out = flattenPre(q, out)
		}
		return out
	case *byteLevelPre:
		if p.lazy && !p.useRegex && !p.addPrefixSpace {
			return out
		}
	}
	return append(out, p)
}

// splitBehavior is HF's SplitDelimiterBehavior.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

var splitBehaviors = map[string]splitBehavior{
	"Removed":            splitRemoved,
	"Isolated":           splitIsolated,
	"MergedWithPrevious": splitMergedWithPrevious,
	"MergedWithNext":     splitMergedWithNext,
	"Contiguous":         splitContiguous,
}

type span struct {
	start, end int
	match      bool
}

// splitSpans cuts s by the matches of m into spans covering all of s, then
// applies the delimiter behaviour as HF's NormalizedString::split does.
func splitSpans(s string, m matcher, invert bool, behavior splitBehavior, spans []span) []span {
	prev := 0
	spans = spans[:0]
	m.matches(s, func(start, end int) {
		if start > prev {
			spans = append(spans, span{prev, start, invert})
		}
		spans = append(spans, span{start, end, !invert})
		prev = end
	})
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), invert})
	}
	return applyBehavior(spans, behavior)
}

func applyBehavior(spans []span, behavior splitBehavior) []span {
	switch behavior {
	case splitIsolated:
		return spans
	case splitRemoved:
		out := spans[:0]
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
		return out
	case splitMergedWithPrevious:
		out := spans[:0]
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		return out
	case splitMergedWithNext:
		// Walk backwards: a delimiter joins the piece that follows it.
		out := make([]span, 0, len(spans))
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	case splitContiguous:
		out := spans[:0]
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		return out
	}
	return spans
}

func appendSpans(p piece, spans []span, out []piece) []piece {
	for _, sp := range spans {
		if sp.end > sp.start {
			out = append(out, piece{s: p.s[sp.start:sp.end], first: p.first && sp.start == 0})
		}
	}
	return out
}

// splitPre is the Split pre-tokenizer.
type splitPre struct {
	m        matcher
	invert   bool
	behavior splitBehavior
}

func (sp *splitPre) split(p piece, out []piece) []piece {
	if sp.behavior == splitIsolated && !sp.invert {
		// Fast path: every match and every gap is a piece.
		prev := 0
		sp.m.matches(p.s, func(start, end int) {
			if start > prev {
				out = append(out, piece{s: p.s[prev:start], first: p.first && prev == 0})
			}
			out = append(out, piece{s: p.s[start:end], first: p.first && start == 0})
			prev = end
		})
		if prev < len(p.s) {
			out = append(out, piece{s: p.s[prev:], first: p.first && prev == 0})
		}
		return out
	}
	return appendSpans(p, splitSpans(p.s, sp.m, sp.invert, sp.behavior, nil), out)
}

// byteLevelPre is the ByteLevel pre-tokenizer. When it is the last step
// (lazy), pieces stay raw text and the BPE model maps bytes to its byte
// alphabet itself, which saves building a mapped string per word.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
	lazy           bool
}

func (b *byteLevelPre) split(p piece, out []piece) []piece {
	if b.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
		p.s = " " + p.s
	}
	start := len(out)
	if b.useRegex {
		gpt2Scanner{}.matches(p.s, func(s, e int) {
			out = append(out, piece{s: p.s[s:e], first: p.first && s == 0})
		})
	} else {
		out = append(out, p)
	}
	if !b.lazy {
		for i := start; i < len(out); i++ {
			out[i].s = byteLevelEncode(out[i].s)
		}
	}
	return out
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePre is the Metaspace pre-tokenizer (SentencePiece style).
type metaspacePre struct {
	replacement rune
	repl        string
	prepend     prependScheme
	splitWords  bool
}

func (m *metaspacePre) split(p piece, out []piece) []piece {
	s := strings.ReplaceAll(p.s, " ", m.repl)
	if !strings.HasPrefix(s, m.repl) {
		if m.prepend == prependAlways || (m.prepend == prependFirst && p.first) {
			s = m.repl + s
		}
	}
	if !m.splitWords {
		return append(out, piece{s: s, first: p.first})
	}
	q := piece{s: s, first: p.first}
	return appendSpans(q, splitSpans(s, literalMatcher{m.repl}, false, splitMergedWithNext, nil), out)
}

// runeMatcher matches single characters that satisfy a predicate.
type runeMatcher func(rune) bool

func (f runeMatcher) matches(s string, fn func(start, end int)) {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if f(r) {
			fn(i, i+w)
		}
		i += w
	}
}

// digitsPre is the Digits pre-tokenizer.
type digitsPre struct {
	individual bool
}

func (d *digitsPre) split(p piece, out []piece) []piece {
	behavior := splitContiguous
	if d.individual {
		behavior = splitIsolated
	}
	return appendSpans(p, splitSpans(p.s, runeMatcher(func(r rune) bool { return unicode.Is(numberTable, r) }), false, behavior, nil), out)
}

// whitespaceSplitPre is the WhitespaceSplit pre-tokenizer.
type whitespaceSplitPre struct{}

func (whitespaceSplitPre) split(p piece, out []piece) []piece {
	return appendSpans(p, splitSpans(p.s, runeMatcher(unicode.IsSpace), false, splitRemoved, nil), out)
}
