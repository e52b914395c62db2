package app

import (
	"context"
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"

	"distill/core/eval"
	"distill/store"
)

// TestEvalReportReadsRecordedFile records a classification evaluation the way
// `distill eval classify` does and reads it back through the workstation.
func TestEvalReportReadsRecordedFile(t *testing.T) {
	w, dir := testWorkstation(t)
	ctx := context.Background()
	if err := w.db.CreateRun(ctx, store.Run{ID: "r1", Method: "sft", Status: store.StatusCompleted, Dir: filepath.Join(dir, "r1")}); err != nil {
		t.Fatal(err)
	}
	labels := []string{"Good", "Standard", "Bad"}
	gold := []string{"Good", "Good", "Standard", "Bad", "Bad", "Standard"}
	pred := []string{"Good", "Standard", "Standard", "Bad", "Good", "Standard"}
	cal, err := eval.Classification(labels, gold, pred, []float64{0.9, 0.1, 0.5, 0.7, 0.2, 0.4})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := eval.Classification(labels, gold, []string{"Good", "Good", "Good", "Bad", "Good", "Standard"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	f := addEvalFlags(fs)
	f.eng = addEngineFlags(fs, nil)
	if err := fs.Parse([]string{"--run", "r1", "--model", "models/base", "--data", "val.jsonl", "--adapter", "ad"}); err != nil {
		t.Fatal(err)
	}
	report := map[string]any{"calibrated": cal, "raw": raw, "confusion_matrix": cal.ConfusionMatrix, "labels": labels}
	path, err := f.record(w.db, store.KindClassification, cal.Summary(), report)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := w.ListEvaluations()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ReportPath != path || rows[0].Run != "r1" || rows[0].Kind != "classification" || rows[0].Metrics == "-" {
		t.Fatalf("ListEvaluations: %+v", rows)
	}
	rep, err := w.EvalReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "classification" || rep.Model != "models/base" || rep.Data != "val.jsonl" || rep.Adapter != "ad" {
		t.Errorf("header: %+v", rep)
	}
	c := rep.Calibrated
	if c == nil || rep.Raw == nil {
		t.Fatalf("calibrated %v raw %v", c, rep.Raw)
	}
	if len(c.Labels) != 3 || len(c.Confusion) != 3 || c.Confusion[0][0] != 1 || c.Confusion[0][1] != 1 || len(c.RowPct) != 3 {
		t.Errorf("confusion: %v %v", c.Confusion, c.RowPct)
	}
	if c.MacroF1 != cal.MacroF1 || c.Accuracy != cal.Accuracy || len(c.PerClass) != 3 || c.PerClass[1].Recall != cal.PerClass[1].Recall {
		t.Errorf("scores: %+v", c)
	}
	if c.Margins == nil || len(c.Margins.Bins) == 0 {
		t.Errorf("no margin histogram")
	}
	if rep.Raw.Accuracy != raw.Accuracy {
		t.Errorf("raw accuracy %v, want %v", rep.Raw.Accuracy, raw.Accuracy)
	}
}

func TestDecodeIDPAndCodegenReports(t *testing.T) {
	idp, _ := json.Marshal(map[string]any{"id": 2, "kind": "idp", "report": eval.IDPReport{N: 4, SchemaValidRate: 0.75,
		PerField: []eval.FieldScore{{Field: "total", Support: 4, TP: 3, FN: 1, Precision: 1, Recall: 0.75, F1: 0.857}}}})
	r, err := decodeEvalReport(idp)
	if err != nil || r.IDP == nil || r.IDP.SchemaValidRate != 0.75 || len(r.IDP.PerField) != 1 || r.IDP.PerField[0].Field != "total" {
		t.Fatalf("idp: %+v %v", r.IDP, err)
	}
	code, _ := json.Marshal(map[string]any{"id": 3, "kind": "codegen", "report": eval.CodeReport{N: 10, BuildRate: 0.9, LintRate: 0.8, PassAt1: 0.5, WithTests: 4}})
	r, err = decodeEvalReport(code)
	if err != nil || r.Code == nil || r.Code.BuildRate != 0.9 || r.Code.PassAt1 != 0.5 {
		t.Fatalf("codegen: %+v %v", r.Code, err)
	}
}

func TestWorkstationAdapters(t *testing.T) {
	w, dir := testWorkstation(t)
	ctx := context.Background()
	if err := w.db.RegisterAdapter(ctx, store.Adapter{Name: "a1", Path: dir, BaseModel: "Qwen", Method: "sft", Task: "classification",
		Metrics: json.RawMessage(`{"macro_f1":0.713,"accuracy":0.717}`)}); err != nil {
		t.Fatal(err)
	}
	if err := w.RenameAdapter("a1", "credit"); err != nil {
		t.Fatal(err)
	}
	if err := w.TagAdapter("credit", "prod"); err != nil {
		t.Fatal(err)
	}
	rows, err := w.ListAdapters()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != "credit" || rows[0].Metrics != "macro_f1 0.713 · accuracy 0.717" || len(rows[0].Tags) != 1 {
		t.Fatalf("ListAdapters: %+v", rows)
	}
	if err := w.DeleteAdapter("credit"); err != nil {
		t.Fatal(err)
	}
	if rows, _ := w.ListAdapters(); len(rows) != 0 {
		t.Fatalf("after delete: %+v", rows)
	}
	if err := w.DeleteAdapter("credit"); err == nil {
		t.Error("deleting a missing adapter succeeded")
	}
}

// testWorkstation opens a workstation on a new database in a temporary
// folder (also returned), closed when the test ends.
func testWorkstation(t *testing.T) (*Workstation, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := OpenWorkstation(filepath.Join(dir, "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, dir
}
