package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

func TestCreateAndGetRun(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	created := time.Date(2026, 11, 25, 18, 27, 0, 123456000, time.UTC)
	in := Run{
		ID: "20261125-182700-sft-ab12", Method: MethodSFT, BaseModel: "models/Qwen2.5-0.5B-Instruct",
		Dataset: "data/tickets.jsonl", Task: "classification", Config: "lr: 2e-4\n",
		Dir: "runs/20261125-182700-sft-ab12", CreatedAt: created,
	}
	if err := db.CreateRun(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetRun(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != in.ID || got.Method != in.Method || got.BaseModel != in.BaseModel ||
		got.Dataset != in.Dataset || got.Task != in.Task || got.Config != in.Config || got.Dir != in.Dir {
		t.Errorf("GetRun = %+v, want the fields of %+v", got, in)
	}
	if got.Status != StatusQueued {
		t.Errorf("status %q, want queued", got.Status)
	}
	if !got.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt %v, want %v", got.CreatedAt, created)
	}
	if got.PID != os.Getpid() {
		t.Errorf("queued run owned by pid %d, want this process %d", got.PID, os.Getpid())
	}
	if !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() || got.BestMetric != nil || got.UpdatedAt.IsZero() {
		t.Errorf("new run: %+v", got)
	}

	if err := db.CreateRun(ctx, in); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate CreateRun: %v, want ErrExists", err)
	}
	if _, err := db.GetRun(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRun(nope): %v, want ErrNotFound", err)
	}
	for _, bad := range []Run{
		{Method: MethodSFT},
		{ID: "x", Method: "ppo"},
		{ID: "x", Method: MethodSFT, Status: "paused"},
	} {
		if err := db.CreateRun(ctx, bad); err == nil {
			t.Errorf("CreateRun(%+v) accepted", bad)
		}
	}
}

func TestRunLifeCycle(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodKD)

	if err := db.FinishRun(ctx, "r", StatusRunning, ""); err == nil {
		t.Error("FinishRun accepted status running")
	}
	if err := db.StartRun(ctx, "r", 0); err != nil {
		t.Fatal(err)
	}
	r, _ := db.GetRun(ctx, "r")
	if r.Status != StatusRunning || r.StartedAt.IsZero() || r.PID != os.Getpid() {
		t.Errorf("started run: %+v", r)
	}
	if err := db.StartRun(ctx, "r", 1); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("StartRun of a running run: %v, want ErrInvalidTransition", err)
	}
	if err := db.FinishRun(ctx, "r", StatusFailed, "loss is NaN at step 12"); err != nil {
		t.Fatal(err)
	}
	r, _ = db.GetRun(ctx, "r")
	if r.Status != StatusFailed || r.Error != "loss is NaN at step 12" || r.FinishedAt.IsZero() {
		t.Errorf("failed run: %+v", r)
	}
	if err := db.FinishRun(ctx, "r", StatusCompleted, ""); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("FinishRun of a finished run: %v, want ErrInvalidTransition", err)
	}

	// A resume: failed → running clears the error and the finish time.
	if err := db.StartRun(ctx, "r", 0); err != nil {
		t.Fatal(err)
	}
	r, _ = db.GetRun(ctx, "r")
	if r.Status != StatusRunning || r.Error != "" || !r.FinishedAt.IsZero() {
		t.Errorf("resumed run: %+v", r)
	}
	if err := db.FinishRun(ctx, "r", StatusCompleted, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, "r", 0); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("StartRun of a completed run: %v, want ErrInvalidTransition", err)
	}

	// A queued run can be canceled without starting.
	mustRun(t, db, "q", MethodDPO)
	if err := db.FinishRun(ctx, "q", StatusCanceled, "canceled by user"); err != nil {
		t.Fatal(err)
	}

	if err := db.StartRun(ctx, "nope", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("StartRun(nope): %v, want ErrNotFound", err)
	}
	if err := db.FinishRun(ctx, "nope", StatusFailed, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("FinishRun(nope): %v, want ErrNotFound", err)
	}
}

func TestListRuns(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range []Run{
		{ID: "a", Method: MethodSFT, Task: "classification"},
		{ID: "b", Method: MethodKD, Task: "idp"},
		{ID: "c", Method: MethodSFT, Task: "idp", Status: StatusCompleted},
		{ID: "d", Method: MethodDPO, Status: StatusRunning},
	} {
		r.CreatedAt = base.Add(time.Duration(i) * time.Hour)
		if err := db.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    RunFilter
		want []string
	}{
		{RunFilter{}, []string{"d", "c", "b", "a"}},
		{RunFilter{Method: MethodSFT}, []string{"c", "a"}},
		{RunFilter{Status: StatusQueued}, []string{"b", "a"}},
		{RunFilter{Task: "idp"}, []string{"c", "b"}},
		{RunFilter{Method: MethodSFT, Status: StatusCompleted}, []string{"c"}},
		{RunFilter{Limit: 2}, []string{"d", "c"}},
		{RunFilter{Method: MethodKD, Status: StatusFailed}, nil},
	} {
		runs, err := db.ListRuns(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if !equal(got, tc.want) {
			t.Errorf("ListRuns(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSetBestMetric(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	if err := db.SetBestMetric(ctx, "r", "eval_loss", 0.75); err != nil {
		t.Fatal(err)
	}
	r, _ := db.GetRun(ctx, "r")
	if r.BestMetric == nil || *r.BestMetric != 0.75 || r.BestMetricName != "eval_loss" {
		t.Errorf("best metric: %v %q", r.BestMetric, r.BestMetricName)
	}
	if err := db.SetBestMetric(ctx, "nope", "x", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetBestMetric(nope): %v, want ErrNotFound", err)
	}
}

// A run's recorded config can be replaced by what it resolved; a missing
// run says so.
func TestSetRunConfig(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	if err := db.SetRunConfig(ctx, "r", `{"seq_len":512}`); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.GetRun(ctx, "r"); r.Config != `{"seq_len":512}` {
		t.Errorf("config %q", r.Config)
	}
	if err := db.SetRunConfig(ctx, "nope", "{}"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetRunConfig(nope): %v, want ErrNotFound", err)
	}
}

func TestDeleteRunCascades(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	mustRun(t, db, "r", MethodSFT)
	mustRun(t, db, "keep", MethodSFT)
	for _, id := range []string{"r", "keep"} {
		if err := db.AddMetrics(ctx, id, []Metric{{Step: 1, Name: "loss", Value: 1}, {Step: 2, Name: "loss", Value: 0.5}}); err != nil {
			t.Fatal(err)
		}
		if err := db.AddCheckpoint(ctx, Checkpoint{RunID: id, Step: 2, Path: "runs/" + id + "/checkpoints/step-2"}); err != nil {
			t.Fatal(err)
		}
	}
	evalID, err := db.AddEvaluation(ctx, Evaluation{RunID: "r", Kind: KindIDP})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterAdapter(ctx, Adapter{Name: "a", Path: "runs/r/adapter", RunID: "r"}); err != nil {
		t.Fatal(err)
	}

	if err := db.FinishRun(ctx, "r", StatusCompleted, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRun(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	count := func(table, run string) int {
		var n int
		if err := db.db.QueryRow("SELECT count(*) FROM "+table+" WHERE run_id = ?", run).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range []string{"metrics", "checkpoints", "evaluations", "adapters"} {
		if n := count(table, "r"); n != 0 {
			t.Errorf("%d %s rows of the deleted run remain", n, table)
		}
	}
	if count("metrics", "keep") != 2 || count("checkpoints", "keep") != 1 {
		t.Error("deleting one run touched another's rows")
	}
	// Evaluations and adapters outlive the run, detached from it.
	evals, err := db.Evaluations(ctx, "")
	if err != nil || len(evals) != 1 || evals[0].ID != evalID || evals[0].RunID != "" {
		t.Errorf("evaluations after delete: %+v, %v", evals, err)
	}
	if a, err := db.Adapter(ctx, "a"); err != nil || a.RunID != "" {
		t.Errorf("adapter after delete: %+v, %v", a, err)
	}
	if _, err := db.GetRun(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRun after delete: %v", err)
	}
	if err := db.DeleteRun(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteRun: %v, want ErrNotFound", err)
	}
}

func TestRecoverInterrupted(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()

	// A process that has exited (and been reaped).
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	deadPID := gone.Process.Pid

	// A live process that is not this one.
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Skipf("cannot run sleep: %v", err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	livePID := sleeper.Process.Pid

	for _, r := range []Run{
		{ID: "dead-running", Status: StatusRunning, PID: deadPID},
		{ID: "dead-queued", PID: deadPID},
		{ID: "live-running", Status: StatusRunning, PID: livePID},
		{ID: "self-running", Status: StatusRunning},             // this process, this life
		{ID: "self-earlier-life", Status: StatusRunning},        // this pid, start time unknown
		{ID: "reused-pid", Status: StatusRunning, PID: livePID}, // live pid, another start time
		{ID: "done", Status: StatusCompleted, PID: deadPID},
	} {
		r.Method = MethodSFT
		if err := db.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, db, "UPDATE runs SET pid_start = NULL WHERE id = 'self-earlier-life'")
	mustExec(t, db, "UPDATE runs SET pid_start = pid_start - 1 WHERE id = 'reused-pid'")

	n, err := db.RecoverInterrupted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("RecoverInterrupted marked %d runs, want 4", n)
	}
	for id, want := range map[string]Status{
		"dead-running":      StatusFailed,
		"dead-queued":       StatusFailed,
		"self-earlier-life": StatusFailed,
		"reused-pid":        StatusFailed,
		"live-running":      StatusRunning,
		"self-running":      StatusRunning,
		"done":              StatusCompleted,
	} {
		r, err := db.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != want {
			t.Errorf("%s: status %s, want %s", id, r.Status, want)
		}
		if want == StatusFailed && (r.Error != InterruptedError || r.FinishedAt.IsZero()) {
			t.Errorf("%s: error %q, finished %v", id, r.Error, r.FinishedAt)
		}
	}
	if n, err := db.RecoverInterrupted(ctx); err != nil || n != 0 {
		t.Errorf("second RecoverInterrupted: %d, %v; want 0", n, err)
	}
}

func mustExec(t *testing.T, db *DB, q string, args ...any) {
	t.Helper()
	if _, err := db.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestProcStat(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	state, start, ok := procStat(os.Getpid())
	if !ok || state == "" || start <= 0 {
		t.Fatalf("procStat(self) = %q, %d, %v", state, start, ok)
	}
	if !processAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if processAlive(0) || processAlive(-1) {
		t.Error("pid 0 or -1 alive")
	}

	// An exited child not yet reaped is a zombie: it has exited.
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	defer child.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if state, _, _ := procStat(child.Process.Pid); state == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if processAlive(child.Process.Pid) {
		t.Error("zombie counted as alive")
	}
}

func TestNewRunID(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 27, 0, 0, time.UTC)
	id := NewRunID(at, MethodSFT)
	if !regexp.MustCompile(`^20261125-182700-sft-[0-9a-f]{4}$`).MatchString(id) {
		t.Errorf("NewRunID = %q", id)
	}
	if NewRunID(at, MethodSFT) == NewRunID(at, MethodSFT) && NewRunID(at, MethodSFT) == NewRunID(at, MethodSFT) {
		t.Error("NewRunID repeats within one second")
	}
}
