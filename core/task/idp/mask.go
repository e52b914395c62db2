package idp

import "sort"

// walker computes masks: a depth-first walk of the token trie in step with
// the grammar, pruned as soon as a byte is refused. levels[d] holds the
// threads after the first d bytes of the current trie path. Where the
// grammar is inside free string text (one thread, lexer at a character
// boundary, no pattern), the subtree below is not walked: the string
// summary of the trie node gives the tokens that stay inside the string
// (bitsets by characters added) and a small suffix trie of those that close
// it, walked with the grammar state after the closing quote.
type walker struct {
	g      *Grammar
	levels []tbuf
	mask   []uint64
	rem    int   // tokens left before this one; -1: no budget
	kLo    int32 // suffix-trie walks: allowed characters before the quote
	kHi    int32
	sc     scratch
}

func (w *walker) level(d int) *tbuf {
	for len(w.levels) <= d {
		w.levels = append(w.levels, tbuf{})
	}
	return &w.levels[d]
}

func (w *walker) run(s *State, mask []uint64) {
	w.mask, w.rem = mask, s.remaining
	if w.rem == 0 {
		return
	}
	if w.levels == nil {
		// Deep enough for any walk (token length plus a few levels), so
		// levels never move while a walk holds pointers into them.
		w.levels = make([]tbuf, w.g.vocab.maxLen+8)
	}
	l0 := w.level(0)
	l0.copyFrom(&s.cur)
	if w.split(0, 0) {
		return
	}
	w.walk(&w.g.vocab.trie, 0, 0, true)
}

// budgetOK reports whether the threads at level t can finish within the
// budget left after one more token.
func (w *walker) budgetOK(t *tbuf) bool {
	if w.rem < 0 {
		return true
	}
	lim := int32(w.rem - 1)
	for i := 0; i < t.n(); i++ {
		if w.g.threadCost(t.thread(i)) <= lim {
			return true
		}
	}
	return false
}

// walk visits the children of trie node n with the threads of level d.
// inVocab is false for suffix tries (whose tokens carry k).
func (w *walker) walk(t *btrie, n int32, d int, inVocab bool) {
	g := w.g
	for e := t.elo[n]; e < t.elo[n+1]; e++ {
		b, c := t.eb[e], t.en[e]
		dst := w.level(d + 1)
		src := &w.levels[d]
		dst.reset()
		for i := 0; i < src.n(); i++ {
			dst.feed(g, src.thread(i), b, &w.sc)
		}
		if dst.n() == 0 {
			continue
		}
		dst.dedupe()
		if t.tlo[c] < t.tlo[c+1] && w.budgetOK(dst) {
			w.setTokens(t, c, inVocab)
		}
		if t.elo[c] == t.elo[c+1] {
			continue
		}
		if inVocab && w.split(c, d+1) {
			continue
		}
		w.walk(t, c, d+1, inVocab)
	}
}

func (w *walker) setTokens(t *btrie, c int32, inVocab bool) {
	lo, hi := t.tlo[c], t.tlo[c+1]
	if inVocab {
		for _, id := range t.tok[lo:hi] {
			w.mask[id>>6] |= 1 << (id & 63)
		}
		return
	}
	// Suffix trie: tokens sorted by k; keep kLo <= k <= kHi.
	ks := t.tk[lo:hi]
	i := sort.Search(len(ks), func(i int) bool { return ks[i] >= w.kLo })
	for ; i < len(ks) && ks[i] <= w.kHi; i++ {
		id := t.tok[int(lo)+i]
		w.mask[id>>6] |= 1 << (id & 63)
	}
}

const (
	threadGeneric = iota
	threadFree    // inside free string text at a character boundary
	threadDFA     // inside a pattern/format string
)

func (w *walker) classify(th []frame) int {
	if len(th) == 0 {
		return threadGeneric
	}
	f := &th[len(th)-1]
	nd := &w.g.nodes[f.node]
	if nd.kind != kString || f.st == 0 {
		return threadGeneric
	}
	if nd.dfa != nil {
		return threadDFA
	}
	if f.st == 1+lexNormal {
		return threadFree
	}
	return threadGeneric
}

// split handles the threads of level d that are inside strings below trie
// node c with the string paths (summaries, DFA walks) and removes them from
// the level. It reports whether no thread is left for the generic walk.
// Masks are unions over threads, so handling threads apart is exact.
func (w *walker) split(c int32, d int) bool {
	l := &w.levels[d]
	special := 0
	for i := 0; i < l.n(); i++ {
		if w.classify(l.thread(i)) != threadGeneric {
			special++
		}
	}
	if special == 0 {
		return false
	}
	for i := 0; i < l.n(); i++ {
		th := l.thread(i)
		switch w.classify(th) {
		case threadFree:
			w.summary(c, th, d+1)
		case threadDFA:
			w.dfaWalk(c, th, d+1)
		}
	}
	l = &w.levels[d] // in case the string paths grew levels
	if special == l.n() {
		return true
	}
	var keep tbuf
	for i := 0; i < l.n(); i++ {
		if th := l.thread(i); w.classify(th) == threadGeneric {
			keep.th = append(keep.th, int32(len(keep.fr)))
			keep.fr = append(keep.fr, th...)
		}
	}
	l.copyFrom(&keep)
	return false
}

// closeAt puts into level d the thread th after its top string closes.
func (w *walker) closeAt(th []frame, d int) *tbuf {
	closed := w.level(d)
	closed.reset()
	closed.th = append(closed.th, 0)
	closed.fr = append(closed.fr, th...)
	w.g.popReturn(closed, 0)
	return closed
}

// summary adds the tokens below trie node c for the free-string thread th;
// levels from d on are free.
func (w *walker) summary(c int32, th []frame, d int) {
	g := w.g
	sum := g.vocab.summary(c)
	f := th[len(th)-1]
	nd := &g.nodes[f.node]
	room := int32(inf)
	if nd.maxLen >= 0 {
		room = nd.maxLen - f.n
	}
	// Tokens that stay inside: after one with k characters and p pending
	// bytes, finishing costs p + max(0, minLen-n-k) + 1 (the quote) + below.
	slack := int32(inf)
	if w.rem >= 0 {
		slack = int32(w.rem-1) - f.below - 1
	}
	need := nd.minLen - f.n
	for p := int32(0); p < lexN; p++ {
		in := sum.inside[p]
		if len(in) == 0 || p > slack {
			continue
		}
		kmin := int32(0)
		if slack < inf {
			kmin = need - (slack - p)
		}
		w.addInside(sum, p, in, max(kmin, 0), room)
	}
	// Tokens that close the string: walk the suffix trie from the state
	// after the closing quote.
	kLo, kHi := max(nd.minLen-f.n, 0), room
	if kLo > kHi || sum.suf.nodes() == 0 {
		return
	}
	closed := w.closeAt(th, d)
	w.kLo, w.kHi = kLo, kHi
	if sum.suf.tlo[0] < sum.suf.tlo[1] && w.budgetOK(closed) {
		w.setTokens(&sum.suf, 0, false)
	}
	w.walk(&sum.suf, 0, d, false)
}

// dfaWalk adds the tokens below trie node c for the thread th inside a
// pattern/format string: the trie is walked with the DFA state alone (one
// table lookup per node); at a closing quote the walk continues with the
// generic walk from the state after the string. Levels from d on are free.
func (w *walker) dfaWalk(c int32, th []frame, d int) {
	f := th[len(th)-1]
	dw := dfaWalker{w: w, th: th, d: d, dfa: w.g.nodes[f.node].dfa, lim: inf}
	if w.rem >= 0 {
		dw.lim = int32(w.rem-1) - f.below - 1
	}
	q := f.st - 1
	if sum := w.g.dfaSummary(dw.dfa, q, c); sum != nil && sum.maxDist <= dw.lim {
		if sum.bits != nil {
			for j, x := range sum.bits {
				w.mask[j] |= x
			}
		}
		for _, id := range sum.ids {
			w.mask[id>>6] |= 1 << (id & 63)
		}
		if sum.suf.nodes() > 0 {
			closed := w.closeAt(th, d)
			w.kLo, w.kHi = 0, inf
			if sum.suf.tlo[0] < sum.suf.tlo[1] && w.budgetOK(closed) {
				w.setTokens(&sum.suf, 0, false)
			}
			w.walk(&sum.suf, 0, d, false)
		}
		return
	}
	dw.rec(c, q)
}

// dfaSum is the DFA counterpart of strSummary: for a pattern/format DFA in
// state q at trie node c, the tokens below c that stay inside the string
// (all at once, valid while the budget allows maxDist) and a suffix trie of
// those that close it. Cached per grammar (up to maxDFASums entries).
type dfaSum struct {
	bits    []uint64 // inside tokens when many
	ids     []int32  // inside tokens when few
	maxDist int32    // largest distance to acceptance after an inside token
	suf     btrie
}

type dfaKey struct {
	dfa  *sdfa
	q, c int32
}

const maxDFASums = 1 << 12

func (g *Grammar) dfaSummary(dfa *sdfa, q, c int32) *dfaSum {
	key := dfaKey{dfa, q, c}
	if s, ok := g.dfaSums.Load(key); ok {
		return s.(*dfaSum)
	}
	if g.nDFASums.Load() >= maxDFASums {
		return nil
	}
	v := g.vocab
	t := &v.trie
	s := &dfaSum{}
	var suf []trieEntry
	var collect func(n int32, path []byte)
	collect = func(n int32, path []byte) {
		for i := t.tlo[n]; i < t.tlo[n+1]; i++ {
			suf = append(suf, trieEntry{b: path, id: t.tok[i]})
		}
		for e := t.elo[n]; e < t.elo[n+1]; e++ {
			collect(t.en[e], append(path[:len(path):len(path)], t.eb[e]))
		}
	}
	var walk func(n, q int32)
	walk = func(n, q int32) {
		for e := t.elo[n]; e < t.elo[n+1]; e++ {
			b, ch := t.eb[e], t.en[e]
			if b == '"' {
				if dfa.accept[q] {
					collect(ch, nil)
				}
				continue
			}
			q2 := dfa.step(q, b)
			if q2 < 0 {
				continue
			}
			if t.tlo[ch] < t.tlo[ch+1] {
				s.ids = append(s.ids, t.tok[t.tlo[ch]:t.tlo[ch+1]]...)
				s.maxDist = max(s.maxDist, dfa.dist[q2])
			}
			walk(ch, q2)
		}
	}
	walk(c, q)
	if len(s.ids) > 2048 {
		s.bits = make([]uint64, v.words)
		for _, id := range s.ids {
			s.bits[id>>6] |= 1 << (id & 63)
		}
		s.ids = nil
	}
	s.suf = buildTrie(suf, true)
	if old, loaded := g.dfaSums.LoadOrStore(key, s); loaded {
		return old.(*dfaSum)
	}
	g.nDFASums.Add(1)
	return s
}

type dfaWalker struct {
	w      *walker
	th     []frame
	d      int
	dfa    *sdfa
	lim    int32 // largest allowed distance to acceptance after a token
	closed bool  // level d holds the state after the closing quote
}

func (dw *dfaWalker) rec(n, q int32) {
	w, t, dfa := dw.w, &dw.w.g.vocab.trie, dw.dfa
	for e := t.elo[n]; e < t.elo[n+1]; e++ {
		b, ch := t.eb[e], t.en[e]
		hasTok, hasKids := t.tlo[ch] < t.tlo[ch+1], t.elo[ch] < t.elo[ch+1]
		if b == '"' {
			if !dfa.accept[q] {
				continue
			}
			if !dw.closed {
				w.closeAt(dw.th, dw.d)
				dw.closed = true
			}
			if hasTok && w.budgetOK(&w.levels[dw.d]) {
				w.setTokens(t, ch, true)
			}
			if hasKids {
				w.walk(t, ch, dw.d, true)
			}
			continue
		}
		q2 := dfa.step(q, b)
		if q2 < 0 {
			continue
		}
		if hasTok && dfa.dist[q2] <= dw.lim {
			w.setTokens(t, ch, true)
		}
		if hasKids {
			dw.rec(ch, q2)
		}
	}
}

// addInside sets the tokens of list in (k<<32|id, sorted) with kmin <= k
// <= kmax, using the bucket bitsets where they apply.
func (w *walker) addInside(sum *strSummary, p int32, in []uint64, kmin, kmax int32) {
	i := 0
	if kmin > 0 {
		i = sort.Search(len(in), func(i int) bool { return int32(in[i]>>32) >= kmin })
	} else if p == 0 && len(sum.bits) > 0 {
		// Largest bucket within kmax, then the tokens past it one by one.
		b := sort.Search(len(sum.bucketK), func(i int) bool { return sum.bucketK[i] > kmax }) - 1
		if b >= 0 {
			for j, x := range sum.bits[b] {
				w.mask[j] |= x
			}
			i = sort.Search(len(in), func(i int) bool { return int32(in[i]>>32) > sum.bucketK[b] })
		}
	}
	for ; i < len(in); i++ {
		x := in[i]
		if int32(x>>32) > kmax {
			break
		}
		id := uint32(x)
		w.mask[id>>6] |= 1 << (id & 63)
	}
}
