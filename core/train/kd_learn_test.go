package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// heldOutKL returns the mean KL(teacher ‖ student) over the counted rows of
// b and the fraction of rows where their top-1 tokens agree.
func heldOutKL(t *testing.T, student, teacher *model.Model, b *Batch) (kl, agree float64) {
	be, _ := tensor.Open("cpu")
	V := student.Config.VocabSize
	rows := 0
	for s := 0; s < b.Len(); {
		e := s + 1
		for e < b.Len() && b.SegStart[e] == s {
			e++
		}
		ids := b.IDs[s:e]
		logits := func(m *model.Model) []float32 {
			h, err := m.Forward(be, ids, m.NewCache(len(ids)), nil)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]float32, len(ids)*V)
			m.Logits(be, out, h, len(ids))
			return out
		}
		zs, zt := logits(student), logits(teacher)
		for i := range ids {
			ls, lt := zs[i*V:(i+1)*V], zt[i*V:(i+1)*V]
			lseS, lseT := logSumExp64(ls, 1), logSumExp64(lt, 1)
			var d float64
			for j := range ls {
				pt := math.Exp(float64(lt[j]) - lseT)
				d += pt * ((float64(lt[j]) - lseT) - (float64(ls[j]) - lseS))
			}
			kl += d
			if argmaxF(ls) == argmaxF(lt) {
				agree++
			}
			rows++
		}
		s = e
	}
	return kl / float64(rows), agree / float64(rows)
}

func argmaxF(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestKDBeatsSFTAtMatchingTheTeacher: a Llama-2-shaped teacher (hidden 64)
// is first trained on a noisy Markov language (next = π(token) 80% of the
// time, else uniform). A smaller SmolLM-shaped student (hidden 48, same
// vocabulary) is then distilled from it on fewer sequences the teacher
// never saw: held-out KL to the teacher falls by ≥ 50% and ends well
// under the same student's trained by SFT on those sequences for the same
// steps, and it agrees with the teacher's top-1 more often. (Distilled on
// the teacher's own training data, whose tokens it had memorised, KD's
// targets were SFT's one-hot ones and the two students tied, 0.20 against
// 0.22 on one build.) Seeds 4, 5, 6 and 9: KL 3.2–3.8 against 5.7–6.3,
// agreement 0.34–0.42 against 0.24–0.33.
func TestKDBeatsSFTAtMatchingTheTeacher(t *testing.T) {
	be, _ := tensor.Open("cpu")
	r := rand.New(rand.NewPCG(4, 4))
	load := func(dir string) *model.Model {
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	teacher := load("../model/testdata/llama2-f32")
	V := teacher.Config.VocabSize
	perm := r.Perm(V)
	seqs := func(n, length int) *Batch {
		b := &Batch{}
		for k := 0; k < n; k++ {
			ids := make([]int, length)
			mask := make([]bool, length)
			ids[0] = r.IntN(V)
			for i := 1; i < length; i++ {
				if r.Float64() < 0.8 {
					ids[i] = perm[ids[i-1]]
				} else {
					ids[i] = r.IntN(V)
				}
				mask[i] = true
			}
			b.AddSequence(ids, mask)
		}
		return b
	}
	var data []*Batch
	for i := 0; i < 64; i++ {
		data = append(data, seqs(4, 16))
	}
	held := seqs(16, 16)
	// The students learn from fewer sequences the teacher never saw: there
	// its predictions carry what it learned of the language (π and the
	// noise's spread), where on its own training data they would repeat
	// the tokens it memorised, SFT's one-hot targets.
	var few []*Batch
	for i := 0; i < 16; i++ {
		few = append(few, seqs(4, 16))
	}
	fit := func(m *model.Model, obj Objective, data []*Batch, steps int, lr float64) {
		net, err := NewFullNet(be, m)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Steps: steps, MaxGradNorm: 1, Schedule: Schedule{Kind: "cosine", Peak: lr, Warmup: 5, Total: steps}, Objective: obj}
		if err := Train(context.Background(), net, NewAdamW(len(net.Params), 0), cfg, &Shuffled{Batches: data, Seed: 2}, nil); err != nil {
			t.Fatal(err)
		}
	}
	fit(teacher, SFT{}, data, 600, 1e-2)

	kdStudent := load("../model/testdata/smollm-f32")
	kl0, _ := heldOutKL(t, kdStudent, teacher, held)
	fit(kdStudent, &KD{Teacher: teacher, Backend: be, Divergence: "forward_kl", Temperature: 1, Alpha: 0}, few, 300, 1e-2)
	kl1, kdAgree := heldOutKL(t, kdStudent, teacher, held)

	sftStudent := load("../model/testdata/smollm-f32")
	fit(sftStudent, SFT{}, few, 300, 1e-2)
	sftKL, sftAgree := heldOutKL(t, sftStudent, teacher, held)
	t.Logf("KD: held-out KL %.3f → %.3f, agreement %.2f; SFT: KL %.3f, agreement %.2f", kl0, kl1, kdAgree, sftKL, sftAgree)
	if kl1 > 0.5*kl0 {
		t.Errorf("KD reduced the held-out KL only from %.3f to %.3f", kl0, kl1)
	}
	if kl1 > 0.8*sftKL {
		t.Errorf("KD student's held-out KL %.3f, not well under the SFT student's %.3f", kl1, sftKL)
	}
	if kdAgree <= sftAgree {
		t.Errorf("KD student agrees with the teacher %.2f of the time, SFT student %.2f", kdAgree, sftAgree)
	}
}
