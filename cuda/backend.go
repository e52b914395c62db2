//go:build cuda

package cuda

import (
	"fmt"
	"sync"

	"distill/core/tensor"
)

func init() {
	tensor.Register("cuda", func() (tensor.Backend, error) {
		d, err := Open()
		if err != nil {
			return nil, err
		}
		return NewBackend(d), nil
	})
}

// Backend is tensor.Backend on a GPU over the interface's host slices: each
// call uploads its inputs, runs the kernels and downloads its outputs. It is
// the correct first version — every existing caller runs on it unchanged —
// and the parity tests' subject, not the fast one: the copies over PCIe cost
// more than the kernels. Training's SFT steps take the fast path instead,
// cuda/devnet, whose activations stay on the device between ops (250× this
// backend's step on an H200); inference, KD and DPO still come through here.
//
// Frozen NF4 weights are uploaded once and cached (quant's matrices are
// read-only once built). Dense weights are uploaded on every call, because
// full fine-tuning updates them in place between calls.
//
// tensor.Backend's methods return no errors, so a failed CUDA call panics
// with the op, its shapes and the CUDA error, as the CPU backend panics on
// mismatched shapes.
type Backend struct {
	Dev *Device

	mu  sync.Mutex
	nf4 map[tensor.Matrix]*NF4Weight
}

// NewBackend returns a Backend on d.
func NewBackend(d *Device) *Backend {
	return &Backend{Dev: d, nf4: map[tensor.Matrix]*NF4Weight{}}
}

func (*Backend) Name() string { return "cuda" }

// PCIBusID is the device's PCI address, by which NVML finds the same card
// for memory readings (app's GPU readings).
func (b *Backend) PCIBusID() string { return b.Dev.PCIBusID }

// Release frees the cached weights and trims the pool.
func (b *Backend) Release() error {
	b.mu.Lock()
	for k, w := range b.nf4 {
		w.Free()
		delete(b.nf4, k)
	}
	b.mu.Unlock()
	return b.Dev.Pool.Trim()
}

// devCall is one Backend method's device work: its scratch buffers, freed by
// done, and its errors, which panic.
type devCall struct {
	d    *Device
	op   string
	bufs []*Buffer
}

func (b *Backend) begin(format string, args ...any) *devCall {
	return &devCall{d: b.Dev, op: fmt.Sprintf(format, args...)}
}

func (c *devCall) must(err error) {
	if err != nil {
		c.done()
		panic(fmt.Sprintf("cuda backend: %s: %v", c.op, err))
	}
}

func (c *devCall) alloc(k Kind, n int) *Buffer {
	buf, err := c.d.Alloc(k, n)
	c.must(err)
	c.bufs = append(c.bufs, buf)
	return buf
}

func up[T Element](c *devCall, k Kind, v []T) *Buffer {
	buf := c.alloc(k, len(v))
	c.must(Write(buf, 0, v))
	return buf
}

func (c *devCall) down(dst []float32, src *Buffer) { c.must(Read(src, 0, dst)) }

func (c *devCall) done() {
	for _, b := range c.bufs {
		b.Free()
	}
	c.bufs = nil
}

// nf4Tile bounds the bf16 tile of dequantised rows a GEMM reads.
const nf4TileBytes = 32 << 20

// weight uploads a dense weight at its dtype: f32 and bf16 as they are, f16
// widened to f32 on the device (the f16 tensor-core path is not written).
func (c *devCall) weight(w *tensor.Tensor) *Buffer {
	switch w.DType {
	case tensor.F32:
		return up(c, F32, w.F32s())
	case tensor.BF16:
		return up(c, BF16, w.U16s())
	case tensor.F16:
		h := up(c, F16, w.U16s())
		f := c.alloc(F32, w.Elems())
		c.must(c.d.ToF32(f, h, w.Elems()))
		return f
	}
	c.must(fmt.Errorf("dtype %s", w.DType))
	return nil
}

// nf4Weight returns w's device copy, uploading it on first use.
func (b *Backend) nf4Weight(c *devCall, m tensor.Matrix, p tensor.NF4Parts) *NF4Weight {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w, ok := b.nf4[m]; ok {
		return w
	}
	w, err := b.Dev.UploadNF4(fmt.Sprintf("%T %d×%d", m, p.Rows, p.Cols), p)
	c.must(err)
	b.nf4[m] = w
	return w
}

// MatMul: out(T, N) = x(T, K)·W(N, K)ᵀ.
func (b *Backend) MatMul(out, x []float32, w tensor.Matrix, T int) {
	N, K := w.Rows(), w.Cols()
	if T == 0 || N == 0 {
		return
	}
	if nm, ok := w.(tensor.NF4Matrix); ok {
		if p, ok := nm.NF4(); ok {
			b.matMulNF4(out, x, w, p, T)
			return
		}
	}
	dense, ok := w.(*tensor.Tensor)
	if !ok {
		// Q8 and any other CPU-only format: its own CPU kernel, until the
		// device has one.
		if cm, ok := w.(tensor.CPUMatrix); ok {
			cm.MatMulCPU(out, x, T, false)
			return
		}
		panic(fmt.Sprintf("cuda backend: cannot multiply by %T", w))
	}
	c := b.begin("matmul %s %v %s, T=%d", dense.Name, dense.Shape, dense.DType, T)
	defer c.done()
	xd := up(c, F32, x[:T*K])
	od := c.alloc(F32, T*N)
	W := c.weight(dense)
	switch {
	case W.Kind == BF16 && T == 1:
		c.must(c.d.BF16MatVec(od, W, xd, N, K))
	case W.Kind == BF16:
		xb := c.alloc(BF16, T*K)
		c.must(c.d.ToBF16(xb, xd, T*K))
		c.must(c.d.GemmBF16(false, true, T, N, K, 1, xb, K, W, K, 0, od, N))
	default:
		c.must(c.d.GemmF32(false, true, T, N, K, 1, xd, K, W, K, 0, od, N))
	}
	c.down(out[:T*N], od)
}

// matMulNF4: decode dequantises in registers; prefill dequantises bf16
// tiles of rows, each multiplied by cuBLAS right after.
func (b *Backend) matMulNF4(out, x []float32, m tensor.Matrix, p tensor.NF4Parts, T int) {
	N, K := p.Rows, p.Cols
	c := b.begin("matmul NF4 %d×%d, T=%d", N, K, T)
	defer c.done()
	w := b.nf4Weight(c, m, p)
	xd := up(c, F32, x[:T*K])
	od := c.alloc(F32, T*N)
	if T == 1 {
		c.must(c.d.NF4MatVec(od, w, xd))
	} else {
		xb := c.alloc(BF16, T*K)
		c.must(c.d.ToBF16(xb, xd, T*K))
		nb := min(N, max(1, nf4TileBytes/(2*K)))
		tile := c.alloc(BF16, nb*K)
		for n0 := 0; n0 < N; n0 += nb {
			n1 := min(n0+nb, N)
			c.must(c.d.NF4Dequant(tile, w, n0, n1))
			c.must(c.d.GemmBF16(false, true, T, n1-n0, K, 1, xb, K, tile, K, 0, od.View(n0, T*N-n0), N))
		}
	}
	c.down(out[:T*N], od)
}

// MatMulTAdd: dx(T, K) += dy(T, N)·W(N, K).
func (b *Backend) MatMulTAdd(dx, dy []float32, w tensor.Matrix, T int) {
	N, K := w.Rows(), w.Cols()
	if T == 0 || K == 0 || N == 0 {
		return
	}
	if nm, ok := w.(tensor.NF4Matrix); ok {
		if p, ok := nm.NF4(); ok {
			c := b.begin("matmul-T-add NF4 %d×%d, T=%d", N, K, T)
			defer c.done()
			wd := b.nf4Weight(c, w, p)
			dxd := up(c, F32, dx[:T*K])
			dyd := up(c, F32, dy[:T*N])
			dyb := c.alloc(BF16, T*N)
			c.must(c.d.ToBF16(dyb, dyd, T*N))
			nb := min(N, max(1, nf4TileBytes/(2*K)))
			tile := c.alloc(BF16, nb*K)
			for n0 := 0; n0 < N; n0 += nb {
				n1 := min(n0+nb, N)
				c.must(c.d.NF4Dequant(tile, wd, n0, n1))
				c.must(c.d.GemmBF16(false, false, T, K, n1-n0, 1, dyb.View(n0, T*N-n0), N, tile, K, 1, dxd, K))
			}
			c.down(dx[:T*K], dxd)
			return
		}
	}
	dense, ok := w.(*tensor.Tensor)
	if !ok {
		if cm, ok := w.(tensor.CPUMatrix); ok {
			cm.MatMulTAddCPU(dx, dy, T, false)
			return
		}
		panic(fmt.Sprintf("cuda backend: cannot multiply by %T", w))
	}
	c := b.begin("matmul-T-add %s %v %s, T=%d", dense.Name, dense.Shape, dense.DType, T)
	defer c.done()
	dxd := up(c, F32, dx[:T*K])
	dyd := up(c, F32, dy[:T*N])
	W := c.weight(dense)
	if W.Kind == BF16 {
		dyb := c.alloc(BF16, T*N)
		c.must(c.d.ToBF16(dyb, dyd, T*N))
		c.must(c.d.GemmBF16(false, false, T, K, N, 1, dyb, N, W, K, 1, dxd, K))
	} else {
		c.must(c.d.GemmF32(false, false, T, K, N, 1, dyd, N, W, K, 1, dxd, K))
	}
	c.down(dx[:T*K], dxd)
}

func (b *Backend) RMSNorm(out, x, weight []float32, eps float32) {
	d := len(weight)
	rows := len(x) / d
	c := b.begin("rmsnorm rows=%d d=%d", rows, d)
	defer c.done()
	xd := up(c, F32, x[:rows*d])
	c.must(c.d.RMSNormFwd(xd, nil, xd, up(c, F32, weight), rows, d, eps))
	c.down(out[:rows*d], xd)
}

func (b *Backend) RoPE(x []float32, T, nHeads, headDim, pos0 int, cos, sin []float32) {
	half := headDim / 2
	n := pos0 + T
	c := b.begin("rope T=%d heads=%d hd=%d pos0=%d", T, nHeads, headDim, pos0)
	defer c.done()
	pos := make([]int32, T)
	for t := range pos {
		pos[t] = int32(pos0 + t)
	}
	xd := up(c, F32, x[:T*nHeads*headDim])
	c.must(c.d.RoPE(xd, up(c, I32, pos), up(c, F32, cos[:n*half]), up(c, F32, sin[:n*half]), T, nHeads, headDim, n, false))
	c.down(x[:T*nHeads*headDim], xd)
}

func (b *Backend) Attention(out, q, k, v []float32, T, pos0, nHeads, nKV, headDim int, scale float32) {
	nk := pos0 + T
	c := b.begin("attention T=%d pos0=%d heads=%d kv=%d hd=%d", T, pos0, nHeads, nKV, headDim)
	defer c.done()
	lo, hi := make([]int32, T), make([]int32, T)
	for t := range hi {
		hi[t] = int32(pos0 + t + 1)
	}
	qn, kn := T*nHeads*headDim, nk*nKV*headDim
	od := c.alloc(F32, qn)
	lse := c.alloc(F32, T*nHeads)
	s := AttnShape{NQ: T, NK: nk, NH: nHeads, NKV: nKV, HD: headDim, MaxLen: nk, Lo: up(c, I32, lo), Hi: up(c, I32, hi), Scale: scale}
	c.must(c.d.AttnFwd(od, lse, up(c, F32, q[:qn]), up(c, F32, k[:kn]), up(c, F32, v[:kn]), s))
	c.down(out[:qn], od)
}

func (b *Backend) SwiGLU(gate, upv []float32) {
	n := len(gate)
	c := b.begin("swiglu n=%d", n)
	defer c.done()
	g := up(c, F32, gate)
	c.must(c.d.SwiGLUFwd(g, g, up(c, F32, upv[:n]), n))
	c.down(gate, g)
}

func (b *Backend) Add(dst, src []float32) {
	n := len(dst)
	c := b.begin("add n=%d", n)
	defer c.done()
	dd := up(c, F32, dst)
	c.must(c.d.Add(dd, up(c, F32, src[:n]), n))
	c.down(dst, dd)
}

func (b *Backend) AddBias(x, bias []float32) {
	n := len(bias)
	rows := len(x) / n
	c := b.begin("add bias rows=%d n=%d", rows, n)
	defer c.done()
	xd := up(c, F32, x[:rows*n])
	c.must(c.d.AddBias(xd, up(c, F32, bias), rows, n))
	c.down(x[:rows*n], xd)
}

// Embed gathers on the host: over host slices, uploading the table (vocab ×
// D, and full fine-tuning changes it) to gather a few rows would cost more
// than the gather. The device kernel (EmbedFwd) is for the device-resident
// path and has its own parity test.
func (b *Backend) Embed(out []float32, table *tensor.Tensor, ids []int) {
	tensor.CPU{}.Embed(out, table, ids)
}

var _ tensor.Backend = (*Backend)(nil)
