package train

import (
	"testing"
	"unsafe"
)

// Reserve makes the workspace the plan counts, once: steps on batches up to
// that size never make another (each larger buffer, made while the last
// was held, had taken the peak past the plan), and the buffer is the
// plan's workspace and activations.
func TestReserveHoldsThePlansWorkspace(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	b := bf.batch()
	n := b.Len() + 16
	net.Reserve(n)
	p := net.PlanMemory(n, 0)
	if got := int64(len(net.buf)) * 4; got != p.Activations+p.Workspace {
		t.Fatalf("reserved %d bytes, the plan counts %d", got, p.Activations+p.Workspace)
	}
	first := unsafe.SliceData(net.buf)
	for range 2 {
		if _, err := net.Step(b, b.Counted()); err != nil {
			t.Fatal(err)
		}
	}
	if unsafe.SliceData(net.buf) != first {
		t.Error("a step within the reserved size made a new workspace")
	}
}
