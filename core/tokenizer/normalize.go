package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites the text of a section (the parts of the input between
// added tokens) before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normalizerSeq []normalizer

func (seq normalizerSeq) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// unicodeNorm is NFC, NFD, NFKC or NFKD.
type unicodeNorm struct {
	form norm.Form
}

func (u unicodeNorm) normalize(s string) string {
	if u.form.IsNormalString(s) {
		return s
	}
	return u.form.String(s)
}

// prependNorm prepends a string to non-empty text.
type prependNorm struct {
	prefix string
}

func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return p.prefix + s
}

// replaceNorm replaces every match of a pattern with literal content.
type replaceNorm struct {
	m       matcher
	content string
	// lit is set for a String pattern (strings.ReplaceAll is faster).
	lit string
}

func (r replaceNorm) normalize(s string) string {
	if r.lit != "" {
		return strings.ReplaceAll(s, r.lit, r.content)
	}
	return replaceMatches(s, r.m, r.content)
}

func replaceMatches(s string, m matcher, content string) string {
	var sb strings.Builder
	prev := 0
	m.matches(s, func(start, end int) {
		sb.WriteString(s[prev:start])
		sb.WriteString(content)
		prev = end
	})
	if prev == 0 {
		return s
	}
	sb.WriteString(s[prev:])
	return sb.String()
}

// lowercaseNorm lowercases character by character with Unicode's full
// mapping, as Rust's char::to_lowercase: like Go's simple mapping except
// that U+0130 (İ) becomes "i̇" (no final-sigma rule at this level).
type lowercaseNorm struct{}

func (lowercaseNorm) normalize(s string) string {
	if !strings.ContainsRune(s, '\u0130') {
		return strings.ToLower(s)
	}
	var sb strings.Builder
	for _, part := range strings.SplitAfter(s, "\u0130") {
		if strings.HasSuffix(part, "\u0130") {
			sb.WriteString(strings.ToLower(strings.TrimSuffix(part, "\u0130")))
			sb.WriteString("i\u0307")
		} else {
			sb.WriteString(strings.ToLower(part))
		}
	}
	return sb.String()
}

// stripNorm trims Unicode whitespace on either side.
type stripNorm struct {
	left, right bool
}

func (st stripNorm) normalize(s string) string {
	if st.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if st.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripAccentsNorm removes nonspacing marks (meant to follow NFD).
type stripAccentsNorm struct{}

func (stripAccentsNorm) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}
