package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openTest opens a fresh store in a temporary folder, closed at cleanup.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "distill.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// rawOpen opens path with the store's DSN but without migrating.
func rawOpen(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pragmaInt(t *testing.T, db *sql.DB, name string) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// mustRun creates a run with the given ID and method and fails the test on
// error.
func mustRun(t *testing.T, db *DB, id, method string) Run {
	t.Helper()
	r := Run{ID: id, Method: method, BaseModel: "models/tiny", Dataset: "data/x.jsonl", Dir: "runs/" + id}
	if err := db.CreateRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOpenSetsConnectionPragmas(t *testing.T) {
	db := openTest(t)
	// Several connections at once: every pooled connection must carry the
	// DSN's settings, not just the first.
	ctx := context.Background()
	var conns []*sql.Conn
	for range 3 {
		c, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, tc := range []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
			{"synchronous", "1"}, // NORMAL
			{"user_version", fmt.Sprint(SchemaVersion)},
			{"application_id", fmt.Sprint(applicationID)},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("conn %d: PRAGMA %s = %s, want %s", i, tc.pragma, got, tc.want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestOpenCreatesParentFolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b c", "d?#%", "distill.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, db, "r1", MethodSFT)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
	// Reopening an up-to-date store migrates nothing and keeps the data.
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.GetRun(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "distill.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, db, "r1", MethodKD)
	newer := SchemaVersion + 1
	if _, err := db.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, fmt.Sprintf("version %d", newer), fmt.Sprintf("up to %d", SchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if v := pragmaInt(t, rawOpen(t, path), "user_version"); v != newer {
		t.Errorf("refused database's user_version changed to %d", v)
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	for _, tc := range []struct {
		name string
		sql  string
	}{
		{"unversioned tables", "CREATE TABLE notes (body TEXT)"},
		{"other application", "PRAGMA user_version = 1; PRAGMA application_id = 7; CREATE TABLE x (y)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "other.db")
			raw := rawOpen(t, path)
			if _, err := raw.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			if _, err := Open(path); !errors.Is(err, ErrNotStore) {
				t.Fatalf("Open: %v, want ErrNotStore", err)
			}
		})
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestStoredTimesSortAsText(t *testing.T) {
	a := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := a.Add(time.Microsecond)
	c := time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("X", 3600)) // the instant a
	if !(formatTime(a) < formatTime(b)) {
		t.Errorf("%s !< %s", formatTime(a), formatTime(b))
	}
	if formatTime(c) != formatTime(a) {
		t.Errorf("zones not normalised: %s vs %s", formatTime(c), formatTime(a))
	}
	got, err := parseTime(formatTime(b))
	if err != nil || !got.Equal(b) {
		t.Errorf("round trip: %v, %v", got, err)
	}
}
