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
//	failed (by RecoverInterrupted) ──FinishRun by its own owner──▶ completed | failed | canceled
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
	// or canceled) with errMsg as its Error and sets FinishedAt. A run that
	// RecoverInterrupted marked failed (Error is InterruptedError) although
	// its owner was alive may still be finished by that owner: the calling
	// process, if it is the recorded pid with the recorded start time and
	// owner identity. ErrNotFound, or ErrInvalidTransition if it has
	// already finished.
	FinishRun(ctx context.Context, id string, status Status, errMsg string) error
	// GetRun returns the run with that ID, or ErrNotFound.
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns the runs that match f, newest first.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// DeleteRun removes a finished run with its metrics and checkpoints;
	// its evaluations and registered adapters stay, with no run. The status
	// is checked by the DELETE itself, so a run that another process starts
	// meanwhile is never deleted. ErrNotFound if there is no such run,
	// ErrActive if it is queued or running. The run's folder is the
	// caller's to remove.
	DeleteRun(ctx context.Context, id string) error
	// SetBestMetric records the run's best value so far of metric name,
	// which must be finite (NaN and ±Inf are refused: they have no JSON
	// form). ErrNotFound if there is no such run.
	SetBestMetric(ctx context.Context, id, name string, value float64) error
	// RecoverInterrupted marks failed, with InterruptedError, every queued
	// or running run whose owning process is gone, and returns how many it
	// marked. A run recorded by a process with this process's owner identity
	// (same host, PID namespace and boot), or before schema 3 recorded
	// identities, is judged by its pid: gone if the pid is not alive, has
	// been reused by another process, or is this process's pid left over
	// from an earlier process. A run owned elsewhere (a trainer in a
	// container, say), whose pid means nothing here, is gone only if this
	// machine has rebooted since, or if the run has been silent for
	// ForeignOwnerStale: no change to the run and no metric or checkpoint.
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

// ForeignOwnerStale is how long a queued or running run owned by a process
// in another PID namespace or on another host (see Run.Owner) must have
// been silent — no change to the run, no metric point, no checkpoint —
// before RecoverInterrupted takes its owner for dead: such a pid cannot be
// checked from here. A live trainer records metrics at every step; its
// longest silences are loading a model, a long evaluation, writing a
// checkpoint or a slow first step, minutes to an hour or two even for
// large models on a CPU. Six hours is far beyond those, so a live
// container's run is not marked failed (and then resumed twice), and still
// a dead container's run shows as failed the same working day.
const ForeignOwnerStale = 6 * time.Hour

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
	// Owner is where PID is meaningful: the host, PID namespace and boot of
	// the process that recorded it ("host=H pidns=pid:[N] boot=B"); empty
	// for a run recorded before schema version 3 or without a pid.
	// CreateRun records this process's identity when Owner is empty.
	Owner string

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
	created_at, started_at, finished_at, updated_at, best_metric, best_metric_name, owner`

func (d *DB) CreateRun(ctx context.Context, r Run) error {
	if err := d.writable("create run " + r.ID); err != nil {
		return err
	}
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
	if r.BestMetric != nil && !finite(*r.BestMetric) {
		return fmt.Errorf("create run %s: best metric is %v: want a finite value", r.ID, *r.BestMetric)
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
		if r.Owner == "" {
			r.Owner = ownerIdentity()
		}
	} else {
		r.Owner = "" // no pid to qualify
	}
	var best sql.NullFloat64
	if r.BestMetric != nil {
		best = sql.NullFloat64{Float64: *r.BestMetric, Valid: true}
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO runs (`+runColumns+`, pid_start)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Method, r.BaseModel, r.Dataset, r.Task, string(r.Status), r.Error, r.Config, r.Dir, pid,
		formatTime(r.CreatedAt), nullTime(r.StartedAt), nullTime(r.FinishedAt), formatTime(t),
		best, r.BestMetricName, r.Owner, pidStart)
	if isConstraint(err, sqlite3.ErrConstraintPrimaryKey) {
		return fmt.Errorf("create run %s: %w", r.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

func (d *DB) StartRun(ctx context.Context, id string, pid int) error {
	if err := d.writable("start run " + id); err != nil {
		return err
	}
	if pid <= 0 {
		pid = os.Getpid()
	}
	var pidStart sql.NullInt64
	if st, ok := processStart(pid); ok {
		pidStart = sql.NullInt64{Int64: st, Valid: true}
	}
	t := formatTime(now())
	res, err := d.db.ExecContext(ctx, `UPDATE runs
		SET status = 'running', pid = ?, pid_start = ?, owner = ?, started_at = ?, finished_at = NULL,
			error = '', updated_at = ?
		WHERE id = ? AND status IN ('queued', 'failed', 'canceled')`,
		pid, pidStart, ownerIdentity(), t, t, id)
	if err != nil {
		return fmt.Errorf("start run %s: %w", id, err)
	}
	return d.checkTransition(ctx, res, "start run", id)
}

func (d *DB) FinishRun(ctx context.Context, id string, status Status, errMsg string) error {
	if !status.Final() {
		return fmt.Errorf("finish run %s: status %q: want completed, failed or canceled", id, status)
	}
	if err := d.writable("finish run " + id); err != nil {
		return err
	}
	// The calling process may also finish a run that RecoverInterrupted
	// marked failed while it was alive (a false "interrupted", as when an
	// earlier distill judged a pid it could not see): the run is still
	// recorded as its own, by pid, start time and owner identity. Without a
	// start time to tell this process from an earlier one with its pid,
	// nothing is revived (pid_start = NULL is never true).
	var selfStart sql.NullInt64
	if st, ok := processStart(os.Getpid()); ok {
		selfStart = sql.NullInt64{Int64: st, Valid: true}
	}
	t := formatTime(now())
	res, err := d.db.ExecContext(ctx, `UPDATE runs
		SET status = ?, error = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND (status IN ('queued', 'running') OR
			(status = 'failed' AND error = ? AND pid = ? AND pid_start = ? AND owner = ?))`,
		string(status), errMsg, t, t, id,
		InterruptedError, os.Getpid(), selfStart, ownerIdentity())
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
	if err := d.writable("delete run " + id); err != nil {
		return err
	}
	// The status check is part of the DELETE, so a run that another process
	// started (a resume) after the caller looked at it is not deleted. When
	// nothing was deleted, the status read in the same transaction says why.
	var active Status
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"DELETE FROM runs WHERE id = ? AND status NOT IN ('queued', 'running')", id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var status string
		err = tx.QueryRowContext(ctx, "SELECT status FROM runs WHERE id = ?", id).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		active = Status(status)
		return ErrActive
	})
	if errors.Is(err, ErrActive) {
		return fmt.Errorf("delete run %s: %w: it is %s, stop it first", id, ErrActive, active)
	}
	if err != nil {
		return fmt.Errorf("delete run %s: %w", id, err)
	}
	return nil
}

// SetRunConfig replaces a run's recorded config: what the run resolved
// when it started (its micro-batch fitted to the device, how it holds its
// activations) where the submitted config left it to the run.
func (d *DB) SetRunConfig(ctx context.Context, id, config string) error {
	if err := d.writable("set config of run " + id); err != nil {
		return err
	}
	res, err := d.db.ExecContext(ctx, "UPDATE runs SET config = ?, updated_at = ? WHERE id = ?",
		config, formatTime(now()), id)
	if err != nil {
		return fmt.Errorf("set config of run %s: %w", id, err)
	}
	return mustAffect(res, "set config of run "+id)
}

// DetachRunDir forgets an ended run's folder, when a new run takes the
// folder over (the old one left nothing in it but its config and log):
// deleting the old run must not delete the new one's files.
func (d *DB) DetachRunDir(ctx context.Context, id string) error {
	if err := d.writable("detach the folder of run " + id); err != nil {
		return err
	}
	res, err := d.db.ExecContext(ctx, "UPDATE runs SET dir = '', updated_at = ? WHERE id = ? AND status NOT IN ('queued', 'running')",
		formatTime(now()), id)
	if err != nil {
		return fmt.Errorf("detach the folder of run %s: %w", id, err)
	}
	return mustAffect(res, "detach the folder of run "+id+" (is it active?)")
}

func (d *DB) SetBestMetric(ctx context.Context, id, name string, value float64) error {
	if err := d.writable("set best metric of run " + id); err != nil {
		return err
	}
	if !finite(value) {
		// ±Inf would be stored, and then break every JSON listing of runs.
		return fmt.Errorf("set best metric of run %s: %s is %v: want a finite value", id, name, value)
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
	if err := d.writable("recover interrupted runs"); err != nil {
		return 0, err
	}
	self := ownerIdentity()
	t := now()
	silentSince := formatTime(t.Add(-ForeignOwnerStale))
	type owner struct {
		id       string
		pid      sql.NullInt64
		pidStart sql.NullInt64
		owner    string
		stale    bool // judged by silence, not by pid
	}
	rows, err := d.db.QueryContext(ctx,
		"SELECT id, pid, pid_start, owner, updated_at FROM runs WHERE status IN ('queued', 'running')")
	if err != nil {
		return 0, fmt.Errorf("recover interrupted runs: %w", err)
	}
	var dead, silent []owner
	for rows.Next() {
		var (
			o       owner
			updated string
		)
		if err := rows.Scan(&o.id, &o.pid, &o.pidStart, &o.owner, &updated); err != nil {
			rows.Close()
			return 0, fmt.Errorf("recover interrupted runs: %w", err)
		}
		switch {
		case o.owner == "" || o.owner == self:
			// Recorded before owners were (schema 2), or in this PID
			// namespace of this boot: the pid can be checked here.
			if !ownerAlive(o.pid, o.pidStart) {
				dead = append(dead, o)
			}
		case rebootedSince(o.owner):
			dead = append(dead, o)
		case updated < silentSince:
			// Another PID namespace or host: its pid means nothing here.
			// Only a long silence tells; the metrics are read below.
			o.stale = true
			silent = append(silent, o)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("recover interrupted runs: %w", err)
	}
	for _, o := range silent {
		active, err := d.recentActivity(ctx, o.id, silentSince)
		if err != nil {
			return 0, fmt.Errorf("recover interrupted runs: %w", err)
		}
		if !active {
			dead = append(dead, o)
		}
	}
	if len(dead) == 0 {
		return 0, nil
	}
	n := 0
	ts := formatTime(t)
	err = d.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, o := range dead {
			// Only if nobody has started it since it was read, and, for a
			// run judged by its silence, if it is still silent.
			q := `UPDATE runs
				SET status = 'failed', error = ?, finished_at = ?, updated_at = ?
				WHERE id = ? AND status IN ('queued', 'running') AND pid IS ? AND pid_start IS ? AND owner = ?`
			args := []any{InterruptedError, ts, ts, o.id, o.pid, o.pidStart, o.owner}
			if o.stale {
				q += ` AND updated_at < ?
					AND NOT EXISTS (SELECT 1 FROM metrics WHERE run_id = runs.id AND time >= ?)
					AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE run_id = runs.id AND created_at >= ?)`
				args = append(args, silentSince, silentSince, silentSince)
			}
			res, err := tx.ExecContext(ctx, q, args...)
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

// recentActivity reports whether run id has recorded a metric point or a
// checkpoint at or after since (a stored time).
func (d *DB) recentActivity(ctx context.Context, id, since string) (bool, error) {
	var active bool
	err := d.db.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM metrics WHERE run_id = ? AND time >= ?) OR
		EXISTS (SELECT 1 FROM checkpoints WHERE run_id = ? AND created_at >= ?)`,
		id, since, id, since).Scan(&active)
	return active, err
}

// ownerAlive reports whether the process recorded as a run's owner is still
// the one running; the caller has made sure that the pid was recorded in
// this PID namespace. Without a recorded start time, this process's own pid
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

// finite reports whether v is neither NaN nor ±Inf.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

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
		&r.Dir, &pid, &created, &started, &finished, &updated, &best, &r.BestMetricName, &r.Owner)
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
