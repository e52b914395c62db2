package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// RunStore records training runs and their life cycle:
//
//	queued ──StartRun──▶ running ──FinishRun──▶ completed | failed | canceled
//	   └────────────────FinishRun───────────────▶ failed | canceled
//	failed | canceled ──StartRun──▶ running (a resume)
//
// A run whose owning process died is left queued or running until
// RecoverInterrupted marks it failed; call it when a process starts.
type RunStore interface {
	// CreateRun inserts r. ID and Method are required; an empty Status is
	// StatusQueued, a zero CreatedAt is now, and a queued or running run
	// with PID 0 is owned by the calling process. ErrExists if the ID is
	// taken.
	CreateRun(ctx context.Context, r Run) error
	// StartRun marks a queued, failed or canceled run running in process pid
	// (0: the calling process), sets StartedAt and clears Error and
	// FinishedAt. ErrNotFound, or ErrInvalidTransition if the run is running
	// or completed.
	StartRun(ctx context.Context, id string, pid int) error
	// FinishRun moves a queued or running run to status (completed, failed
	// or canceled) with errMsg as its Error and sets FinishedAt.
	// ErrNotFound, or ErrInvalidTransition if it has already finished.
	FinishRun(ctx context.Context, id string, status Status, errMsg string) error
	// GetRun returns the run with that ID, or ErrNotFound.
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns the runs that match f, newest first.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// DeleteRun removes the run with its metrics and checkpoints; its
	// evaluations and registered adapters stay, with no run. ErrNotFound if
	// there is no such run. The run's folder is the caller's to remove.
	DeleteRun(ctx context.Context, id string) error
	// SetBestMetric records the run's best value so far of metric name.
	// ErrNotFound if there is no such run.
	SetBestMetric(ctx context.Context, id, name string, value float64) error
	// RecoverInterrupted marks failed, with ErrInterrupted's message, every
	// queued or running run whose owning process is gone: its pid is not
	// alive, has been reused by another process, or is this process's pid
	// left over from an earlier process. It returns how many it marked.
	RecoverInterrupted(ctx context.Context) (int, error)
}

// Methods of fine-tuning, the values of Run.Method.
const (
	MethodSFT = "sft"
	MethodKD  = "kd"
	MethodDPO = "dpo"
)

// Methods are the methods that CreateRun accepts.
var Methods = []string{MethodSFT, MethodKD, MethodDPO}

// Status is where a run is in its life cycle.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool { return s.Active() || s.Final() }

// Active reports whether the run still has, or waits for, a process.
func (s Status) Active() bool { return s == StatusQueued || s == StatusRunning }

// Final reports whether the run has finished, for good or not.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// InterruptedError is the Error that RecoverInterrupted gives a run.
const InterruptedError = "interrupted (process exited without finishing)"

// Run is one training run.
type Run struct {
	ID        string // e.g. "20261125-182700-sft-ab12", see NewRunID
	Method    string // MethodSFT, MethodKD or MethodDPO
	BaseModel string // the base model's folder or name
	Dataset   string
	Task      string // classification, idp, codegen, or empty
	Status    Status
	Error     string // why it failed or was canceled; empty otherwise
	Config    string // the effective config, YAML or JSON
	Dir       string // the run's folder, runs/<id>
	PID       int    // the owning process: the launcher while queued, the trainer while running

	CreatedAt  time.Time
	StartedAt  time.Time // zero until StartRun
	FinishedAt time.Time // zero until FinishRun
	UpdatedAt  time.Time // last change of any field

	BestMetric     *float64 // nil until SetBestMetric
	BestMetricName string
}

// RunFilter selects runs for ListRuns; zero fields select everything.
type RunFilter struct {
	Method string
	Status Status
	Task   string
	Limit  int // at most this many, newest first; 0: no limit
}

// NewRunID returns an ID like "20261125-182700-sft-ab12": t to the second in
// its own location, the method, and four random hex digits so that two runs
// started in one second differ.
func NewRunID(t time.Time, method string) string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return t.Format("20060102-150405") + "-" + method + "-" + hex.EncodeToString(b[:])
}

func validMethod(m string) bool {
	for _, k := range Methods {
		if m == k {
			return true
		}
	}
	return false
}

const runColumns = `id, method, base_model, dataset, task, status, error, config, dir, pid,
	created_at, started_at, finished_at, updated_at, best_metric, best_metric_name`

func (d *DB) CreateRun(ctx context.Context, r Run) error {
	if r.ID == "" {
		return errors.New("create run: empty id")
	}
	if !validMethod(r.Method) {
		return fmt.Errorf("create run %s: method %q: want one of %s", r.ID, r.Method, strings.Join(Methods, ", "))
	}
	if r.Status == "" {
		r.Status = StatusQueued
	}
	if !r.Status.Valid() {
		return fmt.Errorf("create run %s: unknown status %q", r.ID, r.Status)
	}
	if r.BestMetric != nil && math.IsNaN(*r.BestMetric) {
		return fmt.Errorf("create run %s: best metric is NaN", r.ID)
	}
	t := now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = t
	}
	if r.Status == StatusRunning && r.StartedAt.IsZero() {
		r.StartedAt = t
	}
	if r.Status.Final() && r.FinishedAt.IsZero() {
		r.FinishedAt = t
	}
	var pid, pidStart sql.NullInt64
	if r.Status.Active() && r.PID == 0 {
		r.PID = os.Getpid()
	}
	if r.PID > 0 {
		pid = sql.NullInt64{Int64: int64(r.PID), Valid: true}
		if st, ok := processStart(r.PID); ok {
			pidStart = sql.NullInt64{Int64: st, Valid: true}
		}
	}
	var best sql.NullFloat64
	if r.BestMetric != nil {
		best = sql.NullFloat64{Float64: *r.BestMetric, Valid: true}
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO runs (`+runColumns+`, pid_start)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Method, r.BaseModel, r.Dataset, r.Task, string(r.Status), r.Error, r.Config, r.Dir, pid,
		formatTime(r.CreatedAt), nullTime(r.StartedAt), nullTime(r.FinishedAt), formatTime(t),
		best, r.BestMetricName, pidStart)
	if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
		return fmt.Errorf("create run %s: %w", r.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

func (d *DB) StartRun(ctx context.Context, id string, pid int) error {
	if pid <= 0 {
		pid = os.Getpid()
	}
	var pidStart sql.NullInt64
	if st, ok := processStart(pid); ok {
		pidStart = sql.NullInt64{Int64: st, Valid: true}
	}
	t := formatTime(now())
	res, err := d.db.ExecContext(ctx, `UPDATE runs
		SET status = 'running', pid = ?, pid_start = ?, started_at = ?, finished_at = NULL,
			error = '', updated_at = ?
		WHERE id = ? AND status IN ('queued', 'failed', 'canceled')`,
		pid, pidStart, t, t, id)
	if err != nil {
		return fmt.Errorf("start run %s: %w", id, err)
	}
	return d.checkTransition(ctx, res, "start run", id)
}

func (d *DB) FinishRun(ctx context.Context, id string, status Status, errMsg string) error {
	if !status.Final() {
		return fmt.Errorf("finish run %s: status %q: want completed, failed or canceled", id, status)
	}
	t := formatTime(now())
	res, err := d.db.ExecContext(ctx, `UPDATE runs
		SET status = ?, error = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND status IN ('queued', 'running')`,
		string(status), errMsg, t, t, id)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", id, err)
	}
	return d.checkTransition(ctx, res, "finish run", id)
}

// checkTransition explains an UPDATE guarded by status that changed no row:
// the run is missing, or its status does not allow the change.
func (d *DB) checkTransition(ctx context.Context, res sql.Result, op, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if n > 0 {
		return nil
	}
	var status string
	err = d.db.QueryRowContext(ctx, "SELECT status FROM runs WHERE id = ?", id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", op, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	return fmt.Errorf("%s %s: run is %s: %w", op, id, status, ErrInvalidTransition)
}

func (d *DB) GetRun(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(d.db.QueryRowContext(ctx, "SELECT "+runColumns+" FROM runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", id, err)
	}
	return r, nil
}

func (d *DB) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	var where []string
	var args []any
	if f.Method != "" {
		where, args = append(where, "method = ?"), append(args, f.Method)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Task != "" {
		where, args = append(where, "task = ?"), append(args, f.Task)
	}
	q := "SELECT " + runColumns + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

func (d *DB) DeleteRun(ctx context.Context, id string) error {
	res, err := d.db.ExecContext(ctx, "DELETE FROM runs WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete run %s: %w", id, err)
	}
	return mustAffect(res, "delete run "+id)
}

// SetRunConfig replaces a run's recorded config: what the run resolved
// when it started (its micro-batch fitted to the device, how it holds its
// activations) where the submitted config left it to the run.
func (d *DB) SetRunConfig(ctx context.Context, id, config string) error {
	res, err := d.db.ExecContext(ctx, "UPDATE runs SET config = ?, updated_at = ? WHERE id = ?",
		config, formatTime(now()), id)
	if err != nil {
		return fmt.Errorf("set config of run %s: %w", id, err)
	}
	return mustAffect(res, "set config of run "+id)
}

func (d *DB) SetBestMetric(ctx context.Context, id, name string, value float64) error {
	if math.IsNaN(value) {
		return fmt.Errorf("set best metric of run %s: %s is NaN", id, name)
	}
	res, err := d.db.ExecContext(ctx,
		"UPDATE runs SET best_metric = ?, best_metric_name = ?, updated_at = ? WHERE id = ?",
		value, name, formatTime(now()), id)
	if err != nil {
		return fmt.Errorf("set best metric of run %s: %w", id, err)
	}
	return mustAffect(res, "set best metric of run "+id)
}

func (d *DB) RecoverInterrupted(ctx context.Context) (int, error) {
	type owner struct {
		id       string
		pid      sql.NullInt64
		pidStart sql.NullInt64
	}
	rows, err := d.db.QueryContext(ctx,
		"SELECT id, pid, pid_start FROM runs WHERE status IN ('queued', 'running')")
	if err != nil {
		return 0, fmt.Errorf("recover interrupted runs: %w", err)
	}
	var dead []owner
	for rows.Next() {
		var o owner
		if err := rows.Scan(&o.id, &o.pid, &o.pidStart); err != nil {
			rows.Close()
			return 0, fmt.Errorf("recover interrupted runs: %w", err)
		}
		if !ownerAlive(o.pid, o.pidStart) {
			dead = append(dead, o)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("recover interrupted runs: %w", err)
	}
	if len(dead) == 0 {
		return 0, nil
	}
	n := 0
	t := formatTime(now())
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, o := range dead {
			// Only if nobody has started it since it was read.
			res, err := tx.ExecContext(ctx, `UPDATE runs
				SET status = 'failed', error = ?, finished_at = ?, updated_at = ?
				WHERE id = ? AND status IN ('queued', 'running') AND pid IS ? AND pid_start IS ?`,
				InterruptedError, t, t, o.id, o.pid, o.pidStart)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recover interrupted runs: %w", err)
	}
	return n, nil
}

// ownerAlive reports whether the process recorded as a run's owner is still
// the one running. Without a recorded start time, this process's own pid
// counts as dead: the row was left by an earlier process that had the same
// pid (the usual case after a reboot).
func ownerAlive(pid, pidStart sql.NullInt64) bool {
	if !pid.Valid || pid.Int64 <= 0 {
		return false
	}
	p := int(pid.Int64)
	if !pidStart.Valid {
		return p != os.Getpid() && processAlive(p)
	}
	st, ok := processStart(p)
	if !ok {
		// Start times unreadable (no /proc): fall back to the pid alone.
		return p != os.Getpid() && processAlive(p)
	}
	return st == pidStart.Int64 && processAlive(p)
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(s scanner) (Run, error) {
	var (
		r                 Run
		status            string
		pid               sql.NullInt64
		created, updated  string
		started, finished sql.NullString
		best              sql.NullFloat64
	)
	err := s.Scan(&r.ID, &r.Method, &r.BaseModel, &r.Dataset, &r.Task, &status, &r.Error, &r.Config,
		&r.Dir, &pid, &created, &started, &finished, &updated, &best, &r.BestMetricName)
	if err != nil {
		return Run{}, err
	}
	r.Status = Status(status)
	r.PID = int(pid.Int64)
	if best.Valid {
		v := best.Float64
		r.BestMetric = &v
	}
	if r.CreatedAt, err = parseTime(created); err != nil {
		return Run{}, err
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return Run{}, err
	}
	if r.StartedAt, err = parseNullTime(started); err != nil {
		return Run{}, err
	}
	if r.FinishedAt, err = parseNullTime(finished); err != nil {
		return Run{}, err
	}
	return r, nil
}

// mustAffect turns an UPDATE or DELETE by key that changed no row into
// ErrNotFound.
func mustAffect(res sql.Result, op string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return nil
}
