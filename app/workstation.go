package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"distill/core/data"
	"distill/core/train"
	"distill/store"

	"go.yaml.in/yaml/v3"
)

// Workstation is the service the terminal workstation (package views) talks
// to: it owns the run database and the training jobs started from the UI,
// and hands the views plain values so that they need not import store or
// core.
type Workstation struct {
	db     *store.DB
	dbPath string // for the CLI code paths the workstation reuses

	mu      sync.Mutex
	cancels map[string]context.CancelFunc // runs started here and not yet finished
	jobs    map[string]*TrainJob          // the same runs' jobs (pausing)
	// GGUF exports in progress (q4_k_m takes minutes): Close cancels them,
	// and each removes its partial folder, before the database closes.
	exportCtx    context.Context
	exportCancel context.CancelFunc
	exporting    sync.WaitGroup
	// planBytes remembers the quantised size of each model PlanRun has
	// planned, by folder, quantisation and double-quant.
	planBytes map[string]int64
}

// RunRow is one run as the Runs view lists it.
type RunRow struct {
	ID, Method, Base, Dataset string
	Status                    string // queued, running, completed, failed or canceled
	Best                      string // e.g. "f1 0.7100"; "-" before any evaluation
	Age                       time.Duration
}

// Active reports whether the run still has, or waits for, a process.
func (r RunRow) Active() bool { return store.Status(r.Status).Active() }

// Progress is one training step as the Train view shows it. The last value
// on a StartRun channel has Done set, with Err the reason a run failed.
type Progress struct {
	RunID                            string
	Step, Total                      int
	Loss, LR, GradNorm, TokensPerSec float64
	Elapsed                          time.Duration
	RSS                              int64   // resident memory, bytes
	Plan                             int64   // the memory plan's total for RSS, bytes (CPU steps; 0 unknown)
	ValLoss                          float64 // a validation loss taken at Step; 0: none
	Done                             bool
	Err                              error
	// With Done: the run can be evaluated from the workstation (it
	// finished on classification or IDP data, which e scores), or resumed
	// (it stopped with a checkpoint on disk).
	Evaluable, Resumable bool

	// A value with Validation set carries only ValLoss (or ValAccuracy for
	// DPO); one with Log set carries only a line of the run's log. Neither
	// is a training step.
	Validation  bool
	ValAccuracy float64
	Log         string
}

// IsStep reports whether p is a training step.
func (p Progress) IsStep() bool { return !p.Done && !p.Validation && p.Log == "" }

// OpenWorkstation opens (creating if needed) the run database at dbPath and
// marks the runs of processes that died as failed. An empty dbPath is the
// CLI's default, runs/distill.db.
func OpenWorkstation(dbPath string) (*Workstation, error) {
	if dbPath == "" {
		dbPath = defaultDB
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		return nil, err
	}
	db, err := store.Open(dbPath)
	if err != nil {
		return nil, err
	}
	if _, err := db.RecoverInterrupted(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	w := &Workstation{db: db, dbPath: dbPath, cancels: map[string]context.CancelFunc{}, jobs: map[string]*TrainJob{}}
	w.exportCtx, w.exportCancel = context.WithCancel(context.Background())
	return w, nil
}

// Running is the number of runs this process is training.
func (w *Workstation) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.cancels)
}

// Wait blocks until the runs started here have finished (headless training
// after the workstation closes), or until stop is closed — then it cancels
// them, each writing a checkpoint.
func (w *Workstation) Wait(stop <-chan struct{}) {
	w.resumeAll() // a run paused in the window would wait for a key no one can press
	for w.Running() > 0 {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close cancels the GGUF exports in progress (each removes its partial folder)
// and the runs started here (each writes a checkpoint first), and closes
// the database once they have stopped — never before: a run's checkpoint
// and final status go there (a run that outlasts the caller's patience is
// the caller's to abandon, by exiting).
func (w *Workstation) Close() error {
	w.exportCancel()
	w.exporting.Wait()
	w.mu.Lock()
	for _, cancel := range w.cancels {
		cancel()
	}
	w.mu.Unlock()
	for w.Running() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	return w.db.Close()
}

// ListRuns returns every recorded run, newest first.
func (w *Workstation) ListRuns() ([]RunRow, error) {
	runs, err := w.db.ListRuns(context.Background(), store.RunFilter{})
	if err != nil {
		return nil, err
	}
	rows := make([]RunRow, len(runs))
	for i, r := range runs {
		best := "-"
		if r.BestMetric != nil {
			best = fmt.Sprintf("%s %.4f", r.BestMetricName, *r.BestMetric)
		}
		rows[i] = RunRow{ID: r.ID, Method: r.Method, Base: r.BaseModel, Dataset: r.Dataset,
			Status: string(r.Status), Best: best, Age: time.Since(r.CreatedAt).Round(time.Second)}
	}
	return rows, nil
}

// DeleteRun removes a finished run from the database and its folder from
// disk, as `distill runs rm` does; an active run must be stopped first.
func (w *Workstation) DeleteRun(id string) error {
	return deleteRun(context.Background(), w.db, id)
}

// deleteRun is `distill runs rm`: refuse an active run, delete the record,
// then what the run wrote in its folder.
func deleteRun(ctx context.Context, db *store.DB, id string) error {
	r, err := db.GetRun(ctx, id)
	if err != nil {
		return fmt.Errorf("run %s: %w", id, err)
	}
	if r.Status.Active() {
		return fmt.Errorf("run %s is %s: stop it first", id, r.Status)
	}
	if err := db.DeleteRun(ctx, id); err != nil {
		return err
	}
	if r.Dir == "" {
		return nil
	}
	// A folder another run records is that run's now (records from before
	// a new run took the folder over kept its path): keep it, and the
	// adapters in it.
	runs, err := db.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		return err
	}
	for _, o := range runs {
		if o.Dir != "" && absPath(o.Dir) == absPath(r.Dir) {
			return nil
		}
	}
	// Adapters registered from inside the folder go with its files (else
	// the registry would list adapters that are no longer there).
	as, err := db.ListAdapters(ctx)
	if err != nil {
		return err
	}
	for _, a := range as {
		if within(r.Dir, a.Path) {
			if err := db.DeleteAdapter(ctx, a.Name); err != nil {
				return err
			}
		}
	}
	return removeRunFolder(r.Dir)
}

// StopRun cancels a run started here; it checkpoints and is marked
// canceled. It reports whether the run was one of this process's.
func (w *Workstation) StopRun(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	cancel, ok := w.cancels[id]
	if ok {
		cancel()
	}
	return ok
}

// PauseRun pauses a run started here between two steps, or resumes it if
// paused; it says which, and ok is false for a run that is not this
// process's.
func (w *Workstation) PauseRun(id string) (paused, ok bool) {
	w.mu.Lock()
	job, ok := w.jobs[id]
	w.mu.Unlock()
	if !ok {
		return false, false
	}
	return job.pause.toggle(), true
}

// resumeAll resumes every run paused here.
func (w *Workstation) resumeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, job := range w.jobs {
		job.pause.goOn()
	}
}

// progressBuffer is how many steps a StartRun channel holds before the
// oldest are dropped; the store records every step whatever the view sees.
const progressBuffer = 64

// StartRun validates cfg, records a new run and trains it in a goroutine.
// Its steps arrive on the returned channel, which never blocks the trainer
// (when the reader falls behind the oldest steps are dropped) and ends with a
// Done value before it is closed.
func (w *Workstation) StartRun(cfg RunConfig) (<-chan Progress, error) {
	_, ch, err := w.LaunchRun(cfg)
	return ch, err
}

// LaunchRun is StartRun that also returns the new run's id, for the view
// that follows it.
func (w *Workstation) LaunchRun(cfg RunConfig) (string, <-chan Progress, error) {
	if err := cfg.validate(); err != nil {
		return "", nil, err
	}
	if err := cfg.checkFiles(); err != nil {
		return "", nil, err
	}
	id := store.NewRunID(time.Now(), cfg.Method)
	if cfg.Out == "" {
		cfg.Out = filepath.Join("runs", id)
	}
	ch, err := w.start(&TrainJob{Cfg: cfg, ID: id, Dir: cfg.Out})
	return id, ch, err
}

// ResumeRun continues a canceled or failed run from its latest checkpoint,
// in this process, as `distill train --resume` would.
func (w *Workstation) ResumeRun(id string) (<-chan Progress, error) {
	ctx := context.Background()
	r, err := w.db.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Status.Active():
		return nil, fmt.Errorf("%s is %s already", id, r.Status)
	case r.Status == store.StatusCompleted:
		return nil, fmt.Errorf("%s has finished: nothing to resume", id)
	}
	if _, err := w.db.LatestCheckpoint(ctx, id); err != nil {
		return nil, fmt.Errorf("%s has no checkpoint to resume from: launch it again", id)
	}
	var cfg RunConfig
	if err := readRunConfig(filepath.Join(r.Dir, "config.yaml"), &cfg); err != nil {
		return nil, fmt.Errorf("resume %s: %w", id, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("resume %s: config.yaml: %w", id, err)
	}
	return w.start(&TrainJob{Cfg: cfg, ID: id, Dir: r.Dir, Resume: true})
}

// start runs job in a goroutine, streaming its steps, validations and log
// lines on the returned channel, which ends with a Done value. A run this
// workstation trains already is refused (checked and reserved at once: two
// quick resumes of one run).
func (w *Workstation) start(job *TrainJob) (<-chan Progress, error) {
	id := job.ID
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	if _, busy := w.cancels[id]; busy {
		w.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("%s is training here already", id)
	}
	w.cancels[id] = cancel
	w.jobs[id] = job
	w.mu.Unlock()
	ch := make(chan Progress, progressBuffer)
	job.DB = w.db
	job.Events = func(e train.Event) {
		p := progressOf(id, e)
		p.Plan = job.planHost // set before the first step, on this goroutine
		sendLatest(ch, p)
	}
	job.Validated = func(step int, m map[string]float64) {
		sendLatest(ch, Progress{RunID: id, Step: step, Validation: true, ValLoss: m["val_loss"], ValAccuracy: m["val_accuracy"]})
	}
	job.Log = &lineWriter{emit: func(line string) { sendLatest(ch, Progress{RunID: id, Log: line}) }}
	go func() {
		err := job.Run(ctx)
		w.mu.Lock()
		delete(w.cancels, id)
		delete(w.jobs, id)
		w.mu.Unlock()
		cancel()
		sendLatest(ch, Progress{RunID: id, Done: true, Err: err,
			Evaluable: err == nil && job.Cfg.Method != "dpo" && (job.format == data.FormatClassification || job.format == data.FormatIDP && job.Cfg.Schema != ""),
			Resumable: !job.finished && len(withSavedCheckpoints(nil, id, job.Dir)) > 0})
		close(ch)
	}()
	return ch, nil
}

func progressOf(id string, e train.Event) Progress {
	return Progress{RunID: id, Step: e.Step, Total: e.TotalSteps, Loss: e.Loss, LR: e.LR, GradNorm: e.GradNorm,
		TokensPerSec: e.TokensPerSec, Elapsed: e.Elapsed, RSS: e.RSS}
}

// sendLatest sends p without blocking, dropping the oldest buffered value
// when ch is full. It must be ch's only sender.
func sendLatest(ch chan Progress, p Progress) {
	for {
		select {
		case ch <- p:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// ModelFolders lists the model folders under root (e.g. "models") as
// root/name, the base models the Launch form offers: those with a
// config.json, not a pull still in progress (name.partial).
func (w *Workstation) ModelFolders(root string) []string {
	es, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range es {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".partial") {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, name, "config.json")); err == nil {
			out = append(out, filepath.Join(root, name))
		}
	}
	return out
}

// StatPath reports whether path exists and whether it is a folder.
func (w *Workstation) StatPath(path string) (exists, dir bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, false
	}
	return true, fi.IsDir()
}

// Device describes what a new run trains on, for the top bar: "cpu · 8
// cores", or "cuda · NVIDIA …" in a CUDA build with a GPU visible (runs
// default to it).
func (w *Workstation) Device() string {
	if resolveDevice("auto") == "cuda" {
		if g, ok := trainingGPU(); ok {
			return "cuda · " + g.Name
		}
		return "cuda"
	}
	return fmt.Sprintf("cpu · %d cores", runtime.NumCPU())
}

// ResidentBytes is this process's resident memory.
func (w *Workstation) ResidentBytes() int64 { return train.ResidentBytes() }

// RunHistory reads a run's recorded steps from the store, oldest first, for
// watching a run that another process trains (or one this window left).
func (w *Workstation) RunHistory(id string) ([]Progress, error) {
	ms, err := w.db.Metrics(context.Background(), id, "")
	if err != nil {
		return nil, err
	}
	byStep := map[int]*Progress{}
	var steps []int
	for _, m := range ms {
		p, ok := byStep[m.Step]
		if !ok {
			p = &Progress{RunID: id, Step: m.Step}
			byStep[m.Step] = p
			steps = append(steps, m.Step)
		}
		switch m.Name {
		case "loss":
			p.Loss = m.Value
		case "lr":
			p.LR = m.Value
		case "grad_norm":
			p.GradNorm = m.Value
		case "tokens_per_second":
			p.TokensPerSec = m.Value
		case "rss_bytes":
			p.RSS = int64(m.Value)
		case "val_loss":
			p.ValLoss = m.Value
		case "elapsed_s":
			p.Elapsed = time.Duration(m.Value * float64(time.Second))
		case "total_steps":
			p.Total = int(m.Value)
		case "plan_bytes":
			p.Plan = int64(m.Value)
		}
	}
	slices.Sort(steps)
	out := make([]Progress, len(steps))
	total, plan := 0, int64(0) // recorded once a session: they hold for the steps after
	for i, s := range steps {
		out[i] = *byStep[s]
		if out[i].Total > 0 {
			total = out[i].Total
		}
		if out[i].Plan > 0 {
			plan = out[i].Plan
		}
		out[i].Total, out[i].Plan = total, plan
	}
	return out, nil
}

// RunInfo is what the Train view's title says of a run besides its name.
type RunInfo struct {
	Method, Base string
	Quant        string // the base's quantisation: nf4, q8, none; empty if unrecorded
	Rank         int    // LoRA's r; 0 in full fine-tuning or if unrecorded
	Full         bool   // every weight trained
}

// RunInfo reads a run's method, base model and adapter from its record.
func (w *Workstation) RunInfo(id string) (RunInfo, error) {
	r, err := w.db.GetRun(context.Background(), id)
	if err != nil {
		return RunInfo{}, fmt.Errorf("run %s: %w", id, err)
	}
	info := RunInfo{Method: r.Method, Base: r.BaseModel}
	var c RunConfig // the effective config: JSON as train records it, YAML by hand
	if json.Unmarshal([]byte(r.Config), &c) == nil || yaml.Unmarshal([]byte(r.Config), &c) == nil {
		info.Quant, info.Full = c.Quant, c.Full
		if !c.Full {
			info.Rank = c.LoRA.R
		}
	}
	return info, nil
}

// TotalMemory is the machine's memory in bytes (0 if unknown), the scale of
// the RSS gauge.
func (w *Workstation) TotalMemory() int64 { return meminfo("MemTotal") }

// meminfo is /proc/meminfo's field in bytes (0 if unknown).
func meminfo(field string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, field+": %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// lineWriter calls emit with each complete line written to it; a front end
// shows a run's log through it.
type lineWriter struct {
	buf  []byte
	emit func(string)
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimRight(string(l.buf[:i]), "\r"); strings.TrimSpace(line) != "" {
			l.emit(line)
		}
		l.buf = l.buf[i+1:]
	}
}
