package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// MetricStore records a run's metric series (loss, lr, tokens/s, ...).
type MetricStore interface {
	// AddMetrics records points for run runID in one transaction: all or
	// none. A point whose (name, step) is already recorded replaces it, so a
	// resumed run may log a step again. A zero Time is now; NaN and ±Inf
	// values are kept. ErrNotFound if there is no such run.
	AddMetrics(ctx context.Context, runID string, points []Metric) error
	// Metrics returns run runID's points of metric name by step, or of every
	// metric by name and step when name is empty. ErrNotFound if there is no
	// such run.
	Metrics(ctx context.Context, runID, name string) ([]Metric, error)
}

// Metric is one point of a series.
type Metric struct {
	Step  int
	Name  string
	Value float64
	Time  time.Time
}

func (d *DB) AddMetrics(ctx context.Context, runID string, points []Metric) error {
	if err := d.writable("add metrics of run " + runID); err != nil {
		return err
	}
	if len(points) == 0 {
		return nil
	}
	t := formatTime(now())
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO metrics (run_id, name, step, value, time)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value, time = excluded.time`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range points {
			if p.Name == "" {
				return fmt.Errorf("step %d: empty metric name", p.Step)
			}
			// SQLite cannot store NaN; NULL stands for it.
			v := sql.NullFloat64{Float64: p.Value, Valid: !math.IsNaN(p.Value)}
			at := t
			if !p.Time.IsZero() {
				at = formatTime(p.Time)
			}
			if _, err := stmt.ExecContext(ctx, runID, p.Name, p.Step, v, at); err != nil {
				return runRef(runID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add metrics of run %s: %w", runID, err)
	}
	return nil
}

func (d *DB) Metrics(ctx context.Context, runID, name string) ([]Metric, error) {
	q := "SELECT name, step, value, time FROM metrics WHERE run_id = ? ORDER BY name, step"
	args := []any{runID}
	if name != "" {
		q = "SELECT name, step, value, time FROM metrics WHERE run_id = ? AND name = ? ORDER BY step"
		args = append(args, name)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("metrics of run %s: %w", runID, err)
	}
	defer rows.Close()
	var ms []Metric
	for rows.Next() {
		var (
			m  Metric
			v  sql.NullFloat64
			at string
		)
		if err := rows.Scan(&m.Name, &m.Step, &v, &at); err != nil {
			return nil, fmt.Errorf("metrics of run %s: %w", runID, err)
		}
		m.Value = math.NaN()
		if v.Valid {
			m.Value = v.Float64
		}
		if m.Time, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("metrics of run %s: %w", runID, err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("metrics of run %s: %w", runID, err)
	}
	if len(ms) == 0 {
		if err := d.runExists(ctx, runID); err != nil {
			return nil, fmt.Errorf("metrics of run %s: %w", runID, err)
		}
	}
	return ms, nil
}

// runExists is nil if the run is recorded, else ErrNotFound.
func (d *DB) runExists(ctx context.Context, id string) error {
	var one int
	err := d.db.QueryRowContext(ctx, "SELECT 1 FROM runs WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
