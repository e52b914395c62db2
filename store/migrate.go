package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// SchemaVersion is the schema this binary writes: the number of the last
// file in migrations/. Open migrates older files up to it and refuses newer
// ones.
const SchemaVersion = 3

// applicationID ("DSTL") is written by migration 1 into the file header
// (PRAGMA application_id) and marks a file as a distill store.
const applicationID = 0x4453544C

//go:embed migrations/*.sql
var migrationFiles embed.FS

// A migration takes the schema from version-1 to version.
type migration struct {
	version int
	name    string // file name, for errors
	sql     string
}

// migrations are the embedded files in order; loading them cannot fail once
// the package's tests pass.
var migrations = mustLoadMigrations(migrationFiles)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic(err)
	}
	return ms
}

// loadMigrations reads migrations/NNNN_name.sql, which must be numbered
// 1, 2, ... SchemaVersion without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var ms []migration
	for i, name := range names { // fs.Glob returns sorted names
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("load migrations: %s: want a name like %04d_what.sql", name, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	if len(ms) != SchemaVersion {
		return nil, fmt.Errorf("load migrations: %d files but SchemaVersion is %d", len(ms), SchemaVersion)
	}
	return ms, nil
}

// migrate brings the database to the last of ms. Each migration runs in its
// own IMMEDIATE transaction together with the bump of PRAGMA user_version,
// so a crash or a failing statement leaves the previous version intact, and
// two processes opening one old file at once migrate it once.
//
// A migration that has to rebuild a table must not rely on turning foreign
// keys off (the pragma is a no-op inside a transaction); it is checked with
// PRAGMA foreign_key_check before its commit instead.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	latest := len(ms)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	v, err := checkVersion(ctx, conn, latest)
	if err != nil || v == latest {
		return err
	}
	for _, m := range ms[v:] {
		if err := apply(ctx, conn, m, latest); err != nil {
			return err
		}
	}
	return nil
}

// checkVersion reads the schema version and refuses a file that this binary
// must not touch.
func checkVersion(ctx context.Context, q querier, latest int) (int, error) {
	var v, app, tables int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return 0, fmt.Errorf("read application id: %w", err)
	}
	if v == 0 {
		// A fresh file, unless it already holds someone else's tables.
		err := q.QueryRowContext(ctx,
			"SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'").Scan(&tables)
		if err != nil {
			return 0, fmt.Errorf("read schema: %w", err)
		}
		if tables > 0 {
			return 0, fmt.Errorf("%w: it has %d tables but no schema version", ErrNotStore, tables)
		}
		return 0, nil
	}
	if app != applicationID {
		return 0, fmt.Errorf("%w: application id %#x, want %#x", ErrNotStore, app, applicationID)
	}
	if v > latest {
		return 0, fmt.Errorf("%w: schema version %d, this binary knows up to %d; use a newer distill",
			ErrSchemaTooNew, v, latest)
	}
	return v, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func apply(ctx context.Context, conn *sql.Conn, m migration, latest int) error {
	tx, err := conn.BeginTx(ctx, nil) // IMMEDIATE: see dsn
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer tx.Rollback() // no-op after Commit

	// Another process may have migrated while this one waited for the lock.
	v, err := checkVersion(ctx, tx, latest)
	if err != nil {
		return err
	}
	if v >= m.version {
		return nil
	}
	if v != m.version-1 {
		return fmt.Errorf("migration %s: database is at version %d", m.name, v)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("migration %s: foreign key check: %w", m.name, err)
	}
	bad := rows.Next()
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("migration %s: foreign key check: %w", m.name, err)
	}
	if bad {
		return fmt.Errorf("migration %s: leaves rows that violate foreign keys", m.name)
	}
	// PRAGMA takes no bound parameters; m.version is an int.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}
