//go:build cgo

package tensor

/*
#cgo CFLAGS: -O3 -std=gnu11
#include "kernels.h"
*/
import "C"

import (
	"os"
	"unsafe"
)

// haveBF16Dot says whether this CPU has AVX-512 BF16's dot products.
var haveBF16Dot = C.dt_have_bf16() != 0

// haveAMX says whether the bf16 GEMM runs its blocks of 32 rows on AMX
// tiles: the CPU has AMX-BF16, Linux granted this process the tile state,
// and DISTILL_NO_AMX is unset (a switch for comparing the two kernels).
var haveAMX = os.Getenv("DISTILL_NO_AMX") == "" && C.dt_amx_init() != 0

// useAMX turns the tiles on or off (on only where haveAMX), returning the
// previous setting: tests run both kernels on one machine.
func useAMX(on bool) bool { return C.dt_amx_use(cbool(on && haveAMX)) != 0 }

// amxActive reads the switch useAMX sets.
func amxActive() bool { return C.dt_amx_active() != 0 }

// bf16PackLen is the uint16 scratch gemmBF16NT packs a strip of b into.
var bf16PackLen = int(C.dt_gemm_bf16_pack_len())

func u16p(s []uint16) *C.uint16_t { return (*C.uint16_t)(unsafe.Pointer(unsafe.SliceData(s))) }

// bf16Cols sets dst (k rows, ldd ≥ m apart) to src (m rows of k, lds
// apart) transposed and rounded to bf16, each row zero from m to ldd.
func bf16Cols(dst []uint16, ldd int, src []float32, lds, m, k int) {
	if m == 0 || k == 0 {
		return
	}
	if ldd < m {
		panic("tensor: bf16Cols' rows are shorter than its columns")
	}
	_ = dst[(k-1)*ldd+ldd-1]
	_ = src[(m-1)*lds+k-1]
	C.dt_bf16_cols(u16p(dst), C.int64_t(ldd), f32p(src), C.int64_t(lds), C.int64_t(m), C.int64_t(k))
}

// bf16Rows sets the m rows of dst (ldd apart) to bf16(src's m rows of k,
// lds apart), zero from k up to ldd.
func bf16Rows(dst []uint16, ldd int, src []float32, lds, m, k int) {
	if m == 0 {
		return
	}
	_ = dst[(m-1)*ldd+ldd-1]
	_ = src[(m-1)*lds+k-1]
	C.dt_bf16_rows(u16p(dst), C.int64_t(ldd), f32p(src), C.int64_t(lds), C.int64_t(m), C.int64_t(k))
}

// gemmBF16 sets c(m, n) = a(m, k) · op(b), or adds it to c with acc: op(b)
// is b(n, k)ᵀ, or with bkn b(k, n). a is bf16 with rows lda (even) apart,
// finite past an odd k (the kernel multiplies that value by zero), b bf16 bytes with rows of ldb values, c f32 with rows ldc
// apart. pack is a scratch of bf16PackLen.
func gemmBF16(c []float32, ldc int, a []uint16, lda int, b []byte, ldb int, m, n, k int, bkn, acc bool, pack []uint16) {
	if m == 0 || n == 0 {
		return
	}
	if lda&1 != 0 || lda < k || !haveBF16Dot {
		panic("tensor: gemmBF16 needs AVX-512 BF16 and a's rows padded to an even length")
	}
	_ = a[(m-1)*lda+(k+1)&^1-1] // an odd k's pair reads the pad after it
	if bkn {
		_ = b[2*((k-1)*ldb+n)-1]
	} else {
		_ = b[2*((n-1)*ldb+k)-1]
	}
	_ = c[(m-1)*ldc+n-1]
	_ = pack[bf16PackLen-1]
	C.dt_gemm_bf16(f32p(c), C.int64_t(ldc), u16p(a), C.int64_t(lda),
		(*C.uint16_t)(unsafe.Pointer(unsafe.SliceData(b))), C.int64_t(ldb),
		C.int64_t(m), C.int64_t(n), C.int64_t(k), cbool(bkn), cbool(acc), u16p(pack))
}

// roundBF16InPlace rounds v's values to bf16 precision in place.
func roundBF16InPlace(v []float32) {
	if len(v) > 0 {
		C.dt_bf16_round(f32p(v), C.int64_t(len(v)))
	}
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
