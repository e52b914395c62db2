package idp

import (
	"fmt"
	"math/bits"
	"slices"
)

// frame is one level of the grammar stack: a value being generated.
//
//	kLit     st: literal trie node
//	kObject  st: literal trie node (keys, ',' and '}'), or -1 inside property m's value
//	kString  st: 0 before the opening quote, else 1 + lexer state (or DFA state); n: characters
//	kNumber  st: phase (numStart..numFrac) | numNeg; n: integer digits; m: fraction digits; v: digits as an integer
//	kArray   st: arrOpen, arrFirst, arrAfter, arrComma or arrIn; n: items so far
//	kAnyObject st: aoOpen..aoComma
//	kChoice  not yet expanded: replaced by the alternative the next byte selects
//
// below is the cost, in tokens, of finishing every frame under this one
// once this one is complete.
type frame struct {
	node  int32
	st    int32
	n     int32
	m     int32
	v     int64
	below int32
}

const (
	arrOpen  = 0 // before '['
	arrFirst = 1 // after '['
	arrAfter = 2 // after an item
	arrComma = 3 // after ','
	arrIn    = 4 // inside an item
)

const (
	aoOpen   = 0 // before '{'
	aoFirst  = 1 // after '{'
	aoKey    = 2 // inside a key
	aoColon  = 3 // after a key
	aoValue  = 4 // after ':'
	aoIn     = 5 // inside a value
	aoAfter  = 6 // after a value
	aoComma  = 7 // after ','
	aoKeyMin = 2 // tokens of the shortest key ("")
)

func (g *Grammar) initFrame(id int32, below int32) frame {
	f := frame{node: id, below: below}
	if k := g.nodes[id].kind; k == kLit || k == kObject {
		f.st = g.nodes[id].trie
	}
	return f
}

// tbuf holds a set of threads (grammar stacks) back to back: thread i is
// fr[th[i]:th[i+1]] (the last one runs to the end, so it can grow). An
// empty thread is a complete value.
type tbuf struct {
	fr []frame
	th []int32
}

func (t *tbuf) reset()    { t.fr, t.th = t.fr[:0], t.th[:0] }
func (t *tbuf) n() int    { return len(t.th) }
func (t *tbuf) dropLast() { t.fr, t.th = t.fr[:t.th[len(t.th)-1]], t.th[:len(t.th)-1] }

func (t *tbuf) thread(i int) []frame {
	end := len(t.fr)
	if i+1 < len(t.th) {
		end = int(t.th[i+1])
	}
	return t.fr[t.th[i]:end]
}

func (t *tbuf) copyFrom(s *tbuf) {
	t.fr = append(t.fr[:0], s.fr...)
	t.th = append(t.th[:0], s.th...)
}

// feed appends the threads src becomes after byte b (none if b is refused,
// or if what b starts could not be finished within maxDepth).
func (t *tbuf) feed(g *Grammar, src []frame, b byte, sc *scratch) {
	k, start := len(t.th), len(t.fr)
	t.th = append(t.th, int32(start))
	t.fr = append(t.fr, src...)
	g.stepLast(t, b, sc)
	// Far from the limit (the common case) every new thread fits.
	if int64(len(t.fr)-start)+int64(g.maxNeed) > maxDepth {
		t.keepFitting(g, k)
	}
}

// keepFitting drops the threads from index k on whose top frame cannot be
// finished within maxDepth. Frames below the top were checked when they
// were on top, and completing a child never raises a parent's need.
func (t *tbuf) keepFitting(g *Grammar, k int) {
	all := true
	for i := k; i < t.n() && all; i++ {
		all = g.fitsDepth(t.thread(i))
	}
	if all {
		return
	}
	var keep tbuf
	for i := k; i < t.n(); i++ {
		if th := t.thread(i); g.fitsDepth(th) {
			keep.th = append(keep.th, int32(len(keep.fr)))
			keep.fr = append(keep.fr, th...)
		}
	}
	end := len(t.fr)
	if k < t.n() {
		end = int(t.th[k])
	}
	t.fr, t.th = t.fr[:end], t.th[:k]
	for i := 0; i < keep.n(); i++ {
		t.th = append(t.th, int32(len(t.fr)))
		t.fr = append(t.fr, keep.thread(i)...)
	}
}

// fitsDepth reports whether a thread's top frame, at its depth, can still
// be finished within maxDepth.
func (g *Grammar) fitsDepth(th []frame) bool {
	return len(th) == 0 || int64(len(th))+int64(g.frameDepth(&th[len(th)-1])) <= maxDepth
}

// frameDepth is the depth need of top frame f: the stack levels above it
// that finishing it needs (compare own, its cost in tokens).
func (g *Grammar) frameDepth(f *frame) int32 {
	nd := &g.nodes[f.node]
	switch nd.kind {
	case kLit, kObject:
		if f.st < 0 {
			return inf // not a top frame
		}
		return g.lit.nodes[f.st].depth
	case kString, kNumber:
		return 0
	case kArray:
		item := addCost(1, int64(g.nodes[nd.item].depth))
		switch f.st {
		case arrOpen, arrFirst:
			return nd.depth
		case arrAfter:
			if f.n < nd.minItems {
				return item
			}
			return 0
		case arrComma:
			return item
		}
	case kAnyObject:
		switch f.st {
		case aoOpen, aoFirst, aoAfter:
			return 0
		case aoComma:
			return g.anyObjectEntryDepth(nd)
		case aoColon, aoValue:
			return addCost(1, int64(g.nodes[nd.item].depth))
		}
	case kChoice:
		return nd.depth
	}
	return inf
}

// anyObjectEntryDepth is the depth need of one more key and value.
func (g *Grammar) anyObjectEntryDepth(nd *node) int32 {
	return addCost(1, int64(max(g.nodes[nd.key].depth, g.nodes[nd.item].depth)))
}

// fits reports whether a frame at the top of the last thread (which begins
// at s) may enter a state whose depth need is need.
func fits(d *tbuf, s int, need int32) bool {
	return int64(len(d.fr)-s)+int64(need) <= maxDepth
}

// dedupe removes duplicate threads (rare: only after ambiguous choices).
func (t *tbuf) dedupe() {
	if len(t.th) < 2 {
		return
	}
	dup := false
	for i := 1; i < t.n() && !dup; i++ {
		for j := 0; j < i && !dup; j++ {
			dup = slices.Equal(t.thread(i), t.thread(j))
		}
	}
	if !dup {
		return
	}
	var out tbuf
	for i := 0; i < t.n(); i++ {
		th := t.thread(i)
		dup := false
		for j := 0; j < out.n(); j++ {
			if slices.Equal(out.thread(j), th) {
				dup = true
				break
			}
		}
		if !dup {
			out.th = append(out.th, int32(len(out.fr)))
			out.fr = append(out.fr, th...)
		}
	}
	if out.n() < t.n() {
		t.copyFrom(&out)
	}
}

// maxForks bounds how deeply forks of a choice may nest within one byte.
// Choices are flattened at compile time, so each alternative consumes the
// byte itself and forks nest at most once; the bound is a guard.
const maxForks = 8

// scratch holds copies of threads while a choice forks them.
type scratch struct {
	bufs  [][]frame
	depth int
}

func (s *scratch) save(fr []frame) []frame {
	if s.depth == len(s.bufs) {
		s.bufs = append(s.bufs, nil)
	}
	s.bufs[s.depth] = append(s.bufs[s.depth][:0], fr...)
	s.depth++
	return s.bufs[s.depth-1]
}

func (s *scratch) release() { s.depth-- }

// stepLast feeds byte b to the last thread of d, which it replaces by the
// threads it becomes: none when b is refused, several when an ambiguous
// choice forks.
func (g *Grammar) stepLast(d *tbuf, b byte, sc *scratch) {
	s := int(d.th[len(d.th)-1])
	for steps := 0; ; steps++ {
		// Each step without consuming b pushes a frame (bounded by
		// maxDepth), pops one (bounded by the stack) or resolves a choice
		// (never into another: finish flattens them). A schema that broke
		// that would loop here; ending the thread is the safe answer.
		if steps > 2*maxDepth+8 {
			d.dropLast()
			return
		}
		top := len(d.fr) - 1
		if top < s {
			d.dropLast() // a complete value takes no more bytes
			return
		}
		f := &d.fr[top]
		nd := &g.nodes[f.node]
		switch nd.kind {
		case kChoice:
			var only int32 = -1
			cnt := 0
			for _, a := range nd.alts {
				if hasByte(&g.nodes[a].first, b) {
					only, cnt = a, cnt+1
				}
			}
			if cnt == 0 {
				d.dropLast()
				return
			}
			if cnt == 1 {
				*f = g.initFrame(only, f.below)
				continue
			}
			if sc.depth >= maxForks {
				d.dropLast() // forks nest only through a bug: never overflow the stack
				return
			}
			below := f.below
			base := sc.save(d.fr[s:])
			d.dropLast()
			for _, a := range nd.alts {
				if hasByte(&g.nodes[a].first, b) {
					d.th = append(d.th, int32(len(d.fr)))
					d.fr = append(d.fr, base...)
					d.fr[len(d.fr)-1] = g.initFrame(a, below)
					g.stepLast(d, b, sc)
				}
			}
			sc.release()
			return

		case kLit:
			if c := g.lit.child(f.st, b); c >= 0 {
				f.st = c
				if ln := &g.lit.nodes[c]; ln.act == actEnd && ln.en == 0 {
					g.popReturn(d, s)
				}
				return
			}
			if g.lit.nodes[f.st].act == actEnd { // a number literal that could go on
				g.popReturn(d, s)
				continue
			}
			d.dropLast()
			return

		case kObject:
			c := g.lit.child(f.st, b)
			if c < 0 {
				d.dropLast()
				return
			}
			switch act := g.lit.nodes[c].act; {
			case act == actEnd:
				g.popReturn(d, s)
			case act >= actValue:
				if !fits(d, s, g.lit.nodes[c].depth) {
					d.dropLast() // the value, or a required property after it, would nest too deep
					return
				}
				j := act - actValue
				p := &nd.props[j]
				f.st, f.m = -1, j
				g.push(d, s, p.node, addCost(int64(f.below), int64(g.lit.nodes[p.after].dist)))
				return
			default:
				f.st = c
			}
			return

		case kString:
			if f.st == 0 {
				if b != '"' {
					d.dropLast()
					return
				}
				if nd.dfa != nil {
					f.st = 1 + nd.dfa.start
				} else {
					f.st = 1 + lexNormal
				}
				return
			}
			q := f.st - 1
			if nd.dfa != nil {
				if b == '"' {
					if nd.dfa.accept[q] {
						g.popReturn(d, s)
					} else {
						d.dropLast()
					}
					return
				}
				x := nd.dfa.step(q, b)
				if x < 0 {
					d.dropLast()
					return
				}
				f.st = 1 + x
				return
			}
			if q == lexNormal && b == '"' {
				if f.n >= nd.minLen {
					g.popReturn(d, s)
				} else {
					d.dropLast()
				}
				return
			}
			x := lexTab[q][b]
			if x == lexDie {
				d.dropLast()
				return
			}
			if x&0x80 != 0 {
				if nd.maxLen >= 0 && f.n >= nd.maxLen {
					d.dropLast()
					return
				}
				f.n++
			}
			f.st = 1 + int32(x&0x7f)
			return

		case kNumber:
			if nd.num.step(f, b) {
				return
			}
			if nd.num.accepting(f) {
				g.popReturn(d, s)
				continue
			}
			d.dropLast()
			return

		case kArray:
			switch f.st {
			case arrOpen:
				if b != '[' {
					d.dropLast()
					return
				}
				f.st = arrFirst
				return
			case arrFirst:
				if b == ']' && nd.minItems == 0 {
					g.popReturn(d, s)
					return
				}
				if nd.maxItems == 0 {
					d.dropLast()
					return
				}
				f.st = arrIn
				if !g.push(d, s, nd.item, addCost(int64(f.below), int64(g.arrayAfterCost(nd, f.n+1)))) {
					return
				}
				continue
			case arrAfter:
				if b == ',' && (nd.maxItems < 0 || f.n < nd.maxItems) {
					f.st = arrComma
					return
				}
				if b == ']' && f.n >= nd.minItems {
					g.popReturn(d, s)
					return
				}
				d.dropLast()
				return
			case arrComma:
				f.st = arrIn
				if !g.push(d, s, nd.item, addCost(int64(f.below), int64(g.arrayAfterCost(nd, f.n+1)))) {
					return
				}
				continue
			}
			d.dropLast()
			return

		case kAnyObject:
			anyCost := int64(g.nodes[nd.item].cost)
			switch f.st {
			case aoOpen:
				if b == '{' {
					f.st = aoFirst
					return
				}
			case aoFirst, aoComma:
				if b == '}' && f.st == aoFirst {
					g.popReturn(d, s)
					return
				}
				if !fits(d, s, g.anyObjectEntryDepth(nd)) {
					d.dropLast() // the key's value would nest too deep
					return
				}
				f.st = aoKey
				if !g.push(d, s, nd.key, addCost(int64(f.below), 1, anyCost, 1)) {
					return
				}
				continue
			case aoColon:
				if b == ':' {
					f.st = aoValue
					return
				}
			case aoValue:
				f.st = aoIn
				if !g.push(d, s, nd.item, addCost(int64(f.below), 1)) {
					return
				}
				continue
			case aoAfter:
				if b == ',' {
					f.st = aoComma
					return
				}
				if b == '}' {
					g.popReturn(d, s)
					return
				}
			}
			d.dropLast()
			return
		}
		d.dropLast()
		return
	}
}

// push starts a value of node id on the last thread (which begins at s).
// A push whose value could not be finished within maxDepth ends the thread
// instead and returns false.
func (g *Grammar) push(d *tbuf, s int, id int32, below int32) bool {
	if !fits(d, s, addCost(1, int64(g.nodes[id].depth))) {
		d.dropLast()
		return false
	}
	d.fr = append(d.fr, g.initFrame(id, below))
	return true
}

// popReturn completes the top frame of the last thread (which begins at s)
// and tells its parent.
func (g *Grammar) popReturn(d *tbuf, s int) {
	d.fr = d.fr[:len(d.fr)-1]
	if len(d.fr) == s {
		return
	}
	p := &d.fr[len(d.fr)-1]
	nd := &g.nodes[p.node]
	switch nd.kind {
	case kObject:
		p.st = nd.props[p.m].after
	case kArray:
		p.st, p.n = arrAfter, p.n+1
	case kAnyObject:
		if p.st == aoKey {
			p.st = aoColon
		} else {
			p.st = aoAfter
		}
	}
}

// own is the cost in tokens of finishing the top frame f.
func (g *Grammar) own(f *frame) int32 {
	nd := &g.nodes[f.node]
	switch nd.kind {
	case kLit, kObject:
		if f.st < 0 {
			return inf // not a top frame
		}
		return g.lit.nodes[f.st].dist
	case kString:
		if f.st == 0 {
			return nd.cost
		}
		q := f.st - 1
		if nd.dfa != nil {
			return addCost(int64(nd.dfa.dist[q]), 1)
		}
		return addCost(int64(lexPending[q]), int64(max(0, nd.minLen-f.n)), 1)
	case kNumber:
		return nd.num.cost(f)
	case kArray:
		switch f.st {
		case arrOpen:
			return nd.cost
		case arrFirst:
			return g.arrayOpenCost(nd)
		case arrAfter:
			return g.arrayAfterCost(nd, f.n)
		case arrComma:
			return addCost(int64(g.nodes[nd.item].cost), int64(g.arrayAfterCost(nd, f.n+1)))
		}
	case kAnyObject:
		anyCost := int64(g.nodes[nd.item].cost)
		switch f.st {
		case aoOpen:
			return 2
		case aoFirst, aoAfter:
			return 1
		case aoColon:
			return addCost(1, anyCost, 1)
		case aoValue:
			return addCost(anyCost, 1)
		case aoComma:
			return addCost(aoKeyMin, 1, anyCost, 1)
		}
	case kChoice:
		return nd.cost
	}
	return inf
}

// threadCost is the tokens needed to complete a thread.
func (g *Grammar) threadCost(th []frame) int32 {
	if len(th) == 0 {
		return 0
	}
	f := &th[len(th)-1]
	return addCost(int64(g.own(f)), int64(f.below))
}

// threadDone reports whether a thread may end here: it is empty, or holds
// only a top-level value that is complete but could go on (a number).
func (g *Grammar) threadDone(th []frame) bool {
	switch len(th) {
	case 0:
		return true
	case 1:
		f := &th[0]
		nd := &g.nodes[f.node]
		switch nd.kind {
		case kNumber:
			return nd.num.accepting(f)
		case kLit:
			return g.lit.nodes[f.st].act == actEnd
		}
	}
	return false
}

// State is a position in a Grammar during decoding. Copy it with Clone.
// It is not safe for concurrent use.
type State struct {
	g         *Grammar
	cur       tbuf
	remaining int // tokens left (EOS excluded); -1: no budget
	ended     bool
	sc        scratch
	w         *walker
	tmp       [2]tbuf
}

// Start returns the state before any token, with no token budget.
func (g *Grammar) Start() *State {
	s := &State{g: g, remaining: -1}
	s.cur.th = append(s.cur.th, 0)
	s.cur.fr = append(s.cur.fr, g.initFrame(g.root, 0))
	return s
}

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := &State{g: s.g, remaining: s.remaining, ended: s.ended}
	c.cur.copyFrom(&s.cur)
	return c
}

// SetMaxTokens sets the budget: at most n more tokens (EOS not counted).
// From then on Mask only allows tokens after which the value can still be
// completed within the budget (counting the shortest completion in tokens,
// see MinTokens), so the value is always complete when the budget runs
// out. It fails when n is below what the shortest completion needs. n < 0
// removes the budget.
func (s *State) SetMaxTokens(n int) error {
	if n >= 0 {
		if need := s.minCost(&s.cur); int(need) > n {
			return fmt.Errorf("idp: a budget of %d tokens is below the %d the shortest valid value needs", n, need)
		}
	}
	s.remaining = n
	return nil
}

// Remaining returns the tokens left in the budget (-1: none).
func (s *State) Remaining() int { return s.remaining }

// MinTokens returns the tokens the shortest completion from here needs (an
// upper bound, counting free text bytewise).
func (s *State) MinTokens() int { return int(s.minCost(&s.cur)) }

func (s *State) minCost(t *tbuf) int32 {
	c := int32(inf)
	for i := 0; i < t.n(); i++ {
		c = min(c, s.g.threadCost(t.thread(i)))
	}
	return c
}

// Done reports whether the value is complete, so EOS may come next.
func (s *State) Done() bool {
	if s.ended {
		return true
	}
	for i := 0; i < s.cur.n(); i++ {
		if s.g.threadDone(s.cur.thread(i)) {
			return true
		}
	}
	return false
}

// Closed reports whether the value is complete and nothing may follow but
// EOS (every JSON value but a top-level number or numeric enum).
func (s *State) Closed() bool {
	if s.ended {
		return true
	}
	for i := 0; i < s.cur.n(); i++ {
		if len(s.cur.thread(i)) > 0 {
			return false
		}
	}
	return true
}

// Advance consumes token id. It fails, leaving s unchanged, when id is not
// allowed here (Mask would not have set it).
func (s *State) Advance(id int) error {
	g, v := s.g, s.g.vocab
	if s.ended {
		return fmt.Errorf("idp: token %d after the end of the value", id)
	}
	if id == v.eos && id >= 0 {
		if !s.Done() {
			return fmt.Errorf("idp: end of sequence before the JSON value is complete")
		}
		s.ended = true
		return nil
	}
	if id < 0 || id >= v.V || v.bytes[id] == nil {
		return fmt.Errorf("idp: token %d is special or outside the vocabulary", id)
	}
	a, b := &s.tmp[0], &s.tmp[1]
	a.copyFrom(&s.cur)
	for _, x := range v.bytes[id] {
		b.reset()
		for i := 0; i < a.n(); i++ {
			b.feed(g, a.thread(i), x, &s.sc)
		}
		b.dedupe()
		a, b = b, a
		if a.n() == 0 {
			return fmt.Errorf("idp: token %d %q is not allowed here", id, v.bytes[id])
		}
	}
	if s.remaining >= 0 {
		if s.remaining == 0 {
			return fmt.Errorf("idp: token %d is past the token budget", id)
		}
		b.reset()
		for i := 0; i < a.n(); i++ {
			if th := a.thread(i); int(g.threadCost(th)) <= s.remaining-1 {
				b.th = append(b.th, int32(len(b.fr)))
				b.fr = append(b.fr, th...)
			}
		}
		if b.n() == 0 {
			return fmt.Errorf("idp: token %d %q leaves too few tokens in the budget to finish the value", id, v.bytes[id])
		}
		a = b
		s.remaining--
	}
	s.cur.copyFrom(a)
	return nil
}

// Mask sets in allowed (one bit per token id, at least (VocabSize+63)/64
// words) exactly the tokens that may come next: those whose bytes continue
// the value (and, under a budget, leave room to finish it), plus EOS once
// the value is complete. Special tokens are never allowed inside the value.
func (s *State) Mask(allowed []uint64) {
	v := s.g.vocab
	allowed = allowed[:v.words]
	clear(allowed)
	if s.ended {
		return
	}
	if s.w == nil {
		s.w = &walker{g: s.g}
	}
	s.w.run(s, allowed)
	if v.eos >= 0 && s.Done() {
		allowed[v.eos>>6] |= 1 << (v.eos & 63)
	}
}

// AllowedTokens is Mask as a []bool of length VocabSize.
func (s *State) AllowedTokens(dst []bool) {
	m := make([]uint64, s.g.vocab.words)
	s.Mask(m)
	for i := range dst {
		dst[i] = i < s.g.vocab.V && m[i>>6]&(1<<(i&63)) != 0
	}
}

// VocabSize is the size of the tokenizer vocabulary masks cover.
func (g *Grammar) VocabSize() int { return g.vocab.V }

// MaskWords is the length of the mask Mask fills.
func (g *Grammar) MaskWords() int { return g.vocab.words }

func popcount(m []uint64) int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return n
}
