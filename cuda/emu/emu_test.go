// Package emu runs the CUDA kernels that have a host emulation (host/shim.h) on
// the CPU, so they are checked on every `make test`, GPU or not.
package emu

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFlashKernelsEmulated compiles attn_flash_kernels.cuh's kernels for
// the host (host/flash_emu.cpp over host/shim.h: a std::thread per CUDA thread,
// mma.sync from the PTX ISA's fragment layouts) and runs forward and
// backward against an f64 reference: head sizes 32–128, grouped and plain
// heads, packed segments with a ragged last block, decoding, bad ranges —
// and attn_merge, each range attended in two halves and merged. A
// fragment, index, mask or barrier mistake fails here by tens of
// tolerances (checked by swapping a fragment's registers, 20–47× over, and
// the merge's two weights, 60×). DISTILL_EMU_ALL=1 runs
// every case (the GPU test's; 2–4 minutes here).
func TestFlashKernelsEmulated(t *testing.T) {
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Fatalf("g++ is needed to emulate the CUDA kernels (make deps installs it): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "flash_emu")
	// No strict aliasing: the kernels pun bf16 pairs through uint32 as
	// CUDA allows; unknown pragmas are nvcc's #pragma unroll.
	build := exec.Command(cxx, "-O2", "-std=c++20", "-pthread", "-fno-strict-aliasing", "-Wall",
		"-Wno-unknown-pragmas", "-Wno-unused-function", "-o", bin, filepath.Join("host", "flash_emu.cpp"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling host/flash_emu.cpp: %v\n%s", err, out)
	}
	cases := []string{"0", "2", "10", "12", "15", "16", "17"}
	if os.Getenv("DISTILL_EMU_ALL") == "1" {
		cases = nil
	}
	out, err := exec.Command(bin, cases...).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("flash_emu: %v (the cases marked FAIL above)", err)
	}
}
