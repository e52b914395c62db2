package tensor

// The LoRA adapter's products in training, for rank r: on the kernels of
// lora.c where the CPU and r allow (loraWidth), through Gemm otherwise.
// Each backward pair reads its large operand (dy, or x with dx) once.

// LoRAIn sets u(n, r) = x(n, in)·Aᵀ, A (r, in): the adapter's inner
// activation.
func LoRAIn(u, x, A []float32, n, in, r int) {
	if n == 0 || in == 0 || loraWidth(r) == 0 {
		Gemm(false, true, n, r, in, 1, x, in, A, in, 0, u, r)
		return
	}
	_, _, _ = u[n*r-1], x[n*in-1], A[r*in-1]
	at := getScratch(in * r)
	defer putScratch(at)
	transposeF32(*at, A, r, in)
	parallelFor(n, 16, func(lo, hi int) { loraU(u[lo*r:hi*r], x[lo*in:hi*in], *at, hi-lo, in, r) })
}

// LoRAOutGrad sets du(n, r) = s·dy·B and adds s·dyᵀ·u to dB (out, r), with
// dy (n, out), B (out, r), u (n, r): the adapter's backward on its output
// side.
func LoRAOutGrad(du, dB, dy, B, u []float32, s float32, n, out, r int) {
	if n == 0 || out == 0 || loraWidth(r) == 0 {
		Gemm(false, false, n, r, out, s, dy, out, B, r, 0, du, r)
		Gemm(true, false, out, r, n, s, dy, out, u, r, 1, dB, r)
		return
	}
	_, _, _, _, _ = du[n*r-1], dB[out*r-1], dy[n*out-1], B[out*r-1], u[n*r-1]
	// Workers take rows of dB; each sums its rows' share of du apart (the
	// first worker into du), and the shares are added after.
	parts := max(1, min(Threads, out/16, n*out*r/(1<<16)))
	var part *[]float32
	if parts > 1 {
		part = getScratch((parts - 1) * n * r)
		defer putScratch(part)
	}
	span := (out + parts - 1) / parts
	parts = (out + span - 1) / span // none without rows: its share of du would be the scratch's
	parallelFor(parts, 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dst := du
			if p > 0 {
				dst = (*part)[(p-1)*n*r : p*n*r]
			}
			loraOut(dst, dB, dy, B, u, s, n, out, p*span, min(out, (p+1)*span), r)
		}
	})
	for p := 1; p < parts; p++ {
		for i, v := range (*part)[(p-1)*n*r : p*n*r] {
			du[i] += v
		}
	}
	for i := range du[:n*r] {
		du[i] *= s
	}
}

// LoRAInGrad adds duᵀ·x to dA (r, in) and sets out(n, in) = du·A, or adds
// it with add, with du (n, r), x (n, in), A (r, in): the adapter's backward
// on its input side.
func LoRAInGrad(dA, out, du, x, A []float32, n, in, r int, add bool) {
	if n == 0 || in == 0 || loraWidth(r) == 0 {
		Gemm(true, false, r, in, n, 1, du, r, x, in, 1, dA, in)
		beta := float32(0)
		if add {
			beta = 1
		}
		Gemm(false, false, n, in, r, 1, du, r, A, in, beta, out, in)
		return
	}
	_, _, _, _, _ = dA[r*in-1], out[n*in-1], du[n*r-1], x[n*in-1], A[r*in-1]
	w := loraWidth(r)
	grain := max(w, (1<<16)/max(1, n*r)*w)
	parallelChunks(in, grain, w, func(k0, k1 int) { loraIn(dA, out, add, du, x, A, n, in, k0, k1, r) })
}
