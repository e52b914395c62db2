package app

import (
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// GPU is the first NVIDIA GPU as NVML reports it.
type GPU struct {
	Name        string
	Used, Total int64 // device memory, bytes
}

var (
	nvmlOnce sync.Once
	nvmlOK   bool
)

// firstGPU reads the first GPU's name and memory through NVML, which is
// loaded at run time (libnvidia-ml.so.1 from the driver): on a machine
// without the driver or without a GPU it reports false, never an error.
func firstGPU() (GPU, bool) {
	nvmlOnce.Do(func() {
		defer func() { _ = recover() }() // a broken driver library must not take the workstation down
		nvmlOK = nvml.Init() == nvml.SUCCESS
	})
	if !nvmlOK {
		return GPU{}, false
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS || n == 0 {
		return GPU{}, false
	}
	d, ret := nvml.DeviceGetHandleByIndex(0)
	if ret != nvml.SUCCESS {
		return GPU{}, false
	}
	mem, ret := d.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return GPU{}, false
	}
	name, ret := d.GetName()
	if ret != nvml.SUCCESS {
		name = "GPU"
	}
	return GPU{Name: name, Used: int64(mem.Used), Total: int64(mem.Total)}, true
}

// GPUMemory reports the first GPU's memory in use and in all, through NVML;
// false where there is no NVIDIA GPU or driver.
func (w *Workstation) GPUMemory() (GPU, bool) { return firstGPU() }
