package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deadPID is the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return gone.Process.Pid
}

// runStatus is run id's status, failing the test if it cannot be read.
func runStatus(t *testing.T, db *DB, id string) Status {
	t.Helper()
	r, err := db.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status
}

// TestMigrateFromV2 writes a database at schema version 2 (the real
// migrations 1 and 2) with runs of every kind, opens it, and checks that
// migration 3 adds the owner column empty, keeps the rows, and that the old
// runs are still judged by their pid.
func TestMigrateFromV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	raw := rawOpen(t, path)
	if err := migrate(ctx, raw, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	if v := pragmaInt(t, raw, "user_version"); v != 2 {
		t.Fatalf("fixture at version %d, want 2", v)
	}
	selfStart, ok := processStart(os.Getpid())
	if !ok {
		t.Skip("no /proc start times")
	}
	ts := formatTime(now())
	for _, r := range []struct {
		id, status string
		pid        any
		pidStart   any
	}{
		{"v2-done", "completed", nil, nil},
		{"v2-dead", "running", deadPID(t), nil},
		{"v2-self", "running", os.Getpid(), selfStart},
	} {
		if _, err := raw.Exec(`INSERT INTO runs (id, method, status, pid, pid_start, created_at, updated_at, best_metric, best_metric_name)
			VALUES (?, 'sft', ?, ?, ?, ?, ?, 0.5, 'f1')`, r.id, r.status, r.pid, r.pidStart, ts, ts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO metrics (run_id, name, step, value, time) VALUES ('v2-self', 'loss', 1, 2.5, ?)`, ts); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := pragmaInt(t, db.db, "user_version"); v != SchemaVersion || SchemaVersion != 3 {
		t.Fatalf("user_version %d after migration, SchemaVersion %d; want 3", v, SchemaVersion)
	}
	runs, err := db.ListRuns(ctx, RunFilter{})
	if err != nil || len(runs) != 3 {
		t.Fatalf("ListRuns after migration: %d runs, %v", len(runs), err)
	}
	for _, r := range runs {
		if r.Owner != "" || r.BestMetric == nil || *r.BestMetric != 0.5 || r.BestMetricName != "f1" {
			t.Errorf("migrated run %s: owner %q, best %v %q", r.ID, r.Owner, r.BestMetric, r.BestMetricName)
		}
	}
	if ms, err := db.Metrics(ctx, "v2-self", "loss"); err != nil || len(ms) != 1 || ms[0].Value != 2.5 {
		t.Errorf("migrated metrics: %+v, %v", ms, err)
	}
	// Runs without an owner are judged by pid, as before.
	if n, err := db.RecoverInterrupted(ctx); err != nil || n != 1 {
		t.Errorf("RecoverInterrupted: %d, %v; want 1", n, err)
	}
	if s := runStatus(t, db, "v2-dead"); s != StatusFailed {
		t.Errorf("v2-dead: %s, want failed", s)
	}
	if s := runStatus(t, db, "v2-self"); s != StatusRunning {
		t.Errorf("v2-self: %s, want running", s)
	}
	// New rows get this process's identity; a resume takes the run over.
	if err := db.FinishRun(ctx, "v2-self", StatusFailed, "x"); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, "v2-self", 0); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.GetRun(ctx, "v2-self"); r.Owner != ownerIdentity() {
		t.Errorf("resumed run's owner %q, want %q", r.Owner, ownerIdentity())
	}
	fresh := openTest(t)
	if got, want := schemaSQL(t, db), schemaSQL(t, fresh); got != want {
		t.Errorf("migrated schema differs from a fresh one:\n%s\nwant\n%s", got, want)
	}
}

func TestOwnerIdentity(t *testing.T) {
	id := ownerIdentity()
	p := parseIdentity(id)
	if p.host == "" || formatIdentity(p) != id {
		t.Errorf("identity %q parses to %+v", id, p)
	}
	if _, err := os.Stat("/proc/self/ns/pid"); err == nil && !strings.HasPrefix(p.pidns, "pid:[") {
		t.Errorf("identity %q: no PID namespace", id)
	}
	if got := formatIdentity(identity{host: "a b", pidns: "", boot: "x\n"}); got != "host=a_b pidns=? boot=x" {
		t.Errorf("formatIdentity: %q", got)
	}
	if p := parseIdentity(""); p != (identity{}) {
		t.Errorf("parseIdentity(\"\") = %+v", p)
	}
	if rebootedSince(id) || rebootedSince("") {
		t.Error("rebootedSince this identity or none")
	}
	if p.boot != "" {
		other := formatIdentity(identity{host: p.host, pidns: p.pidns, boot: "another-boot"})
		if !rebootedSince(other) {
			t.Errorf("rebootedSince(%q) = false", other)
		}
		if rebootedSince(formatIdentity(identity{host: "other-host", pidns: p.pidns, boot: "another-boot"})) {
			t.Error("another host counts as this one rebooted")
		}
	}
}

// TestRecoverInterruptedForeignOwner: a run recorded in another PID
// namespace or on another host (a trainer in a container records pid 1) is
// not judged by its pid, only by a long silence, or by a reboot of this
// machine.
func TestRecoverInterruptedForeignOwner(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	dead := deadPID(t)
	self := parseIdentity(ownerIdentity())
	foreign := formatIdentity(identity{host: self.host, pidns: "pid:[1]", boot: self.boot})
	elsewhere := "host=another-machine pidns=pid:[4026531836] boot=0000"
	long := formatTime(now().Add(-ForeignOwnerStale - time.Hour))
	recent := now().Add(-time.Hour)

	type tc struct {
		run     Run
		updated string    // updated_at, if set
		metric  time.Time // a metric point's time, if set
		ckpt    time.Time // a checkpoint's time, if set
		want    Status
	}
	cases := []tc{
		// The reviewer's case: a live container trainer with pid 1, and one
		// whose pid happens to be dead here.
		{run: Run{ID: "foreign-pid1", PID: 1, Owner: foreign}, want: StatusRunning},
		{run: Run{ID: "foreign-deadpid", PID: dead, Owner: foreign}, want: StatusRunning},
		{run: Run{ID: "elsewhere", PID: dead, Owner: elsewhere}, want: StatusRunning},
		// Silent for longer than ForeignOwnerStale: dead.
		{run: Run{ID: "foreign-stale", PID: 1, Owner: foreign}, updated: long, want: StatusFailed},
		{run: Run{ID: "foreign-stale-queued", PID: 1, Owner: foreign, Status: StatusQueued}, updated: long, want: StatusFailed},
		{run: Run{ID: "foreign-old-metrics", PID: 1, Owner: foreign}, updated: long,
			metric: now().Add(-ForeignOwnerStale - time.Minute), want: StatusFailed},
		// The run is old but its metrics or checkpoints are recent: alive.
		{run: Run{ID: "foreign-metrics", PID: 1, Owner: foreign}, updated: long, metric: recent, want: StatusRunning},
		{run: Run{ID: "foreign-ckpt", PID: 1, Owner: foreign}, updated: long, ckpt: recent, want: StatusRunning},
		// This process's identity: judged by pid, as are runs without one.
		{run: Run{ID: "self-deadpid", PID: dead}, want: StatusFailed},
		{run: Run{ID: "self-live"}, want: StatusRunning},
		{run: Run{ID: "legacy-deadpid", PID: dead}, updated: "", want: StatusFailed},
	}
	if self.boot != "" && self.host != "" {
		// This machine before a reboot: every process of that boot is gone.
		rebooted := formatIdentity(identity{host: self.host, pidns: self.pidns, boot: "an-earlier-boot"})
		cases = append(cases, tc{run: Run{ID: "rebooted", PID: os.Getpid(), Owner: rebooted}, want: StatusFailed})
	}
	for _, c := range cases {
		r := c.run
		r.Method = MethodSFT
		if r.Status == "" {
			r.Status = StatusRunning
		}
		if err := db.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if !c.metric.IsZero() {
			if err := db.AddMetrics(ctx, r.ID, []Metric{{Step: 1, Name: "loss", Value: 1, Time: c.metric}}); err != nil {
				t.Fatal(err)
			}
		}
		if !c.ckpt.IsZero() {
			if err := db.AddCheckpoint(ctx, Checkpoint{RunID: r.ID, Step: 1, Path: "x", CreatedAt: c.ckpt}); err != nil {
				t.Fatal(err)
			}
		}
		if c.updated != "" {
			mustExec(t, db, "UPDATE runs SET updated_at = ? WHERE id = ?", c.updated, r.ID)
		}
	}
	mustExec(t, db, "UPDATE runs SET owner = '' WHERE id = 'legacy-deadpid'")
	if got, _ := db.GetRun(ctx, "self-live"); got.Owner != ownerIdentity() {
		t.Errorf("CreateRun recorded owner %q, want %q", got.Owner, ownerIdentity())
	}

	n, err := db.RecoverInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range cases {
		if c.want == StatusFailed {
			want++
		}
		r, err := db.GetRun(ctx, c.run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != c.want {
			t.Errorf("%s: %s, want %s", r.ID, r.Status, c.want)
		}
		if c.want == StatusFailed && r.Error != InterruptedError {
			t.Errorf("%s: error %q", r.ID, r.Error)
		}
	}
	if n != want {
		t.Errorf("RecoverInterrupted marked %d, want %d", n, want)
	}
	if n, err := db.RecoverInterrupted(ctx); err != nil || n != 0 {
		t.Errorf("second RecoverInterrupted: %d, %v", n, err)
	}
}

// TestFinishRunAfterFalseInterrupt: a trainer whose live run another
// process marked interrupted can still finish it; nobody else can, and a
// run that really finished cannot be finished again.
func TestFinishRunAfterFalseInterrupt(t *testing.T) {
	if _, ok := processStart(os.Getpid()); !ok {
		t.Skip("no /proc start times")
	}
	db := openTest(t)
	ctx := context.Background()
	interrupt := func(id string) {
		t.Helper()
		mustExec(t, db, "UPDATE runs SET status = 'failed', error = ?, finished_at = updated_at WHERE id = ?",
			InterruptedError, id)
	}
	for _, final := range []Status{StatusCompleted, StatusCanceled, StatusFailed} {
		id := "own-" + string(final)
		mustRun(t, db, id, MethodSFT)
		if err := db.StartRun(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		interrupt(id)
		if err := db.FinishRun(ctx, id, final, "why"); err != nil {
			t.Errorf("FinishRun(%s) by the run's own process after a false interrupt: %v", final, err)
		}
		if r, _ := db.GetRun(ctx, id); r.Status != final || r.Error != "why" {
			t.Errorf("%s: %s %q", id, r.Status, r.Error)
		}
		// Once finished for real, it stays finished.
		if err := db.FinishRun(ctx, id, StatusCompleted, ""); !errors.Is(err, ErrInvalidTransition) {
			t.Errorf("second FinishRun of %s: %v, want ErrInvalidTransition", id, err)
		}
	}

	// Not this process's run, or not failed by RecoverInterrupted: refused.
	for name, edit := range map[string]string{
		"other pid":        "UPDATE runs SET pid = pid + 1 WHERE id = ?",
		"other start time": "UPDATE runs SET pid_start = pid_start - 1 WHERE id = ?",
		"no start time":    "UPDATE runs SET pid_start = NULL WHERE id = ?",
		"other owner":      "UPDATE runs SET owner = 'host=x pidns=pid:[1] boot=y' WHERE id = ?",
		"real failure":     "UPDATE runs SET error = 'loss is NaN' WHERE id = ?",
		"completed":        "UPDATE runs SET status = 'completed', error = '' WHERE id = ?",
	} {
		id := "not-own-" + strings.ReplaceAll(name, " ", "-")
		mustRun(t, db, id, MethodSFT)
		if err := db.StartRun(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		interrupt(id)
		mustExec(t, db, edit, id)
		before, _ := db.GetRun(ctx, id)
		if err := db.FinishRun(ctx, id, StatusCompleted, ""); !errors.Is(err, ErrInvalidTransition) {
			t.Errorf("%s: FinishRun: %v, want ErrInvalidTransition", name, err)
		}
		if after, _ := db.GetRun(ctx, id); after.Status != before.Status || after.Error != before.Error {
			t.Errorf("%s: refused FinishRun changed the run: %+v", name, after)
		}
	}
}

// TestRecoverKeepsOwnLiveRun: RecoverInterrupted in the trainer's own
// process leaves its run alone, and the trainer finishes it.
func TestRecoverKeepsOwnLiveRun(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodKD)
	if err := db.StartRun(ctx, "r", 0); err != nil {
		t.Fatal(err)
	}
	if n, err := db.RecoverInterrupted(ctx); err != nil || n != 0 {
		t.Fatalf("RecoverInterrupted: %d, %v", n, err)
	}
	if err := db.FinishRun(ctx, "r", StatusCompleted, ""); err != nil {
		t.Fatal(err)
	}
}

func TestBusyTimeout(t *testing.T) {
	if busyTimeout < 30*time.Second {
		t.Errorf("busy timeout %v, want at least 30s", busyTimeout)
	}
	db := openTest(t)
	if v := pragmaInt(t, db.db, "busy_timeout"); v != 30000 {
		t.Errorf("PRAGMA busy_timeout = %d, want 30000", v)
	}
	if testing.Short() {
		return
	}
	// A writer that holds the lock for longer than the old 5 s: the
	// checkpoint record and FinishRun wait for it instead of failing.
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	if err := db.StartRun(ctx, "r", 0); err != nil {
		t.Fatal(err)
	}
	other := rawOpen(t, db.Path())
	tx, err := other.Begin() // IMMEDIATE: takes the write lock now
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE runs SET config = 'held' WHERE id = 'r'"); err != nil {
		t.Fatal(err)
	}
	const hold = 6 * time.Second
	go func() { time.Sleep(hold); tx.Commit() }()
	start := time.Now()
	if err := db.AddCheckpoint(ctx, Checkpoint{RunID: "r", Step: 1, Path: "c"}); err != nil {
		t.Fatalf("AddCheckpoint behind a %v lock: %v", hold, err)
	}
	if waited := time.Since(start); waited < hold-time.Second {
		t.Errorf("AddCheckpoint waited only %v", waited)
	}
	if err := db.FinishRun(ctx, "r", StatusCompleted, ""); err != nil {
		t.Fatal(err)
	}
}

func TestSetBestMetricRefusesNonFinite(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	if err := db.SetBestMetric(ctx, "r", "f1", 0.5); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		err := db.SetBestMetric(ctx, "r", "eval_loss", v)
		if err == nil || !strings.Contains(err.Error(), "finite") {
			t.Errorf("SetBestMetric(%v): %v, want a refusal", v, err)
		}
		best := v
		if err := db.CreateRun(ctx, Run{ID: fmt.Sprint("c", v), Method: MethodSFT, BestMetric: &best}); err == nil {
			t.Errorf("CreateRun with best metric %v accepted", v)
		}
	}
	if r, _ := db.GetRun(ctx, "r"); r.BestMetric == nil || *r.BestMetric != 0.5 || r.BestMetricName != "f1" {
		t.Errorf("refused values changed the best metric: %v %q", r.BestMetric, r.BestMetricName)
	}
}

// TestDeleteRunRefusesActive: `runs rm` checks the status, then deletes;
// a resume in another process in between must not lose its run.
func TestDeleteRunRefusesActive(t *testing.T) {
	ctx := context.Background()
	a := openTest(t)
	b, err := Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.CreateRun(ctx, Run{ID: "r", Method: MethodSFT, Status: StatusFailed}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMetrics(ctx, "r", []Metric{{Step: 1, Name: "loss", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if s := runStatus(t, a, "r"); s.Active() { // what `runs rm` checks
		t.Fatal(s)
	}
	if err := b.StartRun(ctx, "r", 0); err != nil { // the resume
		t.Fatal(err)
	}
	err = a.DeleteRun(ctx, "r")
	if !errors.Is(err, ErrActive) || !strings.Contains(err.Error(), "running") {
		t.Fatalf("DeleteRun of a running run: %v, want ErrActive", err)
	}
	if ms, err := a.Metrics(ctx, "r", ""); err != nil || len(ms) != 1 {
		t.Errorf("refused delete lost the run's metrics: %v, %v", ms, err)
	}
	mustRun(t, a, "q", MethodSFT)
	if err := a.DeleteRun(ctx, "q"); !errors.Is(err, ErrActive) {
		t.Errorf("DeleteRun of a queued run: %v, want ErrActive", err)
	}
	if err := a.DeleteRun(ctx, "nope"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrActive) {
		t.Errorf("DeleteRun(nope): %v, want ErrNotFound", err)
	}
	if err := b.FinishRun(ctx, "r", StatusCanceled, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRun(ctx, "r"); err != nil {
		t.Errorf("DeleteRun of a finished run: %v", err)
	}
}

// writeReadOnlyFixture writes a store with a finished run "a" at path.
func writeReadOnlyFixture(t *testing.T, path string) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRun(ctx, Run{ID: "a", Method: MethodSFT, Status: StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddMetrics(ctx, "a", []Metric{{Step: 1, Name: "loss", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterAdapter(ctx, Adapter{Name: "ad", Path: "p", RunID: "a"}); err != nil {
		t.Fatal(err)
	}
	return db
}

// readOnlyWrites are every write method, called on db.
func readOnlyWrites(ctx context.Context, db *DB) map[string]error {
	_, recoverErr := db.RecoverInterrupted(ctx)
	_, evalErr := db.AddEvaluation(ctx, Evaluation{RunID: "a", Kind: KindIDP})
	return map[string]error{
		"CreateRun":          db.CreateRun(ctx, Run{ID: "b", Method: MethodSFT}),
		"StartRun":           db.StartRun(ctx, "a", 0),
		"FinishRun":          db.FinishRun(ctx, "a", StatusFailed, ""),
		"DeleteRun":          db.DeleteRun(ctx, "a"),
		"SetRunConfig":       db.SetRunConfig(ctx, "a", "{}"),
		"SetBestMetric":      db.SetBestMetric(ctx, "a", "f1", 1),
		"RecoverInterrupted": recoverErr,
		"AddMetrics":         db.AddMetrics(ctx, "a", []Metric{{Step: 2, Name: "loss", Value: 1}}),
		"AddCheckpoint":      db.AddCheckpoint(ctx, Checkpoint{RunID: "a", Step: 1, Path: "c"}),
		"AddEvaluation":      evalErr,
		"RegisterAdapter":    db.RegisterAdapter(ctx, Adapter{Name: "x", Path: "p"}),
		"RenameAdapter":      db.RenameAdapter(ctx, "ad", "ad2"),
		"TagAdapter":         db.TagAdapter(ctx, "ad", "t"),
		"UntagAdapter":       db.UntagAdapter(ctx, "ad", "t"),
		"SetAdapterMetrics":  db.SetAdapterMetrics(ctx, "ad", []byte(`{"f1":1}`)),
		"DeleteAdapter":      db.DeleteAdapter(ctx, "ad"),
	}
}

// checkReadOnlyStore checks that db reads the fixture and refuses writes.
func checkReadOnlyStore(ctx context.Context, db *DB) error {
	var errs []error
	if !db.ReadOnly() {
		errs = append(errs, errors.New("ReadOnly() = false"))
	}
	if runs, err := db.ListRuns(ctx, RunFilter{}); err != nil || len(runs) != 1 || runs[0].ID != "a" {
		errs = append(errs, fmt.Errorf("ListRuns: %v, %v", runs, err))
	}
	if ms, err := db.Metrics(ctx, "a", "loss"); err != nil || len(ms) != 1 || ms[0].Value != 2 {
		errs = append(errs, fmt.Errorf("Metrics: %v, %v", ms, err))
	}
	if as, err := db.ListAdapters(ctx); err != nil || len(as) != 1 {
		errs = append(errs, fmt.Errorf("ListAdapters: %v, %v", as, err))
	}
	for name, err := range readOnlyWrites(ctx, db) {
		if !errors.Is(err, ErrReadOnly) {
			errs = append(errs, fmt.Errorf("%s on a read-only store: %v, want ErrReadOnly", name, err))
		}
	}
	// SQLite itself refuses too (mode=ro), behind the methods' check.
	if _, err := db.db.ExecContext(ctx, "UPDATE runs SET config = 'x'"); err == nil {
		errs = append(errs, errors.New("raw UPDATE through a read-only handle succeeded"))
	}
	return errors.Join(errs...)
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "distill.db")
	w := writeReadOnlyFixture(t, path)
	defer w.Close()

	// Beside a live writer: mode=ro, which sees the writer's new commits.
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.snapshot {
		t.Error("OpenReadOnly beside a writer fell back to immutable")
	}
	if err := checkReadOnlyStore(ctx, ro); err != nil {
		t.Error(err)
	}
	if err := w.CreateRun(ctx, Run{ID: "later", Method: MethodKD, Status: StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.GetRun(ctx, "later"); err != nil {
		t.Errorf("read-only handle does not see a later commit: %v", err)
	}
	if r, _ := ro.GetRun(ctx, "a"); r.Status != StatusCompleted {
		t.Errorf("refused writes changed run a: %+v", r)
	}
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	dir := t.TempDir()
	// Missing: an error, and no file created.
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenReadOnly(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly(missing): %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
	if _, err := OpenReadOnly(""); err == nil {
		t.Error("OpenReadOnly(\"\") succeeded")
	}
	if _, err := OpenReadOnly(dir); err == nil {
		t.Error("OpenReadOnly(a folder) succeeded")
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(empty); !errors.Is(err, ErrNotStore) {
		t.Errorf("OpenReadOnly(empty file): %v, want ErrNotStore", err)
	}

	// An older schema: refused, not migrated.
	old := filepath.Join(dir, "v2.db")
	raw := rawOpen(t, old)
	if err := migrate(context.Background(), raw, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err := OpenReadOnly(old)
	if !errors.Is(err, ErrSchemaTooOld) || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("OpenReadOnly(v2): %v, want ErrSchemaTooOld", err)
	}
	if v := pragmaInt(t, rawOpen(t, old), "user_version"); v != 2 {
		t.Errorf("OpenReadOnly migrated the file to %d", v)
	}

	// A newer one: refused.
	newer := filepath.Join(dir, "newer.db")
	db, err := Open(newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenReadOnly(newer); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("OpenReadOnly(newer): %v, want ErrSchemaTooNew", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	raw = rawOpen(t, foreign)
	if _, err := raw.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := OpenReadOnly(foreign); !errors.Is(err, ErrNotStore) {
		t.Errorf("OpenReadOnly(foreign): %v, want ErrNotStore", err)
	}
}

const roHelperEnv = "DISTILL_STORE_RO_DB"

// TestReadOnlyHelper is the process, run as an unprivileged user, that
// TestOpenReadOnlyUnwritableFolder starts: it opens $DISTILL_STORE_RO_DB
// read-only and prints how.
func TestReadOnlyHelper(t *testing.T) {
	path := os.Getenv(roHelperEnv)
	if path == "" {
		t.Skip("run by TestOpenReadOnlyUnwritableFolder")
	}
	// Open, for contrast: beside a writer SQLite quietly opens the file
	// read-only; with none it fails to create the -shm file.
	if db, err := Open(path); err == nil {
		db.Close()
		fmt.Println("Open: ok")
	} else {
		fmt.Println("Open: failed")
	}
	db, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := checkReadOnlyStore(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("read-only snapshot=%v\n", db.snapshot)
}

// TestOpenReadOnlyUnwritableFolder: a WAL store in a folder this process
// cannot write (owned by root, read by another user) opens read-only, with
// mode=ro while a writer has it open and as an immutable snapshot when
// nobody has. Run as root, the test runs its reader as user nobody (root
// may write any folder); otherwise it takes write permission from the
// folder.
func TestOpenReadOnlyUnwritableFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	base, err := os.MkdirTemp("", "store-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(base, "db"), 0o755)
		os.RemoveAll(base)
	})
	dir := filepath.Join(base, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "distill.db")
	w := writeReadOnlyFixture(t, path)
	defer w.Close()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}

	// read opens the store read-only as a user who cannot write dir.
	var read func() (string, error)
	if os.Geteuid() != 0 {
		read = func() (string, error) {
			db, err := OpenReadOnly(path)
			if err != nil {
				return "", err
			}
			defer db.Close()
			open := "ok"
			if db, err := Open(path); err == nil {
				db.Close()
			} else {
				open = "failed"
			}
			return fmt.Sprintf("Open: %s\nread-only snapshot=%v", open, db.snapshot), checkReadOnlyStore(context.Background(), db)
		}
	} else {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("running as root and no user nobody: %v", err)
		}
		uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
		gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
		// The test binary, where nobody may run it.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(base, "store.test")
		if err := os.WriteFile(exe, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		read = func() (string, error) {
			cmd := exec.Command(exe, "-test.run=^TestReadOnlyHelper$", "-test.count=1")
			cmd.Dir = base
			cmd.Env = append(os.Environ(), roHelperEnv+"="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("reader as nobody: %v\n%s", err, out)
			}
			return string(out), nil
		}
	}

	// A writer has the store open: the -shm file is there.
	out, err := read()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "read-only snapshot=false") {
		t.Errorf("beside a writer: %s", out)
	}
	// Nobody has: SQLite cannot create the -shm file, so a snapshot.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-shm"); err == nil {
		// Not root: the writer could not remove its files from the folder
		// it may not write. Close it once more where it may.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + "-shm"); err == nil {
		t.Skip("the -shm file outlived the last connection")
	}
	out, err = read()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "read-only snapshot=true") || !strings.Contains(out, "Open: failed") {
		t.Errorf("with no writer: %s", out)
	}
	if _, err := os.Stat(path + "-shm"); err == nil {
		t.Error("the read-only reader created a -shm file")
	}
}
