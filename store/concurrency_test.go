package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConcurrentWriters shares one file between two *DB handles, as the
// workstation and a headless trainer would: goroutines write metrics and
// runs through both while another lists runs and reads series. WAL lets the
// readers run beside the writer, the busy timeout and IMMEDIATE transactions
// queue the writers; nothing may fail with "database is locked".
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "distill.db")
	db1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	ctx := context.Background()

	const (
		writers   = 4
		batches   = 100
		batchSize = 25
	)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range writers {
		db := db1
		if w%2 == 1 {
			db = db2
		}
		id := fmt.Sprintf("run-%d", w)
		if err := db.CreateRun(ctx, Run{ID: id, Method: MethodSFT, Status: StatusRunning}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				points := make([]Metric, batchSize)
				for i := range points {
					points[i] = Metric{Step: b*batchSize + i, Name: "loss", Value: float64(i)}
				}
				if err := db.AddMetrics(ctx, id, points); err != nil {
					fail(err)
					return
				}
				if b%10 == 0 {
					if err := db.SetBestMetric(ctx, id, "loss", float64(b)); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
	}
	// A launcher creating, starting and finishing short runs.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 40 {
			id := fmt.Sprintf("short-%d", i)
			for _, step := range []func() error{
				func() error { return db2.CreateRun(ctx, Run{ID: id, Method: MethodKD}) },
				func() error { return db2.StartRun(ctx, id, 0) },
				func() error { return db2.FinishRun(ctx, id, StatusCompleted, "") },
			} {
				if err := step(); err != nil {
					fail(err)
					return
				}
			}
		}
	}()
	// Readers, until the writers are done.
	var readers sync.WaitGroup
	reads := 0
	for _, db := range []*DB{db1, db2} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := db.ListRuns(ctx, RunFilter{Limit: 20}); err != nil {
					fail(err)
					return
				}
				if _, err := db.Metrics(ctx, "run-0", "loss"); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				reads++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()

	for _, err := range errs {
		t.Error(err)
	}
	for w := range writers {
		ms, err := db1.Metrics(ctx, fmt.Sprintf("run-%d", w), "loss")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != batches*batchSize {
			t.Errorf("run-%d has %d points, want %d", w, len(ms), batches*batchSize)
		}
	}
	if runs, _ := db2.ListRuns(ctx, RunFilter{Status: StatusCompleted}); len(runs) != 40 {
		t.Errorf("%d completed short runs, want 40", len(runs))
	}
	t.Logf("%d reads beside the writers", reads)
}

const crashEnv = "DISTILL_STORE_CRASH_DB"

// TestCrashHelper is the process that TestCrashConsistency kills: it opens
// the store named by $DISTILL_STORE_CRASH_DB, starts run $DISTILL_STORE_CRASH_RUN
// and writes batches of metrics and checkpoints until it is killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestCrashConsistency")
	}
	// Never outlive a parent that died before killing this process.
	time.AfterFunc(30*time.Second, func() { os.Exit(3) })
	ctx := context.Background()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id := os.Getenv("DISTILL_STORE_CRASH_RUN")
	if err := db.CreateRun(ctx, Run{ID: id, Method: MethodSFT, Config: strings.Repeat("x", 10000)}); err != nil {
		t.Fatal(err)
	}
	if err := db.StartRun(ctx, id, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	for b := 0; ; b++ {
		points := make([]Metric, crashBatch)
		for i := range points {
			points[i] = Metric{Step: b*crashBatch + i, Name: "loss", Value: 1 / float64(b*crashBatch+i+1)}
		}
		if err := db.AddMetrics(ctx, id, points); err != nil {
			t.Fatal(err)
		}
		if err := db.AddCheckpoint(ctx, Checkpoint{RunID: id, Step: b, Path: fmt.Sprintf("ckpt/%d", b)}); err != nil {
			t.Fatal(err)
		}
		if b == 0 {
			fmt.Println("ready")
		}
	}
}

const crashBatch = 200

// TestCrashConsistency kills a writer with SIGKILL in the middle of its
// writes, a few times, and checks that the file is intact, that every
// metrics batch is there whole or not at all, and that RecoverInterrupted
// marks the dead writer's run failed.
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	path := filepath.Join(t.TempDir(), "distill.db")
	ctx := context.Background()
	for round, delay := range []time.Duration{0, 20 * time.Millisecond, 150 * time.Millisecond} {
		id := fmt.Sprintf("crash-%d", round)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, "DISTILL_STORE_CRASH_RUN="+id)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := false
			for sc.Scan() {
				if sc.Text() == "ready" && !ok {
					ok = true
					ready <- true
				}
			}
			if !ok {
				ready <- false
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Wait()
				t.Fatal("crash helper exited before writing")
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("crash helper never got ready")
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait() // reaps it: its pid is gone from /proc
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("crash helper was not killed by SIGKILL: %v", err)
		}

		db, err := Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		var check string
		if err := db.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Errorf("round %d: integrity_check = %q, %v", round, check, err)
		}
		if err := db.db.QueryRow("PRAGMA foreign_key_check").Scan(new(string), new(int), new(string), new(int)); err == nil {
			t.Errorf("round %d: foreign key violations after the crash", round)
		}
		r, err := db.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != StatusRunning || r.PID != cmd.Process.Pid {
			t.Errorf("round %d: killed run is %s with pid %d, want running with pid %d", round, r.Status, r.PID, cmd.Process.Pid)
		}
		ms, err := db.Metrics(ctx, id, "loss")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || len(ms)%crashBatch != 0 {
			t.Errorf("round %d: %d metric points, want a positive multiple of the batch size %d", round, len(ms), crashBatch)
		}
		n, err := db.RecoverInterrupted(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("round %d: RecoverInterrupted marked %d runs, want 1", round, n)
		}
		r, _ = db.GetRun(ctx, id)
		if r.Status != StatusFailed || r.Error != InterruptedError {
			t.Errorf("round %d: after recovery the run is %s (%q)", round, r.Status, r.Error)
		}
		t.Logf("round %d: killed after %v with %d points written", round, delay, len(ms))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
