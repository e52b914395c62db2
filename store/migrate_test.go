package store

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMigrationsAreNumberedWithoutGaps(t *testing.T) {
	if len(migrations) != SchemaVersion {
		t.Fatalf("%d migrations, SchemaVersion %d", len(migrations), SchemaVersion)
	}
	for i, m := range migrations {
		if m.version != i+1 {
			t.Errorf("%s has version %d, want %d", m.name, m.version, i+1)
		}
	}
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"gap", []string{"migrations/0001_a.sql", "migrations/0003_b.sql"}},
		{"no number", []string{"migrations/init.sql", "migrations/0002_b.sql"}},
		{"count differs from SchemaVersion", []string{"migrations/0001_a.sql"}},
	} {
		fsys := fstest.MapFS{}
		for _, f := range tc.files {
			fsys[f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations accepted %v", tc.name, tc.files)
		}
	}
}

// TestMigrateFromV1 opens a database written by schema version 1 (the
// fixture testdata/v1.sql) and checks that every row survives and that the
// tables of later versions work with the old rows.
func TestMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	fixture, err := os.ReadFile("testdata/v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOpen(t, path)
	if _, err := raw.Exec(string(fixture)); err != nil {
		t.Fatalf("write fixture: %v", err)
	}
	raw.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if v := pragmaInt(t, db.db, "user_version"); v != SchemaVersion {
		t.Fatalf("user_version %d after migration, want %d", v, SchemaVersion)
	}

	r, err := db.GetRun(ctx, "20261101-090000-sft-aa01")
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != MethodSFT || r.Status != StatusCompleted || r.Task != "classification" ||
		r.Config != `{"lr":0.0002}` || r.PID != 4242 || r.StartedAt.IsZero() ||
		r.BestMetric != nil || r.BestMetricName != "" {
		t.Errorf("migrated run: %+v", r)
	}
	failed, err := db.GetRun(ctx, "20261102-090000-dpo-bb02")
	if err != nil {
		t.Fatal(err)
	}
	if failed.Error != "out of memory" || !failed.StartedAt.IsZero() || failed.PID != 0 {
		t.Errorf("migrated failed run: %+v", failed)
	}
	runs, err := db.ListRuns(ctx, RunFilter{})
	if err != nil || len(runs) != 2 || runs[0].ID != failed.ID {
		t.Errorf("ListRuns after migration: %v, %v", runs, err)
	}

	loss, err := db.Metrics(ctx, r.ID, "loss")
	if err != nil {
		t.Fatal(err)
	}
	if len(loss) != 3 || loss[0].Value != 2.5 || loss[1].Value != 2.25 || !math.IsNaN(loss[2].Value) {
		t.Errorf("migrated loss: %+v", loss)
	}
	cp, err := db.LatestCheckpoint(ctx, r.ID)
	if err != nil || cp.Step != 2 {
		t.Errorf("migrated checkpoint: %+v, %v", cp, err)
	}

	// Version 2's columns and tables, against version 1's rows.
	if err := db.SetBestMetric(ctx, r.ID, "macro_f1", 0.81); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddEvaluation(ctx, Evaluation{RunID: r.ID, Kind: KindClassification}); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterAdapter(ctx, Adapter{Name: "tickets", Path: r.Dir + "/adapter", RunID: r.ID}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRun(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if a, err := db.Adapter(ctx, "tickets"); err != nil || a.RunID != "" {
		t.Errorf("adapter after its run was deleted: %+v, %v", a, err)
	}

	// The migrated schema is the one a fresh store gets.
	fresh := openTest(t)
	if got, want := schemaSQL(t, db), schemaSQL(t, fresh); got != want {
		t.Errorf("migrated schema differs from a fresh one:\n%s\nwant\n%s", got, want)
	}
}

// schemaSQL is the database's schema as its CREATE statements, without
// comments and with whitespace normalised.
func schemaSQL(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.db.Query("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		// Comments are kept in sqlite_schema; compare the statements.
		var code []string
		for _, line := range strings.Split(s, "\n") {
			line, _, _ = strings.Cut(line, "--")
			code = append(code, line)
		}
		b.WriteString(strings.Join(strings.Fields(strings.Join(code, " ")), " ") + "\n")
	}
	return b.String()
}

// TestMigrationFailureRollsBack checks that a migration that fails halfway
// leaves the database at the previous version, without its first
// statements.
func TestMigrationFailureRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "distill.db")
	raw := rawOpen(t, path)
	ms := []migration{
		migrations[0],
		{version: 2, name: "0002_broken.sql", sql: "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"},
	}
	err := migrate(context.Background(), raw, ms)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("migrate: %v, want an error naming 0002_broken.sql", err)
	}
	if v := pragmaInt(t, raw, "user_version"); v != 1 {
		t.Errorf("user_version %d, want 1", v)
	}
	var n int
	if err := raw.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed migration left behind (%d, %v)", n, err)
	}
	// The real migrations then take it the rest of the way.
	if err := migrate(context.Background(), raw, migrations); err != nil {
		t.Fatal(err)
	}
	if v := pragmaInt(t, raw, "user_version"); v != SchemaVersion {
		t.Errorf("user_version %d, want %d", v, SchemaVersion)
	}
}

func TestMigrateRejectsNewerInsideTransaction(t *testing.T) {
	// checkVersion is also what apply runs under the write lock.
	raw := rawOpen(t, filepath.Join(t.TempDir(), "x.db"))
	if err := migrate(context.Background(), raw, migrations); err != nil {
		t.Fatal(err)
	}
	_, err := checkVersion(context.Background(), raw, SchemaVersion-1)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("checkVersion: %v, want ErrSchemaTooNew", err)
	}
}
