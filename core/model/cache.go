package model

import (
	"fmt"

	"distill/core/tensor"
)

// Cache is one sequence's KV cache plus the scratch buffers its forward
// passes reuse. Keys are stored after RoPE.
type Cache struct {
	K, V [][]float32 // per layer: (Cap, kvHeads*headDim); nil in a bf16 cache
	// K16 and V16 hold a bf16 cache's keys and values instead (per layer,
	// bf16 bits; Model.KVCacheBF16): half the memory and half the reads.
	K16, V16 [][]uint16
	Len      int // positions filled
	Cap      int // positions allocated
	// DevLen is how many of the first rows an accelerator's device mirror
	// holds as they are here (see Accelerated), in the layers it holds (not
	// --cpu-offload's, whose rows are here alone); 0 without one.
	DevLen int

	ws workspace
}

// NewCache allocates a cache for up to capacity positions, all up front, so
// memory is known before the first token: in bf16 (cacheBF16) where no
// --cpu-offload layer runs on the plain f32 CPU backend (layerBackend),
// whose attention would read the rounded rows as a different result, and
// either KVCacheBF16 holds with no accelerator attached or the attached
// one mirrors caches in bf16 (its values are then the host's exactly; a
// pass the host runs attends over them as bf16 attention does).
func (m *Model) NewCache(capacity int) *Cache {
	kvOut := m.Config.NumKVHeads * m.Config.HeadDim
	L := len(m.Layers)
	c := &Cache{Cap: capacity}
	if m.cacheBF16() {
		c.K16, c.V16 = make([][]uint16, L), make([][]uint16, L)
		for l := range L {
			c.K16[l] = make([]uint16, capacity*kvOut)
			c.V16[l] = make([]uint16, capacity*kvOut)
		}
		return c
	}
	c.K, c.V = make([][]float32, L), make([][]float32, L)
	for l := range L {
		c.K[l] = make([]float32, capacity*kvOut)
		c.V[l] = make([]float32, capacity*kvOut)
	}
	return c
}

func (m *Model) cacheBF16() bool {
	switch {
	case m.CPULayers > 0:
		return false
	case m.accel != nil:
		return m.accel.CacheBF16()
	}
	return m.KVCacheBF16
}

// CacheElemBytes is the bytes a cache holds for one key or value element:
// 2 in bf16 (NewCache), else 4.
func (m *Model) CacheElemBytes() int64 {
	if m.cacheBF16() {
		return 2
	}
	return 4
}

// Bytes is what the cache's keys and values hold.
func (c *Cache) Bytes() int64 {
	var n int64
	for l := range c.K {
		n += 4 * int64(cap(c.K[l])+cap(c.V[l]))
	}
	for l := range c.K16 {
		n += 2 * int64(cap(c.K16[l])+cap(c.V16[l]))
	}
	return n
}

// BF16 says whether the cache holds bf16 rows (K16, V16).
func (c *Cache) BF16() bool { return c.K16 != nil }

// store rounds the rows k and v (the new keys and values of layer l) into
// a bf16 cache at rows pos.., as bf16 attention rounds an f32 cache's rows.
func (c *Cache) store(l, pos int, k, v []float32) {
	kvOut := len(c.K16[l]) / c.Cap
	n := len(k) / kvOut
	tensor.RoundRowsBF16(c.K16[l][pos*kvOut:], kvOut, k, kvOut, n, kvOut)
	tensor.RoundRowsBF16(c.V16[l][pos*kvOut:], kvOut, v, kvOut, n, kvOut)
}

// CopyRows sets n rows of every layer from row to on to src's rows from
// from on: a shared prefix's keys and values given to a sequence. Both
// caches must be of one model and dtype.
func (c *Cache) CopyRows(src *Cache, to, from, n int) {
	if c.BF16() != src.BF16() { // a caller's bug: both come from one model's NewCache
		panic(fmt.Sprintf("model: CopyRows from a cache with BF16() %v into one with BF16() %v", src.BF16(), c.BF16()))
	}
	if c.BF16() {
		kvOut := len(c.K16[0]) / c.Cap
		for l := range c.K16 {
			copy(c.K16[l][to*kvOut:(to+n)*kvOut], src.K16[l][from*kvOut:(from+n)*kvOut])
			copy(c.V16[l][to*kvOut:(to+n)*kvOut], src.V16[l][from*kvOut:(from+n)*kvOut])
		}
		return
	}
	kvOut := len(c.K[0]) / c.Cap
	for l := range c.K {
		copy(c.K[l][to*kvOut:(to+n)*kvOut], src.K[l][from*kvOut:(from+n)*kvOut])
		copy(c.V[l][to*kvOut:(to+n)*kvOut], src.V[l][from*kvOut:(from+n)*kvOut])
	}
}

// Truncate forgets positions from n on (e.g. to reuse a shared prompt prefix).
func (c *Cache) Truncate(n int) {
	if n < c.Len {
		c.Len = n
	}
	c.DevLen = min(c.DevLen, c.Len)
}

// FreeWorkspace lets go of the activations the cache's largest forward
// call grew (a prompt chunk's: 28 MB for a 1.5B model at 256 tokens),
// which a sequence decoding through ForwardStep's shared scratch never
// uses again; a later Forward grows them anew.
func (c *Cache) FreeWorkspace() { c.ws = workspace{} }

// WorkspaceBytes is what the cache's activations hold now.
func (c *Cache) WorkspaceBytes() int64 {
	w := &c.ws
	n := 0
	for _, b := range [][]float32{w.x, w.xn, w.q, w.att, w.o, w.gate, w.up, w.k, w.v} {
		n += cap(b)
	}
	return 4 * int64(n)
}

// workspace holds the activations of one forward call, grown to the largest
// T seen; k and v, the new rows' keys and values before a bf16 cache
// stores them (an f32 cache's are computed in place).
type workspace struct {
	T                          int
	x, xn, q, att, o, gate, up []float32
	k, v                       []float32
}

func (w *workspace) ensure(T int, c *Config, kv bool) {
	if kvOut := c.NumKVHeads * c.HeadDim; kv && len(w.k) < T*kvOut {
		w.k = make([]float32, T*kvOut)
		w.v = make([]float32, T*kvOut)
	}
	if T <= w.T {
		return
	}
	D, F, qOut := c.HiddenSize, c.IntermediateSize, c.NumHeads*c.HeadDim
	w.T = T
	w.x = make([]float32, T*D)    // (T, D) residual stream
	w.xn = make([]float32, T*D)   // (T, D) normed input
	w.q = make([]float32, T*qOut) // (T, heads*headDim)
	w.att = make([]float32, T*qOut)
	w.o = make([]float32, T*D)
	w.gate = make([]float32, T*F) // (T, F)
	w.up = make([]float32, T*F)
}
