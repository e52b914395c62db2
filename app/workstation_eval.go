package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"distill/core/data"
	"distill/store"
)

// EvaluateRun evaluates a finished run on its validation data — the
// validation file it was given, or the rows it held out — through the same
// code as `distill eval`, records the evaluation and returns its row.
// Classification runs get a confusion matrix (calibrated and raw), IDP runs
// a per-field report; other tasks are evaluated from the CLI.
func (w *Workstation) EvaluateRun(id string) (EvalRow, error) {
	ctx := context.Background()
	r, err := w.db.GetRun(ctx, id)
	if err != nil {
		return EvalRow{}, err
	}
	if r.Status.Active() {
		return EvalRow{}, fmt.Errorf("%s is still %s: evaluate it when it has finished", id, r.Status)
	}
	var cfg RunConfig
	if err := readRunConfig(filepath.Join(r.Dir, "config.yaml"), &cfg); err != nil {
		return EvalRow{}, err
	}
	if cfg.Method == "dpo" {
		return EvalRow{}, errors.New("a DPO run is scored on preference pairs while it trains (val_accuracy); evaluate its task from the CLI with distill eval")
	}
	val := cfg.Val
	if val == "" {
		val = filepath.Join(r.Dir, heldOutFile)
		if _, err := os.Stat(val); err != nil {
			return EvalRow{}, fmt.Errorf("%s has no validation file and kept no held-out rows: evaluate it with distill eval classify --run %s --data FILE", id, id)
		}
	}
	args := []string{"--run", id, "--data", val, "--db", w.dbPath, "--quant", cfg.Quant}
	if _, err := os.Stat(filepath.Join(r.Dir, "adapter")); err != nil {
		full := filepath.Join(r.Dir, "model") // full fine-tuning writes a model
		if _, err := os.Stat(full); err != nil {
			return EvalRow{}, fmt.Errorf("%s saved neither an adapter nor a model: did it finish?", id)
		}
		args = append(args, "--model", full)
	}
	format := cfg.Format
	if format == "" {
		ds, err := data.Load(val, data.Options{SchemaPath: cfg.Schema})
		if err != nil {
			return EvalRow{}, err
		}
		format = ds.Format
	}
	env := &Env{Stdout: io.Discard, Stderr: io.Discard}
	switch format {
	case data.FormatClassification:
		err = evalClassify(env, args)
	case data.FormatIDP:
		if cfg.Schema == "" {
			return EvalRow{}, fmt.Errorf("%s trained on IDP data without a schema, which scoring checks its outputs against: give Schema when launching, or evaluate it from the CLI (distill eval idp --run %s --data %s --schema FILE)", id, id, val)
		}
		err = evalIDP(env, append(args, "--schema", cfg.Schema))
	default:
		return EvalRow{}, fmt.Errorf("%s trained on %s data: evaluate it from the CLI (distill eval classify|idp|codegen)", id, format)
	}
	if err != nil {
		return EvalRow{}, fmt.Errorf("evaluate %s: %w", id, err)
	}
	es, err := w.db.Evaluations(ctx, id)
	if err != nil || len(es) == 0 {
		return EvalRow{}, fmt.Errorf("evaluate %s: the evaluation was not recorded (%v)", id, err)
	}
	e := newest(es)
	return EvalRow{ID: e.ID, Run: e.RunID, Adapter: e.Adapter, Kind: e.Kind, Metrics: shortMetrics(e.Metrics, 2), ReportPath: e.ReportPath}, nil
}

// newest is the evaluation recorded last.
func newest(es []store.Evaluation) store.Evaluation {
	n := es[0]
	for _, e := range es[1:] {
		if e.ID > n.ID {
			n = e
		}
	}
	return n
}
