//go:build cuda

// Package devnet trains a LoRA adapter with every activation on the GPU: the
// forward and backward of core/train's Net (its parity reference), op for
// op, on device buffers. The frozen base's projections run as bf16 GEMMs on
// the tensor cores, an NF4 weight dequantised into one bf16 tile right
// before each of its GEMMs (never a full-precision copy of the base); the
// adapter's rank-r products, activations and gradients stay f32. Each
// layer's input is kept and its activations are recomputed during backward
// (gradient checkpointing), so activation memory is one layer's plus
// layers × tokens × hidden.
//
// It sits above package cuda (the kernels) and core (the model, the adapter,
// the batch), as app does; core knows nothing of it.
package devnet

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
)

// The step train.Net hands its SFT steps to under --device cuda.
func init() {
	train.RegisterAccelerated("cuda", func(m *model.Model, a *lora.Adapter) (train.Accelerated, error) {
		d, err := cuda.Open()
		if err != nil {
			return nil, err
		}
		return New(d, m, a)
	})
}

// Module indices, as core/train and lora.Modules order them.
const (
	mQ = iota
	mK
	mV
	mO
	mGate
	mUp
	mDown
	nMod
)

// The modules on each side of a layer: the attention's read h1 and att,
// the MLP's h2 and a (Net.KeepAttention keeps the first side's activations).
var attnMods, mlpMods = [...]int{mQ, mK, mV, mO}, [...]int{mGate, mUp, mDown}

// weight is one frozen projection (out, in) on the device: NF4 storage
// dequantised per use, or a dense bf16 copy.
type weight struct {
	nf4        *cuda.NF4Weight
	dense      *cuda.Buffer
	rows, cols int
}

// bf16 returns the weight as a bf16 (rows, cols) buffer: the dense copy, or
// the NF4 storage dequantised into tile.
func (w *weight) bf16(d *cuda.Device, tile *cuda.Buffer) (*cuda.Buffer, error) {
	if w.dense != nil {
		return w.dense, nil
	}
	t := tile.View(0, w.rows*w.cols)
	return t, d.NF4Dequant(t, w.nf4, 0, w.rows)
}

func (w *weight) free() {
	if w.nf4 != nil {
		w.nf4.Free()
	}
	w.dense.Free()
}

type layer struct {
	attnNorm, mlpNorm, qNorm, kNorm *cuda.Buffer // f32; q/k norms Qwen3 only
	bias                            [nMod]*cuda.Buffer
	w                               [nMod]*weight
}

// Net is a model under LoRA training on one device. Params mirrors the
// adapter's parameters (upload them after each optimizer step on the host
// with UploadParams, or update them on the device); Grads accumulates
// d loss / d Params across Steps until ZeroGrads.
type Net struct {
	D *cuda.Device
	M *model.Model
	A *lora.Adapter

	Params, Grads *cuda.Buffer // f32, len(A.Params)

	// HeadRows is how many rows of logits the loss forms at a time: the
	// (tokens, vocab) logits are never materialised. Default 128.
	HeadRows int

	// SimpleAttention runs attention through the simple reference kernel,
	// GemmAttention through cuBLAS in TF32 with bounded score buffers,
	// instead of the flash kernels (bf16 tensor cores, scores never in
	// memory; the default for the head sizes they take,
	// model.FlashAttention): for comparisons.
	SimpleAttention, GemmAttention bool

	// KeepActivations keeps every layer's activations from the forward
	// for the backward instead of recomputing them layer by layer (the
	// default, activation checkpointing): a step skips a forward's worth of
	// work — the base's GEMMs run twice, not three times — for the memory
	// of all layers' activations (≈ 9 GB at 1.5B@2048, against the 0.33 GB
	// of one layer). A run sets it from train.Net.Checkpoint (SetCheckpoint,
	// grad_checkpointing: false), which core/train's DevicePlan counts.
	KeepActivations bool

	// KeepAttention, recomputing (KeepActivations false), keeps each
	// layer's attention side — its norm, q, k, v, the attention's output
	// and lse, xMid, the adapter's u for q, k, v, o — and recomputes only
	// the MLP side from xMid in the backward: about a fifth of all layers'
	// activations (≈ 1.15 GB at 1.5B@2048, h1 shared) for the attention's GEMMs,
	// RoPE and flash forward not run again; the MLP's recomputation is
	// trimmed as DISTILL_CUDA_RECOMPUTE_TRIM's (it has no output to write),
	// so a benchmark of it includes that trim's gain. Honoured while
	// keepAttentionReady.
	KeepAttention bool

	// Profile, when non-nil, makes each Step wait for the device between its
	// phases (base GEMMs, NF4 dequantisation, the adapter's products,
	// attention, element-wise ops, the loss head) and add each phase's time
	// here: a breakdown for benchmarks, slower than an unprofiled step.
	Profile map[string]time.Duration

	// LastIssue is how long the host took to lay out and launch the last
	// Step's (or StepKD's, its teacher's pass included) device work, before
	// it waited for the loss: well under the step's time, the device bounds
	// the step (near it, the launches or a full launch queue do).
	LastIssue time.Duration

	layers   []layer
	embed    *cuda.Buffer // (vocab, hidden) as stored: f32, f16 or bf16
	head     *cuda.Buffer // (vocab, hidden) bf16; shares embed when tied and bf16
	norm     *cuda.Buffer
	lay      adapterLayout // where each pair's A and B lie in Params (and Grads, the moments)
	tileSize int           // the largest NF4 projection, in elements
	tileDim  int           // the largest side of an NF4 projection
	owned    []*cuda.Buffer
	teachers map[any]*Net // KD teachers on the device, by model
	// The SFT step's kept pass and its recordings, the last step's shape,
	// and whether recording failed on this net (step_graph.go).
	sg       *stepGraph
	lastStep stepKey
	sgBroken bool
	// The configuration and batch bucket whose recorded step found the
	// device full (its arena, a recording, a KD teacher's pass beside it):
	// that configuration steps eagerly from that bucket up while it lasts.
	sgFull    *stepKey
	sgFullCap int
	sgStats   stepGraphStats
	// rowsHeld: a replayed StepRows awaits its row gradients (its pass in
	// the kept arena): no other pass may run until they come back.
	rowsHeld bool
	notes    notes // for the run's log (train.Noter)
	// skip leaves phases out of a step, for benchmarks that time a step
	// without each (its results are then wrong); set by the tests only.
	skip   map[string]bool
	isView bool // another Net's weights with its own adapter (Decoder)
	// from is the first layer the Net holds and runs (a Decoder's under
	// --cpu-offload: the host runs the ones before, and embeds, and a pass
	// starts from their output, written into its x): the earlier layers,
	// and then the embedding, are never uploaded.
	from int
	// The RoPE tables on the device, (positions, head_dim/2) each: uploaded
	// once and again only when a pass reaches past them.
	ropeCos, ropeSin *cuda.Buffer
	ropeFrom         *Net      // a view's base, whose tables it uses
	opt              optimizer // AdamW on the device (optimizer.go), once loaded
}

// rope returns the device's RoPE tables covering positions [0, n).
func (nt *Net) rope(n int) (cos, sin *cuda.Buffer, err error) {
	if nt.ropeFrom != nil {
		return nt.ropeFrom.rope(n)
	}
	half := nt.M.Config.HeadDim / 2
	if nt.ropeCos != nil && nt.ropeCos.Len >= n*half {
		return nt.ropeCos, nt.ropeSin, nil
	}
	c, s := nt.M.Rope(n) // the model's tables, grown past n
	nt.freeRope()
	if nt.ropeCos, err = cuda.Upload(nt.D, cuda.F32, c); err == nil {
		nt.ropeSin, err = cuda.Upload(nt.D, cuda.F32, s)
	}
	if err != nil {
		nt.freeRope()
		return nil, nil, fmt.Errorf("devnet: RoPE tables: %w", err)
	}
	return nt.ropeCos, nt.ropeSin, nil
}

func (nt *Net) freeRope() {
	nt.ropeCos.Free()
	nt.ropeSin.Free()
	nt.ropeCos, nt.ropeSin = nil, nil
}

// New uploads m's frozen weights and a's parameters to d (a nil: the model
// alone, as a KD teacher). The base's projections must be NF4 (core/quant)
// or dense.
func New(d *cuda.Device, m *model.Model, a *lora.Adapter) (*Net, error) {
	return newFrom(d, m, a, 0)
}

// newFrom is New holding layers from.. only (Net.from).
func newFrom(d *cuda.Device, m *model.Model, a *lora.Adapter, from int) (*Net, error) {
	if a != nil && len(a.Layers) != len(m.Layers) {
		return nil, fmt.Errorf("devnet: adapter has %d layers, model %d", len(a.Layers), len(m.Layers))
	}
	if from < 0 || from >= len(m.Layers) {
		return nil, fmt.Errorf("devnet: the device would hold layers %d.. of %d", from, len(m.Layers))
	}
	nt := &Net{D: d, M: m, A: a, HeadRows: 128, from: from}
	if err := nt.upload(); err != nil {
		nt.Close()
		return nil, err
	}
	return nt, nil
}

func (nt *Net) keep(b *cuda.Buffer) *cuda.Buffer { nt.owned = append(nt.owned, b); return b }

func (nt *Net) f32(name string, v []float32) (*cuda.Buffer, error) {
	if v == nil {
		return nil, nil
	}
	b, err := cuda.Upload(nt.D, cuda.F32, v)
	if err != nil {
		return nil, fmt.Errorf("devnet: upload %s: %w", name, err)
	}
	return nt.keep(b), nil
}

// dense uploads a dense tensor as bf16 (f32 and f16 rounded on the host).
func (nt *Net) dense(t *tensor.Tensor) (*cuda.Buffer, error) {
	var h []uint16
	switch t.DType {
	case tensor.BF16:
		h = t.U16s()
	case tensor.F32:
		h = make([]uint16, t.Elems())
		for i, v := range t.F32s() {
			h[i] = tensor.F32ToBF16(v)
		}
	case tensor.F16:
		h = make([]uint16, t.Elems())
		for i, v := range t.U16s() {
			h[i] = tensor.F32ToBF16(tensor.F16ToF32(v))
		}
	default:
		return nil, fmt.Errorf("devnet: tensor %s is %v: want bf16, f16 or f32", t.Name, t.DType)
	}
	b, err := cuda.Upload(nt.D, cuda.BF16, h)
	if err != nil {
		return nil, fmt.Errorf("devnet: upload %s: %w", t.Name, err)
	}
	return nt.keep(b), nil
}

// uploadable says whether matrix can be a device weight: NF4 or dense.
func uploadable(m tensor.Matrix) bool {
	if q, ok := m.(tensor.NF4Matrix); ok {
		if _, ok := q.NF4(); ok {
			return true
		}
	}
	_, dense := m.(*tensor.Tensor)
	return dense
}

func (nt *Net) matrix(name string, m tensor.Matrix) (*weight, error) {
	w := &weight{rows: m.Rows(), cols: m.Cols()}
	if q, ok := m.(tensor.NF4Matrix); ok {
		if p, ok := q.NF4(); ok {
			u, err := nt.D.UploadNF4(name, p)
			if err != nil {
				return nil, err
			}
			w.nf4 = u
			nt.tileSize = max(nt.tileSize, w.rows*w.cols)
			nt.tileDim = max(nt.tileDim, w.rows, w.cols)
			return w, nil
		}
	}
	t, ok := m.(*tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("devnet: %s is %T: the GPU trainer takes NF4 or dense weights (quantise with nf4, or none)", name, m)
	}
	b, err := nt.dense(t)
	if err != nil {
		return nil, err
	}
	w.dense = b
	return w, nil
}

func (nt *Net) upload() error {
	m := nt.M
	var err error
	for l := range m.Layers {
		L := &m.Layers[l]
		// The layer joins nt.layers before its uploads: one failing halfway
		// leaves the others for Close to free (NF4 weights are reachable
		// through the layer only).
		nt.layers = append(nt.layers, layer{})
		if l < nt.from { // the host's
			continue
		}
		dl := &nt.layers[l]
		mats := [nMod]tensor.Matrix{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down}
		for i, mt := range mats {
			if dl.w[i], err = nt.matrix(fmt.Sprintf("layers.%d.%s", l, lora.Modules[i]), mt); err != nil {
				return err
			}
		}
		for i, b := range [nMod][]float32{L.QBias, L.KBias, L.VBias, L.OBias} {
			if dl.bias[i], err = nt.f32(fmt.Sprintf("layers.%d.%s.bias", l, lora.Modules[i]), b); err != nil {
				return err
			}
		}
		for _, p := range []struct {
			dst **cuda.Buffer
			v   []float32
		}{{&dl.attnNorm, L.AttnNorm}, {&dl.mlpNorm, L.MLPNorm}, {&dl.qNorm, L.QNorm}, {&dl.kNorm, L.KNorm}} {
			if *p.dst, err = nt.f32(fmt.Sprintf("layers.%d norm", l), p.v); err != nil {
				return err
			}
		}
	}
	if nt.norm, err = nt.f32("norm", m.Norm); err != nil {
		return err
	}
	e := m.Embed
	switch {
	case nt.from > 0: // the host embeds
	case e.DType == tensor.F32:
		nt.embed, err = cuda.Upload(nt.D, cuda.F32, e.F32s())
	case e.DType == tensor.BF16:
		nt.embed, err = cuda.Upload(nt.D, cuda.BF16, e.U16s())
	case e.DType == tensor.F16:
		nt.embed, err = cuda.Upload(nt.D, cuda.F16, e.U16s())
	default:
		err = fmt.Errorf("embedding is %v", e.DType)
	}
	if err != nil {
		return fmt.Errorf("devnet: upload %s: %w", e.Name, err)
	}
	nt.keep(nt.embed)
	if m.LMHead == m.Embed && e.DType == tensor.BF16 && nt.embed != nil {
		nt.head = nt.embed
	} else if nt.head, err = nt.dense(m.LMHead); err != nil {
		return err
	}
	return nt.uploadAdapter(true)
}

// uploadAdapter lays out nt.A's pairs (offsets of each pair's A and B in
// its one allocation) and uploads its parameters, and zeroed gradients when
// grads; with no adapter every module is untargeted (a KD teacher, a
// decoder's base).
func (nt *Net) uploadAdapter(grads bool) error {
	a := nt.A
	nt.lay = newAdapterLayout(a, len(nt.M.Layers))
	if a == nil {
		return nil
	}
	var err error
	if nt.Params, err = nt.f32("adapter", nt.lay.toDevice(a.Params)); err != nil || !grads {
		return err
	}
	g, err := nt.D.Zeros(cuda.F32, len(a.Params))
	if err != nil {
		return fmt.Errorf("devnet: gradients: %w", err)
	}
	nt.Grads = nt.keep(g)
	return nil
}

// Close frees the device memory the Net holds, its KD teachers' too (a
// view, its adapter's only: the weights are its base's).
func (nt *Net) Close() {
	nt.dropStepGraph()
	for k, t := range nt.teachers {
		t.Close()
		delete(nt.teachers, k)
	}
	nt.freeRope()
	if nt.isView {
		nt.layers = nil
	}
	for _, l := range nt.layers {
		for _, w := range l.w {
			if w != nil {
				w.free()
			}
		}
	}
	nt.layers = nil
	for _, b := range nt.owned {
		b.Free()
	}
	nt.owned = nil
	nt.opt = optimizer{} // its buffers were owned
}

// ZeroGrads clears the gradients (start of an optimizer step).
func (nt *Net) ZeroGrads() error { return nt.Grads.Zero() }

// SetCheckpoint is train.Checkpointer: recompute each layer's activations
// in the backward (on), or keep them all (KeepActivations) — once the
// kept path has passed its GPU test (keepReady), else recompute anyway.
func (nt *Net) SetCheckpoint(on bool) { nt.KeepActivations = !on && keepReady() }

// SetKeepAttention is train.AttentionKeeper: with recomputation, keep each
// layer's attention side (KeepAttention; honoured once keepAttentionReady).
func (nt *Net) SetKeepAttention(on bool) { nt.KeepAttention = on }

// gateOpen says whether a path written without a GPU runs: its own
// variable (env) set to 0 or 1 decides either way (the tests and
// benchmarks compare both paths, before and after the gate is flipped);
// else it runs once verified, or before with DISTILL_CUDA_UNVERIFIED=1.
func gateOpen(env string, verified bool) bool {
	switch os.Getenv(env) {
	case "0":
		return false
	case "1":
		return true
	}
	return verified || os.Getenv("DISTILL_CUDA_UNVERIFIED") == "1"
}

// asyncTilesVerified: the flash kernels staging their tiles by cp.async
// from bf16 copies of k and v (and q, dout in the backward), reading the
// operands they need k-major by ldmatrix.trans (cuda.AttnShape.AsyncTiles;
// a training pass's forward and backward). On an H200 (2026-11-26)
// TestAttentionFlashParity gave v1's out, lse, dq, dk, dv bit for bit, the
// step's tests passed with it on, and BenchmarkAttentionGemm's 2,048-token
// passes ran 1.5× faster (hd 128: forward 69 → 104 TFLOP/s, backward 30 →
// 47); the 1.5B step at 2,048 tokens 121 → 106 ms (kept: 93 → 83).
// DISTILL_CUDA_FLASH_ASYNC=0 goes back to v1. Not measured on a card with
// 100 KB of shared memory an SM (sm_86/89), where the async forward at head
// size 128 fits one block an SM where v1 fits two.
const asyncTilesVerified = true

// DISTILL_CUDA_FLASH_ASYNC=0 or 1 overrides the gate either way.
func asyncTilesReady() bool { return gateOpen("DISTILL_CUDA_FLASH_ASYNC", asyncTilesVerified) }

func init() {
	train.DeviceAsyncTiles = asyncTilesReady
	train.DeviceFusedLoRA = loraFusedReady
	train.DeviceKeepsAttention = keepAttentionReady
	train.DeviceStacksQKV = qkvStackReady
	train.DeviceStepGraphs = stepGraphsReady
	train.DeviceKeepsCompact = compactReady
}

// heavyFirstVerified: the flash kernels' blocks dispatched heads fastest
// (cuda.AttnShape.HeavyFirst), so each head's heaviest tiles — a causal
// pass's last query rows, first keys — start before any head's light ones
// and the pass ends on light blocks. Written without a GPU (session 9: the
// emulation's async kernels run so and give v1's results bit for bit).
// Until TestAttentionFlashParity passes with it and BenchmarkAttentionGemm's
// flash_async_heavy beats flash_async, passes keep the old order unless
// DISTILL_CUDA_FLASH_HEAVY=1 (or DISTILL_CUDA_UNVERIFIED=1).
const heavyFirstVerified = false

// DISTILL_CUDA_FLASH_HEAVY=0 or 1 overrides the gate either way.
func heavyFirstReady() bool { return gateOpen("DISTILL_CUDA_FLASH_HEAVY", heavyFirstVerified) }

// prefetchVerified: the async dk/dv kernel copying each query tile's rows'
// ranges, lse and D by cp.async with the tile (cuda.AttnShape.
// PrefetchStats) instead of one warp loading them, two dependent global
// reads, while the others wait at the next barrier. Written without a GPU
// (session 9: the emulation, whose copies land only at their wait_group,
// gives v1's dk, dv bit for bit). Until TestAttentionFlashParity passes
// with it and BenchmarkAttentionGemm's flash_async_prefetch beats
// flash_async, passes keep the loads unless DISTILL_CUDA_FLASH_PREFETCH=1
// (or DISTILL_CUDA_UNVERIFIED=1).
const prefetchVerified = false

// DISTILL_CUDA_FLASH_PREFETCH=0 or 1 overrides the gate either way.
func prefetchReady() bool { return gateOpen("DISTILL_CUDA_FLASH_PREFETCH", prefetchVerified) }

// fusedDQVerified: a training pass's attention backward with dq added up
// by the dk/dv kernel (cuda.AttnShape.FusedDQ: each tile's dS·K by f32
// atomics) instead of by its own kernel, which computes S and dP a second
// time — five tensor-core products a (query tile, key block) where there
// were seven, and half the exponentials. Written without a GPU (session
// 28): on the emulated device TestAttentionFlashParity gives v1's dk, dv
// bit for bit and dq within 1.2e-7 of v1's (f32 rounding), and
// TestFusedDQMatchesSplit a step's loss and gradients. Its price: the atomics
// (~50 M a layer at 1.5B/2,048 tokens, one per dq element a key block)
// and dq's bits that differ run to run. Until BenchmarkAttentionGemm's
// flash_async_fuseddq beats flash_async and the step's [fuseddq] variant
// its default, passes keep dq's kernel unless DISTILL_CUDA_FLASH_FUSED_DQ=1
// (or DISTILL_CUDA_UNVERIFIED=1).
const fusedDQVerified = false

// DISTILL_CUDA_FLASH_FUSED_DQ=0 or 1 overrides the gate either way.
func fusedDQReady() bool { return gateOpen("DISTILL_CUDA_FLASH_FUSED_DQ", fusedDQVerified) }

func init() { train.DeviceFusedDQ = fusedDQReady }

// Attention backward passes that took the fused dq (tests read it).
var fusedDQ atomic.Int64

// splitKVVerified: a training pass's attention backward with each key
// block's query tiles split between two dk/dv blocks (cuda.AttnShape.
// SplitKV), their shares summed after, and each row tile's key tiles
// between two dq blocks (SplitDQ), the second's dq added after. At
// 1.5B/2,048 tokens the dk/dv kernel runs 384 blocks, two an SM (264 at
// once), the heaviest (key block 0: 64 query tiles) a third heavier than
// an SM's average share (48); dq's 192 blocks run one an SM, the heaviest
// (the last 128 rows: 32 key tiles) a third heavier than the average (25):
// neither pass can end before its heaviest block does; split, those are
// halved. Written without a GPU (session 31): on the emulated device
// flash_emu's cases and TestAttentionFlashParity give dq, dk, dv within
// f32 rounding of the unsplit kernels', and TestSplitKVStep a step's loss
// bit for bit and its gradients within rounding. Its price: twice the
// blocks' K, V (Q, dO) staging and a sum over 4·n·heads·hd floats (an add
// over n·heads·hd). Until the step's [splitkv] variant beats its default,
// passes keep one block a key block and a row tile unless
// DISTILL_CUDA_FLASH_SPLIT=1 (or DISTILL_CUDA_UNVERIFIED=1).
const splitKVVerified = false

// DISTILL_CUDA_FLASH_SPLIT=0 or 1 overrides the gate either way.
func splitKVReady() bool { return gateOpen("DISTILL_CUDA_FLASH_SPLIT", splitKVVerified) }

// Attention backward passes that split their dk/dv blocks (tests read it).
var splitKV atomic.Int64

func init() { train.DeviceSplitKV = splitKVReady }

// dkvOccupancyVerified: a training pass's attention backward with the
// dk/dv kernel built for three blocks an SM (cuda.AttnShape.DKVOccupancy:
// head size 128, an SM with shared memory for three blocks — H100, H200).
// At 213 registers two blocks, 8 warps, share an SM; capped at 168, 12
// do, at the price of ~12 accumulators a tile through local memory (188
// bytes stored, 204 loaded a thread, ptxas for sm_90). Nothing measured
// the kernel's stalls (devcheck's NCU_DETAIL asks); if latency bounds it,
// 50 % more warps should help more than the spills cost. Written without a
// GPU (session 32): on the emulated device TestAttentionFlashParity gives
// the default kernel's dk, dv (and fused dq) bit for bit — the same
// instructions but for the spills. Until BenchmarkAttentionGemm's
// flash_async_occ3 beats flash_async and the step's [occ3] its default,
// passes keep two blocks an SM unless DISTILL_CUDA_FLASH_OCC3=1 (or
// DISTILL_CUDA_UNVERIFIED=1).
const dkvOccupancyVerified = false

// DISTILL_CUDA_FLASH_OCC3=0 or 1 overrides the gate either way.
func dkvOccupancyReady() bool { return gateOpen("DISTILL_CUDA_FLASH_OCC3", dkvOccupancyVerified) }

// Attention backward passes that asked for it where it applies (tests read
// it; the device decides: cuda.Device.FlashBuild).
var dkvOccupancy atomic.Int64

// stages3Verified: a pass's flash kernels (forward; backward's dq and
// dk/dv) keeping three buffers of tiles (cuda.AttnShape.Stages3: async
// tiles at head size 64 or 128, each kernel where an SM holds as many
// blocks of it as with two — at 128 an H100's does for all three, an
// A100's for the forward and dq, a consumer card's for dk/dv alone, whose
// 99 KB a block the forward's and dq's 104 KB pass). With two, each tile's copy overwrites the buffer the
// last tile was read from, so every tile ends at a barrier before the next
// copy is issued and that copy has one tile's compute to land — and the
// forward and dq run one block of 8 warps an SM, so each barrier idles the
// SM; with three, the copy two tiles on is issued after the barrier that
// opens a tile, into the buffer every warp has then left: one barrier a
// tile, two tiles' compute for a copy to land. Written without a GPU
// (session 32): on the emulated device, whose copies land only at their
// wait, TestAttentionFlashParity gives the default kernels' results bit for
// bit, and a copy into the wrong buffer fails it. Until
// BenchmarkAttentionGemm's flash_async_stages3 beats flash_async and the
// step's [stages3] its default, passes keep two buffers unless
// DISTILL_CUDA_FLASH_STAGES3=1 (or DISTILL_CUDA_UNVERIFIED=1).
const stages3Verified = false

// DISTILL_CUDA_FLASH_STAGES3=0 or 1 overrides the gate either way.
func stages3Ready() bool { return gateOpen("DISTILL_CUDA_FLASH_STAGES3", stages3Verified) }

// Attention backward passes that asked for it where it applies (tests read
// it; the device decides each kernel's: cuda.Device.FlashBuild).
var stages3 atomic.Int64

// keepAttentionVerified: Net.KeepAttention — each layer's attention-side
// activations kept, the MLP side alone recomputed in the backward (one
// shared set). Written without a GPU (session 9); on the emulated device
// (cuda/emu/device, 2026-11-26) TestKeepActivationsMatchesRecompute's
// selective run matches the kept step and TestDevicePlanMatchesPool its
// plan (×1.031 at 300 tokens, ×1.040 at 1,500: the plan is the pool's, the
// same Go code on either device), and a mutation of the recomputation fails
// both. It adds no kernel and runs a subset of the recomputing step's work
// for memory the plan counts (the GPU fit picks it only where it fits), so
// it is on; its time on a GPU is devcheck's STEP_VARIANTS=selective (not
// measured yet). DISTILL_CUDA_KEEP_ATTN=0 turns it off.
const keepAttentionVerified = true

// DISTILL_CUDA_KEEP_ATTN=0 or 1 overrides the gate either way.
func keepAttentionReady() bool { return gateOpen("DISTILL_CUDA_KEEP_ATTN", keepAttentionVerified) }

// trimVerified: the backward's recomputation of a layer stopping at what
// the backward reads (pass.recompute: SwiGLU's output and the down
// projection's u, not its GEMM, its bf16 operand or the residual) — at
// 1.5B and 2,048 tokens ~110 µs of the ~0.8 ms a layer's forward takes.
// Written without a GPU (session 9); on the emulated device (2026-11-26)
// TestKeepActivationsMatchesRecompute gives the kept step's results with it
// and every step parity test passes (the down projection's u left out of
// the recomputation fails them). It only leaves work out, so it is on; its
// time on a GPU is devcheck's STEP_VARIANTS=notrim (not measured yet).
// DISTILL_CUDA_RECOMPUTE_TRIM=0 runs the whole forward again.
const trimVerified = true

// compactVerified: a step that keeps every layer's activations keeps them
// compact (pass.compact, acts) —
//   - each layer's MLP side: g and up in bf16 (rounded by the SwiGLU
//     forward as it reads them), their f32 copies and SwiGLU's output a one
//     set of scratch all layers share; the SwiGLU backward reads the bf16
//     copies and writes a again, and the down adapter's dA, which reads a,
//     runs after it (pass.deferGA): 3·n·F f32 a layer become 2·n·F bf16;
//   - the norms' outputs h1 and h2 one set all layers share, written again
//     at the start of each layer's backward by the same kernel from the kept
//     layer input and xMid (the forward's values bit for bit): 2·n·D f32 a
//     layer less. A step that keeps only the attention side (keep_attention)
//     shares h1 the same way.
//
// At Qwen2.5-1.5B and 2,048 tokens the plan's kept step takes 11.2 → 6.6
// GB with the CUDA context. The forward is unchanged (the loss is the same
// bit for bit); the SwiGLU backward and the down adapter's gradient read
// the bf16 values (the emulated device, 2026-11-27: gradients 1.9–3.6e-3
// from the f32-kept ones, TestKeepActivationsMatchesRecompute, and every
// parity test with the CPU passes). Its cost: the bf16 copies' writes less
// the reads they save (~75 MB a layer) and the two norms again (~50 MB):
// ~1 ms a step at 1.5B on an H200 by bandwidth, not measured (devcheck's
// STEP_VARIANTS=keepf32 against keep). On, for the memory: the fit keeps
// every layer's activations on smaller cards. DISTILL_CUDA_KEEP_COMPACT=0
// keeps them all, in f32.
const compactVerified = true

// DISTILL_CUDA_KEEP_COMPACT=0 or 1 overrides the gate either way.
func compactReady() bool { return gateOpen("DISTILL_CUDA_KEEP_COMPACT", compactVerified) }

// DISTILL_CUDA_RECOMPUTE_TRIM=0 or 1 overrides the gate either way.
func trimReady() bool { return gateOpen("DISTILL_CUDA_RECOMPUTE_TRIM", trimVerified) }

// betaZeroVerified: each backward gradient buffer (dA, dH, dAtt) set by
// its first GEMM (beta 0) instead of zeroed and then added to — at 1.5B and
// 2,048 tokens 111 MB of memset a layer, ~1 ms a step. Written without a
// GPU (session 9); on the emulated device (2026-11-26, fresh memory NaN,
// cuBLAS's beta 0 not reading C as documented) every step parity test
// passes with it, and the second GEMM into dH set instead of added fails
// them. It only leaves memsets out, so it is on; its time on a GPU is
// devcheck's STEP_VARIANTS=noset (not measured yet). DISTILL_CUDA_BWD_SET=0 zeroes
// the buffers again.
const betaZeroVerified = true

// DISTILL_CUDA_BWD_SET=0 or 1 overrides the gate either way.
func betaZeroReady() bool { return gateOpen("DISTILL_CUDA_BWD_SET", betaZeroVerified) }

// qkvStackVerified: the backward of q, k and v as one GEMM over their
// stacked tiles and side-by-side gradients (linQKVB) instead of three.
// Written without a GPU (session 10); on the emulated device (2026-11-26)
// every step parity test passes with it (it ran: TestFusedLoRAStepParity
// counts it), and k's and v's gradients swapped fail them. It runs the same
// products in one larger GEMM instead of three (two of them small), so it
// is on; its time on a GPU is devcheck's STEP_VARIANTS=noqkv (not measured
// yet). Under LoRA dropout the stack holds the base's blocks alone (the
// adapter's masked term is added apart, as linB adds it);
// DISTILL_CUDA_QKV_STACK=0 runs the three GEMMs.
const qkvStackVerified = true

// DISTILL_CUDA_QKV_STACK=0 or 1 overrides the gate either way.
func qkvStackReady() bool { return gateOpen("DISTILL_CUDA_QKV_STACK", qkvStackVerified) }

// normBF16Verified: the layer's two norms writing the projections' bf16
// operand as they write their f32 output (RMSNormFwdBF16: the same values
// ToBF16Rows makes of it, bit for bit, TestRMSNormParity) instead of a
// conversion that reads it all again — a launch and n·D·4 bytes less a
// norm. Written without a GPU (session 26); on the emulated device every
// test passes with it. DISTILL_CUDA_NORM_BF16=0 converts apart.
const normBF16Verified = true

func normBF16Ready() bool { return gateOpen("DISTILL_CUDA_NORM_BF16", normBF16Verified) }

// loraFusedVerified: an NF4 projection and its adapter as one bf16 GEMM
// (layer.go's linFused: x and u = x·Aᵀ side by side against W and s·B,
// K = in + r; backward dy and du against W and A, K = out + r) instead of
// the base GEMM and a TF32 product that reads and writes y (dx) again. On
// an H200 (2026-11-26) every cuda and devnet test passed with it on
// (TestFusedLoRAStepParity: gradients 3–8e-3 from the CPU's, as the
// separate products), the e2e runs tracked the CPU's (SFT 2.3629 / 2.3622,
// DPO 0.3225 / 0.3222, KD 3.7297 / 3.7299), and the steps ran 3–5 %
// faster (1.5B at 2,048 tokens 105.5 → 102.3 ms, kept 82.3 → 78.4; 3B
// 172.0 → 164.5, kept 130.5 → 125.0). DISTILL_CUDA_LORA_FUSED=0 turns it
// off.
const loraFusedVerified = true

// DISTILL_CUDA_LORA_FUSED=0 or 1 overrides the gate either way.
func loraFusedReady() bool { return gateOpen("DISTILL_CUDA_LORA_FUSED", loraFusedVerified) }

// keepVerified: KeepActivations passed TestKeepActivationsMatchesRecompute
// (bit-level equality with the recomputing step) on an H200 (2026-11-26),
// so a run's grad_checkpointing: false keeps them on the device; core/train's
// plan counts them (train.DeviceKeepsActivations). DISTILL_CUDA_KEEP=0
// turns it off. Benchmarks and the test set the field directly.
const keepVerified = true

// DISTILL_CUDA_KEEP=0 or 1 overrides the gate either way.
func keepReady() bool { return gateOpen("DISTILL_CUDA_KEEP", keepVerified) }

func init() { train.DeviceKeepsActivations = keepReady }

var (
	_ train.Checkpointer    = (*Net)(nil)
	_ train.AttentionKeeper = (*Net)(nil)
)

// UploadParams copies the adapter's host parameters to the device.
func (nt *Net) UploadParams() error { return cuda.Write(nt.Params, 0, nt.lay.toDevice(nt.A.Params)) }

// DownloadGrads copies the gradients into dst (len(A.Params)).
func (nt *Net) DownloadGrads(dst []float32) error { return nt.readAdapter(dst, nt.Grads) }

// readAdapter copies b, in the device's layout, into dst in the host's.
func (nt *Net) readAdapter(dst []float32, b *cuda.Buffer) error {
	dev := make([]float32, len(dst))
	if err := cuda.Read(b, 0, dev); err != nil {
		return err
	}
	nt.lay.toHost(dst, dev)
	return nil
}

// pair returns layer l's module i as (A, B, gA, gB) views, or nils.
func (nt *Net) pair(l, i int) (a, b, ga, gb *cuda.Buffer) {
	o := nt.lay.dev[l][i]
	if o[0] < 0 {
		return
	}
	p := nt.A.Layers[l][i]
	r := nt.A.Config.R
	a, b = nt.Params.View(o[0], r*p.In), nt.Params.View(o[1], p.Out*r)
	if nt.Grads != nil { // inference (a Decoder's adapter) has none
		ga, gb = nt.Grads.View(o[0], r*p.In), nt.Grads.View(o[1], p.Out*r)
	}
	return a, b, ga, gb
}

var errStep = errors.New("devnet: step")

// DeviceMemory is the device pool's high-water mark (weights, adapter,
// gradients and the largest step's workspace; not the CUDA context) and the
// card's total memory, in bytes.
func (nt *Net) DeviceMemory() (peak, total int64) {
	_, total, _ = nt.D.MemInfo()
	return nt.D.Pool.Stats().Peak, total
}

// FreeMemory is what the device has free now plus what the pool holds
// cached (reusable without a cudaMalloc), within the pool's limit, in
// bytes.
func (nt *Net) FreeMemory() int64 {
	free, _, err := nt.D.MemInfo()
	if err != nil {
		return 0
	}
	return nt.D.Pool.Room(free)
}

// KDReady says whether train.Net should hand kd's steps to this Net: when
// the teacher's projections are NF4 or dense (a Q8 teacher stays on the
// op-by-op path) and its vocabulary is the student's.
func (nt *Net) KDReady(kd *train.KD) bool {
	if kd.Teacher == nil || kd.Teacher.Config.VocabSize != nt.M.Config.VocabSize {
		return false
	}
	for _, l := range kd.Teacher.Layers {
		for _, p := range l.Projections() {
			if !uploadable(p) {
				return false
			}
		}
	}
	return true
}

// Compile-time checks: the Net is every kind of step core/train hands over.
var (
	_ train.AcceleratedRows = (*Net)(nil)
	_ train.AcceleratedKD   = (*Net)(nil)
)
