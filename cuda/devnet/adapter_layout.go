//go:build cuda

package devnet

import (
	"unsafe"

	"distill/core/lora"
)

// adapterLayout places the adapter's pairs in its device buffers (Params,
// Grads, the optimizer's moments) apart from the host's order (layer,
// module, A then B): a layer's A matrices first, in module order, then its
// B matrices. Modules that share their input then hold their A (and dA)
// back to back at one stride — q, k and v's; gate's and up's — so their
// adapter products run as one strided batch (lora_group.go). Every
// transfer between host and device goes through toDevice and toHost; the
// device's element-wise passes (AdamW, the gradient norm) see the same
// values in another order.
type adapterLayout struct {
	host, dev [][nMod][2]int // each pair's A and B offsets; -1 untargeted
	size      [][nMod][2]int // their lengths: r·in and out·r
	n         int
}

// newAdapterLayout lays out a's pairs on the device.
func newAdapterLayout(a *lora.Adapter, layers int) adapterLayout {
	lay := adapterLayout{host: make([][nMod][2]int, layers), dev: make([][nMod][2]int, layers), size: make([][nMod][2]int, layers)}
	for l := range layers {
		for i := range nMod {
			lay.host[l][i], lay.dev[l][i] = [2]int{-1, -1}, [2]int{-1, -1}
		}
	}
	if a == nil {
		return lay
	}
	lay.n = len(a.Params)
	base := unsafe.Pointer(unsafe.SliceData(a.Params))
	off := func(v []float32) int {
		return int((uintptr(unsafe.Pointer(unsafe.SliceData(v))) - uintptr(base)) / 4)
	}
	r, at := a.Config.R, 0
	for l, ps := range a.Layers[:min(layers, len(a.Layers))] {
		for i := range nMod { // the A's, then the B's
			if i < len(ps) && ps[i] != nil {
				lay.host[l][i] = [2]int{off(ps[i].A), off(ps[i].B)}
				lay.size[l][i] = [2]int{r * ps[i].In, ps[i].Out * r}
				lay.dev[l][i][0] = at
				at += r * ps[i].In
			}
		}
		for i := range nMod {
			if i < len(ps) && ps[i] != nil {
				lay.dev[l][i][1] = at
				at += ps[i].Out * r
			}
		}
	}
	return lay
}

// toDevice returns host (the host's layout) in the device's; a slice of
// another length than the adapter's as it is (the transfer that follows
// names the mismatch).
func (lay *adapterLayout) toDevice(host []float32) []float32 {
	if len(host) != lay.n {
		return host
	}
	dev := make([]float32, len(host))
	lay.each(func(h, d, n int) { copy(dev[d:d+n], host[h:h+n]) })
	return dev
}

// toHost copies dev (the device's layout) into host in the host's.
func (lay *adapterLayout) toHost(host, dev []float32) {
	if len(host) != lay.n || len(dev) != lay.n {
		copy(host, dev)
		return
	}
	lay.each(func(h, d, n int) { copy(host[h:h+n], dev[d:d+n]) })
}

// each calls f with the host offset, device offset and length of every
// pair's A and B.
func (lay *adapterLayout) each(f func(h, d, n int)) {
	for l := range lay.host {
		for i := range nMod {
			if h, d, sz := lay.host[l][i], lay.dev[l][i], lay.size[l][i]; h[0] >= 0 {
				f(h[0], d[0], sz[0])
				f(h[1], d[1], sz[1])
			}
		}
	}
}
