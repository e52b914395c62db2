package quant

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"distill/core/tensor"
)

// The goldens are written by tools/quantref/nf4_ref.py (numpy, independent
// of this package; see its docstring for the tensors). Codes, absmaxes,
// second-level absmaxes, offsets and the dynamic map must match exactly, at
// every kernel level and in the Go reference; dequantised values to 1e-7
// relative (they match exactly: each is one f32 product).

const goldenPath = "testdata/quant_golden.safetensors"

type goldenTensor struct {
	dtype string
	shape []int
	data  []byte
}

func (g goldenTensor) f32s() []float32 {
	if g.dtype != "F32" {
		panic("golden: f32s of " + g.dtype)
	}
	out := make([]float32, len(g.data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(g.data[4*i:]))
	}
	return out
}

var (
	goldenOnce sync.Once
	golden     map[string]goldenTensor
	goldenErr  error
)

// loadGolden reads the safetensors file (8-byte header length, JSON header,
// data) into memory.
func loadGolden(t *testing.T) map[string]goldenTensor {
	t.Helper()
	goldenOnce.Do(func() {
		b, err := os.ReadFile(goldenPath)
		if err != nil {
			goldenErr = fmt.Errorf("%w (regenerate with /usr/bin/python3 tools/quantref/nf4_ref.py)", err)
			return
		}
		n := binary.LittleEndian.Uint64(b)
		var hdr map[string]json.RawMessage
		if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
			goldenErr = fmt.Errorf("%s: header: %w", goldenPath, err)
			return
		}
		golden = map[string]goldenTensor{}
		data := b[8+n:]
		for name, raw := range hdr {
			if name == "__metadata__" {
				continue
			}
			var e struct {
				DType   string `json:"dtype"`
				Shape   []int  `json:"shape"`
				Offsets [2]int `json:"data_offsets"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				goldenErr = fmt.Errorf("%s: tensor %s: %w", goldenPath, name, err)
				return
			}
			golden[name] = goldenTensor{e.DType, e.Shape, data[e.Offsets[0]:e.Offsets[1]]}
		}
	})
	if goldenErr != nil {
		t.Fatal(goldenErr)
	}
	return golden
}

// goldenCases lists the case names (tensors "<case>.w"), sorted.
func goldenCases(g map[string]goldenTensor) []string {
	var names []string
	for k := range g {
		if c, ok := strings.CutSuffix(k, ".w"); ok {
			names = append(names, c)
		}
	}
	sort.Strings(names)
	return names
}

func (g goldenTensor) tensor(name string) *tensor.Tensor {
	dt, err := tensor.ParseDType(g.dtype)
	if err != nil {
		panic(err)
	}
	return &tensor.Tensor{Name: name, DType: dt, Shape: g.shape, Data: g.data}
}

// forEachLevel runs f at every kernel level this CPU has, best first.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	best := kernelLevel()
	defer setKernelLevel(best)
	for l := best; l >= levelScalar; l-- {
		setKernelLevel(l)
		t.Run([]string{"scalar", "avx2", "avx512"}[l], f)
	}
}

func bits32(v []float32) []uint32 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&v[0])), len(v))
}

// sameBytes fails with the first differing index and a count.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d bytes, want %d", what, len(got), len(want))
		return
	}
	first, n := -1, 0
	for i := range got {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n > 0 {
		t.Errorf("%s: %d of %d bytes differ, first at %d: %#02x want %#02x", what, n, len(got), first, got[first], want[first])
	}
}

// sameF32 demands identical bits (so -0 ≠ 0 and NaN = NaN of the same bits).
func sameF32(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d floats, want %d", what, len(got), len(want))
		return
	}
	g, w := bits32(got), bits32(want)
	first, n := -1, 0
	for i := range g {
		if g[i] != w[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n > 0 {
		t.Errorf("%s: %d of %d differ, first at %d: %v want %v", what, n, len(got), first, got[first], want[first])
	}
}

// closeF32 allows rel relative error (values that compare equal pass: 0 and -0).
func closeF32(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d floats, want %d", what, len(got), len(want))
		return
	}
	worst, at := 0.0, -1
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		d := math.Abs(float64(got[i])-float64(want[i])) / math.Max(math.Abs(float64(want[i])), 1e-30)
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > rel {
		t.Errorf("%s: relative error %.3g at %d (%v want %v), allowed %.1g", what, worst, at, got[at], want[at], rel)
	}
}

func TestNF4Tables(t *testing.T) {
	g := loadGolden(t)
	code, mid := kernelTables()
	sameF32(t, "C code values", code[:], NF4Code[:])
	sameF32(t, "C midpoints", mid[:15], nf4Mid[:])
	sameF32(t, "NF4Code vs golden", NF4Code[:], g["nf4.code"].f32s())
	sameF32(t, "midpoints vs golden", nf4Mid[:], g["nf4.mid"].f32s())
}

func TestDynamicMapGolden(t *testing.T) {
	g := loadGolden(t)
	sameF32(t, "DynamicMap", DynamicMap[:], g["dyn.map"].f32s())
	x := g["dyn.x"].f32s()
	want := g["dyn.q"].data
	got := make([]byte, len(x))
	for i, v := range x {
		got[i] = dynIndex(v, &DynamicMap)
	}
	sameBytes(t, "dynIndex codes", got, want)
	t.Logf("map[0..3] %v, map[126..129] %v, map[253..255] %v", DynamicMap[:3], DynamicMap[126:130], DynamicMap[253:])
}

func TestNF4Golden(t *testing.T) {
	g := loadGolden(t)
	for _, c := range goldenCases(g) {
		w := g[c+".w"].tensor(c)
		n := w.Elems()
		wantCodes, wantAbsmax := g[c+".nf4.codes"].data, g[c+".nf4.absmax"].f32s()
		t.Run(c, func(t *testing.T) {
			// The Go reference, directly.
			codes := make([]byte, (n+1)/2)
			absmax := make([]float32, len(wantAbsmax))
			if bad := nf4QuantizeRef(codes, absmax, w.Data, w.DType, n, 0, len(absmax)); bad >= 0 {
				t.Fatalf("reference: non-finite at %d", bad)
			}
			sameBytes(t, "reference codes", codes, wantCodes)
			sameF32(t, "reference absmax", absmax, wantAbsmax)

			forEachLevel(t, func(t *testing.T) {
				q, err := QuantizeNF4(w, false)
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, "codes", q.Codes, wantCodes)
				sameF32(t, "absmax", q.Absmax, wantAbsmax)
				deq := make([]float32, n)
				q.Dequantize(deq)
				closeF32(t, "dequantized", deq, g[c+".nf4.deq"].f32s(), 1e-7)
				sameF32(t, "dequantized (bits)", deq, g[c+".nf4.deq"].f32s())

				dq, err := QuantizeNF4(w, true)
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, "double-quant codes", dq.Codes, wantCodes)
				sameBytes(t, "qabsmax", dq.QAbsmax, g[c+".dq.qabsmax"].data)
				sameF32(t, "absmax2", dq.Absmax2, g[c+".dq.absmax2"].f32s())
				sameF32(t, "offset", []float32{dq.Offset}, g[c+".dq.offset"].f32s())
				sameF32(t, "decoded absmax", dq.Scales(), g[c+".dq.scales"].f32s())
				if want, ok := g[c+".dq.deq"]; ok {
					dq.Dequantize(deq)
					closeF32(t, "double-quant dequantized", deq, want.f32s(), 1e-7)
					sameF32(t, "double-quant dequantized (bits)", deq, want.f32s())
				}
				if t.Failed() {
					t.Logf("%s %v %s: first codes %x, absmax %v", c, w.Shape, w.DType, q.Codes[:min(8, len(q.Codes))], q.Absmax[:min(4, len(q.Absmax))])
				}
			})
		})
	}
}

func TestQ8Golden(t *testing.T) {
	g := loadGolden(t)
	for _, c := range goldenCases(g) {
		w := g[c+".w"].tensor(c)
		n := w.Elems()
		wantQs, wantScales := g[c+".q8.qs"].data, g[c+".q8.scales"].f32s()
		qsBytes := func(qs []int8) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&qs[0])), len(qs)) }
		t.Run(c, func(t *testing.T) {
			qs := make([]int8, n)
			scales := make([]float32, len(wantScales))
			if bad := q8QuantizeRef(qs, scales, w.Data, w.DType, n, 0, len(scales)); bad >= 0 {
				t.Fatalf("reference: non-finite at %d", bad)
			}
			sameBytes(t, "reference qs", qsBytes(qs), wantQs)
			sameF32(t, "reference scales", scales, wantScales)
			forEachLevel(t, func(t *testing.T) {
				q, err := QuantizeQ8(w)
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, "qs", qsBytes(q.Qs), wantQs)
				sameF32(t, "scales", q.Scales, wantScales)
				if want, ok := g[c+".q8.deq"]; ok {
					deq := make([]float32, n)
					q.Dequantize(deq)
					closeF32(t, "dequantized", deq, want.f32s(), 1e-7)
				}
			})
		})
	}
}
