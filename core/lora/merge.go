package lora

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"

	"distill/core/model"
	"distill/core/tensor"
)

// KeepDType asks Merge to store every tensor at the dtype the base
// checkpoint stores it in.
const KeepDType tensor.DType = 0xff

// MergedWeight returns W' = W + s·B·A (out, in) in f32, computed row by row
// from w (out, in) at any dtype. It panics if w's shape is not p's.
func MergedWeight(w *tensor.Tensor, p *Pair, s float32) *tensor.Tensor {
	if len(w.Shape) != 2 || w.Shape[0] != p.Out || w.Shape[1] != p.In {
		panic(fmt.Sprintf("lora: MergedWeight of %s %v with a (in %d, out %d) pair", w.Name, w.Shape, p.In, p.Out))
	}
	out := tensor.New(w.Name, tensor.F32, p.Out, p.In)
	mergeRows(out.F32s(), w, p, s, 0, p.Out)
	return out
}

// mergeRows writes rows [r0, r1) of W + s·B·A into dst ((r1-r0), in):
// dst[o] = W[o] + s · Σ_k B[o,k]·A[k], the product accumulated in f32 before
// scaling, as PEFT's delta_weight = (B @ A) · scaling. Rows are split over
// the cores.
func mergeRows(dst []float32, w *tensor.Tensor, p *Pair, s float32, r0, r1 int) {
	in, r := p.In, len(p.A)/p.In
	n := r1 - r0
	workers := min(runtime.GOMAXPROCS(0), n)
	if n*in*(r+1) < 1<<16 {
		workers = 1
	}
	var wg sync.WaitGroup
	for wk := range workers {
		lo, hi := r0+n*wk/workers, r0+n*(wk+1)/workers
		wg.Go(func() {
			acc := make([]float32, in) // (in) B[o]·A
			for o := lo; o < hi; o++ {
				row := dst[(o-r0)*in : (o-r0+1)*in]
				w.RowF32(o, row)
				clear(acc)
				for k, b := range p.B[o*r : (o+1)*r] {
					if b == 0 {
						continue
					}
					ak := p.A[k*in : (k+1)*in]
					for i, av := range ak {
						acc[i] += b * av
					}
				}
				for i, d := range acc {
					row[i] += s * d
				}
			}
		})
	}
	wg.Wait()
}

// Merge writes a HF model folder at outDir holding m with a folded in:
// W' = W + s·B·A for every targeted projection (computed in f32), every other
// tensor copied, into one model.safetensors; config.json,
// generation_config.json, the tokenizer files and every other non-weight
// file of m.Dir are copied as they are.
//
// dt is the stored dtype: KeepDType keeps each tensor's own (the merged
// projections rounded to the base's dtype, everything else byte for byte).
// Another dtype converts every tensor, not only the merged ones, and
// config.json's torch_dtype says so: a checkpoint of one dtype is what HF
// loaders expect (with torch_dtype="auto" they would round f32 projections
// back to the config's bf16 anyway).
//
// The base is read through its memory map and written one tensor at a time
// (merged ones a block of rows at a time): never the whole model in f32. The
// folder appears at outDir only when complete; outDir must not exist or be
// empty.
func Merge(m *model.Model, a *Adapter, outDir string, dt tensor.DType) error {
	if err := a.Config.Validate(); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if err := a.Matches(m); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if dt != KeepDType && dt != tensor.F32 && dt != tensor.BF16 && dt != tensor.F16 {
		return fmt.Errorf("merge: dtype %s is not supported (F32, BF16, F16, or KeepDType)", dt)
	}
	if same, err := sameDir(outDir, m.Dir); err != nil {
		return fmt.Errorf("merge: %w", err)
	} else if same {
		return fmt.Errorf("merge: output folder %s is the base model's folder: choose another", outDir)
	}
	if err := checkEmptyOrAbsent(outDir); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	src, err := OpenMerged(m, a)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer src.Close()

	tmp, err := tempDirFor(outDir)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := writeMerged(filepath.Join(tmp, "model.safetensors"), src, dt); err != nil {
		return fmt.Errorf("merge into %s: %w", outDir, err)
	}
	if err := copyAux(m.Dir, tmp, dt); err != nil {
		return fmt.Errorf("merge into %s: %w", outDir, err)
	}
	if err := replaceDir(tmp, outDir, false); err != nil {
		return fmt.Errorf("merge into %s: %w", outDir, err)
	}
	return nil
}

// Merged is a base checkpoint's tensors with an adapter folded in: W + s·B·A
// for every projection the adapter targets, every other tensor as stored.
// Rows are computed on demand from the memory map, so no full-precision
// copy of the model is ever held.
type Merged struct {
	src   *checkpoint
	pairs map[string]*Pair // HF tensor name → the adapter's pair for it
	s     float32
}

// OpenMerged opens m's checkpoint files afresh (every tensor, used by the
// forward or not) with a folded in; a nil a gives the base alone.
func OpenMerged(m *model.Model, a *Adapter) (*Merged, error) {
	src, err := openCheckpoint(m.Dir)
	if err != nil {
		return nil, err
	}
	c := &Merged{src: src, pairs: map[string]*Pair{}}
	if a == nil {
		return c, nil
	}
	c.s = a.Config.Scaling()
	for l, layer := range a.Layers {
		for i, p := range layer {
			if p == nil {
				continue
			}
			name := fmt.Sprintf("model.layers.%d.%s.%s.weight", l, block(i), Modules[i])
			t := src.tensors[name]
			if t == nil {
				src.close()
				return nil, fmt.Errorf("base checkpoint %s has no tensor %q", m.Dir, name)
			}
			if len(t.Shape) != 2 || t.Shape[0] != p.Out || t.Shape[1] != p.In {
				src.close()
				return nil, fmt.Errorf("base tensor %q has shape %v, the adapter expects [%d %d]", name, t.Shape, p.Out, p.In)
			}
			c.pairs[name] = p
		}
	}
	return c, nil
}

// Close releases the checkpoint's memory maps.
func (c *Merged) Close() { c.src.close() }

// Names lists every tensor, sorted.
func (c *Merged) Names() []string { return sortedNames(c.src.tensors) }

// Tensor is the stored tensor of that name (shape and dtype), nil if none.
func (c *Merged) Tensor(name string) *tensor.Tensor { return c.src.tensors[name] }

// Changed says whether the adapter is folded into the named tensor.
func (c *Merged) Changed(name string) bool { return c.pairs[name] != nil }

// Rows writes rows [r0, r1) of the named tensor, the adapter folded in, as
// f32 into dst; a 1-D tensor's elements are its rows.
func (c *Merged) Rows(name string, dst []float32, r0, r1 int) {
	t := c.src.tensors[name]
	if p := c.pairs[name]; p != nil {
		mergeRows(dst, t, p, c.s, r0, r1)
		return
	}
	cols := 1
	if len(t.Shape) > 1 {
		cols = t.Elems() / t.Shape[0]
	}
	es := t.DType.Size()
	tensor.ToF32(dst[:(r1-r0)*cols], t.DType, t.Data[r0*cols*es:r1*cols*es])
}

// checkpoint is a base model's safetensors files, opened afresh (Model keeps
// its own files private) so every tensor, used by the forward or not, is
// carried into the merged folder.
type checkpoint struct {
	files    []*model.SafetensorsFile
	tensors  map[string]*tensor.Tensor
	metadata map[string]string
}

func (c *checkpoint) close() {
	for _, f := range c.files {
		f.Close()
	}
}

func openCheckpoint(dir string) (*checkpoint, error) {
	c := &checkpoint{tensors: map[string]*tensor.Tensor{}}
	var paths []string
	index := filepath.Join(dir, "model.safetensors.index.json")
	if single := filepath.Join(dir, "model.safetensors"); isFile(single) {
		paths = []string{single}
	} else if b, err := os.ReadFile(index); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("%s: %v", index, err)
		}
		shards := map[string]bool{}
		for _, s := range idx.WeightMap {
			shards[s] = true
		}
		for _, s := range sortedNames(shards) {
			if filepath.Base(s) != s {
				return nil, fmt.Errorf("%s: shard name %q must be a file in the model folder", index, s)
			}
			paths = append(paths, filepath.Join(dir, s))
		}
	} else {
		return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", dir)
	}
	for _, p := range paths {
		f, err := model.OpenSafetensors(p)
		if err != nil {
			c.close()
			return nil, err
		}
		c.files = append(c.files, f)
		if c.metadata == nil {
			c.metadata = f.Metadata
		}
		for _, n := range f.Names() {
			if _, dup := c.tensors[n]; dup {
				c.close()
				return nil, fmt.Errorf("%s: tensor %q is also in another shard", p, n)
			}
			c.tensors[n] = f.Tensor(n)
		}
	}
	return c, nil
}

// writeMerged streams one safetensors file: the header (every tensor's name,
// dtype, shape and offsets are known up front), then each tensor's bytes in
// name order, as model.WriteSafetensors lays them out.
func writeMerged(path string, c *Merged, dt tensor.DType) error {
	src := c.src
	names := sortedNames(src.tensors)
	type entry struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	outDT := func(t *tensor.Tensor) tensor.DType {
		if dt == KeepDType {
			return t.DType
		}
		return dt
	}
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, n := range names {
		t := src.tensors[n]
		size := int64(t.Elems() * outDT(t).Size())
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[n] = entry{outDT(t).String(), shape, []int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	w.Write(lenBuf[:])
	w.Write(js)

	const chunk = 1 << 20 // f32 values widened at a time (4 MiB)
	f32 := make([]float32, chunk)
	var raw []byte
	for _, n := range names {
		t := src.tensors[n]
		odt := outDT(t)
		if p := c.pairs[n]; p != nil {
			rows := max(1, chunk/p.In)
			for r0 := 0; r0 < p.Out; r0 += rows {
				r1 := min(r0+rows, p.Out)
				buf := f32[:(r1-r0)*p.In]
				c.Rows(n, buf, r0, r1)
				raw = grow(raw, len(buf)*odt.Size())
				putF32(raw, odt, buf)
				if _, err := w.Write(raw); err != nil {
					return err
				}
			}
			continue
		}
		if odt == t.DType {
			if _, err := w.Write(t.Data); err != nil {
				return err
			}
			continue
		}
		es := t.DType.Size()
		for e0, total := 0, t.Elems(); e0 < total; e0 += chunk {
			e1 := min(e0+chunk, total)
			buf := f32[:e1-e0]
			tensor.ToF32(buf, t.DType, t.Data[e0*es:e1*es])
			raw = grow(raw, len(buf)*odt.Size())
			putF32(raw, odt, buf)
			if _, err := w.Write(raw); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// isWeightFile: checkpoint formats Merge replaces rather than copies.
func isWeightFile(name string) bool {
	for _, suf := range []string{".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

var torchDTypeRE = regexp.MustCompile(`("(?:torch_dtype|dtype)"\s*:\s*)"[a-z0-9]+"`)

// copyAux copies m.Dir's plain non-weight files (config, generation config,
// tokenizer, chat template, README, licence...). With a dtype other than
// KeepDType, config.json's torch_dtype (or dtype) value is rewritten in place
// and every other byte kept.
func copyAux(from, to string, dt tensor.DType) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || isWeightFile(name) {
			continue
		}
		if name == "config.json" && dt != KeepDType {
			b, err := os.ReadFile(filepath.Join(from, name))
			if err != nil {
				return err
			}
			torchName := map[tensor.DType]string{tensor.F32: "float32", tensor.BF16: "bfloat16", tensor.F16: "float16"}[dt]
			b = torchDTypeRE.ReplaceAll(b, []byte(`${1}"`+torchName+`"`))
			if err := writeFileSync(filepath.Join(to, name), b); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// sameDir reports whether a and b name the same existing folder.
func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, nil // a does not exist yet
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
