package app

import (
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"distill/core/tensor"
)

// GPU is the card runs train on as NVML reports it: the CUDA backend's, or
// NVML's first where this build has none.
type GPU struct {
	Name        string
	Used, Total int64 // device memory, bytes
}

var (
	nvmlOnce sync.Once
	nvmlOK   bool
)

// cudaCard is the PCI address of the card the CUDA backend drives; "" in a
// CPU-only build or where no CUDA device opens.
var cudaCard = sync.OnceValue(func() string {
	be, err := tensor.Open("cuda")
	if err != nil {
		return ""
	}
	if c, ok := be.(interface{ PCIBusID() string }); ok {
		return c.PCIBusID()
	}
	return ""
})

// nvmlCard is NVML's handle on the card runs train on. NVML numbers cards
// in PCI order, CUDA by CUDA_VISIBLE_DEVICES and its own order, so NVML's
// index 0 can be another card than CUDA's device 0 on a machine with
// several: the card is found by the CUDA device's PCI address, and index 0
// serves only where there is no CUDA device (a CPU-only build).
func nvmlCard() (nvml.Device, bool) {
	if id := cudaCard(); id != "" {
		d, ret := nvml.DeviceGetHandleByPciBusId(id)
		return d, ret == nvml.SUCCESS
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS || n == 0 {
		return nil, false
	}
	d, ret := nvml.DeviceGetHandleByIndex(0)
	return d, ret == nvml.SUCCESS
}

// trainingGPU reads the card's name and memory (nvmlCard) through NVML, which
// is loaded at run time (libnvidia-ml.so.1 from the driver): on a machine
// without the driver or without a GPU it reports false, never an error.
func trainingGPU() (GPU, bool) {
	nvmlOnce.Do(func() {
		defer func() { _ = recover() }() // a broken driver library must not take the workstation down
		nvmlOK = nvml.Init() == nvml.SUCCESS
	})
	if !nvmlOK {
		return GPU{}, false
	}
	d, ok := nvmlCard()
	if !ok {
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

// GPUMemory reports the training card's memory in use and in all, through NVML;
// false where there is no NVIDIA GPU or driver.
func (w *Workstation) GPUMemory() (GPU, bool) { return trainingGPU() }
