package tensor

// matMul is the CPU MatMul: out(T, N) = x(T, K) · W(N, K)ᵀ.
// Reference implementation (pure Go); the fast kernels replace it.
func matMul(out, x []float32, w *Tensor, T int) {
	N, K := w.Rows(), w.Cols()
	parallelFor(N, 16, func(lo, hi int) {
		row := make([]float32, K)
		for n := lo; n < hi; n++ {
			w.RowF32(n, row)
			for t := 0; t < T; t++ {
				out[t*N+n] = dotF32(x[t*K:(t+1)*K], row)
			}
		}
	})
}
