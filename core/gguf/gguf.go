// Package gguf writes GGUF files, the single-file model format of llama.cpp
// and Ollama: a header, typed metadata (architecture, hyper-parameters,
// tokenizer, chat template), tensor descriptions, then the tensors' bytes,
// each at an aligned offset. Version 3, little-endian, as ggml's gguf.h
// defines it.
package gguf

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// magic and version open every file.
const (
	magic     = "GGUF"
	version   = 3
	alignment = 32 // general.alignment's default; tensor data offsets are multiples of it
)

// Type is a ggml tensor type (ggml.h's enum ggml_type).
type Type uint32

// The tensor types this package writes. The quantised ones are ggml's block
// layouts (ggml-common.h): Q8_0 and Q5_0 in blocks of 32 weights, the
// K-quants in super-blocks of 256 (kquant_*.go, q5_0.go).
const (
	F32  Type = 0
	F16  Type = 1
	Q5_0 Type = 6
	Q8_0 Type = 8
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	BF16 Type = 30
)

// String is ggml's name for the type (ggml_type_name), as llama.cpp's
// tools print it.
func (t Type) String() string {
	switch t {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case Q5_0:
		return "q5_0"
	case Q8_0:
		return "q8_0"
	case Q4_K:
		return "q4_K"
	case Q5_K:
		return "q5_K"
	case Q6_K:
		return "q6_K"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// Block sizes: weights per block, and the bytes one block takes.
const (
	q8Block = 32  // Q8_0: f16 scale, 32 int8
	q5Block = 32  // Q5_0: f16 scale, 32 fifth bits, 32 nibbles
	qkK     = 256 // a K-quant super-block (ggml's QK_K)

	q8Bytes  = 2 + q8Block
	q5Bytes  = 2 + 4 + q5Block/2
	q4KBytes = 2 + 2 + 12 + qkK/2         // block_q4_K: d, dmin, 6-bit scales and mins, nibbles
	q5KBytes = 2 + 2 + 12 + qkK/8 + qkK/2 // block_q5_K: as q4_K, and the fifth bits
	q6KBytes = qkK/2 + qkK/4 + qkK/16 + 2 // block_q6_K: low nibbles, high 2 bits, int8 scales, d
)

// block is how many weights one block of t holds and the bytes it takes
// (1 and the element size for the unblocked types).
func (t Type) block() (weights, bytes int) {
	switch t {
	case F32:
		return 1, 4
	case F16, BF16:
		return 1, 2
	case Q5_0:
		return q5Block, q5Bytes
	case Q8_0:
		return q8Block, q8Bytes
	case Q4_K:
		return qkK, q4KBytes
	case Q5_K:
		return qkK, q5KBytes
	case Q6_K:
		return qkK, q6KBytes
	}
	return 0, 0
}

// rowBytes is the size of one row of n elements, or an error when the row
// cannot be stored at t (the quantised types need whole blocks).
func (t Type) rowBytes(n int) (int, error) {
	w, b := t.block()
	switch {
	case w == 0:
		return 0, fmt.Errorf("cannot store %s", t)
	case n%w != 0:
		return 0, fmt.Errorf("a row of %d is not a multiple of %s's block of %d", n, t, w)
	}
	return n / w * b, nil
}

// valueType tags a metadata value (gguf.h's enum gguf_type).
type valueType uint32

const (
	tUint32  valueType = 4
	tInt32   valueType = 5
	tFloat32 valueType = 6
	tBool    valueType = 7
	tString  valueType = 8
	tArray   valueType = 9
)

// KV is one metadata entry. Value is uint32, int32, float32, bool, string,
// []string, []int32 or []float32.
type KV struct {
	Key   string
	Value any
}

// TensorInfo describes one tensor: its GGUF name, its shape in ggml's order
// (innermost first: a (rows, cols) matrix is {cols, rows}), the type it is
// stored at, and Write, which must write exactly its bytes.
type TensorInfo struct {
	Name  string
	Dims  []uint64
	Type  Type
	Write func(w io.Writer) error
}

// Size is the number of bytes the tensor's data takes.
func (ti *TensorInfo) Size() (int64, error) {
	if len(ti.Dims) == 0 {
		return 0, fmt.Errorf("tensor %s has no dimensions", ti.Name)
	}
	row, err := ti.Type.rowBytes(int(ti.Dims[0]))
	if err != nil {
		return 0, fmt.Errorf("tensor %s: %v", ti.Name, err)
	}
	n := int64(row)
	for _, d := range ti.Dims[1:] {
		n *= int64(d)
	}
	return n, nil
}

// WriteFile writes a GGUF file at path: the header, kvs in the order given,
// the tensor descriptions and then each tensor's data through its Write,
// padded to the alignment. The file appears at path only when complete
// (written beside it and renamed), so an error leaves no half file behind;
// cancelling ctx (the user's Ctrl-C) stops at the tensor data's next write
// (a few MB: a quantised matrix can take seconds) and removes what was
// written.
func WriteFile(ctx context.Context, path string, kvs []KV, tensors []TensorInfo) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(ctx, f, kvs, tensors); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func write(ctx context.Context, out io.Writer, kvs []KV, tensors []TensorInfo) error {
	w := &binWriter{w: bufio.NewWriterSize(out, 1<<20)}
	w.raw([]byte(magic))
	w.u32(version)
	w.u64(uint64(len(tensors)))
	w.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		w.str(kv.Key)
		if err := w.value(kv.Value); err != nil {
			return fmt.Errorf("metadata %s: %v", kv.Key, err)
		}
	}
	sizes := make([]int64, len(tensors))
	var off int64
	for i := range tensors {
		ti := &tensors[i]
		n, err := ti.Size()
		if err != nil {
			return err
		}
		sizes[i] = n
		w.str(ti.Name)
		w.u32(uint32(len(ti.Dims)))
		for _, d := range ti.Dims {
			w.u64(d)
		}
		w.u32(uint32(ti.Type))
		w.u64(uint64(off))
		off = alignUp(off+n, alignment)
	}
	w.pad()
	w.ctx = ctx // the data: each write checks it
	for i := range tensors {
		ti := &tensors[i]
		if w.err != nil {
			return w.err
		}
		start := w.n
		if err := ti.Write(w); err != nil {
			return fmt.Errorf("tensor %s: %w", ti.Name, err)
		}
		if got := w.n - start; got != sizes[i] && w.err == nil {
			return fmt.Errorf("tensor %s: wrote %d bytes, its type and shape take %d", ti.Name, got, sizes[i])
		}
		w.pad()
	}
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// binWriter writes little-endian values, counts the bytes and keeps the
// first error.
type binWriter struct {
	w   *bufio.Writer
	ctx context.Context // when set, a cancelled one fails the next write
	n   int64
	err error
	b   [8]byte
}

func (w *binWriter) Write(p []byte) (int, error) {
	if w.err == nil && w.ctx != nil {
		w.err = w.ctx.Err()
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.err = err
	return n, err
}

func (w *binWriter) raw(p []byte) { w.Write(p) }
func (w *binWriter) u32(v uint32) { binary.LittleEndian.PutUint32(w.b[:4], v); w.Write(w.b[:4]) }
func (w *binWriter) u64(v uint64) { binary.LittleEndian.PutUint64(w.b[:8], v); w.Write(w.b[:8]) }
func (w *binWriter) str(s string) { w.u64(uint64(len(s))); w.Write([]byte(s)) }

// pad writes zeros up to the next multiple of the alignment.
func (w *binWriter) pad() {
	var zero [alignment]byte
	if r := w.n % alignment; r != 0 {
		w.Write(zero[:alignment-r])
	}
}

func (w *binWriter) value(v any) error {
	switch v := v.(type) {
	case uint32:
		w.u32(uint32(tUint32))
		w.u32(v)
	case int32:
		w.u32(uint32(tInt32))
		w.u32(uint32(v))
	case float32:
		w.u32(uint32(tFloat32))
		w.u32(math.Float32bits(v))
	case bool:
		w.u32(uint32(tBool))
		b := byte(0)
		if v {
			b = 1
		}
		w.Write([]byte{b})
	case string:
		w.u32(uint32(tString))
		w.str(v)
	case []string:
		w.u32(uint32(tArray))
		w.u32(uint32(tString))
		w.u64(uint64(len(v)))
		for _, s := range v {
			w.str(s)
		}
	case []int32:
		w.u32(uint32(tArray))
		w.u32(uint32(tInt32))
		w.u64(uint64(len(v)))
		for _, x := range v {
			w.u32(uint32(x))
		}
	case []float32:
		w.u32(uint32(tArray))
		w.u32(uint32(tFloat32))
		w.u64(uint64(len(v)))
		for _, x := range v {
			w.u32(math.Float32bits(x))
		}
	default:
		return fmt.Errorf("unsupported value type %T", v)
	}
	return nil
}
