package app

import (
	"encoding/json"
	"testing"
)

// distill plan prints the plan a run would print, and the longest seq_len
// within a budget: that length fits it and one more token does not.
func TestPlanCommand(t *testing.T) {
	m := tinyModel(t)
	code, out, stderr := run("plan", "sft", "--model", m, "--memory", "100MB", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Plan    PlanRow `json:"plan"`
		Memory  int64   `json:"memory"`
		Longest int     `json:"longest_seq_len"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Memory != 100e6 || r.Longest < 16 || r.Plan.Total <= 0 {
		t.Fatalf("%s", out)
	}
	var w Workstation
	cfg := defaultRunConfig("sft")
	cfg.Model, cfg.SeqLen = m, r.Longest
	at, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SeqLen++
	over, err := w.PlanRun(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if at.Total > r.Memory || (over.Total <= r.Memory && r.Longest < 4096) {
		t.Errorf("seq %d plans %d, seq %d plans %d, budget %d", r.Longest, at.Total, r.Longest+1, over.Total, r.Memory)
	}
	for _, bad := range [][]string{{"plan"}, {"plan", "sft"}, {"plan", "sft", "--model", m, "--memory", "lots"}} {
		if code, _, _ := run(bad...); code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"8GB": 8e9, "3.5GiB": 3.5 * (1 << 30), "512mb": 512e6, "1e9": 1e9, "100 KiB": 102400} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "eight"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
