package train

import (
	"runtime/debug"

	"distill/core/model"
)

// arena carves named views out of one allocation, llm.c style. With a nil
// buffer it only counts, so the memory plan and the allocation are the same
// code and cannot disagree.
type arena struct {
	buf []float32
	off int
}

func (a *arena) take(n int) []float32 {
	a.off += n
	if a.buf == nil {
		return nil
	}
	return a.buf[a.off-n : a.off : a.off]
}

// workspace is every buffer one Step uses for n tokens.
type workspace struct {
	xs            [][]float32 // nL+1 × (n, D): each layer's input, then the output
	acts          []*acts     // per layer, or one shared when checkpointing
	hf, rstd      []float32   // final norm output (n, D), its rstd (n)
	dhf, dx       []float32   // (n, D)
	lossRows      int         // rows of a loss chunk (lossRowsFor)
	hb, dhb       []float32   // (lossRows, D) gathered rows of the loss
	logits        []float32   // (lossRows, V)
	s             *scratch
	drop          []float32 // (n, max in) the adapter's dropped input (dropout > 0)
	attn, attnAcc []float32 // attention's per-worker scores and dk, dv (attnShape)
	// attention's rounded operands and per-worker bf16 scratch under
	// --cpu-bf16 (attnOperands): made once with the rest, since made per
	// call they were garbage the heap grew by (+100 MB at 1,024 tokens)
	attnRounded, attnRoundedB, attnWork []float32
	checkpointing                       bool
}

func (w *workspace) layerActs(l int) *acts {
	if w.checkpointing {
		return w.acts[0]
	}
	return w.acts[l]
}

// buildWorkspace lays out a workspace for n tokens in ar.
func buildWorkspace(ar *arena, c *model.Config, n, maxSeg, r, nL int, targeted [7]bool, qkNorm, checkpoint, dropout bool, mode attnMode) *workspace {
	D, V := c.HiddenSize, c.VocabSize
	w := &workspace{checkpointing: checkpoint}
	w.xs = make([][]float32, nL+1)
	for l := range w.xs {
		w.xs[l] = ar.take(n * D)
	}
	nActs := nL
	if checkpoint {
		nActs = 1
	}
	for i := 0; i < nActs; i++ {
		w.acts = append(w.acts, newActs(ar, c, n, r, targeted, qkNorm))
	}
	w.hf, w.rstd = ar.take(n*D), ar.take(n)
	w.dhf, w.dx = ar.take(n*D), ar.take(n*D)
	w.lossRows = lossRowsFor(n, V)
	w.hb, w.dhb, w.logits = ar.take(w.lossRows*D), ar.take(w.lossRows*D), ar.take(w.lossRows*V)
	w.s = newScratch(ar, c, n, r)
	scores, acc := attnFloats(n, maxSeg, c.NumKVHeads*c.HeadDim)
	w.attn, w.attnAcc = ar.take(scores), ar.take(acc)
	if mode != attnF32 {
		rounded, roundedB, work := attnBF16Floats(c, n, maxSeg, mode)
		w.attnRounded, w.attnRoundedB, w.attnWork = ar.take(rounded), ar.take(roundedB), ar.take(work)
	}
	if dropout {
		w.drop = ar.take(n * max(c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim))
	}
	return w
}

// workspaceFloats is the number of float32s a Step on n tokens allocates.
func (nt *Net) workspaceFloats(n, maxSeg int) int {
	ar := &arena{}
	nt.layout(ar, n, maxSeg)
	return ar.off
}

func (nt *Net) layout(ar *arena, n, maxSeg int) *workspace {
	return buildWorkspace(ar, &nt.M.Config, n, maxSeg, nt.rank(), len(nt.M.Layers), nt.targeted(), nt.M.Arch.QKNorm, nt.Checkpoint, nt.dropping(), nt.attnMode())
}

// workspace returns views for n tokens (longest segment maxSeg) into the
// net's one buffer, growing it when this batch needs more than any before.
func (nt *Net) workspace(n, maxSeg int) *workspace {
	nt.grow(nt.workspaceFloats(n, maxSeg))
	return nt.layout(&arena{buf: nt.buf}, n, maxSeg)
}

// Reserve sizes the workspace for micro-batches of up to n tokens (one
// segment of n at the worst), as the memory plan counts it, before the
// first step: grown batch by batch instead, each larger buffer was made
// while the last was still held, and the peak passed the plan (×1.75
// measured at 1,024 tokens with activations kept).
func (nt *Net) Reserve(n int) { nt.grow(nt.workspaceFloats(n, n)) }

// grow makes the buffer at least need floats. The old buffer is collected
// and its memory given back first, so the two are never held at once.
func (nt *Net) grow(need int) {
	if len(nt.buf) >= need {
		return
	}
	if nt.buf != nil {
		nt.buf = nil
		debug.FreeOSMemory()
	}
	nt.buf = make([]float32, need)
}

// targeted says which modules carry an adapter.
func (nt *Net) targeted() [7]bool {
	var t [7]bool
	p, _ := nt.pairs(0)
	for i := range t {
		t[i] = p[i] != nil
	}
	return t
}
