package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// kdLoss64 is the KD row loss written directly from its definition in
// float64, for finite differences.
func kdLoss64(kd *KD, z, t []float64, target int) float64 {
	tau := kd.Temperature
	logsm := func(x []float64, tau float64) []float64 {
		m := math.Inf(-1)
		for _, v := range x {
			m = max(m, v/tau)
		}
		var s float64
		for _, v := range x {
			s += math.Exp(v/tau - m)
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v/tau - m - math.Log(s)
		}
		return out
	}
	ls1 := logsm(z, 1)
	ls, lt := logsm(z, tau), logsm(t, tau)
	var div float64
	for i := range z {
		ps, pt := math.Exp(ls[i]), math.Exp(lt[i])
		switch kd.Divergence {
		case "forward_kl":
			div += pt * (lt[i] - ls[i])
		case "reverse_kl":
			div += ps * (ls[i] - lt[i])
		case "jsd":
			m := kd.Beta*pt + (1-kd.Beta)*ps
			div += kd.Beta*pt*(lt[i]-math.Log(m)) + (1-kd.Beta)*ps*(ls[i]-math.Log(m))
		}
	}
	return kd.Alpha*(-ls1[target]) + (1-kd.Alpha)*tau*tau*div
}

func TestKDRowGradientsByFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const V = 23
	for _, kd := range []*KD{
		{Divergence: "forward_kl", Temperature: 2, Alpha: 0.3},
		{Divergence: "forward_kl", Temperature: 1, Alpha: 0},
		{Divergence: "reverse_kl", Temperature: 1.5, Alpha: 0.5},
		{Divergence: "jsd", Temperature: 1, Alpha: 0.2, Beta: 0.5},
		{Divergence: "jsd", Temperature: 3, Alpha: 0, Beta: 0.1},
	} {
		z, tt := make([]float32, V), make([]float32, V)
		z64, t64 := make([]float64, V), make([]float64, V)
		for i := range z {
			z[i], tt[i] = float32(2*r.NormFloat64()), float32(2*r.NormFloat64())
			z64[i], t64[i] = float64(z[i]), float64(tt[i])
		}
		target := 7
		g := append([]float32(nil), z...)
		loss := kd.row(g, tt, target, 1, make([]float64, V))
		if want := kdLoss64(kd, z64, t64, target); math.Abs(loss-want) > 1e-9*max(1, math.Abs(want)) {
			t.Errorf("%+v: loss %.12f, definition %.12f", kd, loss, want)
		}
		for i := 0; i < V; i++ {
			const eps = 1e-6
			zp := append([]float64(nil), z64...)
			zm := append([]float64(nil), z64...)
			zp[i] += eps
			zm[i] -= eps
			fd := (kdLoss64(kd, zp, t64, target) - kdLoss64(kd, zm, t64, target)) / (2 * eps)
			if math.Abs(fd-float64(g[i])) > 1e-6*max(1, math.Abs(fd)) {
				t.Errorf("%s τ=%g: dloss/dz[%d] = %.8f, finite difference %.8f", kd.Divergence, kd.Temperature, i, g[i], fd)
			}
		}
	}
}

// TestKDWithIdenticalTeacherIsCE: a divergence against oneself is 0, so the
// loss is α·CE.
func TestKDWithIdenticalTeacherIsCE(t *testing.T) {
	z := []float32{1, -0.5, 2, 0.3}
	for _, div := range []string{"forward_kl", "reverse_kl", "jsd"} {
		kd := &KD{Divergence: div, Temperature: 2, Alpha: 0.4, Beta: 0.5}
		g := append([]float32(nil), z...)
		loss := kd.row(g, append([]float32(nil), z...), 2, 1, make([]float64, 4))
		ce := logSumExp64(z, 1) - 2
		if math.Abs(loss-0.4*ce) > 1e-9 {
			t.Errorf("%s: loss %.9f, want 0.4·CE = %.9f", div, loss, 0.4*ce)
		}
	}
}

// TestKDJSDSubnormalStudent: a student probability near the smallest
// subnormal whose (1−β) share rounds to 0 once made log m = log 0 and the
// loss +Inf; in log space the term is e^−744·744 ≈ 0 and the loss is what
// the same row gives without that entry's mass.
func TestKDJSDSubnormalStudent(t *testing.T) {
	kd := &KD{Divergence: "jsd", Temperature: 1, Alpha: 0, Beta: 0.6}
	z := []float32{0, -744.5, -800}
	tt := []float32{0, -800, -744.5}
	g := append([]float32(nil), z...)
	loss := kd.row(g, tt, 0, 1, make([]float64, 3))
	if math.IsInf(loss, 0) || math.IsNaN(loss) || math.Abs(loss) > 1e-300 {
		t.Fatalf("loss %v, want ≈ 0 (both put all their mass on token 0)", loss)
	}
	for i, v := range g {
		if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
			t.Errorf("dloss/dz[%d] = %v", i, v)
		}
	}
}

// TestStepKDByFiniteDifference: the whole-network KD gradient against finite
// differences of StepKD's loss, with a teacher of another architecture and
// the same vocabulary.
func TestStepKDByFiniteDifference(t *testing.T) {
	net, bf, _ := fixtureNet(t, "llama3-f32", "adapter")
	teacher, _, _ := fixtureNet(t, "qwen3-f32", "adapter")
	kd := &KD{Teacher: teacher.M, Backend: net.Be, Divergence: "jsd", Temperature: 2, Alpha: 0.3, Beta: 0.4}
	if err := kd.Validate(net.M); err != nil {
		t.Fatal(err)
	}
	b := bf.packedBatch()
	n := b.Counted()
	loss := func() float64 {
		s, err := net.StepKD(b, n, kd)
		if err != nil {
			t.Fatal(err)
		}
		return s / float64(n)
	}
	net.ZeroGrads()
	loss()
	grads := append([]float32(nil), net.Grads...)
	for k := 0; k < 10; k++ {
		i := (k*104729 + 7) % len(net.Params)
		old := net.Params[i]
		const eps = 1e-2
		net.Params[i] = old + eps
		up := loss()
		net.Params[i] = old - eps
		down := loss()
		net.Params[i] = old
		fd := (up - down) / (2 * eps)
		if d := math.Abs(fd - float64(grads[i])); d > 2e-3+2e-2*math.Abs(fd) {
			t.Errorf("param %d: analytic %.6f, finite difference %.6f", i, grads[i], fd)
		}
	}
	other, _, _ := fixtureNet(t, "llama2-f32", "adapter")
	if other.M.Config.VocabSize != net.M.Config.VocabSize {
		kd.Teacher = other.M
		if err := kd.Validate(net.M); err == nil {
			t.Fatal("a teacher with another vocabulary was accepted")
		}
	}
}
