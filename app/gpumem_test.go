package app

import (
	"os"
	"testing"
)

// On a machine without the NVIDIA driver, GPUMemory says so instead of
// failing; with one, it reports a device with sane numbers.
func TestGPUMemory(t *testing.T) {
	var w Workstation
	g, ok := w.GPUMemory()
	_, driver := os.Stat("/proc/driver/nvidia/version")
	switch {
	case !ok && driver == nil:
		t.Log("the NVIDIA driver is loaded but NVML reported no device")
	case !ok:
		if g != (GPU{}) {
			t.Errorf("no GPU, yet %+v", g)
		}
	case g.Total <= 0 || g.Used < 0 || g.Used > g.Total || g.Name == "":
		t.Errorf("implausible GPU %+v", g)
	}
}
