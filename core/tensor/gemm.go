package tensor

// Gemm computes c(m, n) = alpha · op(a) · op(b) + beta · c, row-major, where
// op(a) is (m, k) — a itself, or aᵀ when transA (a is then (k, m)) — and
// op(b) is (k, n) likewise. lda, ldb, ldc are the row strides as stored.
// The rows of c are split over the cores, each part a single-threaded BLAS
// call: used by training for LoRA products and weight gradients.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				if beta == 0 {
					row[j] = 0 // set, as BLAS: a NaN there is not read
				} else {
					row[j] *= beta
				}
			}
		}
		return
	}
	// Split rows of c when there is enough work for two cores; otherwise
	// (or when m is small and n large) split columns.
	work := m * n * k
	if work < 1<<18 || Threads == 1 {
		sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m >= n || m >= 8*Threads {
		parallelFor(m, 8, func(lo, hi int) {
			aOff := lo * lda // rows of op(a) are rows of a
			if transA {
				aOff = lo // ...or columns of a
			}
			sgemm(transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	parallelFor(n, 16, func(lo, hi int) {
		bOff := lo // columns of op(b) are columns of b
		if transB {
			bOff = lo * ldb // ...or rows of b
		}
		sgemm(transA, transB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, c[lo:], ldc)
	})
}

// gemmRef is the plain triple loop Gemm is tested against.
func gemmRef(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	at := func(i, p int) float32 {
		if transA {
			return a[p*lda+i]
		}
		return a[i*lda+p]
	}
	bt := func(p, j int) float32 {
		if transB {
			return b[j*ldb+p]
		}
		return b[p*ldb+j]
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(at(i, p)) * float64(bt(p, j))
			}
			if beta == 0 { // c is set, not scaled: as BLAS, a NaN there is not read
				c[i*ldc+j] = alpha * float32(s)
			} else {
				c[i*ldc+j] = alpha*float32(s) + beta*c[i*ldc+j]
			}
		}
	}
}

// matMulTAdd accumulates dx(T, K) += dy(T, N) · W(N, K): the product through
// a frozen weight that backward needs. W is widened a tile of rows at a time
// (never whole); the columns of dx are split over the cores.
//
// With the bf16 products on and W at BF16, dy is rounded to bf16 as the
// forward's x is (on AVX-512 BF16 the product then runs on its dot
// products).
func matMulTAdd(dx, dy []float32, w *Tensor, T int, bf16 bool) {
	N, K := w.Rows(), w.Cols()
	if T == 0 || N == 0 || K == 0 {
		return
	}
	if roundsBF16(w, bf16) {
		if haveBLAS && BF16ProductsFast() {
			matMulTAddBF16(dx, dy, w, T)
			return
		}
		ys := getScratch(T * N)
		defer putScratch(ys)
		dy = roundedInto((*ys)[:T*N], dy)
	}
	if w.DType == F32 {
		Gemm(false, false, T, K, N, 1, dy, N, w.F32s(), K, 1, dx, K)
		return
	}
	es := w.DType.Size()
	nb := max(16, gemmTileBytes/(4*K)&^15)
	s := getScratch(min(nb, N) * K)
	defer putScratch(s)
	for a := 0; a < N; a += nb {
		b := min(a+nb, N)
		tile := (*s)[:(b-a)*K]
		widen(tile, w.DType, w.Data[a*K*es:b*K*es])
		// dx += dy[:, a:b] · tile(b-a, K)
		Gemm(false, false, T, K, b-a, 1, dy[a:], N, tile, K, 1, dx, K)
	}
}

// GemmSerial is Gemm on the calling goroutine alone, for callers that
// already split their work across the cores (e.g. attention per head).
func GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
