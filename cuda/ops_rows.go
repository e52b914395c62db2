//go:build cuda

package cuda

/*
#include "distill_cuda.h"
*/
import "C"

// GatherRows sets dst(k, d) to rows idx (i32, k) of src. Indices must be
// rows of src: check them on the host.
func (d *Device) GatherRows(dst, src, idx *Buffer, k, dim int) error {
	if err := check("gather_rows").buf("dst", dst, F32, k*dim).buf("src", src, F32, dim).buf("idx", idx, I32, k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_gather_rows((*C.float)(dst.ptr), (*C.float)(src.ptr), (*C.int32_t)(idx.ptr), C.int(k), C.int(dim))
	})
}

// ScatterRows sets rows idx (i32, k) of dst to src(k, d).
func (d *Device) ScatterRows(dst, src, idx *Buffer, k, dim int) error {
	if err := check("scatter_rows").buf("dst", dst, F32, dim).buf("src", src, F32, k*dim).buf("idx", idx, I32, k).err; err != nil {
		return err
	}
	return call(func() C.int {
		return C.dc_scatter_rows((*C.float)(dst.ptr), (*C.float)(src.ptr), (*C.int32_t)(idx.ptr), C.int(k), C.int(dim))
	})
}
