package tensor

import (
	"fmt"
	"unsafe"
)

// Tensor is a dense, row-major, little-endian tensor. Data may be a view into
// a memory-mapped file: weights stay at the checkpoint's precision and are
// widened to f32 only inside kernels, a row or a tile at a time.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// New allocates a zeroed tensor.
func New(name string, dt DType, shape ...int) *Tensor {
	t := &Tensor{Name: name, DType: dt, Shape: append([]int(nil), shape...)}
	t.Data = make([]byte, t.Elems()*dt.Size())
	return t
}

// FromF32 wraps a float32 slice (no copy).
func FromF32(name string, v []float32, shape ...int) *Tensor {
	t := &Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...)}
	if len(v) > 0 {
		t.Data = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
	}
	return t
}

// Elems is the product of the shape.
func (t *Tensor) Elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows and Cols view the tensor as a matrix [Rows, Cols] (the last dim is Cols).
func (t *Tensor) Rows() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Elems() / t.Cols()
}

func (t *Tensor) Cols() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[len(t.Shape)-1]
}

// F32s views an F32 tensor's data as []float32 (no copy).
func (t *Tensor) F32s() []float32 {
	if t.DType != F32 {
		panic("tensor: F32s on " + t.DType.String() + " tensor " + t.Name)
	}
	if len(t.Data) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), len(t.Data)/4)
}

// U16s views a 16-bit tensor's data as []uint16 (no copy).
func (t *Tensor) U16s() []uint16 {
	if t.DType.Size() != 2 {
		panic("tensor: U16s on " + t.DType.String() + " tensor " + t.Name)
	}
	if len(t.Data) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&t.Data[0])), len(t.Data)/2)
}

// RowF32 widens row i of the matrix view into dst (len Cols).
func (t *Tensor) RowF32(i int, dst []float32) {
	c := t.Cols()
	ToF32(dst[:c], t.DType, t.Data[i*c*t.DType.Size():(i+1)*c*t.DType.Size()])
}

// ToF32 returns a widened f32 copy of the whole tensor; for small tensors
// (norm weights, biases) only.
func (t *Tensor) ToF32() []float32 {
	out := make([]float32, t.Elems())
	ToF32(out, t.DType, t.Data)
	return out
}

// ToF32 widens n = len(dst) elements of src (raw bytes at dtype dt) into dst.
func ToF32(dst []float32, dt DType, src []byte) {
	if len(src) < len(dst)*dt.Size() {
		panic(fmt.Sprintf("tensor: ToF32 needs %d bytes, has %d", len(dst)*dt.Size(), len(src)))
	}
	if len(dst) == 0 {
		return
	}
	widen(dst, dt, src)
}
