package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Sentinel errors, wrapped by every method; test with errors.Is.
var (
	// ErrNotFound: no run, checkpoint or adapter has that key.
	ErrNotFound = errors.New("not found")
	// ErrExists: the key (an adapter name, a run id) is already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalidTransition: the run's status does not allow the change,
	// such as finishing a run that already finished.
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrSchemaTooNew: the file was written by a newer distill.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")
	// ErrNotStore: the file is an SQLite database, but not a distill store.
	ErrNotStore = errors.New("not a distill database")
)

// DB is the SQLite store. It implements RunStore, MetricStore,
// CheckpointStore, EvaluationStore and AdapterStore, and is safe for
// concurrent use.
type DB struct {
	db   *sql.DB
	path string
}

var (
	_ RunStore        = (*DB)(nil)
	_ MetricStore     = (*DB)(nil)
	_ CheckpointStore = (*DB)(nil)
	_ EvaluationStore = (*DB)(nil)
	_ AdapterStore    = (*DB)(nil)
)

// dsn is the connection string for path: every pooled connection gets WAL,
// foreign keys, a busy timeout and synchronous=NORMAL (durable across a
// process crash; only a power cut can lose the last commits), and
// database/sql transactions begin IMMEDIATE so that two writers wait for
// each other instead of failing to upgrade a read lock.
func dsn(path string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() +
		"?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=5000&_synchronous=NORMAL&_txlock=immediate"
}

// Open opens the store at path, creating the file and its parent folders if
// needed, and migrates it to SchemaVersion. It refuses a database whose
// schema is newer than this binary knows (ErrSchemaTooNew) and an SQLite
// file that is not a distill store (ErrNotStore), leaving both untouched.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := sql.Open("sqlite3", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, sqlDB, migrations); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return &DB{db: sqlDB, path: abs}, nil
}

// Path is the absolute path of the database file.
func (d *DB) Path() string { return d.path }

// Close lets SQLite refresh its query-planner statistics and closes every
// connection.
func (d *DB) Close() error {
	// PRAGMA optimize is advice, not data: its failure must not hide Close's.
	_, _ = d.db.Exec("PRAGMA optimize")
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// inTx runs fn in one IMMEDIATE transaction, committing if it returns nil.
func (d *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timeLayout is fixed width so that stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// now is the store's clock, in UTC and at the stored resolution.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", s, err)
	}
	return t, nil
}

// parseNullTime reads NULL as the zero time.
func parseNullTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	return parseTime(s.String)
}

// orNow is t, or the current time when t is zero, in stored form.
func orNow(t time.Time) string {
	if t.IsZero() {
		return formatTime(now())
	}
	return formatTime(t)
}

// isConstraint reports whether err is the SQLite constraint violation code.
func isConstraint(err error, code sqlite3.ErrNoExtended) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == code
}

// runRef turns a foreign-key violation of a row that refers to runID into
// ErrNotFound for that run.
func runRef(runID string, err error) error {
	if isConstraint(err, sqlite3.ErrConstraintForeignKey) {
		return fmt.Errorf("run %q: %w", runID, ErrNotFound)
	}
	return err
}
