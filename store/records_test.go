package store

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	at := time.Date(2026, 11, 25, 18, 30, 0, 0, time.UTC)
	points := []Metric{
		{Step: 2, Name: "loss", Value: 2.0, Time: at.Add(2 * time.Second)},
		{Step: 1, Name: "loss", Value: 2.5, Time: at.Add(time.Second)},
		{Step: 1, Name: "lr", Value: 1e-4, Time: at.Add(time.Second)},
		{Step: 3, Name: "loss", Value: math.NaN(), Time: at.Add(3 * time.Second)},
		{Step: 4, Name: "loss", Value: math.Inf(1)},
	}
	if err := db.AddMetrics(ctx, "r", points); err != nil {
		t.Fatal(err)
	}
	loss, err := db.Metrics(ctx, "r", "loss")
	if err != nil {
		t.Fatal(err)
	}
	if len(loss) != 4 {
		t.Fatalf("loss has %d points, want 4: %+v", len(loss), loss)
	}
	for i, want := range []float64{2.5, 2.0, math.NaN(), math.Inf(1)} {
		m := loss[i]
		if m.Step != i+1 || m.Name != "loss" || !(m.Value == want || math.IsNaN(want) && math.IsNaN(m.Value)) {
			t.Errorf("loss[%d] = %+v, want step %d value %v", i, m, i+1, want)
		}
	}
	if !loss[0].Time.Equal(at.Add(time.Second)) || loss[3].Time.IsZero() {
		t.Errorf("times: %v, %v", loss[0].Time, loss[3].Time)
	}

	// A step logged again (a resume) replaces the point.
	if err := db.AddMetrics(ctx, "r", []Metric{{Step: 2, Name: "loss", Value: 1.9}}); err != nil {
		t.Fatal(err)
	}
	all, err := db.Metrics(ctx, "r", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[1].Value != 1.9 || all[4].Name != "lr" {
		t.Errorf("all metrics: %+v", all)
	}

	// One batch is all or nothing.
	err = db.AddMetrics(ctx, "r", []Metric{{Step: 10, Name: "loss", Value: 1}, {Step: 11, Name: ""}})
	if err == nil {
		t.Fatal("AddMetrics accepted an empty name")
	}
	if loss, _ := db.Metrics(ctx, "r", "loss"); len(loss) != 4 {
		t.Errorf("failed batch left %d loss points, want 4", len(loss))
	}

	if err := db.AddMetrics(ctx, "r", nil); err != nil {
		t.Errorf("empty AddMetrics: %v", err)
	}
	if ms, err := db.Metrics(ctx, "r", "grad_norm"); err != nil || len(ms) != 0 {
		t.Errorf("unknown metric: %v, %v", ms, err)
	}
	if _, err := db.Metrics(ctx, "nope", "loss"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Metrics of a missing run: %v, want ErrNotFound", err)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.AddMetrics(ctx, "ghost", []Metric{{Step: 1, Name: "loss", Value: 1}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddMetrics for a missing run: %v, want ErrNotFound", err)
	}
	if err := db.AddCheckpoint(ctx, Checkpoint{RunID: "ghost", Step: 1, Path: "p"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddCheckpoint for a missing run: %v, want ErrNotFound", err)
	}
	if _, err := db.AddEvaluation(ctx, Evaluation{RunID: "ghost", Kind: KindCodegen}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddEvaluation for a missing run: %v, want ErrNotFound", err)
	}
	if err := db.RegisterAdapter(ctx, Adapter{Name: "a", Path: "p", RunID: "ghost"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("RegisterAdapter for a missing run: %v, want ErrNotFound", err)
	}
	// The constraint itself, below the Go checks, on every connection.
	for range 3 {
		if _, err := db.db.Exec("INSERT INTO metrics (run_id, name, step, value, time) VALUES ('ghost', 'x', 1, 1, '')"); err == nil {
			t.Fatal("raw insert of an orphan metric succeeded: foreign keys are off")
		}
	}
	var n int
	if err := db.db.QueryRow("SELECT count(*) FROM pragma_foreign_key_check").Scan(&n); err != nil || n != 0 {
		t.Errorf("foreign_key_check: %d rows, %v", n, err)
	}
}

func TestCheckpoints(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	if _, err := db.LatestCheckpoint(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LatestCheckpoint with none: %v, want ErrNotFound", err)
	}
	if cs, err := db.Checkpoints(ctx, "r"); err != nil || len(cs) != 0 {
		t.Errorf("Checkpoints with none: %v, %v", cs, err)
	}
	for _, step := range []int{500, 100, 1000} {
		if err := db.AddCheckpoint(ctx, Checkpoint{RunID: "r", Step: step, Path: "old"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddCheckpoint(ctx, Checkpoint{RunID: "r", Step: 1000, Path: "runs/r/checkpoints/step-1000"}); err != nil {
		t.Fatal(err)
	}
	cs, err := db.Checkpoints(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].Step != 100 || cs[1].Step != 500 || cs[2].Step != 1000 || cs[0].CreatedAt.IsZero() {
		t.Errorf("Checkpoints = %+v", cs)
	}
	latest, err := db.LatestCheckpoint(ctx, "r")
	if err != nil || latest.Step != 1000 || latest.Path != "runs/r/checkpoints/step-1000" || latest.RunID != "r" {
		t.Errorf("LatestCheckpoint = %+v, %v", latest, err)
	}
	if err := db.AddCheckpoint(ctx, Checkpoint{RunID: "r", Step: 1}); err == nil {
		t.Error("AddCheckpoint accepted an empty path")
	}
	if _, err := db.Checkpoints(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Checkpoints of a missing run: %v, want ErrNotFound", err)
	}
}

func TestEvaluations(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	at := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	first, err := db.AddEvaluation(ctx, Evaluation{
		RunID: "r", Adapter: "tickets-sft", Kind: KindClassification,
		Metrics:    json.RawMessage(`{ "accuracy": 0.9, "macro_f1": 0.85 }`),
		ReportPath: "runs/r/eval/classification.json", CreatedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	second, err := db.AddEvaluation(ctx, Evaluation{RunID: "r", Kind: KindIDP, CreatedAt: at.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddEvaluation(ctx, Evaluation{Kind: KindCodegen, CreatedAt: at.Add(2 * time.Minute)}); err != nil { // the base model
		t.Fatal(err)
	}
	es, err := db.Evaluations(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != second || es[1].ID != first {
		t.Fatalf("Evaluations(r) = %+v, want newest first", es)
	}
	e := es[1]
	if e.RunID != "r" || e.Adapter != "tickets-sft" || e.Kind != KindClassification ||
		string(e.Metrics) != `{"accuracy":0.9,"macro_f1":0.85}` || e.ReportPath != "runs/r/eval/classification.json" ||
		!e.CreatedAt.Equal(at) {
		t.Errorf("evaluation = %+v", e)
	}
	if string(es[0].Metrics) != "{}" {
		t.Errorf("empty metrics stored as %s, want {}", es[0].Metrics)
	}
	if all, err := db.Evaluations(ctx, ""); err != nil || len(all) != 3 || all[0].RunID != "" {
		t.Errorf("Evaluations(\"\") = %+v, %v", all, err)
	}

	if _, err := db.AddEvaluation(ctx, Evaluation{Kind: "vibes"}); err == nil {
		t.Error("AddEvaluation accepted an unknown kind")
	}
	if _, err := db.AddEvaluation(ctx, Evaluation{Kind: KindIDP, Metrics: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("AddEvaluation accepted broken JSON")
	}
	if _, err := db.Evaluations(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Evaluations of a missing run: %v, want ErrNotFound", err)
	}
}

func TestAdapters(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	at := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for i, a := range []Adapter{
		{Name: "tickets-sft", Method: MethodSFT, RunID: "r", Tags: []string{" prod", "v1", "v1", ""}},
		{Name: "tickets-kd", Method: MethodKD},
		{Name: "invoices-sft", Method: MethodSFT, Task: "idp", Metrics: json.RawMessage(`{"f1": 0.7}`)},
	} {
		a.Path = "adapters/" + a.Name
		a.BaseModel = "models/Qwen2.5-0.5B-Instruct"
		a.CreatedAt = at.Add(time.Duration(i) * time.Hour)
		if err := db.RegisterAdapter(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	a, err := db.Adapter(ctx, "tickets-sft")
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != "adapters/tickets-sft" || a.RunID != "r" || a.Method != MethodSFT ||
		!equal(a.Tags, []string{"prod", "v1"}) || string(a.Metrics) != "{}" || !a.CreatedAt.Equal(at) {
		t.Errorf("Adapter = %+v", a)
	}
	if _, err := db.Adapter(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Adapter(nope): %v, want ErrNotFound", err)
	}

	names := func() []string {
		as, err := db.ListAdapters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, a := range as {
			ns = append(ns, a.Name)
		}
		return ns
	}
	if got := names(); !equal(got, []string{"invoices-sft", "tickets-kd", "tickets-sft"}) {
		t.Errorf("ListAdapters = %v", got)
	}

	latest, err := db.LatestAdapter(ctx, MethodSFT)
	if err != nil || latest.Name != "invoices-sft" || string(latest.Metrics) != `{"f1":0.7}` {
		t.Errorf("LatestAdapter(sft) = %+v, %v", latest, err)
	}
	if latest, err := db.LatestAdapter(ctx, ""); err != nil || latest.Name != "invoices-sft" {
		t.Errorf("LatestAdapter(any) = %+v, %v", latest, err)
	}
	if _, err := db.LatestAdapter(ctx, MethodDPO); !errors.Is(err, ErrNotFound) {
		t.Errorf("LatestAdapter(dpo): %v, want ErrNotFound", err)
	}

	// Registering a name again replaces it and makes it the newest.
	if err := db.RegisterAdapter(ctx, Adapter{Name: "tickets-sft", Path: "adapters/tickets-sft-2", Method: MethodSFT}); err != nil {
		t.Fatal(err)
	}
	a, _ = db.Adapter(ctx, "tickets-sft")
	if a.Path != "adapters/tickets-sft-2" || a.RunID != "" || len(a.Tags) != 0 {
		t.Errorf("re-registered adapter = %+v", a)
	}
	if latest, _ := db.LatestAdapter(ctx, MethodSFT); latest.Name != "tickets-sft" {
		t.Errorf("LatestAdapter after re-register = %s", latest.Name)
	}
	if got := len(names()); got != 3 {
		t.Errorf("%d adapters after re-register, want 3", got)
	}

	// Tags.
	if err := db.TagAdapter(ctx, "tickets-kd", "prod", "candidate", "prod"); err != nil {
		t.Fatal(err)
	}
	if err := db.TagAdapter(ctx, "tickets-kd", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := db.UntagAdapter(ctx, "tickets-kd", "candidate", "absent"); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Adapter(ctx, "tickets-kd"); !equal(a.Tags, []string{"prod", "v2"}) {
		t.Errorf("tags = %v, want [prod v2]", a.Tags)
	}
	if err := db.TagAdapter(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TagAdapter(nope): %v, want ErrNotFound", err)
	}
	if err := db.UntagAdapter(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UntagAdapter(nope): %v, want ErrNotFound", err)
	}

	// Rename.
	if err := db.RenameAdapter(ctx, "tickets-kd", "tickets-prod"); err != nil {
		t.Fatal(err)
	}
	if a, err := db.Adapter(ctx, "tickets-prod"); err != nil || a.Method != MethodKD || !equal(a.Tags, []string{"prod", "v2"}) {
		t.Errorf("renamed adapter = %+v, %v", a, err)
	}
	if _, err := db.Adapter(ctx, "tickets-kd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name after rename: %v, want ErrNotFound", err)
	}
	if err := db.RenameAdapter(ctx, "tickets-prod", "invoices-sft"); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto a taken name: %v, want ErrExists", err)
	}
	if err := db.RenameAdapter(ctx, "nope", "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RenameAdapter(nope): %v, want ErrNotFound", err)
	}
	if err := db.RenameAdapter(ctx, "tickets-prod", "bad name"); err == nil {
		t.Error("RenameAdapter accepted a name with a space")
	}

	// Delete.
	if err := db.DeleteAdapter(ctx, "tickets-prod"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAdapter(ctx, "tickets-prod"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteAdapter: %v, want ErrNotFound", err)
	}
	if got := names(); !equal(got, []string{"tickets-sft", "invoices-sft"}) {
		t.Errorf("ListAdapters after delete = %v", got)
	}

	for _, bad := range []Adapter{
		{Name: "", Path: "p"},
		{Name: "a/b", Path: "p"},
		{Name: "ok", Path: ""},
		{Name: "ok", Path: "p", Metrics: json.RawMessage("nope")},
	} {
		if err := db.RegisterAdapter(ctx, bad); err == nil {
			t.Errorf("RegisterAdapter(%+v) accepted", bad)
		}
	}
}

func TestSetAdapterMetrics(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.RegisterAdapter(ctx, Adapter{Name: "a", Path: "p", BaseModel: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAdapterMetrics(ctx, "a", json.RawMessage(`{"macro_f1": 0.95}`)); err != nil {
		t.Fatal(err)
	}
	if a, err := db.Adapter(ctx, "a"); err != nil || string(a.Metrics) != `{"macro_f1":0.95}` {
		t.Fatalf("%s %v", a.Metrics, err)
	}
	if err := db.SetAdapterMetrics(ctx, "a", json.RawMessage(`[1]`)); err == nil {
		t.Error("a non-object: no error")
	}
	if err := db.SetAdapterMetrics(ctx, "missing", json.RawMessage(`{}`)); err == nil {
		t.Error("an unknown adapter: no error")
	}
}
