package gguf_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"distill/core/gguf"
)

// ggufTensor is one tensor as a GGUF file lists it: its name, dims
// (innermost first), type and bytes.
type ggufTensor struct {
	Name string
	Dims []uint64
	Type gguf.Type
	Data []byte
}

// readGGUF reads the tensors of a GGUF file back, skipping the metadata
// (its values are checked by llama.cpp reading the file). It is the tests'
// own reader, written from gguf.h's layout, not the writer's code.
func readGGUF(t *testing.T, path string) []ggufTensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &ggufReader{b: b}
	if string(r.next(4)) != "GGUF" || r.u32() != 3 {
		t.Fatalf("%s: not a GGUF v3 file", path)
	}
	nTensors, nKV := r.u64(), r.u64()
	align := uint64(32)
	for range nKV {
		key := r.str()
		v := r.value(r.u32())
		if key == "general.alignment" {
			align = uint64(v.(uint32))
		}
	}
	tensors := make([]ggufTensor, nTensors)
	offsets := make([]uint64, nTensors)
	for i := range tensors {
		tensors[i].Name = r.str()
		tensors[i].Dims = make([]uint64, r.u32())
		for d := range tensors[i].Dims {
			tensors[i].Dims[d] = r.u64()
		}
		tensors[i].Type = gguf.Type(r.u32())
		offsets[i] = r.u64()
	}
	if r.err != nil {
		t.Fatalf("%s: %v", path, r.err)
	}
	start := (uint64(r.off) + align - 1) / align * align
	for i := range tensors {
		ti := &tensors[i]
		size, err := tensorBytes(ti.Type, ti.Dims)
		if err != nil {
			t.Fatalf("%s: tensor %s: %v", path, ti.Name, err)
		}
		lo := start + offsets[i]
		if lo+size > uint64(len(b)) {
			t.Fatalf("%s: tensor %s runs past the end of the file", path, ti.Name)
		}
		ti.Data = b[lo : lo+size]
	}
	return tensors
}

// tensorBytes is ggml's size for a tensor: ggml-common.h's block sizes.
func tensorBytes(t gguf.Type, dims []uint64) (uint64, error) {
	blocks := map[gguf.Type][2]uint64{ // weights, bytes
		gguf.F32: {1, 4}, gguf.F16: {1, 2}, gguf.BF16: {1, 2}, gguf.Q8_0: {32, 34}, gguf.Q5_0: {32, 22},
		gguf.Q4_K: {256, 144}, gguf.Q5_K: {256, 176}, gguf.Q6_K: {256, 210},
	}
	blk, ok := blocks[t]
	if !ok || dims[0]%blk[0] != 0 {
		return 0, fmt.Errorf("type %s with rows of %d", t, dims[0])
	}
	n := dims[0] / blk[0] * blk[1]
	for _, d := range dims[1:] {
		n *= d
	}
	return n, nil
}

type ggufReader struct {
	b   []byte
	off int
	err error
}

func (r *ggufReader) next(n int) []byte {
	if r.err != nil || r.off+n > len(r.b) {
		r.err = fmt.Errorf("truncated at byte %d", r.off)
		return make([]byte, n)
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *ggufReader) u32() uint32 { return binary.LittleEndian.Uint32(r.next(4)) }
func (r *ggufReader) u64() uint64 { return binary.LittleEndian.Uint64(r.next(8)) }
func (r *ggufReader) str() string { return string(r.next(int(r.u64()))) }

// value reads one metadata value of gguf_type typ.
func (r *ggufReader) value(typ uint32) any {
	sizes := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	switch typ {
	case 4:
		return r.u32()
	case 8:
		return r.str()
	case 9:
		et, n := r.u32(), r.u64()
		for range n {
			r.value(et)
		}
		return nil
	}
	n, ok := sizes[typ]
	if !ok {
		r.err = fmt.Errorf("unknown metadata type %d at byte %d", typ, r.off)
		return nil
	}
	r.next(n)
	return nil
}
