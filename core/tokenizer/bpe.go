package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// bpeModel is HF's BPE model: a vocabulary and ranked merges, applied to
// one pre-token ("word") at a time.
type bpeModel struct {
	vocab  map[string]int
	merges map[uint64]mergeRule // pairKey(left, right) → rule

	unkID        int // -1: unknown characters are dropped, as HF does without unk_token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	contPrefix   string     // continuing_subword_prefix
	eowSuffix    string     // end_of_word_suffix
	byteIDs      [256]int32 // byte fallback: id of "<0xNN>", -1 when absent

	// byteInput: words arrive as raw bytes (the ByteLevel pre-tokenizer is
	// the last step and left the mapping to us); the first symbols of a word
	// are then levelIDs[b], the ids of the byte-level characters.
	byteInput bool
	levelIDs  [256]int32
	rawVocab  map[string]int // vocab keyed by raw bytes, for ignore_merges in byteInput mode

	// Long words without pre-tokenization (SentencePiece style) are cut
	// before each metaspace character whose predecessor never ends the
	// left side of a merge whose right side starts with it: no token can
	// span such a cut, so the result is unchanged and the pieces cache well.
	cutRune  rune
	cutAfter map[rune]bool // predecessors that forbid a cut

	cache wordCache
}

type mergeRule struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// tokenize appends the ids of word w to out.
func (m *bpeModel) tokenize(w string, out []int) []int {
	if w == "" {
		return out
	}
	if m.ignoreMerges {
		vocab := m.vocab
		if m.byteInput {
			vocab = m.rawVocab
		}
		if id, ok := vocab[w]; ok {
			return append(out, id)
		}
	}
	if m.cutRune != 0 && len(w) > 32 {
		return m.tokenizeCut(w, out)
	}
	return m.tokenizeWord(w, out)
}

func (m *bpeModel) tokenizeCut(w string, out []int) []int {
	start := 0
	var prev rune = -1
	for i, r := range w {
		if r == m.cutRune && i > start && prev >= 0 && !m.cutAfter[prev] {
			out = m.tokenizeWord(w[start:i], out)
			start = i
		}
		prev = r
	}
	return m.tokenizeWord(w[start:], out)
}

const maxCachedWord = 256

func (m *bpeModel) tokenizeWord(w string, out []int) []int {
	if len(w) <= maxCachedWord {
		if ids, ok := m.cache.get(w); ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			return out
		}
	}
	ws := workPool.Get().(*bpeWork)
	ids := m.merge(w, ws)
	for _, id := range ids {
		out = append(out, int(id))
	}
	if len(w) <= maxCachedWord {
		m.cache.put(strings.Clone(w), append([]int32(nil), ids...))
	}
	workPool.Put(ws)
	return out
}

type symbol struct {
	id, prev, next int32 // id -1: merged away
}

type mergeCand struct {
	rank, pos   int32
	left, right int32 // the pair this candidate was made for
	id          int32 // the merged token
}

type bpeWork struct {
	sym  []symbol
	heap []mergeCand
	out  []int32
}

var workPool = sync.Pool{New: func() any { return new(bpeWork) }}

// initial appends the first symbols of w: its characters (or bytes), with
// byte fallback and unknown handling as HF's BPE::merge_word.
func (m *bpeModel) initial(w string, sym []symbol) []symbol {
	add := func(id int32) {
		n := int32(len(sym))
		sym = append(sym, symbol{id: id, prev: n - 1, next: n + 1})
	}
	lastUnk := false
	unk := func() {
		if m.unkID < 0 {
			return // dropped
		}
		if m.fuseUnk && lastUnk {
			return
		}
		add(int32(m.unkID))
		lastUnk = true
	}
	if m.byteInput {
		for i := 0; i < len(w); i++ {
			if id := m.levelIDs[w[i]]; id >= 0 {
				add(id)
				lastUnk = false
			} else {
				unk()
			}
		}
		return sym
	}
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		ch := w[i : i+size]
		key := ch
		if m.contPrefix != "" && i > 0 {
			key = m.contPrefix + key
		}
		if m.eowSuffix != "" && i+size == len(w) {
			key += m.eowSuffix
		}
		if id, ok := m.vocab[key]; ok {
			add(int32(id))
			lastUnk = false
		} else if m.byteFallback && m.hasBytes(ch) {
			for k := 0; k < len(ch); k++ {
				add(m.byteIDs[ch[k]])
			}
			lastUnk = false
		} else {
			unk()
		}
		i += size
	}
	return sym
}

func (m *bpeModel) hasBytes(ch string) bool {
	for k := 0; k < len(ch); k++ {
		if m.byteIDs[ch[k]] < 0 {
			return false
		}
	}
	return true
}

// merge runs BPE on w: repeatedly apply the lowest-ranked merge present,
// leftmost first on ties, over a linked list of symbols with a min-heap of
// candidate merges; stale candidates are skipped when popped. The returned
// slice lives in ws.
func (m *bpeModel) merge(w string, ws *bpeWork) []int32 {
	sym := m.initial(w, ws.sym[:0])
	n := len(sym)
	if n > 0 {
		sym[n-1].next = -1
	}
	h := ws.heap[:0]
	for i := 0; i+1 < n; i++ {
		if r, ok := m.merges[pairKey(sym[i].id, sym[i+1].id)]; ok {
			h = heapPush(h, mergeCand{rank: r.rank, pos: int32(i), left: sym[i].id, right: sym[i+1].id, id: r.id})
		}
	}
	for len(h) > 0 {
		var c mergeCand
		c, h = heapPop(h)
		s := &sym[c.pos]
		if s.id != c.left || s.next < 0 || sym[s.next].id != c.right {
			continue // stale: a neighbour has merged since
		}
		right := s.next
		s.id = c.id
		s.next = sym[right].next
		sym[right].id = -1
		if s.next >= 0 {
			sym[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			p := sym[s.prev].id
			if r, ok := m.merges[pairKey(p, s.id)]; ok {
				h = heapPush(h, mergeCand{rank: r.rank, pos: s.prev, left: p, right: s.id, id: r.id})
			}
		}
		if s.next >= 0 {
			q := sym[s.next].id
			if r, ok := m.merges[pairKey(s.id, q)]; ok {
				h = heapPush(h, mergeCand{rank: r.rank, pos: c.pos, left: s.id, right: q, id: r.id})
			}
		}
	}
	out := ws.out[:0]
	for i := int32(0); n > 0 && i >= 0; i = sym[i].next {
		out = append(out, sym[i].id)
	}
	ws.sym, ws.heap, ws.out = sym, h, out
	return out
}

func candLess(a, b mergeCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

func heapPush(h []mergeCand, c mergeCand) []mergeCand {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !candLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []mergeCand) (mergeCand, []mergeCand) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && candLess(h[r], h[l]) {
			c = r
		}
		if !candLess(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}

// wordCache maps words to their ids. It is safe for concurrent use and
// bounded: when full it starts over, which keeps the hot words cheaply.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const wordCacheMax = 1 << 17

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= wordCacheMax {
		c.m = make(map[string][]int32, 1024)
	}
	c.m[w] = ids
	c.mu.Unlock()
}
