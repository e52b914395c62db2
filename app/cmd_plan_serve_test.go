package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

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
		code, out, stderr := run("plan", "serve", "--model", dir, "--quant", "nf4", "--memory", fmt.Sprint(c.memory), "--json")
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
	code, out, _ := run("plan", "serve", "--model", dir, "--quant", "nf4", "--memory", fmt.Sprint(card(1)))
	if code != 0 || !strings.Contains(out, "the first 1 of 2 layers on the CPU") || !strings.Contains(out, "KV cache") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if code, _, stderr := run("plan", "serve", "--model", dir, "--quant", "q8"); code == 0 || !strings.Contains(stderr, "q8") {
		t.Errorf("--quant q8: exit %d, %s", code, stderr)
	}
}
