package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"unsafe"

	"distill/core/atomicfile"
	"distill/core/tensor"
)

// maxHeader bounds the JSON header so a corrupt length cannot make us
// allocate gigabytes (the reference implementation uses 100 MB too).
const maxHeader = 100 << 20

// SafetensorsFile is one memory-mapped .safetensors file. Tensors returned by
// it are views into the mapping: valid until Close.
type SafetensorsFile struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]*tensor.Tensor
	mapping  []byte
}

type stEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// OpenSafetensors maps path and validates every entry of its header against
// the file's size, so a truncated or inconsistent file fails here, naming the
// tensor, instead of faulting later.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file (%d bytes; need at least an 8-byte header length)", path, size)
	}
	var lenBuf [8]byte
	if _, err := f.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%s: read header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || int64(n) > size-8 {
		return nil, fmt.Errorf("%s: header length %d exceeds the file (%d bytes): file is truncated or not safetensors", path, n, size)
	}
	hdr := make([]byte, n)
	if _, err := f.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%s: read header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%s: header is not valid JSON: %v", path, err)
	}
	dataLen := size - 8 - int64(n)
	sf := &SafetensorsFile{Path: path, tensors: map[string]*tensor.Tensor{}}
	type span struct {
		name   string
		lo, hi int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("%s: __metadata__ must map strings to strings: %v", path, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %v", path, name, err)
		}
		dt, err := tensor.ParseDType(e.DType)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %v", path, name, err)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] {
			return nil, fmt.Errorf("%s: tensor %q: bad data_offsets %v", path, name, e.Offsets)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("%s: tensor %q: negative dimension in shape %v", path, name, e.Shape)
			}
			if d > 0 && elems > dataLen/int64(d) { // more elements than the file has bytes: no multiplication wraps around
				return nil, fmt.Errorf("%s: tensor %q: shape %v holds more elements than the file has bytes (%d): the header is corrupt (re-download or re-export it)", path, name, e.Shape, dataLen)
			}
			elems *= int64(d)
		}
		if want := elems * int64(dt.Size()); e.Offsets[1]-e.Offsets[0] != want {
			return nil, fmt.Errorf("%s: tensor %q: shape %v %s needs %d bytes but data_offsets span %d", path, name, e.Shape, e.DType, want, e.Offsets[1]-e.Offsets[0])
		}
		if e.Offsets[1] > dataLen {
			return nil, fmt.Errorf("%s: tensor %q: data ends at byte %d but the file holds only %d data bytes: file is truncated (re-download or re-export it)", path, name, e.Offsets[1], dataLen)
		}
		spans = append(spans, span{name, e.Offsets[0], e.Offsets[1]})
		sf.tensors[name] = &tensor.Tensor{Name: name, DType: dt, Shape: e.Shape}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi {
			return nil, fmt.Errorf("%s: tensors %q and %q overlap in the file", path, spans[i-1].name, spans[i].name)
		}
	}
	if size > 0 {
		sf.mapping, err = syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("%s: mmap: %w", path, err)
		}
	}
	base := 8 + int64(n)
	for _, s := range spans {
		sf.tensors[s.name].Data = sf.mapping[base+s.lo : base+s.hi : base+s.hi]
	}
	return sf, nil
}

// Tensor returns the named tensor or nil.
func (s *SafetensorsFile) Tensor(name string) *tensor.Tensor { return s.tensors[name] }

// Names lists the tensors in the file, sorted.
func (s *SafetensorsFile) Names() []string {
	names := make([]string, 0, len(s.tensors))
	for n := range s.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unmaps the file; tensors from it must not be used afterwards.
func (s *SafetensorsFile) Close() error {
	if s.mapping == nil {
		return nil
	}
	err := syscall.Munmap(s.mapping)
	s.mapping = nil
	return err
}

// WriteSafetensors writes tensors (sorted by name, 8-byte aligned header) to
// path atomically: a temporary file renamed into place, so a crash never
// leaves a half-written checkpoint under the final name.
func WriteSafetensors(path string, tensors []*tensor.Tensor, metadata map[string]string) error {
	ts := append([]*tensor.Tensor(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range ts {
		if _, dup := hdr[t.Name]; dup {
			return fmt.Errorf("write %s: tensor %q given twice", path, t.Name)
		}
		if want := t.Elems() * t.DType.Size(); len(t.Data) != want {
			return fmt.Errorf("write %s: tensor %q has %d bytes, shape %v %s needs %d", path, t.Name, len(t.Data), t.Shape, t.DType, want)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = stEntry{DType: t.DType.String(), Shape: shape, Offsets: []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	fail := func(err error) error { f.Close(); os.Remove(tmp); return fmt.Errorf("write %s: %w", path, err) }
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := f.Write(lenBuf[:]); err != nil {
		return fail(err)
	}
	if _, err := f.Write(js); err != nil {
		return fail(err)
	}
	for _, t := range ts {
		if _, err := f.Write(t.Data); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path)) // the rename itself, on disk
}

// EvictPages tells the kernel that the memory-mapped bytes b are not needed
// for now, dropping them from the resident set (they fault back in from the
// file if read again). Used once a layer's weights have been quantised, so
// the full-precision base is never resident for more than a layer.
func EvictPages(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	lo := (start + page - 1) &^ (page - 1)
	hi := (start + uintptr(len(b))) &^ (page - 1)
	if hi <= lo {
		return
	}
	syscall.Madvise(b[lo-start:hi-start], syscall.MADV_DONTNEED)
}
