//go:build !cgo

package tensor

import "encoding/binary"

// Without cgo the kernels are plain Go with the reference's arithmetic, and
// prefill runs the matvec kernel over L2-sized tiles instead of BLAS.
const haveBLAS = false

const (
	levelScalar = 0
	levelAVX2   = 1
	levelAVX512 = 2
)

func kernelLevel() int                   { return levelScalar }
func setKernelLevel(int) int             { return levelScalar }
func blasCoreName() string               { return "none (built without cgo)" }
func setBLASThreads(int)                 {}
func xpLen(K int) int                    { return 0 }
func matvecPrep(_, _ []float32, _ DType) {}

func matvecRows(out []float32, w *Tensor, x, _ []float32, n0, n1 int) {
	K := w.Cols()
	row := make([]float32, K)
	for n := n0; n < n1; n++ {
		w.RowF32(n, row)
		out[n] = dotF32(x[:K], row)
	}
}

func widen(dst []float32, dt DType, src []byte) { widenGo(dst, dt, src) }

func sgemmNT(int, int, int, []float32, int, []float32, int, []float32, int) {
	panic("tensor: sgemm needs cgo and OpenBLAS")
}

func rmsNormRows(out, x, weight []float32, eps float32) { rmsNormRef(out, x, weight, eps) }
func swiGLUKernel(gate, up []float32)                   { swiGLURef(gate, up) }

func addKernel(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

func attnKernel(out, q, k, v []float32, g, qStride, n, kvStride, hd int, scale float32, scores []float32, roundP bool) {
	for h := 0; h < g; h++ {
		attnHeadRef(out[h*qStride:h*qStride+hd], q[h*qStride:h*qStride+hd], k, v, n, kvStride, scale, scores[:n], roundP)
	}
}

// attnKernel16 is attnKernel over a bf16 cache: each row widened (exactly)
// into scores past the g·n scores as it is read, hd floats whatever n.
func attnKernel16(out, q []float32, k, v []uint16, g, qStride, n, kvStride, hd int, scale float32, scores []float32, roundP bool) {
	buf := scores[g*n : g*n+hd]
	row := func(x []uint16) func(p int) []float32 {
		return func(p int) []float32 {
			WidenBF16(buf, x[p*kvStride:p*kvStride+hd])
			return buf
		}
	}
	for h := 0; h < g; h++ {
		attnHeadRows(out[h*qStride:h*qStride+hd], q[h*qStride:h*qStride+hd], row(k), row(v), n, scale, scores[:n], roundP)
	}
}

// attnWide is the scratch attnKernel16 widens a row into.
func attnWide(hd int) int { return hd }

func sumBytes(b []byte) uint64 {
	var s uint64
	for i := 0; i+8 <= len(b); i += 8 {
		s += binary.LittleEndian.Uint64(b[i:])
	}
	return s
}

const haveBF16Dot = false

const haveAMX = false

func useAMX(bool) bool { return false }

func amxActive() bool { return false }

func roundBF16InPlace(v []float32) {
	for i, x := range v {
		v[i] = roundBF16(x)
	}
}

var bf16PackLen = 0

func bf16Rows(dst []uint16, ldd int, src []float32, lds, m, k int) {
	for i := range m {
		d := dst[i*ldd : i*ldd+ldd]
		for j, x := range src[i*lds : i*lds+k] {
			d[j] = F32ToBF16(x)
		}
		clear(d[k:])
	}
}
func bf16Cols([]uint16, int, []float32, int, int, int) { panic("tensor: bf16 GEMM needs cgo") }

func gemmBF16([]float32, int, []uint16, int, []byte, int, int, int, int, bool, bool, []uint16) {
	panic("tensor: bf16 GEMM needs cgo")
}

func swiGLUFwdKernel(a, g, u []float32)          { swiGLUFwdRef(a, g, u) }
func swiGLUBwdKernel(dg, du, da, g, u []float32) { swiGLUBwdRef(dg, du, da, g, u) }
func softmaxKernel(row []float32) float64        { return softmaxRef(row) }
func softmaxCausalKernel(s []float32, rows, ld, n0, m int, scale float32) {
	for r := range rows {
		row := s[r*ld : (r+1)*ld]
		n := n0 + r%m
		if scale != 1 {
			for j := range row[:n] {
				row[j] *= scale
			}
		}
		softmaxRef(row[:n])
		clear(row[n:])
	}
}

func softmaxCausalBF16Kernel([]float32, []uint16, int, int, int, int, int, float32, []float32, int) {
	panic("tensor: bf16 attention's kernels need cgo")
}

func attnBwdRowKernel(p, ds []float32, l, d, scale, pscale float32) {
	attnBwdRowRef(p, ds, l, d, scale, pscale)
}
func rmsNormFwdKernel(out, rstd, x, w []float32, eps float32) { rmsNormFwdRef(out, rstd, x, w, eps) }
func rmsNormBwdKernel(dx, dy, x, w, rstd []float32)           { rmsNormBwdRef(dx, dy, x, w, rstd) }

// Without cgo the adapter's products go through Gemm (loraWidth 0), so the
// kernels below are never called.
func loraWidth(int) int                      { return 0 }
func loraU(u, x, at []float32, n, in, r int) { panic("tensor: no LoRA kernels without cgo") }
func loraOut(du, dB, dy, B, u []float32, s float32, n, out, o0, o1, r int) {
	panic("tensor: no LoRA kernels without cgo")
}
func loraIn(dA, out []float32, add bool, du, x, A []float32, n, in, k0, k1, r int) {
	panic("tensor: no LoRA kernels without cgo")
}
func transposeF32(dst, src []float32, rows, cols int) {
	for i := range rows {
		for j := range cols {
			dst[j*rows+i] = src[i*cols+j]
		}
	}
}
