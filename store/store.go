package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
	// ErrActive: the run is queued or running, so it cannot be deleted.
	ErrActive = errors.New("run is active")
	// ErrReadOnly: a write through a *DB from OpenReadOnly.
	ErrReadOnly = errors.New("database is opened read-only")
	// ErrSchemaTooOld: OpenReadOnly found a file that needs migrating, which
	// only Open (with write access) does.
	ErrSchemaTooOld = errors.New("database schema is older than this binary's")
)

// DB is the SQLite store. It implements RunStore, MetricStore,
// CheckpointStore, EvaluationStore and AdapterStore, and is safe for
// concurrent use.
type DB struct {
	db       *sql.DB
	path     string
	readOnly bool // from OpenReadOnly: every write method returns ErrReadOnly
	snapshot bool // read-only through immutable=1; see OpenReadOnly
}

var (
	_ RunStore        = (*DB)(nil)
	_ MetricStore     = (*DB)(nil)
	_ CheckpointStore = (*DB)(nil)
	_ EvaluationStore = (*DB)(nil)
	_ AdapterStore    = (*DB)(nil)
)

// busyTimeout is how long a statement waits for another connection's lock
// (SQLite's busy timeout) before it fails with "database is locked". Other
// processes share the file — the workstation, `distill runs`, a second
// trainer, a sqlite3 shell — and one of them may hold the write lock for
// seconds (a long transaction, deleting a large run, a checkpoint of a big
// WAL). A trainer's writes that matter (StartRun, checkpoint records,
// FinishRun) must wait that out rather than fail, so the timeout is long;
// the per-step metrics path already tolerates a failed write (the step is
// in log.jsonl), so waiting longer costs a trainer nothing but the wait.
const busyTimeout = 30 * time.Second

// dsn is the connection string for path: every pooled connection gets WAL,
// foreign keys, a busy timeout and synchronous=NORMAL (durable across a
// process crash; only a power cut can lose the last commits), and
// database/sql transactions begin IMMEDIATE so that two writers wait for
// each other instead of failing to upgrade a read lock.
func dsn(path string) string {
	return fileURI(path) + "?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=" +
		strconv.FormatInt(busyTimeout.Milliseconds(), 10) + "&_synchronous=NORMAL&_txlock=immediate"
}

// fileURI is path as an SQLite URI filename without parameters.
func fileURI(path string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath()
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

// ReadOnly reports whether d is from OpenReadOnly.
func (d *DB) ReadOnly() bool { return d.readOnly }

// writable is nil, or ErrReadOnly for op on a read-only handle. (SQLite
// would refuse the write too, but as "attempt to write a readonly
// database", which does not say why.)
func (d *DB) writable(op string) error {
	if d.readOnly {
		return fmt.Errorf("%s: %w", op, ErrReadOnly)
	}
	return nil
}

// Close lets SQLite refresh its query-planner statistics and closes every
// connection.
func (d *DB) Close() error {
	// PRAGMA optimize is advice, not data: its failure must not hide Close's.
	// It may write (ANALYZE), so a read-only handle skips it.
	if !d.readOnly {
		_, _ = d.db.Exec("PRAGMA optimize")
	}
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
