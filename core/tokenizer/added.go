package tokenizer

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text: leftmost match first, longest
// match at that position (HF's Aho-Corasick LeftmostLongest), over a byte
// trie. Edges live in one map keyed by node<<8 | byte.
type addedMatcher struct {
	edges    map[uint32]int32
	terminal map[int32]int // node → index into tokens
	firstB   [256]bool
	tokens   []*addedToken
}

func newAddedMatcher(tokens []*addedToken, content func(*addedToken) string) *addedMatcher {
	m := &addedMatcher{edges: map[uint32]int32{}, terminal: map[int32]int{}}
	nodes := int32(1) // node 0 is the root
	for _, t := range tokens {
		c := content(t)
		if c == "" {
			continue
		}
		m.firstB[c[0]] = true
		node := int32(0)
		for k := 0; k < len(c); k++ {
			key := uint32(node)<<8 | uint32(c[k])
			nx, ok := m.edges[key]
			if !ok {
				nx = nodes
				nodes++
				m.edges[key] = nx
			}
			node = nx
		}
		if _, dup := m.terminal[node]; !dup {
			m.terminal[node] = len(m.tokens)
		}
		m.tokens = append(m.tokens, t)
	}
	return m
}

// longestAt returns the longest token matching at s[i:] and its length.
func (m *addedMatcher) longestAt(s string, i int) (*addedToken, int) {
	node := int32(0)
	var best *addedToken
	bestLen := 0
	for k := i; k < len(s); k++ {
		nx, ok := m.edges[uint32(node)<<8|uint32(s[k])]
		if !ok {
			break
		}
		node = nx
		if t, ok := m.terminal[node]; ok {
			best, bestLen = m.tokens[t], k+1-i
		}
	}
	return best, bestLen
}

// segment is a part of the input: either text to normalise and tokenize or
// one added token.
type segment struct {
	text  string
	added *addedToken // nil for text
	first bool        // starts at offset 0 of the input
}

// split cuts s at the added tokens it contains, honouring single_word,
// lstrip and rstrip as HF's AddedVocabulary::find_matches does. Segments are
// appended to out.
func (m *addedMatcher) split(s string, first bool, out []segment, plain [][2]int) []segment {
	if m == nil || len(m.tokens) == 0 {
		return append(out, segment{text: s, first: first})
	}
	startOffset := 0
	for i := 0; i < len(s); {
		if !m.firstB[s[i]] {
			i++
			continue
		}
		t, n := m.longestAt(s, i)
		if t == nil || t.Special && overlaps(plain, i, i+n) {
			i++
			continue
		}
		start, stop := i, i+n
		i = stop
		if t.SingleWord {
			startOK := start == 0 || !endsWithWord(s[:start])
			stopOK := stop == len(s) || !startsWithWord(s[stop:])
			if !startOK || !stopOK {
				continue
			}
		}
		if t.LStrip {
			k := start
			for k > 0 {
				r, w := utf8.DecodeLastRuneInString(s[:k])
				if !unicode.IsSpace(r) {
					break
				}
				k -= w
			}
			start = max(k, startOffset)
		}
		if t.RStrip {
			for stop < len(s) {
				r, w := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += w
			}
			i = stop
		}
		if startOffset < start {
			out = append(out, segment{text: s[startOffset:start], first: first && startOffset == 0})
		}
		out = append(out, segment{text: s[start:stop], added: t, first: first && start == 0})
		startOffset = stop
	}
	if startOffset < len(s) {
		out = append(out, segment{text: s[startOffset:], first: first && startOffset == 0})
	}
	return out
}

// overlaps says [a, b) meets one of the sorted ranges.
func overlaps(ranges [][2]int, a, b int) bool {
	k := sort.Search(len(ranges), func(k int) bool { return ranges[k][1] > a })
	return k < len(ranges) && ranges[k][0] < b
}

// isWordRune is the regex \w of Rust's regex crate: Alphabetic, marks,
// decimal digits, connector punctuation and the joiners.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}
