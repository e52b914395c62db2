package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mattn/go-sqlite3"
)

// OpenReadOnly opens the existing store at path for reading only, for a
// process that may not be able to write the file or its folder (a run
// database owned by root, read by a user's `distill runs list` or `distill
// serve`). Unlike Open it creates nothing, migrates nothing and does not
// recover interrupted runs: a file whose schema is not SchemaVersion is
// refused (ErrSchemaTooOld: open it once with Open, with write access, to
// migrate it; ErrSchemaTooNew), as is a file that is not a distill store
// (ErrNotStore). Every write method of the returned *DB, RecoverInterrupted
// included, returns ErrReadOnly.
//
// How it reads a WAL-mode file. It opens with mode=ro first: SQLite then
// reads the -wal file through the -shm file, sees every commit, and takes
// the usual locks, so it is safe beside a live writer. That needs the -shm
// file: it exists while some connection has the database open, and SQLite
// creates it otherwise — which fails in a folder this process cannot write
// (SQLITE_READONLY_DIRECTORY, or SQLITE_CANTOPEN). Only then, when no other
// process has the database open, does it fall back to immutable=1: SQLite
// reads the main file as a snapshot, without locks and without the -wal
// file. That is right for a database nobody writes, and the reason it is
// only a fallback: commits still in a -wal file left by a crashed writer
// are not seen, and a writer that opens the database meanwhile may change
// the file under the reader, which may then read inconsistent pages
// ("database disk image is malformed") or stale rows. Reopen to see new
// writes in that case.
func OpenReadOnly(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database read-only: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	// SQLite would say "unable to open database file" for all of these.
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("open database %s read-only: is a folder", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snapshot := false
	sqlDB, err := openReadOnly(ctx, abs, false)
	if err != nil && cannotShareWAL(err) {
		if immDB, ierr := openReadOnly(ctx, abs, true); ierr == nil {
			sqlDB, err, snapshot = immDB, nil, true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", path, err)
	}
	return &DB{db: sqlDB, path: abs, readOnly: true, snapshot: snapshot}, nil
}

// openReadOnly opens abs with mode=ro (and immutable=1 if asked) and checks
// its schema, which is the first read of the file: where a -shm file that
// cannot be created shows.
func openReadOnly(ctx context.Context, abs string, immutable bool) (*sql.DB, error) {
	q := "?mode=ro&_busy_timeout=" + strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	if immutable {
		q += "&immutable=1"
	}
	sqlDB, err := sql.Open("sqlite3", fileURI(abs)+q)
	if err != nil {
		return nil, err
	}
	v, err := checkVersion(ctx, sqlDB, SchemaVersion)
	switch {
	case err != nil:
	case v == 0:
		err = fmt.Errorf("%w: it has no tables (an empty database)", ErrNotStore)
	case v < SchemaVersion:
		err = fmt.Errorf("%w: schema version %d, this binary reads %d; open it once with write access (any distill command that writes, run by its owner) to migrate it",
			ErrSchemaTooOld, v, SchemaVersion)
	}
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	return sqlDB, nil
}

// cannotShareWAL reports whether err is SQLite failing to open or create a
// WAL database's -shm or -wal file without write access.
func cannotShareWAL(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrReadonly || se.Code == sqlite3.ErrCantOpen)
}
