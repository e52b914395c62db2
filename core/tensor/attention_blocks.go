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
// With bf16 (CPU.BF16Attention; k and v already rounded) the block's q and
// its softmax's weights are rounded too, and where the CPU has AVX-512 BF16
// both products run on the bf16 GEMM, over a bf16 cache itself or over
// bf16 copies of an f32 one made once a call; elsewhere on the f32 GEMM
// over the rounded values (a bf16 cache widened once a call).
func attentionBlocks(out, q []float32, kv kvRows, T, pos0, nHeads, nKV, hd int, scale float32, bf16 bool) {
	g := nHeads / nKV
	kvStride, qStride := nKV*hd, nHeads*hd
	n := (pos0 + T) * kvStride // the cache's values read
	// BLAS reads past a slice unchecked: the bounds the row kernel checks.
	if kv.k16 != nil {
		_, _ = kv.k16[n-1], kv.v16[n-1]
	} else {
		_, _ = kv.k[n-1], kv.v[n-1]
	}
	_, _ = q[T*qStride-1], out[T*qStride-1]
	bm := max(1, min(attnBlockRows, attnScoresMax/(g*(pos0+T)))) // queries a block
	blocks := (T + bm - 1) / bm
	units := blocks * nKV
	fast := bf16 && haveBLAS && BF16ProductsFast()
	k, v := kv.k, kv.v
	var kb, vb []uint16
	rowsEach := max(1, 32768/kvStride)
	switch {
	case fast && kv.k16 != nil:
		kb, vb = kv.k16, kv.v16
	case fast:
		kvs := getScratch(n) // 2n bf16
		defer putScratch(kvs)
		kb, vb = asU16(*kvs)[:n], asU16(*kvs)[n:]
		parallelFor(pos0+T, rowsEach, func(lo, hi int) {
			bf16Rows(kb[lo*kvStride:], kvStride, k[lo*kvStride:], kvStride, hi-lo, kvStride)
			bf16Rows(vb[lo*kvStride:], kvStride, v[lo*kvStride:], kvStride, hi-lo, kvStride)
		})
	case kv.k16 != nil:
		kvs := getScratch(2 * n)
		defer putScratch(kvs)
		k, v = (*kvs)[:n], (*kvs)[n:2*n]
		parallelFor(pos0+T, rowsEach, func(lo, hi int) {
			widen(k[lo*kvStride:hi*kvStride], BF16, u16Bytes(kv.k16[lo*kvStride:hi*kvStride]))
			widen(v[lo*kvStride:hi*kvStride], BF16, u16Bytes(kv.v16[lo*kvStride:hi*kvStride]))
		})
	}
	var next atomic.Int64
	run := func() {
		rows, keysMax := g*bm, pos0+T
		f32s := rows*keysMax + 2*rows*hd
		hdp, kpMax := (hd+1)&^1, (keysMax+1)&^1 // bf16 rows padded to even lengths
		need := f32s
		if fast {
			need += (bf16PackLen + rows*hdp + rows*kpMax + 1) / 2
		}
		s := getScratch(need)
		defer putScratch(s)
		var pack, qh, ph []uint16
		if fast {
			b := asU16((*s)[f32s:])
			pack, qh, ph = b[:bf16PackLen], b[bf16PackLen:bf16PackLen+rows*hdp], b[bf16PackLen+rows*hdp:]
		}
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
			ko := kvh * hd
			if fast {
				for j := 0; j < g; j++ {
					bf16Rows(qh[j*m*hdp:], hdp, q[t0*qStride+(kvh*g+j)*hd:], qStride, m, hd)
				}
				gemmBF16(scores, keys, qh, hdp, u16Bytes(kb[ko:]), kvStride, g*m, keys, hd, false, false, pack)
			} else {
				for j := 0; j < g; j++ {
					for i := 0; i < m; i++ {
						o := (t0+i)*qStride + (kvh*g+j)*hd
						copy(qb[(j*m+i)*hd:(j*m+i+1)*hd], q[o:o+hd])
					}
				}
				if bf16 {
					roundBF16InPlace(qb)
				}
				// scores = scale · q·kᵀ over every key the block's last query sees.
				sgemm(false, true, g*m, keys, hd, scale, qb, hd, k[ko:], kvStride, 0, scores, keys)
			}
			// Row j·m+i is query t0+i's: it sees pos0+t0+i+1 keys.
			if fast {
				kp := (keys + 1) &^ 1
				softmaxCausalBF16Kernel(scores, ph, g*m, keys, kp, pos0+t0+1, m, scale, nil, 0)
				gemmBF16(ob, hd, ph, kp, u16Bytes(vb[ko:]), kvStride, g*m, hd, keys, true, false, pack)
			} else {
				softmaxCausalKernel(scores, g*m, keys, pos0+t0+1, m, 1) // the GEMM applied the scale
				if bf16 {
					roundBF16InPlace(scores)
				}
				sgemm(false, false, g*m, hd, keys, 1, scores, keys, v[ko:], kvStride, 0, ob, hd)
			}
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
