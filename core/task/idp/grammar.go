package idp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"distill/core/jsonv"
	"distill/core/tokenizer"
)

// inf is the cost of what cannot be completed.
const inf = math.MaxInt32 / 4

func addCost(xs ...int64) int32 {
	var s int64
	for _, x := range xs {
		s += x
		if s >= inf {
			return inf
		}
	}
	return int32(s)
}

// maxDepth bounds the grammar stack (nesting of values, recursion through
// $ref). Deeper pushes are refused.
const maxDepth = 128

type kind uint8

const (
	kAlias     kind = iota // placeholder for a $ref target, resolved after compiling
	kNever                 // the false schema: no value
	kLit                   // one of a set of literal byte strings (enum, const, true/false/null)
	kString                // a string with length bounds and an optional content DFA
	kNumber                // an integer or number with bounds
	kObject                // fixed properties in schema order
	kArray                 // items with count bounds
	kAnyObject             // any object (keys are free strings, values any JSON)
	kChoice                // one of several alternatives (anyOf, oneOf, type unions)
)

// node is one compiled schema.
type node struct {
	kind  kind
	ptr   string // JSON pointer of the schema, for errors
	alias int32  // kAlias: target

	trie int32 // kLit, kObject: root of the literal trie (kObject: the opening trie)

	props []prop // kObject

	minLen, maxLen int32 // kString; maxLen < 0: none
	dfa            *sdfa // kString: content automaton (pattern, format), nil: free text

	num *numSpec // kNumber

	item               int32 // kArray: items; kAnyObject: value node
	key                int32 // kAnyObject: key string node
	minItems, maxItems int32 // kArray; maxItems < 0: none

	alts []int32 // kChoice

	first [4]uint64 // bytes a value can start with
	cost  int32     // tokens of the shortest value
	depth int32     // stack levels above its own frame the shallowest value needs
}

type prop struct {
	name     string
	node     int32
	required bool
	after    int32 // literal trie that follows this property's value
}

// Literal tries. A literal trie spells out fixed text; its nodes may carry
// an action: actEnd (the value or object is complete: pop) or
// actValue+j (an object's property j value comes next).
const (
	actNone  = 0
	actEnd   = 1
	actValue = 2
)

type litNode struct {
	elo, en int32 // edges [elo, elo+en)
	act     int32
	dist    int32 // tokens to finish the frame from here
	tlo, tn int32 // token edges: nodes reachable by one whole token
	obj     int32 // object node owning this trie, -1 for plain literals
	depth   int32 // stack levels above the frame needed to finish it from here
}

type litPool struct {
	nodes []litNode
	eb    []byte
	ed    []int32
	tto   []int32
}

type litEntry struct {
	b   []byte
	act int32
}

// add builds a trie of entries and returns its root. Entries must not be
// prefixes of one another unless the shorter one ends with actEnd (numeric
// literals such as 1 and 12).
func (p *litPool) add(es []litEntry) int32 {
	slices.SortFunc(es, func(x, y litEntry) int { return bytes.Compare(x.b, y.b) })
	es = slices.CompactFunc(es, func(x, y litEntry) bool { return bytes.Equal(x.b, y.b) })
	base := int32(len(p.nodes))
	type span struct{ lo, hi, depth int }
	queue := []span{{0, len(es), 0}}
	for qi := 0; qi < len(queue); qi++ {
		s := queue[qi]
		n := litNode{elo: int32(len(p.eb)), dist: inf, obj: -1}
		i := s.lo
		for i < s.hi && len(es[i].b) == s.depth {
			n.act = es[i].act
			i++
		}
		for i < s.hi {
			c := es[i].b[s.depth]
			j := i + 1
			for j < s.hi && es[j].b[s.depth] == c {
				j++
			}
			p.eb = append(p.eb, c)
			p.ed = append(p.ed, base+int32(len(queue)))
			queue = append(queue, span{i, j, s.depth + 1})
			i = j
		}
		n.en = int32(len(p.eb)) - n.elo
		p.nodes = append(p.nodes, n)
	}
	return base
}

func (p *litPool) child(n int32, b byte) int32 {
	ln := &p.nodes[n]
	for e := ln.elo; e < ln.elo+ln.en; e++ {
		if p.eb[e] == b {
			return p.ed[e]
		}
	}
	return -1
}

// Grammar is a compiled JSON Schema: a deterministic pushdown automaton over
// bytes that accepts exactly the canonical compact JSON texts this package
// generates for the schema, bound to one tokenizer's vocabulary. A Grammar
// is immutable and safe for concurrent use; each decode uses its own State.
type Grammar struct {
	vocab  *vocabIndex
	nodes  []node
	lit    litPool
	root   int32
	schema *jsonschema.Schema

	// maxNeed bounds every finite depth need of a frame (see depths): a
	// thread shallower than maxDepth-maxNeed fits without looking.
	maxNeed int32

	dfaSums  sync.Map // dfaKey -> *dfaSum
	nDFASums atomic.Int32
}

// SchemaError is a schema that cannot be compiled: Pointer is the JSON
// pointer of the offending keyword (or schema).
type SchemaError struct {
	Pointer string
	Msg     string
}

func (e *SchemaError) Error() string {
	p := e.Pointer
	if p == "" {
		p = "(root)"
	}
	return fmt.Sprintf("schema %s: %s", p, e.Msg)
}

// ErrSchema wraps every SchemaError, for errors.Is.
var ErrSchema = errors.New("idp: unsupported or invalid schema")

func (e *SchemaError) Unwrap() error { return ErrSchema }

// Compile compiles a JSON Schema for constrained generation over tok's
// vocabulary. See the package documentation for the supported subset; any
// keyword outside it is an error naming its JSON pointer. The per-tokenizer
// index (token trie) is built on first use and cached.
func Compile(schema []byte, tok *tokenizer.Tokenizer) (*Grammar, error) {
	// Parse refuses a key given twice in one object: the validator would
	// take the last and the compiler the first.
	tree, err := jsonv.Parse(schema)
	if err != nil {
		return nil, fmt.Errorf("idp: schema: %w", err)
	}
	g := &Grammar{vocab: vocabFor(tok)}
	c := &compiler{g: g, tree: tree, byPtr: map[string]int32{}, idKey: idKeyword(tree)}
	root, err := c.compile(tree, "")
	if err != nil {
		return nil, err
	}
	if err := c.finish(root); err != nil {
		return nil, err
	}
	// The validator, compiled from the same text, checks outputs afterwards
	// (and the schema itself against its metaschema).
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("idp: schema is not valid JSON: %w", err)
	}
	jc := jsonschema.NewCompiler()
	const loc = "file:///idp/schema.json"
	if err := jc.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	if g.schema, err = jc.Compile(loc); err != nil {
		return nil, fmt.Errorf("idp: not a valid JSON Schema: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if err := c.checkFormats(jc, loc, g.schema.DraftVersion); err != nil {
		return nil, err
	}
	return g, nil
}

// checkFormats refuses a format the grammar does not enforce where the
// validator asserts it (drafts before 2019-09 assert every format it
// knows, such as uri or hostname): free text would fail it. It asks the
// validator's compiled schema at the format's own location, so it agrees
// with Validate whatever the draft or vocabulary.
func (c *compiler) checkFormats(jc *jsonschema.Compiler, loc string, draft int) error {
	for _, f := range c.looseFormats {
		asserted := draft < 2019 // if the location cannot be looked up
		frag := (&url.URL{Fragment: f.ptr}).EscapedFragment()
		if sch, err := jc.Compile(loc + "#" + frag); err == nil {
			asserted = sch.Format != nil
		}
		if asserted {
			return &SchemaError{f.ptr + "/format", fmt.Sprintf("format %q is asserted by the validator under this draft but not enforced during generation (enforced: %s): drop it, use a pattern, or use draft 2020-12, where format is an annotation", f.name, enforcedFormats())}
		}
	}
	return nil
}

// Validate checks a JSON document against the original schema with a full
// JSON Schema validator.
func (g *Grammar) Validate(doc []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := g.schema.Validate(inst); err != nil {
		return errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}

// MinTokens is the number of tokens of the shortest value (an upper bound:
// it counts each byte of free text as one token). Generation needs at least
// this many.
func (g *Grammar) MinTokens() int { return int(g.nodes[g.root].cost) }

func (g *Grammar) newNode(n node) int32 {
	g.nodes = append(g.nodes, n)
	return int32(len(g.nodes) - 1)
}

func hasByte(set *[4]uint64, b byte) bool { return set[b>>6]&(1<<(b&63)) != 0 }

// finish resolves aliases, computes first-byte sets, filters enums against
// their sibling keywords, and computes the shortest-completion costs.
func (c *compiler) finish(root int32) error {
	g := c.g
	// Resolve aliases everywhere.
	res := func(id int32) (int32, error) {
		for hops := 0; g.nodes[id].kind == kAlias; hops++ {
			if hops > len(g.nodes) {
				return 0, &SchemaError{g.nodes[id].ptr, "$ref cycle with no schema in between"}
			}
			id = g.nodes[id].alias
		}
		return id, nil
	}
	var err error
	fix := func(id *int32) {
		if err == nil {
			*id, err = res(*id)
		}
	}
	fix(&root)
	for i := range g.nodes {
		n := &g.nodes[i]
		for j := range n.props {
			fix(&n.props[j].node)
		}
		for j := range n.alts {
			fix(&n.alts[j])
		}
		if n.kind == kArray || n.kind == kAnyObject {
			fix(&n.item)
		}
		if n.kind == kAnyObject {
			fix(&n.key)
		}
	}
	for i := range c.enums {
		if c.enums[i].rest >= 0 {
			fix(&c.enums[i].rest)
		}
	}
	if err != nil {
		return err
	}
	g.root = root
	if err := c.flattenChoices(); err != nil {
		return err
	}
	c.closeEmptyAnyObjects()
	// Object tries (built here, after aliases are resolved).
	for i := range g.nodes {
		if g.nodes[i].kind == kObject {
			if err := c.objectTries(int32(i)); err != nil {
				return err
			}
		}
	}
	c.firstSets()
	// Enums: keep the values the sibling keywords accept.
	for _, e := range c.enums {
		var es []litEntry
		for _, v := range e.values {
			if e.rest < 0 || g.accepts(e.rest, v) {
				es = append(es, litEntry{v, actEnd})
			}
		}
		if len(es) == 0 {
			return &SchemaError{e.ptr, "no value of enum/const satisfies the schema's other keywords"}
		}
		if len(es) < len(e.values) {
			g.nodes[e.node].trie = g.lit.add(es)
			c.litFirst(e.node)
		}
	}
	c.firstSets() // choices over the filtered enums
	if err := c.tokenEdges(); err != nil {
		return err
	}
	c.costs()
	if g.nodes[g.root].cost >= inf {
		return &SchemaError{"", "the schema admits no finite value that can be generated"}
	}
	c.depths()
	if 1+int64(g.nodes[g.root].depth) > maxDepth {
		return &SchemaError{"", fmt.Sprintf("every value of the schema nests deeper than the %d levels the decoder supports", maxDepth)}
	}
	return nil
}

// depths computes, by fixpoint, each node's depth need (the fewest stack
// levels above its own frame that one of its values needs: 0 for scalars,
// [] and {}) and the same for every literal trie node, to the end of its
// frame. The decoder lets a frame at depth k (1-based) enter a state only
// when k plus that state's need fits in maxDepth, so it never opens a
// value, key or array it could not close (see fitsDepth).
func (c *compiler) depths() {
	g := c.g
	for i := range g.nodes {
		g.nodes[i].depth = inf
	}
	for i := range g.lit.nodes {
		g.lit.nodes[i].depth = inf
	}
	for changed := true; changed; {
		changed = false
		// Children come after their parent in a trie (see litPool.add).
		for i := len(g.lit.nodes) - 1; i >= 0; i-- {
			ln := &g.lit.nodes[i]
			d := int32(inf)
			if ln.act == actEnd {
				d = 0
			}
			if ln.act >= actValue {
				d = min(d, g.actDepth(ln))
			}
			for e := ln.elo; e < ln.elo+ln.en; e++ {
				d = min(d, g.lit.nodes[g.lit.ed[e]].depth)
			}
			if d < ln.depth {
				ln.depth, changed = d, true
			}
		}
		for i := range g.nodes {
			if d := g.nodeDepth(int32(i)); d < g.nodes[i].depth {
				g.nodes[i].depth, changed = d, true
			}
		}
	}
	// A frame's need is a node's or trie node's, or one more (an array
	// item or object entry still to come). An infinite need is also an
	// infinite cost, which the budget refuses.
	var m int32
	for i := range g.nodes {
		if d := g.nodes[i].depth; d < inf {
			m = max(m, d)
		}
	}
	for i := range g.lit.nodes {
		if d := g.lit.nodes[i].depth; d < inf {
			m = max(m, d)
		}
	}
	g.maxNeed = min(m+1, inf)
}

// actDepth is the depth need at an object trie action actValue+j: property
// j's value one level up, then what follows it at the object's level.
func (g *Grammar) actDepth(ln *litNode) int32 {
	p := g.nodes[ln.obj].props[ln.act-actValue]
	return max(addCost(1, int64(g.nodes[p.node].depth)), g.lit.nodes[p.after].depth)
}

// nodeDepth is a node's depth need, from the current estimates.
func (g *Grammar) nodeDepth(id int32) int32 {
	n := &g.nodes[id]
	switch n.kind {
	case kLit, kString, kNumber, kAnyObject:
		return 0
	case kObject:
		return g.lit.nodes[n.trie].depth
	case kArray:
		if n.minItems == 0 {
			return 0
		}
		return addCost(1, int64(g.nodes[n.item].depth))
	case kChoice:
		d := int32(inf)
		for _, a := range n.alts {
			d = min(d, g.nodes[a].depth)
		}
		return d
	}
	return inf
}

// flattenChoices replaces each choice's alternatives by the non-choice
// nodes they lead to, without the false schema. A choice is an epsilon
// step: one that leads back to itself (a left-recursive $ref such as
// {"anyOf":[{"$ref":"#"},{"type":"null"}]}) adds nothing, since reaching it
// again consumed no input; the validator likewise fails that branch as a
// reference cycle. The visited set keeps this finite however the choices
// nest, so after it no choice has a choice among its alternatives (which
// stepLast relies on).
func (c *compiler) flattenChoices() error {
	g := c.g
	for i := range g.nodes {
		if g.nodes[i].kind != kChoice {
			continue
		}
		var flat []int32
		seen := map[int32]bool{}
		cycle := false
		var add func(id int32)
		add = func(id int32) {
			a := &g.nodes[id]
			switch {
			case a.kind == kNever:
			case a.kind == kChoice:
				if seen[id] {
					cycle = cycle || id == int32(i)
					return
				}
				seen[id] = true
				for _, x := range a.alts {
					add(x)
				}
			case !slices.Contains(flat, id):
				flat = append(flat, id)
			}
		}
		add(int32(i))
		n := &g.nodes[i]
		n.alts = flat
		if len(flat) == 0 {
			if cycle {
				return &SchemaError{n.ptr, "anyOf/oneOf leads back to itself through $ref before any value is written (left recursion), and no other branch admits a value"}
			}
			n.kind = kNever
		}
	}
	return nil
}

// closeEmptyAnyObjects turns an open object whose values admit nothing
// (additionalProperties compiled to the false schema) into the object with
// no properties: the only such value is {}, and a key must never be
// started that no value could follow.
func (c *compiler) closeEmptyAnyObjects() {
	g := c.g
	for i := range g.nodes {
		n := &g.nodes[i]
		if n.kind == kAnyObject && g.nodes[n.item].kind == kNever {
			*n = node{kind: kObject, ptr: n.ptr}
		}
	}
}

// objectTries builds the literal tries of an object: one opening trie
// ('{' then the first key or '}'), and one per property for what may follow
// its value (',' and a later key, or '}'). Optional properties may be
// skipped; required ones may not.
func (c *compiler) objectTries(id int32) error {
	g := c.g
	props := g.nodes[id].props
	entries := func(last int, open bool) []litEntry {
		var es []litEntry
		lead := []byte{','}
		if open {
			lead = []byte{'{'}
		}
		closable := true
		for j := last + 1; j < len(props); j++ {
			if g.nodes[props[j].node].kind != kNever {
				k := jsonv.AppendString(append([]byte(nil), lead...), props[j].name)
				es = append(es, litEntry{append(k, ':'), actValue + int32(j)})
			}
			if props[j].required {
				closable = false
				break
			}
		}
		if closable {
			if open {
				es = append(es, litEntry{[]byte("{}"), actEnd})
			} else {
				es = append(es, litEntry{[]byte("}"), actEnd})
			}
		}
		return es
	}
	base := int32(len(g.lit.nodes))
	g.nodes[id].trie = g.lit.add(entries(-1, true))
	for j := range props {
		if props[j].required && g.nodes[props[j].node].kind == kNever {
			return &SchemaError{g.nodes[id].ptr + "/properties/" + jsonv.PointerToken(props[j].name), "a required property's schema admits no value"}
		}
		g.nodes[id].props[j].after = g.lit.add(entries(j, false))
	}
	for i := base; i < int32(len(g.lit.nodes)); i++ {
		g.lit.nodes[i].obj = id
	}
	return nil
}

// tokenEdges records, for every literal trie node, the nodes one whole
// token can reach inside the trie (for token-counted costs), and checks that
// every byte free-text costs are counted in has a one-byte token.
func (c *compiler) tokenEdges() error {
	g, v := c.g, c.g.vocab
	// Costs count free text, escapes and UTF-8 continuations a byte a token.
	for b := 0x20; b <= 0xbf; b++ {
		if b != 0x7f && v.byteTok[b] < 0 {
			return fmt.Errorf("idp: the tokenizer has no one-byte token for byte %#02x: constrained generation needs byte coverage", b)
		}
	}
	t := &v.trie
	var rec func(vn, ln int32)
	rec = func(vn, ln int32) {
		n := g.lit.nodes[ln]
		for e := n.elo; e < n.elo+n.en; e++ {
			vc := t.child(vn, g.lit.eb[e])
			if vc < 0 {
				continue
			}
			to := g.lit.ed[e]
			if t.tlo[vc] < t.tlo[vc+1] {
				g.lit.tto = append(g.lit.tto, to)
			}
			rec(vc, to)
		}
	}
	for i := range g.lit.nodes {
		g.lit.nodes[i].tlo = int32(len(g.lit.tto))
		rec(0, int32(i))
		g.lit.nodes[i].tn = int32(len(g.lit.tto)) - g.lit.nodes[i].tlo
	}
	return nil
}

// costs computes, by fixpoint, each node's shortest value in tokens and
// each literal trie node's distance to the end of its frame.
func (c *compiler) costs() {
	g := c.g
	for i := range g.nodes {
		g.nodes[i].cost = inf
	}
	for round := 0; round < 10000; round++ {
		changed := false
		for i := len(g.lit.nodes) - 1; i >= 0; i-- {
			ln := &g.lit.nodes[i]
			d := int32(inf)
			if ln.act == actEnd {
				d = 0
			}
			for e := ln.tlo; e < ln.tlo+ln.tn; e++ {
				d = min(d, addCost(1, int64(g.lit.nodes[g.lit.tto[e]].dist)))
			}
			if ln.act >= actValue {
				d = min(d, c.actCost(int32(i), ln.act))
			}
			if d < ln.dist {
				ln.dist, changed = d, true
			}
		}
		for i := range g.nodes {
			if x := g.nodeCost(int32(i)); x < g.nodes[i].cost {
				g.nodes[i].cost, changed = x, true
			}
		}
		if !changed {
			return
		}
	}
}

// actCost is the cost of an object trie action actValue+j at literal node
// ln: the value's shortest form plus what must follow it.
func (c *compiler) actCost(ln, act int32) int32 {
	g := c.g
	p := g.nodes[g.lit.nodes[ln].obj].props[act-actValue]
	return addCost(int64(g.nodes[p.node].cost), int64(g.lit.nodes[p.after].dist))
}

// nodeCost is a node's shortest value in tokens, from the current estimates.
func (g *Grammar) nodeCost(id int32) int32 {
	n := &g.nodes[id]
	switch n.kind {
	case kLit, kObject:
		return g.lit.nodes[n.trie].dist
	case kString:
		if n.dfa != nil {
			return addCost(2, int64(n.dfa.dist[n.dfa.start]))
		}
		return addCost(2, int64(n.minLen))
	case kNumber:
		return n.num.startCost
	case kArray:
		return addCost(1, int64(g.arrayOpenCost(n)))
	case kAnyObject:
		return 2
	case kChoice:
		x := int32(inf)
		for _, a := range n.alts {
			x = min(x, g.nodes[a].cost)
		}
		return x
	}
	return inf
}

// arrayOpenCost: tokens to finish an array right after '['.
func (g *Grammar) arrayOpenCost(n *node) int32 {
	if n.minItems == 0 {
		return 1
	}
	ic := int64(g.nodes[n.item].cost)
	return addCost(int64(n.minItems)*ic, int64(n.minItems-1), 1)
}

// arrayAfterCost: tokens to finish an array after its n-th item.
func (g *Grammar) arrayAfterCost(nd *node, n int32) int32 {
	r := int64(max(0, nd.minItems-n))
	return addCost(r*(1+int64(g.nodes[nd.item].cost)), 1)
}

// accepts reports whether the grammar from node id accepts text exactly.
func (g *Grammar) accepts(id int32, text []byte) bool {
	var a, b tbuf
	var sc scratch
	a.th = append(a.th, 0)
	a.fr = append(a.fr, g.initFrame(id, 0))
	for _, x := range text {
		b.reset()
		for i := 0; i < a.n(); i++ {
			b.feed(g, a.thread(i), x, &sc)
		}
		a, b = b, a
		if a.n() == 0 {
			return false
		}
	}
	for i := 0; i < a.n(); i++ {
		if g.threadDone(a.thread(i)) {
			return true
		}
	}
	return false
}

// firstSets computes the bytes each node's values can start with.
func (c *compiler) firstSets() {
	g := c.g
	var sc scratch
	for i := range g.nodes {
		n := &g.nodes[i]
		switch n.kind {
		case kChoice, kAlias, kNever:
			continue
		case kLit:
			c.litFirst(int32(i))
			continue
		}
		n.first = [4]uint64{}
		for b := 0; b < 256; b++ {
			var t tbuf
			t.feed(g, []frame{g.initFrame(int32(i), 0)}, byte(b), &sc)
			if t.n() > 0 {
				n.first[b>>6] |= 1 << (b & 63)
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for i := range g.nodes {
			n := &g.nodes[i]
			if n.kind != kChoice {
				continue
			}
			var f [4]uint64
			for _, a := range n.alts {
				for w := range f {
					f[w] |= g.nodes[a].first[w]
				}
			}
			if f != n.first {
				n.first, changed = f, true
			}
		}
	}
}

func (c *compiler) litFirst(id int32) {
	g := c.g
	n := &g.nodes[id]
	n.first = [4]uint64{}
	if n.kind != kLit {
		return
	}
	r := g.lit.nodes[n.trie]
	for e := r.elo; e < r.elo+r.en; e++ {
		b := g.lit.eb[e]
		n.first[b>>6] |= 1 << (b & 63)
	}
}

// literalBytes is a JSON value as the literal this package generates.
func literalBytes(v *jsonv.Value) []byte { return v.AppendCompact(nil) }
