package tensor

import "sync/atomic"

// A prompt's attention (prefill) goes in blocks of attnBlockRows queries of
// one KV head's group of query heads: the block's scores against every key
// before its last query in one GEMM, a softmax per row over its own keys,
// and the block's output in a second GEMM. Row by row (Attention's unit
// for decoding) each query read all of K and V alone, and at 2,048 tokens
// attention took over half of SmolLM2-135M's prefill.
const attnBlockRows = 64

// attnBlockMin is the fewest queries that take the blocks (a variable for
// tests).
var attnBlockMin = 32

// attnScoresMax bounds a worker's scores (g·rows·keys floats, 8 MB): at long
// contexts a block takes fewer queries. Llama-3-8B's shape at 32K tokens
// would otherwise hold 32 MB a worker, kept in the scratch pool.
var attnScoresMax = 1 << 21

// attentionBlocks is Attention for T queries at positions pos0.. over the
// keys 0..pos0+T-1, in units of (query block, KV head), the costliest (last)
// blocks first. A unit's g query heads are copied into one (g·rows, hd)
// operand, so K and V are read (and packed by the GEMM) once for the group.
func attentionBlocks(out, q, k, v []float32, T, pos0, nHeads, nKV, hd int, scale float32) {
	g := nHeads / nKV
	kvStride, qStride := nKV*hd, nHeads*hd
	// BLAS reads past a slice unchecked: the bounds the row kernel checks.
	_, _ = k[(pos0+T-1)*kvStride+kvStride-1], v[(pos0+T-1)*kvStride+kvStride-1]
	_, _ = q[T*qStride-1], out[T*qStride-1]
	bm := max(1, min(attnBlockRows, attnScoresMax/(g*(pos0+T)))) // queries a block
	blocks := (T + bm - 1) / bm
	units := blocks * nKV
	var next atomic.Int64
	run := func() {
		rows := g * bm
		s := getScratch(rows*(pos0+T) + 2*rows*hd)
		defer putScratch(s)
		for {
			u := int(next.Add(1)) - 1
			if u >= units {
				return
			}
			b, kvh := blocks-1-u/nKV, u%nKV
			t0, t1 := b*bm, min(T, (b+1)*bm)
			m, keys := t1-t0, pos0+t1
			scores := (*s)[:g*m*keys]
			qb := (*s)[g*m*keys : g*m*(keys+hd)] // row j·m+i: head kvh·g+j, query t0+i
			ob := (*s)[g*m*(keys+hd) : g*m*(keys+2*hd)]
			for j := 0; j < g; j++ {
				for i := 0; i < m; i++ {
					o := (t0+i)*qStride + (kvh*g+j)*hd
					copy(qb[(j*m+i)*hd:(j*m+i+1)*hd], q[o:o+hd])
				}
			}
			ko := kvh * hd
			// scores = scale · q·kᵀ over every key the block's last query sees.
			sgemm(false, true, g*m, keys, hd, scale, qb, hd, k[ko:], kvStride, 0, scores, keys)
			for r := 0; r < g*m; r++ {
				row := scores[r*keys : (r+1)*keys]
				n := pos0 + t0 + r%m + 1 // keys query t0 + r%m sees
				softmaxKernel(row[:n])
				clear(row[n:])
			}
			sgemm(false, false, g*m, hd, keys, 1, scores, keys, v[ko:], kvStride, 0, ob, hd)
			for j := 0; j < g; j++ {
				for i := 0; i < m; i++ {
					o := (t0+i)*qStride + (kvh*g+j)*hd
					copy(out[o:o+hd], ob[(j*m+i)*hd:(j*m+i+1)*hd])
				}
			}
		}
	}
	parallelFor(min(Threads, units), 1, func(lo, hi int) {
		for range hi - lo {
			run()
		}
	})
}
