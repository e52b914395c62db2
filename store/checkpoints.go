package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CheckpointStore records where a run saved its checkpoints.
type CheckpointStore interface {
	// AddCheckpoint records c; a second checkpoint at the same run and step
	// replaces the first. A zero CreatedAt is now. ErrNotFound if there is
	// no such run.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints returns run runID's checkpoints by step. ErrNotFound if
	// there is no such run.
	Checkpoints(ctx context.Context, runID string) ([]Checkpoint, error)
	// LatestCheckpoint returns the run's checkpoint with the highest step:
	// where a resume starts. ErrNotFound if the run has none.
	LatestCheckpoint(ctx context.Context, runID string) (Checkpoint, error)
	// DeleteCheckpoint forgets the run's checkpoint at step (its files are
	// the caller's to delete); no such checkpoint is not an error.
	DeleteCheckpoint(ctx context.Context, runID string, step int) error
}

// Checkpoint is a saved training state of a run.
type Checkpoint struct {
	RunID     string
	Step      int
	Path      string // e.g. runs/<id>/checkpoints/step-000500
	CreatedAt time.Time
}

func (d *DB) AddCheckpoint(ctx context.Context, c Checkpoint) error {
	if err := d.writable("add checkpoint of run " + c.RunID); err != nil {
		return err
	}
	if c.Path == "" {
		return fmt.Errorf("add checkpoint of run %s: empty path", c.RunID)
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO checkpoints (run_id, step, path, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path, created_at = excluded.created_at`,
		c.RunID, c.Step, c.Path, orNow(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("add checkpoint of run %s: %w", c.RunID, runRef(c.RunID, err))
	}
	return nil
}

func (d *DB) DeleteCheckpoint(ctx context.Context, runID string, step int) error {
	if err := d.writable("delete checkpoint of run " + runID); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, "DELETE FROM checkpoints WHERE run_id = ? AND step = ?", runID, step); err != nil {
		return fmt.Errorf("delete checkpoint %d of run %s: %w", step, runID, err)
	}
	return nil
}

func (d *DB) Checkpoints(ctx context.Context, runID string) ([]Checkpoint, error) {
	rows, err := d.db.QueryContext(ctx,
		"SELECT run_id, step, path, created_at FROM checkpoints WHERE run_id = ? ORDER BY step", runID)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer rows.Close()
	var cs []Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	if len(cs) == 0 {
		if err := d.runExists(ctx, runID); err != nil {
			return nil, fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
	}
	return cs, nil
}

func (d *DB) LatestCheckpoint(ctx context.Context, runID string) (Checkpoint, error) {
	c, err := scanCheckpoint(d.db.QueryRowContext(ctx, `SELECT run_id, step, path, created_at
		FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, fmt.Errorf("latest checkpoint of run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("latest checkpoint of run %s: %w", runID, err)
	}
	return c, nil
}

func scanCheckpoint(s scanner) (Checkpoint, error) {
	var (
		c  Checkpoint
		at string
	)
	if err := s.Scan(&c.RunID, &c.Step, &c.Path, &at); err != nil {
		return Checkpoint{}, err
	}
	t, err := parseTime(at)
	if err != nil {
		return Checkpoint{}, err
	}
	c.CreatedAt = t
	return c, nil
}
