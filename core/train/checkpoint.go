package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"distill/core/atomicfile"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// State is where a run stands: with the parameters and optimizer moments it
// is everything needed to continue exactly as if never stopped.
type State struct {
	Step         int    `json:"step"`          // optimizer steps done
	MicroBatches int    `json:"micro_batches"` // micro-batches consumed: the data position and the dropout stream
	Seed         uint64 `json:"seed"`
}

// Checkpoint files inside a checkpoint folder.
const (
	checkpointState     = "state.json"
	checkpointOptimizer = "optimizer.safetensors"
	checkpointParams    = "params.safetensors" // full fine-tuning
	checkpointAdapter   = "adapter"            // PEFT layout
)

// SaveCheckpoint writes net's parameters, opt's moments and st to dir,
// atomically and durably: everything goes to a temporary folder, flushed
// to disk, that is renamed into place (an older dir renamed aside first,
// removed after), so a crash leaves the old checkpoint or the new one —
// LoadCheckpoint finds the old one aside — and once it returns the new one
// survives a power loss.
func SaveCheckpoint(dir string, net *Net, opt *AdamW, st State) error {
	st.MicroBatches = net.microBatches
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	fail := func(err error) error { os.RemoveAll(tmp); return fmt.Errorf("checkpoint %s: %w", dir, err) }
	if net.Adapter != nil {
		if err := lora.Save(filepath.Join(tmp, checkpointAdapter), net.Adapter); err != nil {
			return fail(err)
		}
	} else {
		p := tensor.FromF32("params", net.Params, len(net.Params))
		if err := model.WriteSafetensors(filepath.Join(tmp, checkpointParams), []*tensor.Tensor{p}, nil); err != nil {
			return fail(err)
		}
	}
	moments := []*tensor.Tensor{tensor.FromF32("m", opt.M, len(opt.M)), tensor.FromF32("v", opt.V, len(opt.V))}
	meta := map[string]string{"step": fmt.Sprint(opt.Step)}
	if err := model.WriteSafetensors(filepath.Join(tmp, checkpointOptimizer), moments, meta); err != nil {
		return fail(err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := atomicfile.Write(filepath.Join(tmp, checkpointState), append(b, '\n'), 0o644); err != nil {
		return fail(err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil { // its entries on disk before it takes the step's name
		return fail(err)
	}
	old := dir + aside
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil { // the same step saved again (a stop at a checkpoint's step)
		if err := os.Rename(dir, old); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		return fail(err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	os.RemoveAll(old)
	return nil
}

// aside is the suffix of a checkpoint folder renamed aside while the same
// step's is saved again.
const aside = ".old"

// LoadCheckpoint restores net's parameters and opt's moments from dir and
// returns the state to continue from.
func LoadCheckpoint(dir string, net *Net, opt *AdamW) (State, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir + aside); err == nil { // a crash while the same step was saved again
			dir += aside
		}
	}
	var st State
	b, err := os.ReadFile(filepath.Join(dir, checkpointState))
	if err != nil {
		return st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: %s: %v", dir, checkpointState, err)
	}
	if net.Adapter != nil {
		a, err := lora.Load(filepath.Join(dir, checkpointAdapter), net.M)
		if err != nil {
			return st, err
		}
		if len(a.Params) != len(net.Params) {
			return st, fmt.Errorf("checkpoint %s: adapter has %d parameters, the run's %d", dir, len(a.Params), len(net.Params))
		}
		copy(net.Params, a.Params)
	} else if err := readF32(filepath.Join(dir, checkpointParams), "params", net.Params); err != nil {
		return st, err
	}
	if err := readF32(filepath.Join(dir, checkpointOptimizer), "m", opt.M); err != nil {
		return st, err
	}
	if err := readF32(filepath.Join(dir, checkpointOptimizer), "v", opt.V); err != nil {
		return st, err
	}
	opt.Step = st.Step
	net.microBatches = st.MicroBatches
	return st, nil
}

func readF32(path, name string, dst []float32) error {
	f, err := model.OpenSafetensors(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t := f.Tensor(name)
	if t == nil || t.DType != tensor.F32 || t.Elems() != len(dst) {
		return fmt.Errorf("%s: tensor %q missing or not %d f32 values", path, name, len(dst))
	}
	copy(dst, t.F32s())
	return nil
}

// MicroBatches is how many micro-batches the net has run: the data position.
func (nt *Net) MicroBatches() int { return nt.microBatches }
