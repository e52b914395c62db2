package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// EvaluationStore records evaluation results. The full report lives in a
// JSON file (ReportPath); the store keeps the headline numbers.
type EvaluationStore interface {
	// AddEvaluation records e and returns its ID. RunID may be empty (an
	// evaluation of a base model); a zero CreatedAt is now. ErrNotFound if
	// RunID names no run.
	AddEvaluation(ctx context.Context, e Evaluation) (int64, error)
	// Evaluations returns run runID's evaluations, newest first; with an
	// empty runID, every evaluation. ErrNotFound if runID names no run.
	Evaluations(ctx context.Context, runID string) ([]Evaluation, error)
}

// Kinds of evaluation, the values of Evaluation.Kind.
const (
	KindClassification = "classification"
	KindIDP            = "idp"
	KindCodegen        = "codegen"
)

// Kinds are the kinds that AddEvaluation accepts.
var Kinds = []string{KindClassification, KindIDP, KindCodegen}

// Evaluation is one evaluation of a base model or adapter.
type Evaluation struct {
	ID         int64  // set by AddEvaluation
	RunID      string // the run that trained the adapter; empty for none
	Adapter    string // registered adapter name or path; empty for the base model
	Kind       string // KindClassification, KindIDP or KindCodegen
	Metrics    json.RawMessage
	ReportPath string // e.g. runs/<id>/eval/<name>.json
	CreatedAt  time.Time
}

func (d *DB) AddEvaluation(ctx context.Context, e Evaluation) (int64, error) {
	if err := d.writable("add evaluation"); err != nil {
		return 0, err
	}
	if !validKind(e.Kind) {
		return 0, fmt.Errorf("add evaluation: kind %q: want one of %s", e.Kind, strings.Join(Kinds, ", "))
	}
	metrics, err := jsonObject(e.Metrics)
	if err != nil {
		return 0, fmt.Errorf("add evaluation: metrics: %w", err)
	}
	res, err := d.db.ExecContext(ctx, `INSERT INTO evaluations
		(run_id, adapter, kind, metrics, report_path, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		nullString(e.RunID), e.Adapter, e.Kind, metrics, e.ReportPath, orNow(e.CreatedAt))
	if err != nil {
		return 0, fmt.Errorf("add evaluation: %w", runRef(e.RunID, err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("add evaluation: %w", err)
	}
	return id, nil
}

func (d *DB) Evaluations(ctx context.Context, runID string) ([]Evaluation, error) {
	const cols = "SELECT id, run_id, adapter, kind, metrics, report_path, created_at FROM evaluations"
	q, args := cols+" ORDER BY created_at DESC, id DESC", []any(nil)
	if runID != "" {
		q, args = cols+" WHERE run_id = ? ORDER BY created_at DESC, id DESC", []any{runID}
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("evaluations of run %s: %w", runID, err)
	}
	defer rows.Close()
	var es []Evaluation
	for rows.Next() {
		var (
			e       Evaluation
			run     sql.NullString
			metrics string
			at      string
		)
		if err := rows.Scan(&e.ID, &run, &e.Adapter, &e.Kind, &metrics, &e.ReportPath, &at); err != nil {
			return nil, fmt.Errorf("evaluations of run %s: %w", runID, err)
		}
		e.RunID = run.String
		e.Metrics = json.RawMessage(metrics)
		if e.CreatedAt, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("evaluations of run %s: %w", runID, err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evaluations of run %s: %w", runID, err)
	}
	if len(es) == 0 && runID != "" {
		if err := d.runExists(ctx, runID); err != nil {
			return nil, fmt.Errorf("evaluations of run %s: %w", runID, err)
		}
	}
	return es, nil
}

func validKind(k string) bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// nullString stores the empty string as NULL, for optional references.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// jsonObject checks that raw is one JSON value, compacts it, and reads
// empty as {}.
func jsonObject(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "{}", nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", err
	}
	if b.Len() == 0 || b.Bytes()[0] != '{' {
		return "", fmt.Errorf("want a JSON object, got %.40s", b.String())
	}
	return b.String(), nil
}
