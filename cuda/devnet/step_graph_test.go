//go:build cuda

package devnet_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
	"distill/cuda"
	"distill/cuda/devnet"
)

// TestStepGraphsMatchEager: SFT steps replayed from recordings give the
// eager steps' losses and accumulated gradients — the same kernels on the
// same inputs, so equal but for rounding where padding changes a GEMM's
// shape (below) — over a run of steps that changes what a recording must
// read from the device each time: token ids, positions and segments, the
// batch's length (40, 59 and 90 tokens: buckets of 64 and 128, the arena
// growing for the longer and the shorter carved again from it), how many
// rows carry a target (HeadRows 16: several chunks, padded), the
// gradient's scale, and each step's dropout keys. A validation pass runs
// on the kept arena's pass (the adapter without its dropout), the eager
// pass's log-probs bit for bit, and the steps after it replay. Every setup
// (grouped heads with biases, Qwen3's head norms, a dense base, dropout, r
// 12), recomputing and keeping activations.
func TestStepGraphsMatchEager(t *testing.T) {
	d := device(t)
	type variant struct {
		keep bool
		rows int // HeadRows
	}
	for i, s := range setups {
		variants := []variant{{false, 1}, {true, 1}}
		if i == 0 { // the head's last chunk padded
			variants = append(variants, variant{false, 16})
		}
		for _, v := range variants {
			keep := v.keep
			name := fmt.Sprintf("%s/recompute/rows%d", s.name, v.rows)
			if keep {
				name = fmt.Sprintf("%s/keep/rows%d", s.name, v.rows)
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
				V := s.shape.Vocab
				// 59 tokens but the fourth (40), fifth and seventh (90), and
				// a validation pass after the eighth.
				batches := []*train.Batch{batch(rng(5), V, 37, 21, 1), batch(rng(6), V, 59), batch(rng(7), V, 20, 39),
					batch(rng(8), V, 40), batch(rng(9), V, 9, 9, 72), batch(rng(10), V, 59), batch(rng(11), V, 50, 40),
					batch(rng(12), V, 30, 29), batch(rng(13), V, 59), batch(rng(14), V, 44, 15)}
				for i, b := range batches[4:] { // fewer targeted rows: one chunk fewer
					for j := range b.Targets {
						if j%(3+i) == 0 {
							b.Targets[j] = -1
						}
					}
				}
				for _, b := range batches[1:4] { // row 0 targeted: padding rows must not scatter over it
					b.Targets[0] = 1
				}
				val := batch(rng(15), V, 25)
				run := func(graphs string) ([]float64, []float32) {
					t.Setenv("DISTILL_CUDA_STEP_GRAPHS", graphs)
					m, a := build(t, dir, s)
					net, err := devnet.New(d, m, a)
					ok(t, err)
					defer net.Close()
					net.KeepActivations, net.HeadRows = keep, v.rows
					ok(t, net.ZeroGrads())
					var losses []float64
					for i, b := range batches {
						l, err := net.Step(b, 40+i, stepDrop(s, i))
						ok(t, err)
						losses = append(losses, l)
						if i == 7 {
							lp, err := net.LogProbs(val, false)
							ok(t, err)
							losses = append(losses, lp[0])
						}
					}
					g := make([]float32, len(a.Params))
					ok(t, net.DownloadGrads(g))
					return losses, g
				}
				wantL, wantG := run("0")
				r0, rec0, f0, _ := devnet.StepGraphs()
				k0 := devnet.KeptScores()
				gotL, gotG := run("1")
				r1, rec1, f1, last := devnet.StepGraphs()
				k1 := devnet.KeptScores()
				if f1 != f0 {
					t.Fatalf("%d recordings failed: %v", f1-f0, last)
				}
				// Step 1 runs eagerly (its configuration's first); 2 lays out
				// the arena for 64 tokens and runs on it uncaptured (the
				// warm-up); 3 records, 4 (40 tokens: the same bucket)
				// replays; 5 (90) grows the arena to 128, warm-up; 6 (59)
				// carves the 64-token pass from it, warm-up; 7 (90) and 8
				// (59) replay, their passes overlapping in the arena; the
				// validation pass runs on the 64-token pass (the adapter
				// without its dropout), which 9 and 10 then replay.
				hd := s.shape.HeadDim
				if hd == 0 {
					hd = s.shape.Hidden / s.shape.Heads
				}
				switch {
				case !cuda.FlashHeadDim(hd): // attention not by the flash kernels: every step eager
					if r1 != r0 || k1 != k0 {
						t.Errorf("%d steps replayed at head size %d", r1-r0, hd)
					}
				case r1-r0 != 6 || rec1-rec0 < 9 || k1-k0 != 1:
					t.Errorf("%d steps replayed, %d recordings, %d validation passes on the kept pass: want 6 replays, at least 9 recordings and 1", r1-r0, rec1-rec0, k1-k0)
				}
				// One row of logits at a time, the replayed steps are the
				// eager ones bit for bit (the bucket's padding adds exact
				// zeros). At 16 the head's last chunk runs its GEMMs at 16
				// rows where the eager step's has k mod 16, and a GEMM's
				// summation order may depend on its shape (OpenBLAS's
				// small-matrix kernels here, cuBLAS's choice of algorithm on
				// a GPU): these bf16 logits' gradients move by as much
				// between eager steps at 16 and at 13 rows (measured
				// 3.2–4.8e-4 on the first three setups).
				tol := 1e-7
				if v.rows > 1 {
					tol = 1e-3
				}
				rel := matchEager(t, gotL, wantL, gotG, wantG, tol)
				t.Logf("%d replays, %d recordings; gradients %.2e relative", r1-r0, rec1-rec0, rel)
			})
		}
	}
}

// TestStepGraphsTrackCPU: a run's own door (train.Net with the device
// attached, its dropout masks keyed as a run keys them) with step graphs
// on, three micro-batches (59, 70 and 70 tokens: the first eager, the
// second the warm-up, the third replayed) within TestStepParity's
// tolerances of the CPU's loss and gradients.
func TestStepGraphsTrackCPU(t *testing.T) {
	device(t)
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "1")
	for _, s := range []setup{setups[0], setups[3]} { // grouped heads with biases; dropout
		t.Run(s.name, func(t *testing.T) {
			dir, batches, denom := stepFixture(t, s)
			third := batch(rng(7), s.shape.Vocab, 50, 20)
			batches = append(batches, third)
			denom += third.Counted()
			a, cpu, wantLoss := cpuSteps(t, dir, s, batches, denom)
			r0, _, f0, _ := devnet.StepGraphs()
			deviceStep(t, dir, s, batches, denom, a, cpu, wantLoss)
			r1, _, f1, last := devnet.StepGraphs()
			if f1 != f0 || r1-r0 != 1 {
				t.Errorf("%d steps replayed (want 1), %d recordings failed: %v", r1-r0, f1-f0, last)
			}
		})
	}
}

// TestKDStepGraphsMatchEager is TestStepGraphsMatchEager for logit
// distillation's steps (StepKD): the teacher's pass eager, its hidden states
// copied into the recorded pass, the KD rows' gradient scaled per row. With
// one row of logits at a time the replayed steps are the eager ones bit for
// bit; at 16, with the head's last chunk padded, its GEMMs' shapes change
// the gradients by what changing HeadRows does to eager steps (measured:
// 2.8e-4 relative between eager steps at 16 and 13 rows, 9.9e-4 between 16
// and 1 — KD's gradient, a difference of two distributions, is sensitive to
// the logits' last bits).
func TestKDStepGraphsMatchEager(t *testing.T) {
	d := device(t)
	for _, c := range []struct {
		s  setup
		kd train.KD
	}{
		{setups[0], train.KD{Divergence: "forward_kl", Temperature: 2, Alpha: 0.5}},
		{setups[3], train.KD{Divergence: "jsd", Temperature: 1.5, Alpha: 0.2, Beta: 0.5}}, // dropout
	} {
		s := c.s
		for _, hr := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s_%s_rows%d", s.name, c.kd.Divergence, hr), func(t *testing.T) {
				dir := t.TempDir()
				ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 31))
				kd := c.kd
				kd.Teacher, kd.Backend = kdTeacher(t, s), tensor.CPU{}
				V := s.shape.Vocab
				batches := []*train.Batch{batch(rng(5), V, 37, 21, 1), batch(rng(6), V, 59), batch(rng(7), V, 40),
					batch(rng(8), V, 9, 9, 72), batch(rng(9), V, 30, 29), batch(rng(10), V, 90), batch(rng(11), V, 59)}
				run := func(graphs string) ([]float64, []float32) {
					t.Setenv("DISTILL_CUDA_STEP_GRAPHS", graphs)
					m, a := build(t, dir, s)
					net, err := devnet.New(d, m, a)
					ok(t, err)
					defer net.Close()
					net.HeadRows = hr
					ok(t, net.ZeroGrads())
					var losses []float64
					for i, b := range batches {
						l, err := net.StepKD(b, 40+i, stepDrop(s, i), &kd)
						ok(t, err)
						losses = append(losses, l)
					}
					g := make([]float32, len(a.Params))
					ok(t, net.DownloadGrads(g))
					return losses, g
				}
				wantL, wantG := run("0")
				r0, _, f0, _ := devnet.StepGraphs()
				gotL, gotG := run("1")
				r1, _, f1, last := devnet.StepGraphs()
				// 1 eager, 2 the warm-up, 3 replays, 4 (90) and 5 (59 in the
				// grown arena) warm-ups, 6 and 7 replay.
				if f1 != f0 || r1-r0 != 3 {
					t.Fatalf("%d steps replayed (want 3), %d recordings failed: %v", r1-r0, f1-f0, last)
				}
				tol := 1e-3
				if hr == 1 {
					tol = 1e-7
				}
				rel := matchEager(t, gotL, wantL, gotG, wantG, tol)
				t.Logf("gradients %.2e relative", rel)
			})
		}
	}
}

// stepDrop is s's LoRA dropout for step i: a new key for every step and
// site, as a run's (nil without dropout).
func stepDrop(s setup, i int) train.DropoutMask {
	if s.dropout == 0 {
		return nil
	}
	return func(site int) (uint64, uint64, float32) {
		return uint64(i+1)<<32 ^ uint64(site)*0x9e3779b97f4a7c15, uint64(s.dropout * math.MaxUint64), float32(1 / (1 - s.dropout))
	}
}

// matchEager compares replayed steps' losses (1e-6 relative: the same
// kernels on the same inputs) and accumulated gradients (tol, relative in
// L2) with the eager steps', and returns the gradients' difference.
//
// On a GPU the replay runs its GEMMs at the bucket's length (64 rows where
// the eager step has 59), and cuBLAS picks its algorithm — split-K, the
// summation order — by shape, where the emulator's OpenBLAS gives the same
// sums for any M. A reordered f32 sum flips a bf16 rounding now and then,
// so on a GPU the replay matches the eager step as two algorithms do: the
// losses within 1e-4 relative, the gradients within 1e-3 (as the padded
// head chunk's, measured 3.2–4.8e-4). TestStepGraphsTrackCPU holds both to
// the CPU's tolerances either way.
func matchEager(t *testing.T, gotL, wantL []float64, gotG, wantG []float32, tol float64) float64 {
	t.Helper()
	lossTol := 1e-6
	if !cuda.Emulated {
		lossTol, tol = 1e-4, max(tol, 1e-3)
	}
	for i := range wantL {
		if math.Abs(gotL[i]-wantL[i]) > lossTol*math.Abs(wantL[i]) || math.IsNaN(gotL[i]) {
			t.Errorf("loss %d: %v replayed, %v eager", i, gotL[i], wantL[i])
		}
	}
	rel := relL2(gotG, wantG)
	if rel > tol || rel != rel {
		t.Errorf("gradients differ by %.2e relative", rel)
	}
	return rel
}

// TestStepGraphFailureIsTold: a recording that fails leaves the net
// stepping eagerly — the eager steps' losses and gradients, bit for bit
// at one row of logits — and tells the run once, in the step it happened
// (TakeNotes), its summary saying no step replayed and why.
func TestStepGraphFailureIsTold(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
	V := s.shape.Vocab
	batches := []*train.Batch{batch(rng(5), V, 59), batch(rng(6), V, 59), batch(rng(7), V, 30, 29), batch(rng(8), V, 59)}
	fault := errors.New("capture refused (test)")
	defer devnet.FailStepRecordings(fault)()
	run := func(graphs string) ([]float64, []float32) {
		t.Setenv("DISTILL_CUDA_STEP_GRAPHS", graphs)
		m, a := build(t, dir, s)
		net, err := devnet.New(d, m, a)
		ok(t, err)
		defer net.Close()
		net.HeadRows = 1
		ok(t, net.ZeroGrads())
		var losses []float64
		for i, b := range batches {
			l, err := net.Step(b, 40, nil)
			ok(t, err)
			losses = append(losses, l)
			notes := net.TakeNotes()
			if graphs == "0" || i != 2 { // the third step records first
				if len(notes) > 0 {
					t.Errorf("step %d (graphs %s): notes %q, want none", i+1, graphs, notes)
				}
				continue
			}
			if len(notes) != 1 || !strings.Contains(notes[0], fault.Error()) || !strings.Contains(notes[0], "eager") {
				t.Errorf("step 3: notes %q, want one saying the steps go eager because %v", notes, fault)
			}
		}
		sum := strings.Join(net.Summary(), "\n")
		if want := "0 of 4 micro-batches replayed, 0 recordings"; graphs == "1" && (!strings.Contains(sum, want) || !strings.Contains(sum, fault.Error())) {
			t.Errorf("summary %q, want %q and the failure", sum, want)
		} else if graphs == "0" && sum != "" {
			t.Errorf("graphs off: summary %q, want none", sum)
		}
		g := make([]float32, len(a.Params))
		ok(t, net.DownloadGrads(g))
		return losses, g
	}
	wantL, wantG := run("0")
	gotL, gotG := run("1")
	matchEager(t, gotL, wantL, gotG, wantG, 0)
}

// TestStepGraphNoRoomWaitsForAnotherWay: a recorded step the device has no
// room for (its workspace out of memory) leaves the net stepping eagerly
// while the run holds its activations that way — told once — and records
// again once they are held another way (after a shed, say), replaying.
func TestStepGraphNoRoomWaitsForAnotherWay(t *testing.T) {
	d := device(t)
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "1")
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 9))
	V := s.shape.Vocab
	restore := devnet.FailStepRecordings(fmt.Errorf("arena: %w", cuda.ErrOutOfMemory))
	defer restore()
	m, a := build(t, dir, s)
	net, err := devnet.New(d, m, a)
	ok(t, err)
	defer net.Close()
	net.SetCheckpoint(false) // keeping every layer's activations
	var notes []string
	steps := func(n int) {
		for i := range n {
			_, err := net.Step(batch(rng(uint64(i)), V, 59), 40, nil)
			ok(t, err)
			notes = append(notes, net.TakeNotes()...)
		}
	}
	steps(6)
	before, _, _, _ := devnet.StepGraphs()
	restore() // room again, the same way of holding them: still eager
	steps(3)
	if len(notes) != 1 || !strings.Contains(notes[0], "no room") {
		t.Fatalf("notes %q, want one saying there is no room", notes)
	}
	if replays, _, _, _ := devnet.StepGraphs(); replays != before {
		t.Errorf("the same way of holding the activations after the device had no room: %d steps replayed", replays-before)
	}
	if sum := strings.Join(net.Summary(), ""); !strings.Contains(sum, "eager because the device had no room") {
		t.Errorf("summary %q does not say why steps ran eagerly", sum)
	}
	net.SetCheckpoint(true) // recomputing them: another configuration
	steps(6)
	if replays, _, _, _ := devnet.StepGraphs(); replays == before {
		t.Errorf("recomputing after the device had no room: no step replayed (%v)", net.Summary())
	}
}

// TestDPOStepGraphsMatchEager is TestStepGraphsMatchEager for DPO's steps
// (StepRows) and their reference (LogProbs with the adapter off), as a run
// takes them: each batch's reference first, then its step, whose row
// gradients come from the host between the recorded forward and backward
// (here a function of the row's log-prob and its reference, so an error in
// either shows in the gradients). References past the first arena run on
// its pass, the adapter off for the call; the 90-token batch's finds it too
// short and frees it. The seventh step's callback refuses (no backward, as
// eager), having found that a pass asked for from inside it is refused
// while the replayed step holds its buffers; the eighth replays. With one
// row of logits at a time the replayed steps and the references are the
// eager ones bit for bit; at 16 the head's padded last chunk changes its
// GEMMs' shapes (TestStepGraphsMatchEager).
func TestDPOStepGraphsMatchEager(t *testing.T) {
	d := device(t)
	for _, s := range []setup{setups[0], setups[3]} { // grouped heads with biases; dropout
		for _, hr := range []int{1, 16} {
			for _, keep := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/rows%d/keep%v", s.name, hr, keep), func(t *testing.T) {
					dir := t.TempDir()
					ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 41))
					wantL, wantG := dpoSteps(t, d, dir, s, hr, keep, "0", false)
					r0, _, f0, _ := devnet.StepGraphs()
					k0 := devnet.KeptScores()
					gotL, gotG := dpoSteps(t, d, dir, s, hr, keep, "1", true)
					r1, _, f1, last := devnet.StepGraphs()
					// 1 eager; 2 lays out the arena (64), warm-up; 3 replays,
					// its reference on the arena; 4 (90): its reference frees
					// the arena, the step lays out 128, warm-up; 5 carves 64
					// again (its reference there), warm-up; 6 replays; 7's
					// callback refuses; 8 replays; 6–8's references on the
					// arena.
					if f1 != f0 || r1-r0 != 3 {
						t.Fatalf("%d steps replayed (want 3), %d recordings failed: %v", r1-r0, f1-f0, last)
					}
					if k := devnet.KeptScores() - k0; k != 5 {
						t.Errorf("%d references on the kept pass, want 5", k)
					}
					tol := 1e-3
					if hr == 1 {
						tol = 1e-7
					}
					rel := matchEager(t, gotL, wantL, gotG, wantG, tol)
					t.Logf("gradients %.2e relative", rel)
				})
			}
		}
	}
}

// TestDPOStepGraphFailureRunsEager: DPO's steps whose recordings fail run
// eagerly: the eager steps bit for bit (the run is told as an SFT run is:
// TestStepGraphFailureIsTold).
func TestDPOStepGraphFailureRunsEager(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 41))
	fault := errors.New("capture refused (test)")
	defer devnet.FailStepRecordings(fault)()
	wantL, wantG := dpoSteps(t, d, dir, s, 1, false, "0", false)
	r0, _, f0, _ := devnet.StepGraphs()
	gotL, gotG := dpoSteps(t, d, dir, s, 1, false, "1", false)
	if r1, _, f1, _ := devnet.StepGraphs(); r1 != r0 || f1 != f0+1 {
		t.Errorf("%d steps replayed, %d recordings failed: want none and one", r1-r0, f1-f0)
	}
	matchEager(t, gotL, wantL, gotG, wantG, 0)
}

// dpoSteps runs eight DPO-like steps of setup s (HeadRows hr, activations
// kept or not) with step graphs as graphs says, each batch's reference
// first, and returns every reference and policy log-prob in turn and the
// accumulated gradients. The seventh step's callback refuses; where steps
// replay it first checks that a pass asked for from inside it is refused.
func dpoSteps(t *testing.T, d *cuda.Device, dir string, s setup, hr int, keep bool, graphs string, replays bool) ([]float64, []float32) {
	t.Helper()
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", graphs)
	V := s.shape.Vocab
	batches := []*train.Batch{batch(rng(5), V, 30, 29), batch(rng(6), V, 31, 28), batch(rng(7), V, 20, 20),
		batch(rng(8), V, 45, 45), batch(rng(9), V, 30, 29), batch(rng(10), V, 50, 40), batch(rng(11), V, 29, 30),
		batch(rng(12), V, 28, 28)}
	m, a := build(t, dir, s)
	net, err := devnet.New(d, m, a)
	ok(t, err)
	defer net.Close()
	net.HeadRows, net.KeepActivations = hr, keep
	ok(t, net.ZeroGrads())
	refuse := errors.New("the pairs' loss refuses (test)")
	var seen []float64
	for i, b := range batches {
		ref, err := net.LogProbs(b, true)
		ok(t, err)
		seen = append(seen, ref...)
		err = net.StepRows(b, stepDrop(s, i), func(logp []float64) ([]float64, error) {
			if len(logp) != len(ref) {
				return nil, fmt.Errorf("%d rows, %d references", len(logp), len(ref))
			}
			seen = append(seen, logp...)
			if i == 6 {
				if _, err := net.LogProbs(b, true); replays && (err == nil || !strings.Contains(err.Error(), "callback")) {
					t.Errorf("a reference from inside the held step's callback: %v, want refused", err)
				}
				return nil, refuse
			}
			g := make([]float64, len(logp))
			for j := range g {
				g[j] = 0.05 * math.Tanh(logp[j]-ref[j]+float64(j%3))
			}
			return g, nil
		})
		if i == 6 {
			if !errors.Is(err, refuse) {
				t.Fatalf("step 7: %v, want the callback's refusal", err)
			}
			continue
		}
		ok(t, err)
	}
	g := make([]float32, len(a.Params))
	ok(t, net.DownloadGrads(g))
	return seen, g
}

// TestStepGraphsRecordAgainWhenAGateTurns: a recording is keyed by the
// gates its launches depend on (gateBits): once DISTILL_CUDA_HALF_GU turns,
// the next step does not replay the recording of the other path — it runs
// as its configuration's first, eagerly — and gives an eager step's loss
// with the gate open.
func TestStepGraphsRecordAgainWhenAGateTurns(t *testing.T) {
	d := device(t)
	s := setups[0]
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "1")
	t.Setenv("DISTILL_CUDA_HALF_GU", "0")
	dir, batches, _ := stepFixture(t, s)
	b := batches[1]
	m, a := build(t, dir, s)
	net, err := devnet.New(d, m, a)
	ok(t, err)
	defer net.Close()
	ok(t, net.ZeroGrads())
	for range 4 { // eager, warm-up, recording, replay
		_, err := net.Step(b, 70, nil)
		ok(t, err)
	}
	r0, _, _, _ := devnet.StepGraphs()
	_, err = net.Step(b, 70, nil)
	ok(t, err)
	if r1, _, _, _ := devnet.StepGraphs(); r1 != r0+1 {
		t.Fatalf("%d replays before the gate turned, want 1", r1-r0)
	}
	t.Setenv("DISTILL_CUDA_HALF_GU", "1")
	r1, _, _, _ := devnet.StepGraphs()
	got, err := net.Step(b, 70, nil)
	ok(t, err)
	if r2, _, _, _ := devnet.StepGraphs(); r2 != r1 {
		t.Errorf("the step after the gate turned replayed the other path's recording")
	}
	t.Setenv("DISTILL_CUDA_STEP_GRAPHS", "0")
	m2, a2 := build(t, dir, s)
	eager, err := devnet.New(d, m2, a2)
	ok(t, err)
	defer eager.Close()
	ok(t, eager.ZeroGrads())
	want, err := eager.Step(b, 70, nil)
	ok(t, err)
	if got != want {
		t.Errorf("loss %v after the gate turned, %v by an eager step with it open", got, want)
	}
}
