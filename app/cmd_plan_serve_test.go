package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/train"
)

// `distill plan serve` prints the decoder's GPU memory holding every layer
// and, given a card's memory, the split --cpu-offload auto makes there: its
// rule (nine tenths of what the CUDA context leaves) over the model's
// decoder plans, quantised as asked.
func TestPlanServe(t *testing.T) {
	dir := tinyModel(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := quant.QuantizeModel(m, "nf4", true, false); err != nil {
		t.Fatal(err)
	}
	card := func(from int) int64 { return train.DeviceRuntime + m.DecoderPlan(from).Total()*10/9 + 10 }
	for _, c := range []struct {
		memory int64
		from   int
		fits   bool
	}{{card(0), 0, true}, {card(1), 1, true}, {card(1) - 1000, 2, false}} {
		code, out, stderr := run("plan", "serve", "--device", "cuda", "--model", dir, "--quant", "nf4", "--memory", fmt.Sprint(c.memory), "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r struct {
			Total     int64 `json:"total"`
			CPULayers int   `json:"cpu_layers"`
			Fits      bool  `json:"fits"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.CPULayers != c.from || r.Fits != c.fits || r.Total != m.DecoderPlan(0).Total()+train.DeviceRuntime {
			t.Errorf("%d bytes: %s; want %d layers on the CPU, fits %v", c.memory, out, c.from, c.fits)
		}
	}
	code, out, _ := run("plan", "serve", "--device", "cuda", "--model", dir, "--quant", "nf4", "--memory", fmt.Sprint(card(1)))
	if code != 0 || !strings.Contains(out, "the first 1 of 2 layers on the CPU") || !strings.Contains(out, "KV cache") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if code, _, stderr := run("plan", "serve", "--device", "cuda", "--model", dir, "--quant", "q8"); code == 0 || !strings.Contains(stderr, "q8") {
		t.Errorf("--quant q8: exit %d, %s", code, stderr)
	}
}

// `distill plan serve` on the CPU (its default, as serve's) counts the
// weights as quantised, --max-batch caches of --context positions, and
// within --memory the room serve's --kv-memory auto leaves for caches.
func TestPlanServeHost(t *testing.T) {
	dir := tinyModel(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	perPos := infer.CacheBytesPerPosition(m)
	var dense, nf4 int64
	for _, q := range []string{"none", "nf4"} {
		code, out, stderr := run("plan", "serve", "--model", dir, "--quant", q, "--max-batch", "3", "--context", "100", "--adapters", "0", "--memory", "1GB", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r struct {
			Plan      infer.HostPlan `json:"plan"`
			Total     int64          `json:"total"`
			KVMemory  int64          `json:"kv_memory"`
			Sequences int64          `json:"full_context_sequences"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		p := r.Plan
		if p.Caches != 3*100*perPos || p.Adapters != 0 || r.Total != p.Total() {
			t.Errorf("%s: %s; want caches of 3 × 100 × %d bytes and no adapters", q, out, perPos)
		}
		if want := int64(1e9) - int64(1e8) - (p.Total() - p.Caches); r.KVMemory != want || r.Sequences != want/(100*perPos) {
			t.Errorf("%s: within 1GB %d bytes for caches (%d sequences), want %d", q, r.KVMemory, r.Sequences, want)
		}
		if q == "none" {
			dense = p.Weights
		} else {
			nf4 = p.Weights
		}
	}
	if nf4 >= dense {
		t.Errorf("weights: nf4 %d bytes, dense %d", nf4, dense)
	}
	code, out, _ := run("plan", "serve", "--model", dir)
	if code != 0 || !strings.Contains(out, "on the CPU") || !strings.Contains(out, "KV caches (f32), 8 ×") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	// --cpu-bf16 holds the caches in bf16: half the bytes a position.
	code, out, stderr := run("plan", "serve", "--model", dir, "--max-batch", "3", "--context", "100", "--cpu-bf16", "--json")
	var r struct {
		Plan   infer.HostPlan `json:"plan"`
		PerPos int64          `json:"kv_cache_per_position"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.PerPos != perPos/2 || r.Plan.Caches != 3*100*perPos/2 {
		t.Errorf("--cpu-bf16: exit %d, %s%s; want %d bytes a position", code, out, stderr, perPos/2)
	}
	if code, _, stderr := run("plan", "serve", "--model", dir, "--device", "cuda", "--cpu-bf16"); code == 0 || !strings.Contains(stderr, "--cpu-bf16") {
		t.Errorf("--device cuda --cpu-bf16: exit %d, %s", code, stderr)
	}
	for _, args := range [][]string{{"--max-batch", "0"}, {"--context", fmt.Sprint(m.ContextLimit() + 1)}, {"--device", "cuda", "--max-batch", "2"}} {
		if code, _, stderr := run(append([]string{"plan", "serve", "--model", dir}, args...)...); code == 0 || !strings.Contains(stderr, args[len(args)-2]) {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}
