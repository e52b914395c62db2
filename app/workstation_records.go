package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"distill/core/data"
)

// AdapterRow is one registered adapter as the Adapters view lists it.
type AdapterRow struct {
	Name, Base, Method, Task string
	Path                     string // the PEFT adapter folder
	RunID                    string // the run that trained it; empty if none or deleted
	Metrics                  string // headline metrics, e.g. "f1 0.71 · acc 0.72"; "-" when none
	Tags                     []string
	Age                      time.Duration
}

// ListAdapters returns the registered adapters, newest first.
func (w *Workstation) ListAdapters() ([]AdapterRow, error) {
	as, err := w.db.ListAdapters(context.Background())
	if err != nil {
		return nil, err
	}
	rows := make([]AdapterRow, len(as))
	for i, a := range as {
		rows[i] = AdapterRow{Name: a.Name, Base: a.BaseModel, Method: a.Method, Task: a.Task, Path: a.Path, RunID: a.RunID,
			Metrics: shortMetrics(a.Metrics, 3), Tags: a.Tags, Age: time.Since(a.CreatedAt).Round(time.Second)}
	}
	return rows, nil
}

// RenameAdapter renames an adapter's registration.
func (w *Workstation) RenameAdapter(oldName, newName string) error {
	return w.db.RenameAdapter(context.Background(), oldName, newName)
}

// TagAdapter adds tag to an adapter.
func (w *Workstation) TagAdapter(name, tag string) error {
	return w.db.TagAdapter(context.Background(), name, tag)
}

// DeleteAdapter removes an adapter's registration; its files stay on disk.
func (w *Workstation) DeleteAdapter(name string) error {
	return w.db.DeleteAdapter(context.Background(), name)
}

// shortMetrics renders a JSON object of numbers as "k v · k v", the first n
// keys in order (macro_f1 and accuracy first), or "-".
func shortMetrics(raw json.RawMessage, n int) string {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		switch k {
		case "macro_f1", "f1":
			return 0
		case "accuracy":
			return 1
		case "schema_valid_rate", "build_success_rate":
			return 2
		case "exact_match_rate", "lint_pass_rate", "pass_at_1":
			return 3
		}
		if strings.HasPrefix(k, "raw_") {
			return 9
		}
		return 5
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		switch v := m[k].(type) {
		case float64:
			parts = append(parts, fmt.Sprintf("%s %.3g", k, v))
		default:
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	return strings.Join(parts, " · ")
}

// EvalRow is one recorded evaluation as the Evals view lists it.
type EvalRow struct {
	ID                 int64
	Run, Adapter, Kind string
	Metrics            string // headline metrics, short
	ReportPath         string
	Age                time.Duration
}

// ListEvaluations returns every recorded evaluation, newest first.
func (w *Workstation) ListEvaluations() ([]EvalRow, error) {
	es, err := w.db.Evaluations(context.Background(), "")
	if err != nil {
		return nil, err
	}
	rows := make([]EvalRow, len(es))
	for i, e := range es {
		rows[i] = EvalRow{ID: e.ID, Run: e.RunID, Adapter: e.Adapter, Kind: e.Kind, Metrics: shortMetrics(e.Metrics, 2),
			ReportPath: e.ReportPath, Age: time.Since(e.CreatedAt).Round(time.Second)}
	}
	return rows, nil
}

// EvalReport is an evaluation's JSON report (as `distill eval` writes it)
// decoded for the views: one of Classification (calibrated and raw), IDP or
// Code is set, according to Kind.
type EvalReport struct {
	ID                   int64
	Kind                 string
	Model, Adapter, Data string
	Calibrated, Raw      *ClassEval
	IDP                  *IDPEval
	Code                 *CodeEval
	// Peers are the same data's other evaluations with the same base
	// (the base's, other runs'), set against this one.
	Peers []EvalPeer

	settings string // the report's settings as canonical JSON ("" if none)
}

// ClassEval is a classification report.
type ClassEval struct {
	Labels    []string     `json:"labels"`
	N         int          `json:"n"`
	Accuracy  float64      `json:"accuracy"`
	MacroF1   float64      `json:"macro_f1"`
	PerClass  []ClassScore `json:"per_class"`
	Confusion [][]int      `json:"confusion_matrix"`  // [gold][predicted]
	RowPct    [][]float64  `json:"confusion_row_pct"` // each row as percentages
	Margins   *struct {
		Median float64     `json:"median"`
		Bins   []MarginBin `json:"bins"`
	} `json:"margin_histogram"`
}

// ClassScore is one label's precision, recall and F1.
type ClassScore struct {
	Label     string  `json:"label"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// MarginBin is one bar of the top-2 margin histogram.
type MarginBin struct {
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	Count   int     `json:"count"`
	Correct int     `json:"correct"`
	Wrong   int     `json:"wrong"`
}

// IDPEval is a document-extraction report.
type IDPEval struct {
	N               int          `json:"n"`
	SchemaValidRate float64      `json:"schema_valid_rate"`
	ExactMatchRate  float64      `json:"exact_match_rate"`
	Micro           FieldScore   `json:"micro"`
	PerField        []FieldScore `json:"per_field"`
}

// FieldScore is one field's extraction scores.
type FieldScore struct {
	Field     string  `json:"field"`
	Support   int     `json:"support"`
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// CodeEval is a code-generation report.
type CodeEval struct {
	N         int           `json:"n"`
	BuildRate float64       `json:"build_success_rate"`
	LintRate  float64       `json:"lint_pass_rate"`
	LintRan   *int          `json:"lint_checked"` // tasks linted; nil in reports from before it was recorded
	PassAt1   float64       `json:"pass_at_1"`
	WithTests int           `json:"with_tests"`
	Failures  []CodeFailure `json:"failures"`
}

// CodeFailure is a failing codegen task and what failed first.
type CodeFailure struct {
	Task    string `json:"task"`
	Failure string `json:"failure"`
}

// EvalReport reads the report file at path.
func (w *Workstation) EvalReport(path string) (EvalReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return EvalReport{}, err
	}
	r, err := decodeEvalReport(b)
	if err == nil {
		r.Peers = w.peers(r, path)
	}
	return r, err
}

func decodeEvalReport(b []byte) (EvalReport, error) {
	var file struct {
		ID       int64           `json:"id"`
		Kind     string          `json:"kind"`
		Model    string          `json:"model"`
		Adapter  string          `json:"adapter"`
		Data     string          `json:"data"`
		Settings json.RawMessage `json:"settings"`
		Report   json.RawMessage `json:"report"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return EvalReport{}, fmt.Errorf("eval report: %w", err)
	}
	r := EvalReport{ID: file.ID, Kind: file.Kind, Model: file.Model, Adapter: file.Adapter, Data: file.Data, settings: canonJSON(file.Settings)}
	if len(file.Report) == 0 || string(file.Report) == "null" {
		return r, fmt.Errorf("eval report: no report")
	}
	var err error
	switch file.Kind {
	case "classification":
		var c struct {
			Calibrated *ClassEval `json:"calibrated"`
			Raw        *ClassEval `json:"raw"`
		}
		err = json.Unmarshal(file.Report, &c)
		r.Calibrated, r.Raw = c.Calibrated, c.Raw
		if err == nil && c.Calibrated == nil {
			err = fmt.Errorf("no calibrated report")
		}
	case "idp":
		r.IDP = new(IDPEval)
		err = json.Unmarshal(file.Report, r.IDP)
	case "codegen":
		r.Code = new(CodeEval)
		err = json.Unmarshal(file.Report, r.Code)
	default:
		err = fmt.Errorf("unknown kind %q", file.Kind)
	}
	if err != nil {
		return r, fmt.Errorf("eval report: %w", err)
	}
	return r, nil
}

// AdapterLabels returns the labels of the classification data an adapter
// was trained on (in the data's order), for the REPL to offer; none when
// its run or data is gone or was not classification.
func (w *Workstation) AdapterLabels(name string) ([]string, error) {
	ctx := context.Background()
	a, err := w.db.Adapter(ctx, name)
	if err != nil {
		return nil, err
	}
	if a.RunID == "" || a.Task != data.FormatClassification {
		return nil, nil
	}
	r, err := w.db.GetRun(ctx, a.RunID)
	if err != nil {
		return nil, nil
	}
	var cfg RunConfig
	if err := readRunConfig(filepath.Join(r.Dir, "config.yaml"), &cfg); err != nil {
		return nil, nil
	}
	ds, err := data.Load(cfg.Data, data.Options{Format: data.FormatClassification})
	if err != nil {
		return nil, fmt.Errorf("the training data of %s: %w", name, err)
	}
	return ds.Labels(), nil
}

// canonJSON is raw re-encoded with sorted keys and compact spacing, so two
// reports' settings compare as strings; "" for none or null.
func canonJSON(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil || v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
