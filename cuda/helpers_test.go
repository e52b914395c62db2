//go:build cuda

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"distill/core/tensor"
	"distill/cuda"
)

// The parity tests run every kernel on random inputs at several shapes
// (non-multiples of 32, 64 and the block sizes among them) against the CPU
// reference — core/tensor's CPU backend, core/train's ops, core/quant — and
// compare with a tolerance written beside each, with why.
//
// Where no device is visible they skip; set DISTILL_CUDA_REQUIRE=1 (on a
// machine that has a GPU) to make that a failure instead.

var (
	devOnce sync.Once
	dev     *cuda.Device
	devErr  error
)

func device(t testing.TB) *cuda.Device {
	t.Helper()
	devOnce.Do(func() { dev, devErr = cuda.Open() })
	if devErr != nil {
		if os.Getenv("DISTILL_CUDA_REQUIRE") == "1" {
			t.Fatalf("DISTILL_CUDA_REQUIRE=1 and %v", devErr)
		}
		t.Skipf("skipping: %v", devErr)
	}
	return dev
}

// emulatedSkip skips, on the emulated device (cuda.Emulated), an attention
// case of more than ~600k query-key-head triples: a minute of fibers
// between the largest few, whose kernels cuda/emu's harness already runs
// (DISTILL_EMU_ALL=1) and a GPU runs in full.
func emulatedSkip(t *testing.T, c agCase) {
	t.Helper()
	if cuda.Emulated && c.nq*c.nk*c.nH > 600_000 {
		t.Skipf("emulated device: %s is left to the GPU and cuda/emu's harness", c.name)
	}
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func randn(r *rand.Rand, n int, sigma float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(sigma * r.NormFloat64())
	}
	return v
}

// up uploads v or fails the test; the buffer is freed at the test's end.
func up[T cuda.Element](t testing.TB, d *cuda.Device, k cuda.Kind, v []T) *cuda.Buffer {
	t.Helper()
	b, err := cuda.Upload(d, k, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	return b
}

// upNF4 uploads an NF4 matrix or fails the test; freed at the test's end.
func upNF4(t testing.TB, d *cuda.Device, q tensor.NF4Matrix) *cuda.NF4Weight {
	t.Helper()
	p, _ := q.NF4()
	w, err := d.UploadNF4("w", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Free)
	return w
}

func zeros(t testing.TB, d *cuda.Device, k cuda.Kind, n int) *cuda.Buffer {
	t.Helper()
	b, err := d.Zeros(k, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	return b
}

func down(t testing.TB, b *cuda.Buffer) []float32 {
	t.Helper()
	v, err := cuda.Download[float32](b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func i32s(v []int) []int32 {
	o := make([]int32, len(v))
	for i, x := range v {
		o[i] = int32(x)
	}
	return o
}

// near compares got with want element by element: |got − want| ≤ atol +
// rtol·|want|. On failure it prints the worst element, the first values and
// the largest differences (llm.c's habit), so a tolerance can be judged.
func near(t testing.TB, name string, got, want []float32, rtol, atol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	worst, worstI, maxAbs := 0.0, -1, 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		excess := d / (atol + rtol*math.Abs(w))
		switch {
		case math.IsNaN(w) || math.IsInf(w, 0): // only the same value matches a non-finite one
			d, excess = 0, 0
			if !(math.IsNaN(g) && math.IsNaN(w)) && g != w {
				d, excess = math.Inf(1), math.Inf(1)
			}
		case math.IsNaN(g):
			d, excess = math.Inf(1), math.Inf(1)
		}
		maxAbs = max(maxAbs, d)
		if excess > worst {
			worst, worstI = excess, i
		}
	}
	if worst > 1 {
		n := min(4, len(want))
		t.Errorf("%s: element %d = %v, want %v (|diff| %.3g, %.2f× the tolerance %g + %g·|want|); max |diff| %.3g; first got %v want %v",
			name, worstI, got[worstI], want[worstI], math.Abs(float64(got[worstI]-want[worstI])), worst, atol, rtol, maxAbs, got[:n], want[:n])
		return
	}
	t.Logf("%s: max |diff| %.3g (%.2f of the tolerance)", name, maxAbs, worst)
}

func shapeName(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// TestDevice names the device the parity tests ran on (cudatable reads the
// line) and checks the pool's bookkeeping on real memory.
func TestDevice(t *testing.T) {
	d := device(t)
	t.Logf("cuda device: %s", d)
	// NVML finds the card by this address (app's memory readings): NVML's
	// syntax, domain:bus:device.function in hex.
	if !regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.0$`).MatchString(d.PCIBusID) {
		t.Fatalf("PCI bus id %q is not domain:bus:device.0", d.PCIBusID)
	}
	t.Logf("PCI bus id: %s", d.PCIBusID)
	free, total, err := d.MemInfo()
	ok(t, err)
	t.Logf("memory: %.2f GiB free of %.2f GiB", float64(free)/(1<<30), float64(total)/(1<<30))
	before := d.Pool.Stats()
	b, err := d.Zeros(cuda.F32, 1<<20)
	ok(t, err)
	view := b.View(16, 512) // freed with b
	v := []float32{1, 2, 3}
	ok(t, cuda.Write(b, 5, v))
	got := make([]float32, 5)
	ok(t, cuda.Read(b, 3, got))
	if want := []float32{0, 0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("read back %v, want %v", got, want)
	}
	if s := d.Pool.Stats(); s.InUse-before.InUse != 4<<20 {
		t.Fatalf("pool in use grew by %d, want %d", s.InUse-before.InUse, 4<<20)
	}
	b.Free()
	if s := d.Pool.Stats(); s.InUse != before.InUse {
		t.Fatalf("pool in use %d after free, want %d", s.InUse, before.InUse)
	}
	// Errors carry the op and shapes.
	err = d.RMSNormFwd(b, nil, b, b, 4, 1<<20, 1e-6)
	if err == nil || !strings.Contains(err.Error(), "rmsnorm_fwd: out was freed") {
		t.Fatalf("RMSNormFwd on a freed buffer: %v", err)
	}
	// A view of a freed buffer, taken before or after, is freed too: the
	// pool may hand its block out again (the next Alloc of its size does).
	again, err := d.Alloc(cuda.F32, 1<<20)
	ok(t, err)
	defer again.Free()
	for name, err := range map[string]error{
		"an op":               d.Add(view, view, 512),
		"an op, a view after": d.Add(b.View(0, 4), b.View(4, 4), 4),
		"zeroing":             view.Zero(),
		"an upload":           cuda.Write(view, 0, v),
		"a download":          cuda.Read(view, 0, got),
		"a copy":              view.CopyTo(again),
		"a copy into":         again.View(0, 4).CopyTo(b.View(0, 4)),
	} {
		if err == nil || !strings.Contains(err.Error(), "freed") {
			t.Errorf("%s with a view of a freed buffer: %v, want refused", name, err)
		}
	}
	if err := d.Add(again.View(0, 4), again.View(4, 4), -4); err == nil {
		t.Error("an op of -4 elements: no error")
	}
}
