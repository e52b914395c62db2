package idp

import (
	"bytes"
	"runtime"
	"slices"
	"sync"
	"weak"

	"distill/core/tokenizer"
)

// btrie is a byte trie over token byte strings, laid out in depth-first
// preorder (walks, which are depth first, then read memory nearly in
// order): node i's edges are eb/en[elo[i]:elo[i+1]] (sorted by byte) and the
// tokens ending at i are tok[tlo[i]:tlo[i+1]]. Suffix tries (see
// strSummary) also carry, per token, the number k of string characters the
// token adds before its closing quote; their tokens at a node are sorted by
// k.
type btrie struct {
	elo []int32
	eb  []byte
	en  []int32
	tlo []int32
	tok []int32
	tk  []int32 // nil for the vocabulary trie
}

type trieEntry struct {
	b  []byte
	id int32
	k  int32
}

// buildTrie builds a btrie from entries (sorted in place).
func buildTrie(es []trieEntry, withK bool) btrie {
	slices.SortFunc(es, func(x, y trieEntry) int {
		if c := bytes.Compare(x.b, y.b); c != 0 {
			return c
		}
		if x.k != y.k {
			return int(x.k - y.k)
		}
		return int(x.id - y.id)
	})
	var t btrie
	var build func(lo, hi, depth int) int32
	build = func(lo, hi, depth int) int32 {
		id := int32(len(t.elo))
		t.elo = append(t.elo, int32(len(t.eb)))
		t.tlo = append(t.tlo, int32(len(t.tok)))
		i := lo
		for i < hi && len(es[i].b) == depth {
			t.tok = append(t.tok, es[i].id)
			if withK {
				t.tk = append(t.tk, es[i].k)
			}
			i++
		}
		// Reserve this node's edges, then build each child's subtree.
		type span struct{ lo, hi int }
		var kids []span
		for j := i; j < hi; {
			c := es[j].b[depth]
			k := j + 1
			for k < hi && es[k].b[depth] == c {
				k++
			}
			kids = append(kids, span{j, k})
			t.eb = append(t.eb, c)
			t.en = append(t.en, -1)
			j = k
		}
		first := t.elo[id]
		for x, sp := range kids {
			t.en[int(first)+x] = build(sp.lo, sp.hi, depth+1)
		}
		return id
	}
	build(0, len(es), 0)
	// Edges were reserved in preorder, so node i's edges run to the next
	// node's first edge; likewise for tokens.
	t.elo = append(t.elo, int32(len(t.eb)))
	t.tlo = append(t.tlo, int32(len(t.tok)))
	return t
}

func (t *btrie) nodes() int { return len(t.elo) - 1 }

// child returns the child of node n along byte b, or -1.
func (t *btrie) child(n int32, b byte) int32 {
	lo, hi := t.elo[n], t.elo[n+1]
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case t.eb[m] == b:
			return t.en[m]
		case t.eb[m] < b:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// vocabIndex is what constrained decoding needs from one tokenizer: the
// token trie, each token's bytes, a one-byte token for every byte, and
// string summaries (computed lazily per trie node, then kept). It is built
// once per tokenizer and shared by every Grammar compiled for it.
type vocabIndex struct {
	V       int // tokenizer.VocabSize()
	words   int // (V + 63) / 64
	trie    btrie
	bytes   [][]byte // token bytes; nil for tokens that are never allowed in JSON text
	byteTok [256]int32
	eos     int // -1: none
	maxLen  int // longest token in bytes

	mu   sync.Mutex
	sums map[int32]*strSummary
}

var vocabCache sync.Map // weak.Pointer[tokenizer.Tokenizer] -> *vocabEntry

type vocabEntry struct {
	once sync.Once
	v    *vocabIndex
}

// vocabFor returns the cached index of tok, building it on first use. The
// entry is dropped when the tokenizer is garbage collected.
func vocabFor(tok *tokenizer.Tokenizer) *vocabIndex {
	key := weak.Make(tok)
	e, loaded := vocabCache.LoadOrStore(key, &vocabEntry{})
	ve := e.(*vocabEntry)
	if !loaded {
		runtime.AddCleanup(tok, func(k weak.Pointer[tokenizer.Tokenizer]) { vocabCache.Delete(k) }, key)
	}
	ve.once.Do(func() { ve.v = buildVocab(tok) })
	return ve.v
}

func buildVocab(tok *tokenizer.Tokenizer) *vocabIndex {
	v := &vocabIndex{V: tok.VocabSize(), eos: -1, sums: map[int32]*strSummary{}}
	v.words = (v.V + 63) / 64
	if id, ok := tok.EOS(); ok && id < v.V {
		v.eos = id
	}
	for i := range v.byteTok {
		v.byteTok[i] = -1
	}
	v.bytes = make([][]byte, v.V)
	es := make([]trieEntry, 0, v.V)
	for id := 0; id < v.V; id++ {
		if tok.IsSpecial(id) {
			continue
		}
		b := tok.TokenBytes(id)
		if len(b) == 0 {
			continue
		}
		v.bytes[id] = b
		es = append(es, trieEntry{b: b, id: int32(id)})
		if len(b) == 1 && v.byteTok[b[0]] < 0 {
			v.byteTok[b[0]] = int32(id)
		}
		v.maxLen = max(v.maxLen, len(b))
	}
	v.trie = buildTrie(es, false)
	v.sums[0] = v.buildSummary(0) // the root: every mask inside a string uses it
	return v
}

// String-content lexer. A JSON string's content is read by a small DFA
// whose states say what the next byte must be: a character (lexNormal),
// the rest of an escape, or the rest of a UTF-8 sequence. Characters are
// counted where they start (the first byte of a UTF-8 sequence or the
// backslash of an escape), so maxLength can be checked before a character
// is begun. \u escapes of surrogates (D800-DFFF) are not allowed: each
// escape is then exactly one character, as the validator counts them.
const (
	lexNormal = iota
	lexEsc    // after '\'
	lexHex4   // after "\u": 4 hex digits to go
	lexHexD   // after "\uD": next digit 0-7 (no surrogates)
	lexHex3
	lexHex2
	lexHex1
	lexU1  // one continuation byte 80-BF to go
	lexU2  // two
	lexU3  // three
	lexE0  // after E0: A0-BF, then one more
	lexED  // after ED: 80-9F, then one more
	lexF0  // after F0: 90-BF, then two more
	lexF4  // after F4: 80-8F, then two more
	lexN   // number of lexer states
	lexDie = 0xff
)

// lexPending is the number of bytes that finish the character begun in
// each state.
var lexPending = [lexN]int32{0, 1, 4, 3, 3, 2, 1, 1, 2, 3, 2, 2, 3, 3}

// lexTab[q][b]: next state, with bit 0x80 set when b starts a character;
// lexDie when b is not allowed. '"' in lexNormal (the closing quote) is
// lexDie here: callers handle it.
var lexTab [lexN][256]uint8

func init() {
	for q := range lexTab {
		for b := range lexTab[q] {
			lexTab[q][b] = lexDie
		}
	}
	set := func(q int, lo, hi byte, to uint8) {
		for b := int(lo); b <= int(hi); b++ {
			lexTab[q][b] = to
		}
	}
	const start = 0x80
	set(lexNormal, 0x20, 0x7f, start|lexNormal)
	lexTab[lexNormal]['"'] = lexDie
	lexTab[lexNormal]['\\'] = start | lexEsc
	set(lexNormal, 0xc2, 0xdf, start|lexU1)
	set(lexNormal, 0xe0, 0xe0, start|lexE0)
	set(lexNormal, 0xe1, 0xec, start|lexU2)
	set(lexNormal, 0xed, 0xed, start|lexED)
	set(lexNormal, 0xee, 0xef, start|lexU2)
	set(lexNormal, 0xf0, 0xf0, start|lexF0)
	set(lexNormal, 0xf1, 0xf3, start|lexU3)
	set(lexNormal, 0xf4, 0xf4, start|lexF4)
	for _, c := range []byte(`"\/bfnrt`) {
		lexTab[lexEsc][c] = lexNormal
	}
	lexTab[lexEsc]['u'] = lexHex4
	hex := func(q int, to uint8) {
		set(q, '0', '9', to)
		set(q, 'a', 'f', to)
		set(q, 'A', 'F', to)
	}
	hex(lexHex4, lexHex3)
	lexTab[lexHex4]['d'], lexTab[lexHex4]['D'] = lexHexD, lexHexD
	set(lexHexD, '0', '7', lexHex2)
	hex(lexHex3, lexHex2)
	hex(lexHex2, lexHex1)
	hex(lexHex1, lexNormal)
	set(lexU1, 0x80, 0xbf, lexNormal)
	set(lexU2, 0x80, 0xbf, lexU1)
	set(lexU3, 0x80, 0xbf, lexU2)
	set(lexE0, 0xa0, 0xbf, lexU1)
	set(lexED, 0x80, 0x9f, lexU1)
	set(lexF0, 0x90, 0xbf, lexU2)
	set(lexF4, 0x80, 0x8f, lexU2)
}

// strSummary describes, for one trie node c and a string lexer in
// lexNormal at c, every token below c: those that stay inside the string
// (by the bytes still pending at their end, sorted by the characters k they
// add) and those that close it (a suffix trie over what follows the
// closing quote, each token with its k). It lets a mask inside a string
// skip the walk over the ~all-allowed subtree.
type strSummary struct {
	inside [lexN][]uint64 // by pending bytes at the token's end: k<<32 | id, sorted
	// For inside[0] when large: bits[i] holds the tokens with k <= bucketK[i].
	bucketK []int32
	bits    [][]uint64
	suf     btrie
}

var bucketThresholds = []int32{1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128}

// summary returns the string summary of trie node c (cached).
func (v *vocabIndex) summary(c int32) *strSummary {
	v.mu.Lock()
	s := v.sums[c]
	v.mu.Unlock()
	if s != nil {
		return s
	}
	s = v.buildSummary(c)
	v.mu.Lock()
	if old := v.sums[c]; old != nil {
		s = old
	} else {
		v.sums[c] = s
	}
	v.mu.Unlock()
	return s
}

func (v *vocabIndex) buildSummary(c int32) *strSummary {
	s := &strSummary{}
	t := &v.trie
	var suf []trieEntry
	// The suffix of a closing token is the path below the quote's node.
	var collect func(n int32, k int32, path []byte)
	collect = func(n int32, k int32, path []byte) {
		for i := t.tlo[n]; i < t.tlo[n+1]; i++ {
			suf = append(suf, trieEntry{b: path, id: t.tok[i], k: k})
		}
		for e := t.elo[n]; e < t.elo[n+1]; e++ {
			p := append(path[:len(path):len(path)], t.eb[e])
			collect(t.en[e], k, p)
		}
	}
	var walk func(n int32, q uint8, k int32, top bool)
	walk = func(n int32, q uint8, k int32, top bool) {
		if !top {
			p := lexPending[q]
			for i := t.tlo[n]; i < t.tlo[n+1]; i++ {
				s.inside[p] = append(s.inside[p], uint64(k)<<32|uint64(uint32(t.tok[i])))
			}
		}
		for e := t.elo[n]; e < t.elo[n+1]; e++ {
			b := t.eb[e]
			if q == lexNormal && b == '"' {
				collect(t.en[e], k, nil)
				continue
			}
			x := lexTab[q][b]
			if x == lexDie {
				continue
			}
			k2 := k
			if x&0x80 != 0 {
				k2++
			}
			walk(t.en[e], x&0x7f, k2, false)
		}
	}
	walk(c, lexNormal, 0, true)
	for p := range s.inside {
		slices.Sort(s.inside[p])
	}
	if in := s.inside[0]; len(in) >= 4096 {
		for _, th := range bucketThresholds {
			bits := make([]uint64, v.words)
			for _, x := range in {
				if int32(x>>32) > th {
					break
				}
				id := uint32(x)
				bits[id>>6] |= 1 << (id & 63)
			}
			s.bucketK = append(s.bucketK, th)
			s.bits = append(s.bits, bits)
			if th >= int32(in[len(in)-1]>>32) {
				break
			}
		}
	}
	s.suf = buildTrie(suf, true)
	return s
}
