//go:build cuda

package devnet

import "distill/core/lora"

// SetSkip makes nt's steps leave out the named phases — "lora" (the
// adapter's products), "gemm" (the base's), "dequant", "attention" — so a
// benchmark can time a step without each: where the time goes, with every
// kernel at its real size and no synchronisation between them. The steps'
// results are wrong while any phase is skipped; nil restores them.
func SetSkip(nt *Net, phases []string) {
	nt.skip = map[string]bool{}
	for _, p := range phases {
		nt.skip[p] = true
	}
}

// FusedPasses is how many decoded tokens have run through the fused
// kernels (layerDecode) in this process.
func FusedPasses() int64 { return fusedPasses.Load() }

// GraphReplays is how many decoded tokens have replayed a recorded graph,
// GraphFailures how many recordings failed, in this process.
func GraphReplays() int64  { return graphReplays.Load() }
func GraphFailures() int64 { return graphFailures.Load() }

// LastGraphErr is the last failed recording's error, or nil.
func LastGraphErr() error {
	if e := lastGraphErr.Load(); e != nil {
		return *e
	}
	return nil
}

// FusedLoRA is how many projections have run forward, and backward, as one
// GEMM with their adapter (linFused, linBFused) in this process.
func FusedLoRA() (fwd, bwd, qkv int64) {
	return fusedLoRAFwd.Load(), fusedLoRABwd.Load(), stackedQKV.Load()
}

// RowsPasses is how many batched decode steps have attended through the
// row tables (decode_rows.go) in this process.
func RowsPasses() int64 { return rowsPasses.Load() }

// SetDecoderLimits sets how many adapters and cache mirrors a Decoder keeps
// (the least recently used dropped past them) and returns a restore.
func SetDecoderLimits(views, mirrors int) (restore func()) {
	v, m := maxViews, maxMirrors
	maxViews, maxMirrors = views, mirrors
	return func() { maxViews, maxMirrors = v, m }
}

// StepGraphs is how many SFT steps have replayed a recording, how many
// recordings were made and how many failed in this process, and the last
// failure's error.
func StepGraphs() (replays, recordings, failures int64, last error) {
	if e := lastStepGraphErr.Load(); e != nil {
		last = *e
	}
	return stepReplays.Load(), stepRecordings.Load(), stepRecordFailures.Load(), last
}

// FailStepRecordings makes every step recording fail with err until
// restore is called.
func FailStepRecordings(err error) (restore func()) {
	recordFault = err
	return func() { recordFault = nil }
}

// KeptScores is how many scoring passes (LogProbs) ran on a kept step's
// pass in this process.
func KeptScores() int64 { return keptScores.Load() }

// StagedDropoutBwd is how many projections' backward under LoRA dropout
// staged the weight and dy in one launch (linBFused), in this process.
func StagedDropoutBwd() int64 { return stagedBwd.Load() }

// SplitPasses is how many decoded attentions have run split into chunks
// (decode_split.go) in this process.
func SplitPasses() int64 { return splitPasses.Load() }

// GroupedLoRA is how many groups of modules sharing an input have run
// their adapter products as one batch (lora_group.go) in this process.
func GroupedLoRA() int64 { return groupedLoRA.Load() }

// AdapterLayout is a's host parameters in the device's order and back,
// and the device offsets of each layer's A's (−1 untargeted).
func AdapterLayout(a *lora.Adapter, layers int) (dev, back []float32, aOff [][nMod]int) {
	lay := newAdapterLayout(a, layers)
	dev = lay.toDevice(a.Params)
	back = make([]float32, len(dev))
	lay.toHost(back, dev)
	for l := range lay.dev {
		var o [nMod]int
		for i := range nMod {
			o[i] = lay.dev[l][i][0]
		}
		aOff = append(aOff, o)
	}
	return dev, back, aOff
}

// DroppedDX is how many launches have added the adapter's dx term under
// LoRA dropout in one pass (lora_dropout.go) in this process.
func DroppedDX() int64 { return droppedDX.Load() }

// FusedDQ is how many attention backward passes have taken the fused dq
// (cuda.AttnShape.FusedDQ) in this process.
func FusedDQ() int64 { return fusedDQ.Load() }

// ReusedDrop is how many backward dA products have read the masked input
// their recomputation left (lora_dropout.go's dropHold) in this process.
func ReusedDrop() int64 { return reusedDrop.Load() }

// HalfDyLayers is how many layers' gate and up backward have read their dy
// in bf16 (mlp_dy_bf16.go) in this process.
func HalfDyLayers() int64 { return halfDyLayers.Load() }

// HalfGULayers is how many layers' gate and up GEMMs have written bf16
// (mlp_gu_bf16.go) in this process.
func HalfGULayers() int64 { return halfGULayers.Load() }

// SwiGLUULayers is how many layers' SwiGLU forward has summed the down
// adapter's input (mlp_down_u.go) in this process.
func SwiGLUULayers() int64 { return swigluULayers.Load() }

// SwiGLUDALayers is how many layers' SwiGLU backward has summed the down
// adapter's dA (mlp_down_da.go) in this process.
func SwiGLUDALayers() int64 { return swigluDALayers.Load() }

// RowsDBMods is how many projections' backward have summed their dB in
// their dy's rounding (lora_db.go) in this process.
func RowsDBMods() int64 { return rowsDBMods.Load() }

// ColDAMods is how many modules' dA one pass over their input has summed
// (lora_da.go) in this process.
func ColDAMods() int64 { return colDAMods.Load() }

// RowSumsMods is how many modules' u or du one pass over their input has
// summed (lora_u.go) in this process.
func RowSumsMods() int64 { return rowSumsMods.Load() }

// DKVOccupancy is how many attention backward passes have asked for the
// dk/dv kernel built for three blocks an SM (cuda.AttnShape.DKVOccupancy,
// at head size 128 with async tiles) in this process.
func DKVOccupancy() int64 { return dkvOccupancy.Load() }

// Stages3 is how many attention backward passes have asked for the flash
// kernels with three buffers of tiles (cuda.AttnShape.Stages3, at head
// size 64 or 128 with async tiles) in this process.
func Stages3() int64 { return stages3.Load() }

// SplitKV is how many attention backward passes have split their dk/dv
// blocks (cuda.AttnShape.SplitKV) in this process.
func SplitKV() int64 { return splitKV.Load() }
