package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// AdapterStore is the registry of named adapters, the names that serve,
// score and generate accept.
type AdapterStore interface {
	// RegisterAdapter records a under a.Name, replacing every field of an
	// adapter already registered under that name (tags included). A zero
	// CreatedAt is now. ErrNotFound if a.RunID names no run.
	RegisterAdapter(ctx context.Context, a Adapter) error
	// Adapter returns the adapter registered as name, or ErrNotFound.
	Adapter(ctx context.Context, name string) (Adapter, error)
	// ListAdapters returns every adapter, newest first.
	ListAdapters(ctx context.Context) ([]Adapter, error)
	// RenameAdapter renames oldName to newName. ErrNotFound if oldName is
	// not registered, ErrExists if newName is.
	RenameAdapter(ctx context.Context, oldName, newName string) error
	// TagAdapter adds tags to the adapter's set. ErrNotFound if name is not
	// registered.
	TagAdapter(ctx context.Context, name string, tags ...string) error
	// UntagAdapter removes tags from the adapter's set. ErrNotFound if name
	// is not registered.
	UntagAdapter(ctx context.Context, name string, tags ...string) error
	// DeleteAdapter removes the registration (not the files), or returns
	// ErrNotFound.
	DeleteAdapter(ctx context.Context, name string) error
	// LatestAdapter returns the most recently registered adapter trained
	// with method, or with any method when method is empty. ErrNotFound if
	// there is none.
	LatestAdapter(ctx context.Context, method string) (Adapter, error)
}

// Adapter is a registered LoRA adapter.
type Adapter struct {
	Name      string // unique; no spaces or slashes (it appears in URLs such as /infer/<name>)
	Path      string // the PEFT adapter folder
	BaseModel string
	Method    string // MethodSFT, MethodKD, MethodDPO, or empty if unknown
	Task      string
	RunID     string          // the run that trained it; empty if none or deleted
	Metrics   json.RawMessage // headline metrics, a JSON object
	Tags      []string        // sorted, no duplicates

	CreatedAt time.Time
	UpdatedAt time.Time
}

const adapterColumns = "name, path, base_model, method, task, run_id, metrics, tags, created_at, updated_at"

func (d *DB) RegisterAdapter(ctx context.Context, a Adapter) error {
	if err := d.writable("register adapter " + a.Name); err != nil {
		return err
	}
	if err := checkAdapterName(a.Name); err != nil {
		return fmt.Errorf("register adapter: %w", err)
	}
	if a.Path == "" {
		return fmt.Errorf("register adapter %s: empty path", a.Name)
	}
	metrics, err := jsonObject(a.Metrics)
	if err != nil {
		return fmt.Errorf("register adapter %s: metrics: %w", a.Name, err)
	}
	tags, err := json.Marshal(normalizeTags(a.Tags))
	if err != nil {
		return fmt.Errorf("register adapter %s: tags: %w", a.Name, err)
	}
	t := formatTime(now())
	_, err = d.db.ExecContext(ctx, `INSERT INTO adapters (`+adapterColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET path = excluded.path, base_model = excluded.base_model,
			method = excluded.method, task = excluded.task, run_id = excluded.run_id,
			metrics = excluded.metrics, tags = excluded.tags, created_at = excluded.created_at,
			updated_at = excluded.updated_at`,
		a.Name, a.Path, a.BaseModel, a.Method, a.Task, nullString(a.RunID), metrics, string(tags),
		orNow(a.CreatedAt), t)
	if err != nil {
		return fmt.Errorf("register adapter %s: %w", a.Name, runRef(a.RunID, err))
	}
	return nil
}

func (d *DB) Adapter(ctx context.Context, name string) (Adapter, error) {
	a, err := scanAdapter(d.db.QueryRowContext(ctx,
		"SELECT "+adapterColumns+" FROM adapters WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return Adapter{}, fmt.Errorf("adapter %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Adapter{}, fmt.Errorf("adapter %s: %w", name, err)
	}
	return a, nil
}

func (d *DB) ListAdapters(ctx context.Context) ([]Adapter, error) {
	rows, err := d.db.QueryContext(ctx,
		"SELECT "+adapterColumns+" FROM adapters ORDER BY created_at DESC, id DESC")
	if err != nil {
		return nil, fmt.Errorf("list adapters: %w", err)
	}
	defer rows.Close()
	var as []Adapter
	for rows.Next() {
		a, err := scanAdapter(rows)
		if err != nil {
			return nil, fmt.Errorf("list adapters: %w", err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list adapters: %w", err)
	}
	return as, nil
}

func (d *DB) RenameAdapter(ctx context.Context, oldName, newName string) error {
	op := "rename adapter " + oldName
	if err := d.writable(op); err != nil {
		return err
	}
	if err := checkAdapterName(newName); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	res, err := d.db.ExecContext(ctx, "UPDATE adapters SET name = ?, updated_at = ? WHERE name = ?",
		newName, formatTime(now()), oldName)
	if isConstraint(err, sqlite3.ErrConstraintUnique) {
		return fmt.Errorf("%s: %s: %w", op, newName, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return mustAffect(res, op)
}

func (d *DB) TagAdapter(ctx context.Context, name string, tags ...string) error {
	return d.editTags(ctx, "tag adapter "+name, name, func(have []string) []string {
		return append(have, tags...)
	})
}

func (d *DB) UntagAdapter(ctx context.Context, name string, tags ...string) error {
	return d.editTags(ctx, "untag adapter "+name, name, func(have []string) []string {
		return slices.DeleteFunc(have, func(t string) bool { return slices.Contains(tags, t) })
	})
}

// editTags rewrites an adapter's tags in one transaction.
func (d *DB) editTags(ctx context.Context, op, name string, edit func([]string) []string) error {
	if err := d.writable(op); err != nil {
		return err
	}
	err := d.inTx(ctx, func(tx *sql.Tx) error {
		var raw string
		err := tx.QueryRowContext(ctx, "SELECT tags FROM adapters WHERE name = ?", name).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var have []string
		if err := json.Unmarshal([]byte(raw), &have); err != nil {
			return fmt.Errorf("stored tags %s: %w", raw, err)
		}
		b, err := json.Marshal(normalizeTags(edit(have)))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE adapters SET tags = ?, updated_at = ? WHERE name = ?",
			string(b), formatTime(now()), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (d *DB) DeleteAdapter(ctx context.Context, name string) error {
	if err := d.writable("delete adapter " + name); err != nil {
		return err
	}
	res, err := d.db.ExecContext(ctx, "DELETE FROM adapters WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("delete adapter %s: %w", name, err)
	}
	return mustAffect(res, "delete adapter "+name)
}

func (d *DB) LatestAdapter(ctx context.Context, method string) (Adapter, error) {
	q, args := "SELECT "+adapterColumns+" FROM adapters", []any(nil)
	if method != "" {
		q, args = q+" WHERE method = ?", []any{method}
	}
	a, err := scanAdapter(d.db.QueryRowContext(ctx, q+" ORDER BY created_at DESC, id DESC LIMIT 1", args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Adapter{}, fmt.Errorf("latest %s adapter: %w", method, ErrNotFound)
	}
	if err != nil {
		return Adapter{}, fmt.Errorf("latest %s adapter: %w", method, err)
	}
	return a, nil
}

func scanAdapter(s scanner) (Adapter, error) {
	var (
		a                Adapter
		run              sql.NullString
		metrics, tags    string
		created, updated string
	)
	err := s.Scan(&a.Name, &a.Path, &a.BaseModel, &a.Method, &a.Task, &run, &metrics, &tags,
		&created, &updated)
	if err != nil {
		return Adapter{}, err
	}
	a.RunID = run.String
	a.Metrics = json.RawMessage(metrics)
	if err := json.Unmarshal([]byte(tags), &a.Tags); err != nil {
		return Adapter{}, fmt.Errorf("stored tags %s: %w", tags, err)
	}
	if a.CreatedAt, err = parseTime(created); err != nil {
		return Adapter{}, err
	}
	if a.UpdatedAt, err = parseTime(updated); err != nil {
		return Adapter{}, err
	}
	return a, nil
}

// checkAdapterName refuses names that would not survive a URL path or a
// command line unquoted.
func checkAdapterName(name string) error {
	if name == "" {
		return errors.New("empty adapter name")
	}
	if strings.ContainsFunc(name, func(r rune) bool {
		return r == '/' || r == '\\' || r == '?' || r == '#' || r <= ' ' || r == 0x7f
	}) {
		return fmt.Errorf("adapter name %q: no spaces, slashes, '?' or '#'", name)
	}
	return nil
}

// normalizeTags trims, drops empty tags and duplicates, and sorts.
func normalizeTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SetAdapterMetrics replaces an adapter's headline metrics (a JSON object),
// e.g. after an evaluation.
func (d *DB) SetAdapterMetrics(ctx context.Context, name string, metrics json.RawMessage) error {
	if err := d.writable("set metrics of adapter " + name); err != nil {
		return err
	}
	m, err := jsonObject(metrics)
	if err != nil {
		return fmt.Errorf("set metrics of adapter %s: %w", name, err)
	}
	res, err := d.db.ExecContext(ctx, "UPDATE adapters SET metrics = ?, updated_at = ? WHERE name = ?", m, formatTime(now()), name)
	if err != nil {
		return fmt.Errorf("set metrics of adapter %s: %w", name, err)
	}
	return mustAffect(res, "set metrics of adapter "+name)
}
