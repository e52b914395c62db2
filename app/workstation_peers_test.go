package app

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"distill/store"
)

// TestEvalPeers: an evaluation is set against the base model's on the same
// data and the most recent other runs' — not evaluations of other data,
// another base, or another kind.
func TestEvalPeers(t *testing.T) {
	w, dir := testWorkstation(t)
	ctx := context.Background()
	if err := w.db.CreateRun(ctx, store.Run{ID: "run-a", Method: "sft", Status: store.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := w.db.CreateRun(ctx, store.Run{ID: "run-b", Method: "kd", Status: store.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	add := func(name, run, adapter, model, data string, f1 float64) string {
		path := filepath.Join(dir, name+".json")
		b, _ := json.Marshal(map[string]any{"kind": "classification", "model": model, "adapter": adapter, "data": data,
			"report": map[string]any{"calibrated": map[string]any{"labels": []string{"a", "b"}, "macro_f1": f1},
				"raw": map[string]any{"labels": []string{"a", "b"}, "macro_f1": f1 / 2}}})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := w.db.AddEvaluation(ctx, store.Evaluation{RunID: run, Adapter: adapter, Kind: "classification", Metrics: json.RawMessage(`{}`), ReportPath: path}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	add("base", "", "", absPath("models/m"), "val.jsonl", 0.40) // the CLI records paths as typed, runs absolute
	add("other-data", "", "", "models/m", "test.jsonl", 0.10)
	add("other-base", "run-b", "runs/b/adapter", "models/big", "val.jsonl", 0.90)
	add("b", "run-b", "runs/b/adapter", "models/m", "val.jsonl", 0.60)
	a := add("a", "run-a", "runs/a/adapter", "models/m", "val.jsonl", 0.70)
	r, err := w.EvalReport(a)
	if err != nil {
		t.Fatal(err)
	}
	want := []EvalPeer{{Name: "base", Metric: "macro-F1", Delta: 0.30, RawDelta: 0.15, HasRaw: true}, {Name: "run-b", Metric: "macro-F1", Delta: 0.10, RawDelta: 0.05, HasRaw: true}}
	if len(r.Peers) != len(want) {
		t.Fatalf("peers %+v, want %+v", r.Peers, want)
	}
	for i, p := range r.Peers {
		if p.Name != want[i].Name || p.Metric != want[i].Metric || math.Abs(p.Delta-want[i].Delta) > 1e-12 || !p.HasRaw || math.Abs(p.RawDelta-want[i].RawDelta) > 1e-12 {
			t.Errorf("peer %d: %+v, want %+v", i, p, want[i])
		}
	}
}

// Evaluations whose settings differ (codegen with and without --plan) are
// not set against each other, whatever their model and data.
func TestEvalPeersNeedTheSameSettings(t *testing.T) {
	w, dir := testWorkstation(t)
	ctx := context.Background()
	add := func(name, adapter string, plan bool, built float64) string {
		path := filepath.Join(dir, name+".json")
		b, _ := json.Marshal(map[string]any{"kind": "codegen", "model": "models/m", "adapter": adapter, "data": "tasks.jsonl",
			"settings": map[string]any{"plan": plan, "language": "go"},
			"report":   map[string]any{"n": 10, "build_success_rate": built}})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := w.db.AddEvaluation(ctx, store.Evaluation{Adapter: adapter, Kind: "codegen", Metrics: json.RawMessage(`{}`), ReportPath: path}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	add("base-direct", "", false, 0.2)
	add("base-planned", "", true, 0.5)
	a := add("a-planned", "runs/a/adapter", true, 0.8)
	r, err := w.EvalReport(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Peers) != 1 || r.Peers[0].Name != "base" || math.Abs(r.Peers[0].Delta-0.3) > 1e-12 {
		t.Fatalf("peers %+v, want the planned base's only (+0.3)", r.Peers)
	}
}
