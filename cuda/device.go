//go:build cuda

package cuda

/*
#include <stdlib.h>
#include "distill_cuda.h"
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// DeviceCount is the number of visible CUDA devices: 0, without an error,
// where there is no GPU or no driver.
func DeviceCount() (int, error) {
	var n C.int
	if err := call(func() C.int { return C.dc_device_count(&n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Device is one GPU with its stream, cuBLAS handle and memory pool. The
// library drives one device per process (its stream and handle are global),
// so Open returns the same Device each time.
type Device struct {
	Index        int
	Name         string
	TotalMemory  int64
	Major, Minor int // compute capability
	SmemOptin    int // shared memory a block may opt in to, bytes
	// PCIBusID is the card's PCI address, "0000:65:00.0": NVML numbers
	// cards in PCI order while CUDA's ordinals follow CUDA_VISIBLE_DEVICES
	// and CUDA_DEVICE_ORDER, so the address is what names this card to it.
	PCIBusID string
	Pool     *Pool
}

var (
	openMu  sync.Mutex
	opened  *Device
	openErr error
)

// Open selects device 0, creates the stream and cuBLAS handle, and returns
// it. It fails with a clear message where no device is visible.
func Open() (*Device, error) {
	openMu.Lock()
	defer openMu.Unlock()
	if opened != nil || openErr != nil {
		return opened, openErr
	}
	opened, openErr = open(0)
	return opened, openErr
}

func open(dev int) (*Device, error) {
	n, err := DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("cuda: count devices: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("cuda: no CUDA device is visible (cudaGetDeviceCount = 0): check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES, or use --device cpu")
	}
	if err := call(func() C.int { return C.dc_init(C.int(dev)) }); err != nil {
		return nil, fmt.Errorf("cuda: init device %d: %w", dev, err)
	}
	d := &Device{Index: dev, Pool: NewPool(cudaMemory{})}
	name := (*C.char)(C.malloc(256))
	defer C.free(unsafe.Pointer(name))
	var total C.size_t
	var major, minor, smem C.int
	var pci [3]C.int
	if err := call(func() C.int {
		return C.dc_device_info(C.int(dev), name, 256, &total, &major, &minor, &smem, &pci[0])
	}); err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", dev, err)
	}
	d.Name, d.TotalMemory = C.GoString(name), int64(total)
	d.Major, d.Minor, d.SmemOptin = int(major), int(minor), int(smem)
	d.PCIBusID = fmt.Sprintf("%04x:%02x:%02x.0", int(pci[0]), int(pci[1]), int(pci[2]))
	if d.Major < 8 {
		return nil, fmt.Errorf("cuda: %s is compute capability %d.%d; the kernels are built for 8.0 and later (Ampere, Ada, Hopper)", d.Name, d.Major, d.Minor)
	}
	if s := os.Getenv("DISTILL_CUDA_MEMORY"); s != "" {
		limit, err := parseMemory(s)
		if err != nil {
			return nil, fmt.Errorf("cuda: DISTILL_CUDA_MEMORY=%s: %w", s, err)
		}
		d.Pool.SetLimit(limit)
	}
	return d, nil
}

// parseMemory reads DISTILL_CUDA_MEMORY, the most device memory distill
// may take (weights, caches, activations; not the CUDA context): a whole
// number of bytes, or of KiB, MiB or GiB (1024s) or KB, MB or GB (1000s)
// — "6GiB", "6000MB".
func parseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mul := int64(1)
	for _, u := range []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mul = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mul {
		return 0, fmt.Errorf("want a positive whole number of bytes, KiB, MiB, GiB, KB, MB or GB, such as 6GiB (the CUDA context aside)")
	}
	return n * mul, nil
}

// MemInfo is the device's free and total memory as the driver sees it.
func (d *Device) MemInfo() (free, total int64, err error) {
	var f, t C.size_t
	err = call(func() C.int { return C.dc_mem_info(&f, &t) })
	return int64(f), int64(t), err
}

// Sync waits for the stream's work.
func (d *Device) Sync() error { return call(func() C.int { return C.dc_sync() }) }

func (d *Device) String() string {
	return fmt.Sprintf("%s (sm_%d%d, %.1f GiB)", d.Name, d.Major, d.Minor, float64(d.TotalMemory)/(1<<30))
}

// cudaMemory is the Pool's Allocator: plain cudaMalloc, never managed memory.
type cudaMemory struct{}

func (cudaMemory) Malloc(n int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := call(func() C.int { return C.dc_malloc(&p, C.size_t(n)) }); err != nil {
		return nil, err
	}
	return p, nil
}

func (cudaMemory) Free(p unsafe.Pointer) error {
	return call(func() C.int { return C.dc_free(p) })
}
