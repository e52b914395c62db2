// shim.h: a host emulation of the CUDA features the kernels' device code
// (attn_flash_kernels.cuh, matvec_kernels.cuh, decode_kernels.cuh, and the
// training kernels' *_kernels.cuh: rmsnorm, rope, swiglu, embed, xent, kd,
// adamw, gradnorm, dropout, elementwise, convert, rows) uses, so that its
// kernels run on the CPU as written: each CUDA thread of
// the block in flight a fiber (ucontext, its own stack) switched
// cooperatively on one OS thread — blocks one after another — meeting at
// barriers for __syncthreads and for the warp collectives (shuffles, mma);
// bf16 as bits rounded to nearest even; mma.sync m16n8k16 computed from the
// fragment layouts the PTX ISA documents — so a fragment or index mistake
// gives wrong numbers here as on the device. What it cannot show: the
// tensor cores' own summation order, and races (a thread runs until it
// waits, in a fixed order, so an access a missing barrier leaves unordered
// may happen to come out right).
#pragma once
#define DISTILL_CUDA_EMU 1
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>
#include <cstdio>
#include <cstdlib>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __constant__
// One block at a time: a block's statics are its shared memory. Unlike
// the dynamic shared memory they are not refilled with 0xff per block — g++
// ignores a section attribute on a template's static locals, so there is
// no range to fill — and keep what the last block wrote.
#define __shared__ static

using std::max;
using std::min;

struct emu_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline emu_dim3 threadIdx, blockIdx, gridDim, blockDim;  // threadIdx: the running fiber's
inline unsigned char *emu_smem;

// The fibers of the block in flight; emu_cur runs, the scheduler loop in
// emu_launch resumes each in turn until all have returned. On x86-64 a
// switch saves and restores the callee-saved registers and the stack
// pointer (emu_ctx_switch, below) — tens of nanoseconds, where ucontext's
// swapcontext makes a system call for the signal mask each time, which
// dominated element-wise kernels' emulation (a fiber per element); other
// hosts keep ucontext.
struct EmuBarrier;
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
// emu_ctx_switch(save, to): the running context's stack pointer into
// *save (its registers pushed below it), then the context whose stack
// pointer is to resumed. A new fiber's stack is laid out as if it had
// switched away just before entering emu_fiber_entry. Weak: every
// translation unit that includes this header defines it.
extern "C" void emu_ctx_switch(void **save, void *to);
__asm__(
    ".pushsection .text\n"
    ".weak emu_ctx_switch\n"
    ".type emu_ctx_switch,@function\n"
    "emu_ctx_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_ctx_switch, .-emu_ctx_switch\n"
    ".popsection\n");
struct EmuFiber {
  void *sp = nullptr;
  bool done = false;
  const EmuBarrier *bar = nullptr;  // the barrier it waits at (emu_wait), released once bar->gen != gen
  unsigned gen = 0;
};
inline void *emu_sched_sp;
#else
struct EmuFiber {
  ucontext_t ctx;
  bool done = false;
  const EmuBarrier *bar = nullptr;  // the barrier it waits at (emu_wait), released once bar->gen != gen
  unsigned gen = 0;
};
inline ucontext_t emu_sched;
#endif
inline std::vector<EmuFiber> emu_fibers;
inline unsigned emu_cur;

// Under AddressSanitizer (g++ -fsanitize=address: cuda/emu's tests) each
// switch tells it whose stack runs next, or it reads a fiber's frames as
// overflows of the scheduler's stack; a reused fiber stack is unpoisoned
// before its next fiber starts (its last one's redzones are stale).
inline const void *emu_sched_bottom;  // the scheduler's stack, as ASan reports it on a fiber's entry
inline size_t emu_sched_size;
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
inline void emu_asan_to(const void *bottom, size_t size, bool dying = false) {
  static void *fake;  // no fake stacks (detect_stack_use_after_return off): unused
  __sanitizer_start_switch_fiber(dying ? nullptr : &fake, bottom, size);
}
inline void emu_asan_back() { __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr); }
inline void emu_asan_entered() { __sanitizer_finish_switch_fiber(nullptr, &emu_sched_bottom, &emu_sched_size); }
inline void emu_asan_fresh(void *base, size_t size) { __asan_unpoison_memory_region(base, size); }
#else
inline void emu_asan_to(const void *, size_t, bool = false) {}
inline void emu_asan_back() {}
inline void emu_asan_entered() {}
inline void emu_asan_fresh(void *, size_t) {}
#endif

#if EMU_FAST_SWITCH
inline void emu_yield() {
  emu_asan_to(emu_sched_bottom, emu_sched_size);
  emu_ctx_switch(&emu_fibers[emu_cur].sp, emu_sched_sp);
  emu_asan_back();
}
#else
inline void emu_yield() { swapcontext(&emu_fibers[emu_cur].ctx, &emu_sched); }
#endif

// A barrier of need threads: the last to arrive releases the others and
// runs on (emu_wait returns true to it alone: it may fill what the others
// read after the barrier, before any of them runs again). A waiting fiber
// names its barrier, and the scheduler passes it over until the barrier's
// generation moves — a wait costs one switch away and one back, however
// long the others take (a block's other warps at __syncthreads while warp
// 0 shuffles). emu_progress counts barrier releases and finished threads:
// a round of the scheduler in which it does not move is a deadlock (a
// thread returned or diverged before a barrier the others wait at).
inline uint64_t emu_progress;
struct EmuBarrier {
  unsigned need, count = 0, gen = 0;
};
inline bool emu_wait(EmuBarrier &b) {
  unsigned gen = b.gen;
  if (++b.count == b.need) {
    b.count = 0, b.gen++;
    emu_progress++;
    return true;
  }
  EmuFiber &f = emu_fibers[emu_cur];
  f.bar = &b, f.gen = gen;
  while (b.gen == gen) emu_yield();
  f.bar = nullptr;
  return false;
}
// Whether fiber f waits at a barrier not yet released: resuming it would
// only switch back.
inline bool emu_blocked(const EmuFiber &f) { return f.bar != nullptr && f.bar->gen == f.gen; }

struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(8) uint2 {
  uint32_t x, y;
};
struct alignas(16) uint4 {
  uint32_t x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

struct emu_bf16 {
  uint16_t v;
};
struct emu_bf162 {
  emu_bf16 x, y;
};
typedef emu_bf16 __nv_bfloat16;
typedef emu_bf162 __nv_bfloat162;
inline emu_bf16 __float2bfloat16_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  emu_bf16 r;
  if (std::isnan(f)) {
    r.v = 0x7fc0;
    return r;
  }
  uint32_t lsb = (u >> 16) & 1;
  u += 0x7fff + lsb;
  r.v = (uint16_t)(u >> 16);
  return r;
}
inline float emu_bf2f(uint16_t v) {
  uint32_t u = (uint32_t)v << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline float __bfloat162float(emu_bf16 b) { return emu_bf2f(b.v); }
inline emu_bf162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }

// A warp's collectives exchange through two sets of slots, taken by the
// parity of the warp barrier's generation: collective i writes set i % 2,
// meets the others at barrier i and reads. One barrier each suffices: a
// lane can write set i % 2 again only in collective i + 2, past barrier
// i + 1, which every lane reaches only after its reads of collective i.
struct EmuWarp {
  EmuBarrier bar{32};
  uint64_t sh[2][32];
  uint32_t a[2][32][4], b[2][32][2];  // an mma's fragments by lane; a: an ldmatrix's results too
  float A[2][16][16], B[2][16][8];  // an mma's operands, unpacked once by the lane that releases the barrier
};
inline EmuWarp *emu_warps;

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int o) {
  if (mask != 0xffffffffu) abort();
  int lane = threadIdx.x & 31;
  EmuWarp &w = emu_warps[threadIdx.x >> 5];
  const unsigned set = w.bar.gen & 1;
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  w.sh[set][lane] = bits;
  emu_wait(w.bar);
  uint64_t got = w.sh[set][lane ^ o];
  T r;
  memcpy(&r, &got, sizeof(T));
  return r;
}

// Whether every lane's p holds (a vote: the same answer to each lane).
inline int __all_sync(unsigned mask, int p) {
  if (mask != 0xffffffffu) abort();
  int lane = threadIdx.x & 31;
  EmuWarp &w = emu_warps[threadIdx.x >> 5];
  const unsigned set = w.bar.gen & 1;
  w.sh[set][lane] = p != 0;
  emu_wait(w.bar);
  for (int L = 0; L < 32; L++)
    if (!w.sh[set][L]) return 0;
  return 1;
}

// mma.m16n8k16.row.col f32.bf16.bf16.f32, fragments per the PTX ISA:
// A: a0,a1 (g, 2t..) reg0; a2,a3 (g+8, 2t..) reg1; a4,a5 (g, 2t+8..) reg2; a6,a7 (g+8, 2t+8..) reg3.
// B: b0,b1 (k 2t.., n g) reg0; b2,b3 (k 2t+8.., n g) reg1.  C: (g,2t),(g,2t+1),(g+8,2t),(g+8,2t+1).
inline void emu_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  int lane = threadIdx.x & 31;
  EmuWarp &w = emu_warps[threadIdx.x >> 5];
  const unsigned set = w.bar.gen & 1;
  for (int i = 0; i < 4; i++) w.a[set][lane][i] = a[i];
  w.b[set][lane][0] = b0, w.b[set][lane][1] = b1;
  float(&A)[16][16] = w.A[set];
  float(&B)[16][8] = w.B[set];
  if (emu_wait(w.bar)) {  // the last lane in: every lane's fragments are there, and no lane runs before this is done
    for (int L = 0; L < 32; L++) {
      int g = L >> 2, t = L & 3;
      const uint32_t *ra = w.a[set][L], *rb = w.b[set][L];
      auto lo = [](uint32_t r) { return emu_bf2f(r & 0xffff); };
      auto hi = [](uint32_t r) { return emu_bf2f(r >> 16); };
      A[g][2 * t] = lo(ra[0]), A[g][2 * t + 1] = hi(ra[0]);
      A[g + 8][2 * t] = lo(ra[1]), A[g + 8][2 * t + 1] = hi(ra[1]);
      A[g][2 * t + 8] = lo(ra[2]), A[g][2 * t + 9] = hi(ra[2]);
      A[g + 8][2 * t + 8] = lo(ra[3]), A[g + 8][2 * t + 9] = hi(ra[3]);
      B[2 * t][g] = lo(rb[0]), B[2 * t + 1][g] = hi(rb[0]);
      B[2 * t + 8][g] = lo(rb[1]), B[2 * t + 9][g] = hi(rb[1]);
    }
  }
  int g = lane >> 2, t = lane & 3;
  for (int e = 0; e < 4; e++) {
    int r = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    float s = 0.f;
    for (int k = 0; k < 16; k++) s += A[r][k] * B[k][col];
    c[e] += s;
  }
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane L names row L % 8
// of 8×8 matrix L / 8 (16 bytes); with .trans each lane (g = lane / 4,
// t = lane % 4) gets of matrix m the two 16-bit values at rows 2t and
// 2t + 1 of column g (the lower row in the low half), as the PTX ISA gives
// them; without, the two at row g, columns 2t and 2t + 1 (the lower column
// in the low half).
inline void emu_ldsm_x4(uint32_t r[4], const void *row, bool trans) {
  int lane = threadIdx.x & 31;
  if ((uintptr_t)row % 16 != 0) {  // each row 16 bytes, 16-byte aligned (.aligned): the hardware faults otherwise
    fprintf(stderr, "cuda emulation: ldmatrix row %p misaligned (lane %d of thread %u's warp)\n", row, lane, threadIdx.x);
    abort();
  }
  EmuWarp &w = emu_warps[threadIdx.x >> 5];
  const unsigned set = w.bar.gen & 1;
  w.sh[set][lane] = (uint64_t)(uintptr_t)row;
  if (emu_wait(w.bar)) {  // the last lane in reads every lane's rows at once, as the warp does, before any lane writes
    for (int L = 0; L < 32; L++) {
      int g = L >> 2, t = L & 3;
      for (int m = 0; m < 4; m++) {
        if (!trans) {  // row g, columns 2t and 2t + 1
          const uint16_t *rg = (const uint16_t *)(uintptr_t)w.sh[set][m * 8 + g];
          w.a[set][L][m] = (uint32_t)rg[2 * t] | (uint32_t)rg[2 * t + 1] << 16;
          continue;
        }
        const uint16_t *r0 = (const uint16_t *)(uintptr_t)w.sh[set][m * 8 + 2 * t];
        const uint16_t *r1 = (const uint16_t *)(uintptr_t)w.sh[set][m * 8 + 2 * t + 1];
        w.a[set][L][m] = (uint32_t)r0[g] | (uint32_t)r1[g] << 16;
      }
    }
  }
  for (int m = 0; m < 4; m++) r[m] = w.a[set][lane][m];
}

// cp.async (16 bytes .cg, or 4 .ca), size bytes of which src_bytes are
// read and the rest zero-filled — as late as the hardware may land it: the
// source is read now, but the destination is poisoned (0xff: NaN for f32
// and bf16, −1 for ints) until a wait_group lets the copy's group land
// (its group committed and at most N younger ones still pending), so a
// shared read before the wait, or a refill of a buffer still being read,
// shows. Per thread; a block's leftovers are dropped when it ends. Both
// addresses aligned to the copy's size, or the process stops: the hardware
// faults on a misaligned cp.async ("misaligned address" at the next
// synchronisation), where the host would copy it without complaint.
struct EmuCopy {
  void *dst;
  unsigned char data[16];
  int size;
};
struct EmuCopies {
  std::vector<EmuCopy> open;                   // issued, not yet committed
  std::vector<std::vector<EmuCopy>> committed;  // oldest first
};
inline std::vector<EmuCopies> emu_copies;  // by threadIdx.x (emu_launch sizes it)
inline void emu_cp_async(void *dst, const void *src, int size, int src_bytes) {
  if ((uintptr_t)dst % size != 0 || (uintptr_t)src % size != 0) {
    fprintf(stderr, "cuda emulation: cp.async of %d bytes from %p to %p: misaligned (thread %u of block (%u, %u))\n", size,
            src, dst, threadIdx.x, blockIdx.x, blockIdx.y);
    abort();
  }
  EmuCopy c{dst, {}, size};
  memcpy(c.data, src, src_bytes);
  memset(dst, 0xff, size);
  emu_copies[threadIdx.x].open.push_back(c);
}
inline void emu_cp_async16(void *dst, const void *src, int src_bytes) { emu_cp_async(dst, src, 16, src_bytes); }
inline void emu_cp_commit() {
  EmuCopies &t = emu_copies[threadIdx.x];
  t.committed.push_back(std::move(t.open));
  t.open.clear();
}
inline void emu_cp_wait(int n) {
  EmuCopies &t = emu_copies[threadIdx.x];
  while ((int)t.committed.size() > n) {
    for (const EmuCopy &c : t.committed.front()) memcpy(c.dst, c.data, c.size);
    t.committed.erase(t.committed.begin());
  }
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) abort();
  emu_wait(emu_warps[threadIdx.x >> 5].bar);
}

inline EmuBarrier *emu_block_bar;
inline void __syncthreads() { emu_wait(*emu_block_bar); }

// Intrinsics: plain loads; IEEE operations (no contraction under ISO C++:
// g++ -std=c++20 leaves a·b + c unfused, as __fmul_rn/__fadd_rn ask);
// rsqrtf exactly rounded (the device's is within 2 ulp). __ldg stops the
// emulation on an address off its type's alignment (a float4 or uint4 load
// at a multiple of 4 bytes faults on the hardware, not on the host).
template <typename T>
inline T __ldg(const T *p) {
  if ((uintptr_t)p % alignof(T) != 0) {
    fprintf(stderr, "cuda emulation: __ldg of %zu bytes at %p: misaligned (thread %u of block (%u, %u))\n", sizeof(T),
            (const void *)p, threadIdx.x, blockIdx.x, blockIdx.y);
    abort();
  }
  return *p;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline float __uint_as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
// f16 as bits, widened exactly (subnormals normalised; inf and NaN, its
// payload, kept), as cvt.f32.f16.
struct emu_half {
  uint16_t v;
};
typedef emu_half __half;
inline float __half2float(emu_half h) {
  uint32_t s = (uint32_t)(h.v & 0x8000u) << 16, e = (h.v >> 10) & 0x1f, m = h.v & 0x3ffu, u;
  if (e == 0x1f) {
    u = s | 0x7f800000u | m << 13;
  } else if (e != 0) {
    u = s | (e + 112) << 23 | m << 13;
  } else if (m == 0) {
    u = s;
  } else {  // subnormal: m·2⁻²⁴, normalised
    for (e = 113; !(m & 0x400u); e--) m <<= 1;
    u = s | e << 23 | (m & 0x3ffu) << 13;
  }
  return __uint_as_float(u);
}
// Atomics: one OS thread runs every fiber and none yields inside one, so a
// read-modify-write is atomic as it stands (the order of a contended
// address's additions is the fibers', fixed; the device's varies).
inline float atomicAdd(float *p, float v) {
  float old = *p;
  *p = old + v;
  return old;
}
inline double atomicAdd(double *p, double v) {
  double old = *p;
  *p = old + v;
  return old;
}
// The byte selected by each nibble of s from the eight bytes {y, x} (x the
// low four); selectors here are < 8 (no sign replication).
inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  uint64_t v = (uint64_t)y << 32 | x;
  uint32_t r = 0;
  for (int i = 0; i < 4; i++) r |= (uint32_t)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
// Shared-memory addresses are 32 bits on the device; here, a shared array's
// host address's low 32 bits, the high ones kept from the last conversion
// (every shared array lies in one 4 GB window: checked).
inline uintptr_t emu_shared_hi;
inline size_t __cvta_generic_to_shared(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (((a + 4096) >> 32) != (a >> 32)) abort();  // an array would straddle the window
  emu_shared_hi = a & ~(uintptr_t)0xffffffffu;
  return (uint32_t)a;
}
inline void *__cvta_shared_to_generic(size_t a) { return (void *)(emu_shared_hi | (uint32_t)a); }

// emu_launch runs f as a grid of gx × gy blocks of bd threads (bd a
// multiple of 32) with smem bytes of dynamic shared memory, filled with
// 0xff (bf16 NaN: a read of unstaged shared memory shows).
inline const std::function<void()> *emu_body;
#if EMU_FAST_SWITCH
[[noreturn]] inline void emu_fiber_entry() {
  emu_asan_entered();
  (*emu_body)();
  emu_fibers[emu_cur].done = true;
  void *dead;
  emu_asan_to(emu_sched_bottom, emu_sched_size, true);
  emu_ctx_switch(&dead, emu_sched_sp);  // never resumed
  __builtin_unreachable();
}
// A fiber's first stack: the registers emu_ctx_switch pops (MXCSR and the
// x87 control word at their defaults, the rest zero), then emu_fiber_entry
// as the return address, then a null one above it, so emu_fiber_entry
// starts as if called (its stack pointer 8 past a 16-byte boundary).
inline void *emu_fiber_stack(char *base, size_t size) {
  emu_asan_fresh(base, size);
  uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = 0;                                  // emu_fiber_entry's return address: none
  *--sp = (uint64_t)(uintptr_t)&emu_fiber_entry;
  for (int i = 0; i < 6; i++) *--sp = 0;      // rbp, rbx, r12–r15
  *--sp = (uint64_t)0x037f << 32 | 0x1f80;    // MXCSR (low 4 bytes), x87 control word
  return sp;
}
#else
inline void emu_fiber_main() {
  (*emu_body)();
  emu_fibers[emu_cur].done = true;  // then back to the scheduler (uc_link)
}
#endif
// The fibers' stacks, kept from launch to launch (their touched pages stay
// mapped): 256 KB each above a page that faults, so an overflow stops the
// process instead of writing over the heap.
constexpr size_t emu_stack_size = 256 << 10, emu_guard = 4096;
inline std::vector<char *> emu_stacks;
inline char *emu_new_stack() {
  void *m = mmap(nullptr, emu_stack_size + emu_guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m, emu_guard, PROT_NONE) != 0) {
    fprintf(stderr, "cuda emulation: no memory for a fiber's stack\n");
    abort();
  }
  return (char *)m + emu_guard;
}
// The order the scheduler resumes a block's threads in: ascending on even
// launches, descending on odd ones, so a missing barrier shows whichever
// of two threads writes and which reads (in one fixed order, a read by a
// later thread would always find the earlier one's write).
inline uint64_t emu_launches;
inline void emu_launch(unsigned gx, unsigned gy, unsigned bd, size_t smem, const std::function<void()> &f) {
  gridDim = {gx, gy, 1};
  blockDim = {bd, 1, 1};
  emu_body = &f;
  const bool down = emu_launches++ & 1;
  while (emu_stacks.size() < bd) emu_stacks.push_back(emu_new_stack());
  std::unique_ptr<unsigned char[]> buf(new unsigned char[smem + 16]);
  emu_smem = (unsigned char *)(((uintptr_t)buf.get() + 15) & ~(uintptr_t)15);
  std::unique_ptr<EmuWarp[]> warps(new EmuWarp[bd / 32]);
  for (unsigned by = 0; by < gy; by++)
    for (unsigned bx = 0; bx < gx; bx++) {
      blockIdx = {bx, by, 0};
      memset(emu_smem, 0xff, smem);
      EmuBarrier block{bd};
      emu_block_bar = &block;
      // A fresh barrier a warp; its slots are written before they are read.
      for (unsigned w = 0; w < bd / 32; w++) warps[w].bar = EmuBarrier{32};
      emu_warps = warps.get();
      emu_fibers.assign(bd, EmuFiber{});
      emu_copies.assign(bd, EmuCopies{});
      for (unsigned t = 0; t < bd; t++) {
#if EMU_FAST_SWITCH
        emu_fibers[t].sp = emu_fiber_stack(emu_stacks[t], emu_stack_size);
#else
        ucontext_t &c = emu_fibers[t].ctx;
        getcontext(&c);
        c.uc_stack.ss_sp = emu_stacks[t];
        c.uc_stack.ss_size = emu_stack_size;
        c.uc_link = &emu_sched;
        makecontext(&c, emu_fiber_main, 0);
#endif
      }
      for (unsigned live = bd; live > 0;) {
        const uint64_t before = emu_progress;
        for (unsigned i = 0; i < bd; i++) {
          const unsigned t = down ? bd - 1 - i : i;
          if (emu_fibers[t].done || emu_blocked(emu_fibers[t])) continue;
          emu_cur = t, threadIdx = {t, 0, 0};
#if EMU_FAST_SWITCH
          emu_asan_to(emu_stacks[t], emu_stack_size);
          emu_ctx_switch(&emu_sched_sp, emu_fibers[t].sp);
          emu_asan_back();
#else
          swapcontext(&emu_sched, &emu_fibers[t].ctx);
#endif
          if (emu_fibers[t].done) live--, emu_progress++;
        }
        if (live > 0 && emu_progress == before) {
          fprintf(stderr,
                  "cuda emulation: deadlock in block (%u, %u) of %u threads: %u wait at a barrier the others "
                  "left (a return or branch before __syncthreads or a warp collective)\n",
                  bx, by, bd, live);
          abort();
        }
      }
    }
}
