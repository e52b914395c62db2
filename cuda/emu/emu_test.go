// Package emu runs the CUDA kernels that have a host emulation (host/shim.h) on
// the CPU, so they are checked on every `make test`, GPU or not.
package emu

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestFlashKernelsEmulated compiles attn_flash_kernels.cuh's kernels for
// the host (host/flash_emu.cpp over host/shim.h: a fiber per CUDA thread,
// mma.sync from the PTX ISA's fragment layouts) and runs forward and
// backward against an f64 reference: head sizes 16–128, grouped and plain
// heads, packed segments with a ragged last block, decoding, windows, bad ranges —
// and attn_merge, each range attended in two halves and merged. A
// fragment, index, mask or barrier mistake fails here by tens of
// tolerances (checked by swapping a fragment's registers, 20–47× over, and
// the merge's two weights, 60×). DISTILL_EMU_ALL=1 adds the four
// largest cases (~1 minute more).
func TestFlashKernelsEmulated(t *testing.T) {
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Fatalf("g++ is needed to emulate the CUDA kernels (make deps installs it): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "flash_emu")
	// No strict aliasing: the kernels pun bf16 pairs through uint32 as
	// CUDA allows; unknown pragmas are nvcc's #pragma unroll.
	build := exec.Command(cxx, "-O2", "-std=c++20", "-fno-strict-aliasing", "-Wall",
		"-Wno-unknown-pragmas", "-Wno-unused-function", "-o", bin, filepath.Join("host", "flash_emu.cpp"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling host/flash_emu.cpp: %v\n%s", err, out)
	}
	// Every case but the four largest (packed 300 and 387 rows, 120+101+79,
	// 150+150: a minute between them), in two processes.
	sets := [][]string{{"0", "1", "2", "3", "7", "8", "9", "10"}, {"11", "12", "14", "15", "16", "17", "18", "19"}}
	if os.Getenv("DISTILL_EMU_ALL") == "1" {
		sets = [][]string{{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, {"10", "11", "12", "13", "14", "15", "16", "17", "18", "19"}}
	}
	outs, errs := make([][]byte, len(sets)), make([]error, len(sets))
	var wg sync.WaitGroup
	for i, set := range sets {
		wg.Go(func() { outs[i], errs[i] = exec.Command(bin, set...).CombinedOutput() })
	}
	wg.Wait()
	for i := range sets {
		t.Logf("%s", outs[i])
		if errs[i] != nil {
			t.Errorf("flash_emu %v: %v (the cases marked FAIL above)", sets[i], errs[i])
		}
	}
}
