// Package emu runs the CUDA kernels that have a host emulation (host/shim.h) on
// the CPU, so they are checked on every `make test`, GPU or not.
package emu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestFlashKernelsEmulated compiles attn_flash_kernels.cuh's kernels for
// the host (host/flash_emu.cpp over host/shim.h: a fiber per CUDA thread,
// mma.sync from the PTX ISA's fragment layouts) and runs forward and
// backward against an f64 reference: head sizes 16–128, grouped and plain
// heads, packed segments with a ragged last block, decoding, windows, bad ranges,
// NaN keys past every range (a cache mirror's unwritten rows) — the
// async-tiles kernels against v1's bit for bit, forward and backward
// (ldmatrix.trans emulated from the PTX ISA's layout, cp.async as an
// immediate copy) — and
// attn_merge, each range attended in two halves and merged. A
// fragment, index, mask or barrier mistake fails here by tens of
// tolerances (checked by swapping a fragment's registers, 20–47× over, and
// the merge's two weights, 60×; the async dk/dv kernel's B registers
// swapped, or its next tile staged into the buffer in use, fail 16 and 10
// of 16 cases, dq's next tile into the buffer in use 7, the forward's 8). DISTILL_EMU_ALL=1 adds the four
// largest cases (~1 minute more).
func TestFlashKernelsEmulated(t *testing.T) {
	bin := buildEmu(t, "flash_emu.cpp")
	// Every case but the four largest (packed 300 and 387 rows, 120+101+79,
	// 150+150: a minute between them), in two processes.
	sets := [][]string{{"0", "1", "2", "3", "7", "8", "9", "10", "20", "22"}, {"11", "12", "14", "15", "16", "17", "18", "19", "21"}}
	if os.Getenv("DISTILL_EMU_ALL") == "1" {
		sets = [][]string{{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "20", "22"}, {"10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "21"}}
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

// TestDecodeKernelsEmulated runs the decode kernels on the host against
// f64 references (host/decode_emu.cpp): matvec_kernels.cuh's fused
// products — NF4 (plain and double-quantised scales) and bf16, one to three
// outputs with biases and residuals, no prologue, RMSNorm and SwiGLU, every
// thread-group width (32–256 threads a row) — and decode_kernels.cuh's
// k_decode_qkv (per-head norms, RoPE, the cache and staging rows, a
// position past the cache writing nothing), nf4.cu's dequantisation into
// f32 and bf16 (bit for bit: vector and generic kernels, row ranges cutting
// groups, double-quantised scales past 256 blocks), and a batched step's
// k_kv_rows and k_attn_rows (each row over its own cache; grouped heads,
// head sizes 16–128, an empty range) — k_decode_qkv and the rows' kernels
// over f32 caches and over bf16 ones (each element held rounded, the
// staged rows exactly what the cache holds), and k_attn_rows_split with
// k_attn_rows_merge (flash-decoding) at one key a chunk, chunks that cut
// the warps' strides and one chunk for all, each with 1, 2, 4 and 8 of a
// GQA group's heads a block (groups of 1–12: rounded up, or in several
// blocks) (the merge's weights dropped, a warp's sum left out of it, or
// each chunk's last key, fail by 10⁴× the tolerance; a group's later
// blocks on its first heads by more, heads past the group written out of
// bounds). Checked by mutation: dropping the
// residual, the norm's width, the wide groups' reduction index, the
// prologue's write-out index, RoPE's sign, k's halves, the grouped head's
// index, the last key, the warps' merge weights each fail by 10⁴× the
// tolerance or more; dropping a bound check writes past a cache (caught);
// swapping the dequantisation's nibbles (vector or generic) fails exactly.
func TestDecodeKernelsEmulated(t *testing.T) { runEmu(t, "decode_emu.cpp") }

// TestTrainKernelsEmulated runs the training kernels on the host against
// f64 references (host/train_emu.cpp), each launched as its launcher in the
// .cu launches it, at shapes off the block size: RMSNorm forward (in place,
// no rstd) and backward dx and dw; RoPE both ways, by the stride loop too;
// SwiGLU by 4 (the bf16 copy bit for bit), its tails, unaligned, in place,
// and its backward; the embedding gather of f32, f16 and bf16 tables (NaN
// rows for ids outside) and its scatter-add (guard rows untouched);
// cross-entropy with its gradient, per-row scales and bad targets; KD's
// forward KL, reverse KL and JSD (underflowing student probabilities);
// AdamW; the f64 sum of squares and the clip (equal and NaN norms kept);
// dropout's masks bit for bit with core/train's hash; add, bias, scale;
// f32 → bf16 (ties, overflow, NaN) and every bf16 and f16 widened; row
// gathers and scatters. Checked by mutation (each in a copy of the header):
// RMSNorm's width off by one fails by 1.2·10⁴× the tolerance, s³ → s² in dx
// by 51×, dw's last row dropped by 5·10⁵×; RoPE's position by head index and
// the inverse's sign dropped by 2·10⁶×; SwiGLU's by-4 lane taking u.z by
// 3·10⁶×, σ′'s term by 6·10⁷×, the bf16 halves swapped or the tail's bf16
// of g (exact checks); the embedding's f16 read as bf16, an id of vocab
// read or of −1 written (exact, 2·10⁶×); xent's per-thread sums left
// unrescaled (10⁶×), the one-hot unscaled (10⁶×), row 0's scale for every
// row (7·10⁵×), a target of vocab taken (NaN expected); KD's τ² → τ
// (3·10⁶×), reverse KL's mean dropped (6·10⁶×), JSD's mixture a − b → a + b
// (7·10⁵×), the CE at τ (10⁶×), a target of vocab taken; AdamW's v from g
// not g² and the decay dropped (75×); sumsq's blocks overwriting and half
// its warps dropped (5·10¹¹×), the clip at an equal or NaN norm, the
// dropout mask off by one and the hash's second shift changed, the bias
// index, add overwriting, the by-4 bf16 pair swapped, f16 widened as bf16,
// the gather's index ignored, the scatter's last column dropped (exact
// checks). The hash's last shift (>> 31 → >> 30) passes: it changes bits
// 0–33 only, which decide a mask only where the top 30 bits tie with the
// threshold's (2⁻³⁰ an element).
func TestTrainKernelsEmulated(t *testing.T) { runEmu(t, "train_emu.cpp") }

// runEmu builds host/src and runs it, its report in the test's log.
func runEmu(t *testing.T, src string) {
	out, err := exec.Command(buildEmu(t, src)).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Errorf("%s: %v (the cases marked FAIL above)", src, err)
	}
}

// buildEmu compiles host/src (a driver over shim.h) into a test binary.
func buildEmu(t *testing.T, src string) string {
	t.Helper()
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Fatalf("g++ is needed to emulate the CUDA kernels (make deps installs it): %v", err)
	}
	// g++ reads the kernels' sources, not this process: reading them here
	// puts them in go test's cache key, so an edited kernel is tested again
	// rather than served a cached pass.
	for _, pat := range []string{"host/*", "../kernels/*.cuh", "../kernels/*.h"} {
		files, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	bin := filepath.Join(t.TempDir(), strings.TrimSuffix(src, ".cpp"))
	// No strict aliasing: the kernels pun bf16 pairs through uint32 as
	// CUDA allows; unknown pragmas are nvcc's #pragma unroll. UBSan's
	// alignment check stops at any access off its type's alignment — a
	// float4 or uint4 read at a multiple of 4 bytes, which faults on the
	// hardware and not on the host — and AddressSanitizer at any outside
	// its buffer (the tests' device buffers are vectors of their exact
	// sizes; shared arrays are statics): the kernels' reads and writes past
	// an edge, which a GPU makes silently or faults on. And its check of
	// signed overflow: the GPU's adds wrap, where g++ may drop the code an
	// overflow would reach (the Makefile's EMU_CXXFLAGS say more).
	build := exec.Command(cxx, "-O2", "-std=c++20", "-fno-strict-aliasing", "-Wall",
		"-Wno-unknown-pragmas", "-Wno-unused-function", "-fsanitize=alignment,address,signed-integer-overflow",
		"-fno-sanitize-recover=alignment,signed-integer-overflow",
		"-o", bin, filepath.Join("host", src))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("compiling host/%s: %v\n%s", src, err, out)
	}
	return bin
}
