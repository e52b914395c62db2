package train

import (
	"distill/core/model"
	"distill/core/tensor"
)

// attnMode is how attention multiplies.
type attnMode int

const (
	// attnF32: f32 products of the f32 values.
	attnF32 attnMode = iota
	// attnBF16 (--cpu-bf16): q, k, v, dO, P and dS rounded to bf16 before
	// the products they enter, each product of two bf16 exact and the sums
	// in f32, as flash attention runs in bf16 on a GPU — here on the f32
	// GEMMs over the rounded values, where the CPU has no fast bf16 kernel.
	attnBF16
	// attnBF16Fast: the same values, every product on the bf16 GEMM
	// (AVX-512 BF16, AMX tiles): q·kᵀ, dO·vᵀ, P·v and dS·k as they stand,
	// Pᵀ·dO and dSᵀ·q as dVᵀ = dOᵀ·P and dKᵀ = qᵀ·dS over transposed q and
	// dO (bwdProducts). Only the order of the f32 sums differs from
	// attnBF16.
	attnBF16Fast
)

// attnOperands are one attention call's operands as its products read
// them: the f32 values themselves, or rounded copies (and their bf16
// forms in attnBF16Fast), made once a call.
type attnOperands struct {
	mode              attnMode
	q, k, v, dout     []float32 // f32: rounded in the bf16 modes
	qb, kb, vb, doutb []uint16  // attnBF16Fast's bf16 forms
	// qT and doutT are attnBF16Fast's backward's q and dO transposed, (nH·hd,
	// np): the k-major operands of dKᵀ = qᵀ·dS and dVᵀ = dOᵀ·P.
	qT, doutT []uint16
	np        int       // qT's and doutT's row length: n+1 rounded up to even
	work      []float32 // the workers' scratch, when planned
	maxSeg    int       // the longest segment, found once a call
	held      []*[]float32
}

// attnBF16Floats is the workspace a bf16 mode's call over n tokens (longest
// segment maxSeg) takes: the rounded q, k, v, dO; their bf16 forms and the
// backward's transposed q and dO (as float32s, two values each;
// attnBF16Fast only); each worker's pack and two bf16 blocks.
func attnBF16Floats(c *model.Config, n, maxSeg int, mode attnMode) (rounded, roundedB, work int) {
	rounded = n * 2 * (c.NumHeads + c.NumKVHeads) * c.HeadDim
	if mode == attnBF16Fast {
		roundedB = (rounded+1)/2 + c.NumHeads*c.HeadDim*((n+2)&^1)
		work = tensor.Threads * attnWorkFloats(maxSeg)
	}
	return rounded, roundedB, work
}

// attnWorkFloats is one worker's pack and two blocks of attnRows × maxSeg
// bf16 (P and dS in the backward).
func attnWorkFloats(maxSeg int) int {
	return (tensor.BF16PackLen()+1)/2 + 2*attnBlockFloats(maxSeg)
}

func attnBlockFloats(maxSeg int) int { return (min(attnRows, maxSeg)*((maxSeg+1)&^1) + 1) / 2 }

// operands prepares q, k, v (and dout, when non-nil) for s's mode.
func (s attnShape) operands(q, k, v, dout []float32) *attnOperands {
	o := &attnOperands{mode: s.mode, q: q, k: k, v: v, dout: dout, maxSeg: maxSegment(s.segStart)}
	if s.mode == attnF32 {
		return o
	}
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	total := s.n * 2 * (qs + ks)
	rounded, roundedB := s.rounded, s.roundedB
	if len(rounded) < total {
		r := tensor.GetScratch(total)
		o.held = append(o.held, r)
		rounded = *r
	}
	// A unit of an odd count of queries has its GEMM read one column of qT
	// and doutT past its last (times a zero): after the last token, a zero
	// column, even when n is even.
	np := (s.n + 2) &^ 1
	totalB := (total + 1) / 2
	if dout != nil {
		totalB += qs * np // qT and doutT
	}
	if s.mode == attnBF16Fast && len(roundedB) < totalB {
		r := tensor.GetScratch(totalB)
		o.held = append(o.held, r)
		roundedB = *r
	}
	var bf []uint16
	if s.mode == attnBF16Fast {
		bf = tensor.AsU16(roundedB)
	}
	off := 0
	round := func(x []float32, width int) ([]float32, []uint16) {
		if x == nil {
			return nil, nil
		}
		size := s.n * width
		r := rounded[off : off+size]
		copy(r, x[:size])
		tensor.RoundBF16(r)
		var b []uint16
		if bf != nil { // widths are even: rows keep their stride
			b = bf[off : off+size]
			tensor.RoundRowsBF16(b, width, r, width, s.n, width)
		}
		off += size
		return r, b
	}
	o.q, o.qb = round(q, qs)
	o.k, o.kb = round(k, ks)
	o.v, o.vb = round(v, ks)
	o.dout, o.doutb = round(dout, qs)
	if bf != nil && dout != nil {
		o.np = np
		o.qT, o.doutT = bf[total:total+qs*np], bf[total+qs*np:total+2*qs*np]
		tensor.RoundColsBF16(o.qT, np, o.q, qs, s.n, qs)
		tensor.RoundColsBF16(o.doutT, np, o.dout, qs, s.n, qs)
	}
	o.work = s.work
	return o
}

func (o *attnOperands) release() {
	for _, h := range o.held {
		tensor.PutScratch(h)
	}
}

// attnWorker is one worker's scratch for the bf16 GEMM: its pack buffer and
// bf16 blocks of P and dS.
type attnWorker struct {
	pack, block, block2 []uint16
	held                []*[]float32
}

// worker returns worker w's scratch: its part of the planned work, or
// buffers from tensor's pool.
func (o *attnOperands) worker(w int) *attnWorker {
	wk := &attnWorker{}
	if o.mode != attnBF16Fast {
		return wk
	}
	size := attnWorkFloats(o.maxSeg)
	buf := []float32(nil)
	if len(o.work) >= (w+1)*size {
		buf = o.work[w*size : (w+1)*size]
	} else {
		h := tensor.GetScratch(size)
		wk.held, buf = []*[]float32{h}, *h
	}
	pl, bl := (tensor.BF16PackLen()+1)/2, attnBlockFloats(o.maxSeg)
	wk.pack = tensor.AsU16(buf[:pl])[:tensor.BF16PackLen()]
	wk.block, wk.block2 = tensor.AsU16(buf[pl:pl+bl]), tensor.AsU16(buf[pl+bl:pl+2*bl])
	return wk
}

func (w *attnWorker) release() {
	for _, h := range w.held {
		tensor.PutScratch(h)
	}
}

// scores sets S(m, kn) = q(rows at qo) · k(rows at ko)ᵀ over hd, times
// scale on the f32 GEMM; attnBF16Fast leaves the scale to the row kernels
// (pscale).
func (o *attnOperands) scores(S []float32, s attnShape, qo, ko, m, kn int, w *attnWorker) {
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	if o.mode != attnBF16Fast {
		tensor.GemmSerial(false, true, m, kn, s.hd, s.scale, o.q[qo:], qs, o.k[ko:], ks, 0, S, kn)
		return
	}
	tensor.GemmBF16(S, kn, o.qb[qo:], qs, o.kb[ko:], ks, m, kn, s.hd, false, false, w.pack)
}

// pscale is the scale scores left for the row kernels to apply.
func (o *attnOperands) pscale(s attnShape) float32 {
	if o.mode == attnBF16Fast {
		return s.scale
	}
	return 1
}

// softmaxTimesV sets out(m rows at qo, qs apart) = softmax(S)·v for one
// unit, S's row i seeing its first i0+i+1 keys, and each row's log-sum-exp
// into lse (nH apart): attnBF16Fast in one kernel that writes the weights
// in bf16 (the same values as SoftmaxRow's, rounded), the other modes a row
// at a time.
func (o *attnOperands) softmaxTimesV(out, lse, S []float32, s attnShape, qo, ko, i0, m, kn int, w *attnWorker) {
	if o.mode != attnBF16Fast {
		for i := 0; i < m; i++ {
			row, keys := S[i*kn:(i+1)*kn], i0+i+1
			lse[i*s.nH] = float32(tensor.SoftmaxRow(row[:keys]))
			clear(row[keys:])
		}
		o.times(out[qo:], s.nH*s.hd, S, false, o.v, o.vb, s, ko, m, kn, w)
		return
	}
	kp := (kn + 1) &^ 1
	tensor.SoftmaxRowsBF16(S, w.block, m, kn, kp, i0+1, s.scale, lse, s.nH)
	tensor.GemmBF16(out[qo:], s.nH*s.hd, w.block, kp, o.vb[ko:], s.nKV*s.hd, m, s.hd, kn, true, false, w.pack)
}

// gradScores sets dP(m, kn) = dO(rows at qo) · v(rows at ko)ᵀ over hd.
func (o *attnOperands) gradScores(dP []float32, s attnShape, qo, ko, m, kn int, w *attnWorker) {
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	if o.mode != attnBF16Fast {
		tensor.GemmSerial(false, true, m, kn, s.hd, 1, o.dout[qo:], qs, o.v[ko:], ks, 0, dP, kn)
		return
	}
	tensor.GemmBF16(dP, kn, o.doutb[qo:], qs, o.vb[ko:], ks, m, kn, s.hd, false, false, w.pack)
}

// times sets c(m, hd) (rows ldc apart) = A(m, kn) · x(kn rows at ko, hd): P·v
// and dS·k. In the bf16 modes A's values enter rounded: rounded says the
// caller rounded them in place already; else attnBF16 rounds them in place
// and attnBF16Fast into its bf16 block only.
func (o *attnOperands) times(c []float32, ldc int, A []float32, rounded bool, x []float32, xb []uint16, s attnShape, ko, m, kn int, w *attnWorker) {
	ks := s.nKV * s.hd
	if o.mode == attnBF16 && !rounded {
		tensor.RoundBF16(A[:m*kn])
	}
	if o.mode != attnBF16Fast {
		tensor.GemmSerial(false, false, m, s.hd, kn, 1, A, kn, x[ko:], ks, 0, c, ldc)
		return
	}
	kp := (kn + 1) &^ 1
	tensor.RoundRowsBF16(w.block, kp, A, kn, m, kn)
	tensor.GemmBF16(c, ldc, w.block, kp, xb[ko:], ks, m, s.hd, kn, true, false, w.pack)
}

// bwdProducts is attnBF16Fast's backward products for one unit (m query
// rows of head h from row i0 of the segment at s0, over its first kn keys),
// given P and dS (m, kn) zero past each row's keys: dq = dS·k (set), and
// dVᵀ += dOᵀ·P, dKᵀ += qᵀ·dS into dvT and dkT, (nKV·hd, n) — transposed,
// so that all four GEMMs take their k-major operand from a row-major
// block, and the transposed q and dO from the call's qT, doutT.
func (o *attnOperands) bwdProducts(dq, dkT, dvT, P, dS []float32, s attnShape, s0, i0, h, m, kn int, w *attnWorker) {
	qs, ks := s.nH*s.hd, s.nKV*s.hd
	kvh := h / (s.nH / s.nKV)
	kp := (kn + 1) &^ 1
	tensor.RoundRowsBF16(w.block, kp, dS, kn, m, kn)
	tensor.RoundRowsBF16(w.block2, kp, P, kn, m, kn)
	qo, ko := (s0+i0)*qs+h*s.hd, s0*ks+kvh*s.hd
	tensor.GemmBF16(dq[qo:], qs, w.block, kp, o.kb[ko:], ks, m, s.hd, kn, true, false, w.pack)
	a := h*s.hd*o.np + s0 + i0 // the head's rows of qT, doutT from the unit's first query
	c := kvh*s.hd*s.n + s0     // the KV head's rows of dkT, dvT from the segment's first key
	tensor.GemmBF16(dvT[c:], s.n, o.doutT[a:], o.np, w.block2, kp, s.hd, kn, m, true, true, w.pack)
	tensor.GemmBF16(dkT[c:], s.n, o.qT[a:], o.np, w.block, kp, s.hd, kn, m, true, true, w.pack)
}
