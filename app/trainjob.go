package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/core/train"
	"distill/store"
)

// TrainJob is one training run: it loads what the configuration names,
// records the run in the store, trains, checkpoints, and leaves
// runs/<id>/{config.yaml, adapter/, checkpoints/step-N/, log.jsonl}.
// Front ends (CLI, workstation) receive its Events.
type TrainJob struct {
	Cfg    RunConfig
	ID     string
	Dir    string
	DB     *store.DB
	Resume bool // continue from the latest checkpoint in Dir
	// AllowChangedData resumes even where a data file changed since the
	// run started (train --resume --allow-changed-data).
	AllowChangedData bool
	Log              io.Writer
	Events           func(train.Event)
	// Validated, when set, receives each validation's metrics (val_loss,
	// or val_accuracy and val_margin for DPO) at the step they were taken.
	Validated func(step int, metrics map[string]float64)

	be          tensor.Backend
	m           *model.Model
	teacher     *model.Model
	gpu         bool  // SFT steps run on the device (cuda/devnet)
	planDevice  int64 // their planned device memory, the CUDA context aside
	planDevOpt  bool  // the plan put the optimizer's moments on the device
	planHost    int64 // the CPU memory plan's total, the RSS gauge's mark (CPU steps; 0 on the device)
	hostOptLog  bool  // said once that they went to the host after all
	vramPeak    int64 // the most NVML reported in use after a step
	net         *train.Net
	opt         *train.AdamW
	batches     []*train.Batch
	val         []*train.Batch
	obj         train.Objective
	steps       int
	format      string // the training data's format, as loaded
	finished    bool   // trained to the last step and saved (loop's end)
	metricsLost int    // steps whose metrics the database refused (record)
	// runStart is when this session's loop began; priorElapsed the run's
	// time before it (a resume's earlier sessions, from log.jsonl).
	runStart     time.Time
	priorElapsed time.Duration
	pause        pauser // the workstation's p: held between steps
	// totalRecorded is the total steps last recorded in the store.
	totalRecorded int
	unlock        func() // releases the run folder's lock (lockRunFolder)
}

// Run trains until done or ctx is cancelled (then it checkpoints first and
// marks the run canceled). Every outcome is recorded in the store.
func (j *TrainJob) Run(ctx context.Context) (err error) {
	defer func() {
		if j.unlock != nil {
			j.unlock()
		}
	}()
	j.Cfg.Device = resolveDevice(j.Cfg.Device)
	if !j.Resume {
		if err := j.create(ctx); err != nil {
			return err
		}
	} else if err := j.reopen(ctx); err != nil {
		return err
	}
	if err := j.DB.StartRun(ctx, j.ID, os.Getpid()); err != nil {
		return err
	}
	defer func() {
		status, msg := store.StatusCompleted, ""
		switch {
		case errors.Is(err, context.Canceled) || (err == nil && ctx.Err() != nil && !j.finished):
			status, msg, err = store.StatusCanceled, "canceled by the user (checkpoint written)", nil
		case err != nil:
			status, msg = store.StatusFailed, err.Error()
		}
		// Retried once (beyond the store's busy timeout): a run left
		// "running" would refuse its own resume.
		ferr := j.DB.FinishRun(context.Background(), j.ID, status, msg)
		if ferr != nil {
			time.Sleep(time.Second)
			ferr = j.DB.FinishRun(context.Background(), j.ID, status, msg)
		}
		if ferr != nil {
			if err == nil {
				err = ferr
			} else {
				j.logf("the run database did not record the run's end (%v)", ferr)
			}
		}
		j.close()
	}()
	if err := j.load(); err != nil {
		return err
	}
	if j.Resume {
		state, err := j.loadCheckpoint(ctx)
		if err != nil {
			return err
		}
		if state.Seed != j.Cfg.Seed { // the data order and dropout masks would not be the run's
			return fmt.Errorf("resume %s: config.yaml says seed %d, the checkpoint %d: put back the run's config.yaml", j.ID, j.Cfg.Seed, state.Seed)
		}
	}
	return j.loop(ctx)
}

// loadCheckpoint restores the run's latest checkpoint that loads, newest
// first: one a crash or a full disk left unreadable is skipped, and the
// log says so (the run repeats the steps since the one it takes).
func (j *TrainJob) loadCheckpoint(ctx context.Context) (train.State, error) {
	cps, err := j.DB.Checkpoints(ctx, j.ID)
	cps = withSavedCheckpoints(cps, j.ID, j.Dir)
	if err == nil && len(cps) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return train.State{}, fmt.Errorf("resume %s: no checkpoint to resume from: %w", j.ID, err)
	}
	var errs []error
	for i := len(cps) - 1; i >= 0; i-- {
		st, err := train.LoadCheckpoint(cps[i].Path, j.net, j.opt)
		if err == nil {
			j.logf("resumed at step %d from %s", st.Step, cps[i].Path)
			return st, nil
		}
		j.logf("checkpoint of step %d does not load, skipped: %v", cps[i].Step, err)
		errs = append(errs, err)
	}
	return train.State{}, fmt.Errorf("resume %s: no checkpoint loads: %w", j.ID, errors.Join(errs...))
}

// create records a new run and writes its folder and effective config. A
// folder that holds a run already is refused: a new run would overwrite
// its config, checkpoints and adapter. The folder is locked for the run.
func (j *TrainJob) create(ctx context.Context) error {
	if err := checkRunFolderFree(j.Dir); err != nil {
		return err
	}
	if err := j.Cfg.checkDataOutside(j.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(j.Dir, "checkpoints"), 0o755); err != nil {
		return err
	}
	var err error
	if j.unlock, err = lockRunFolder(j.Dir); err != nil {
		return err
	}
	if err := checkRunFolderFree(j.Dir); err != nil { // again, now that no other run can start in it
		return err
	}
	if err := j.takeOverFolder(ctx); err != nil {
		return err
	}
	j.Cfg.absPaths() // a resume from another working directory finds the files
	if err := j.Cfg.fingerprintData(); err != nil {
		return err
	}
	if err := writeRunConfig(filepath.Join(j.Dir, "config.yaml"), &j.Cfg); err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(j.Cfg)
	return j.DB.CreateRun(ctx, store.Run{ID: j.ID, Method: j.Cfg.Method, BaseModel: absPath(j.Cfg.Model), Dataset: absPath(j.Cfg.Data),
		Status: store.StatusQueued, Config: string(cfgJSON), Dir: absPath(j.Dir), PID: os.Getpid()})
}

// reopen finds the run to resume, locks its folder and checks its data
// files are the ones it started on.
func (j *TrainJob) reopen(ctx context.Context) error {
	if err := j.findResumed(ctx); err != nil {
		return err
	}
	var err error
	if j.unlock, err = lockRunFolder(j.Dir); err != nil {
		return err
	}
	j.logf("run %s", j.ID)
	if err := j.Cfg.checkData(); err != nil {
		if !j.AllowChangedData {
			return fmt.Errorf("resume %s: %w", j.ID, err)
		}
		j.logf("%v: going on, as --allow-changed-data asks", err)
		if err := j.Cfg.fingerprintData(); err != nil { // the files as now, for the next resume
			return err
		}
		return j.saveConfig()
	}
	return nil
}

// takeOverFolder makes the folder this run's, when a run that ended
// before its first checkpoint left its config and log there: the old
// record forgets the folder (so deleting it spares this run's files) and
// its log and held-out rows go (the new run's would be appended to them).
func (j *TrainJob) takeOverFolder(ctx context.Context) error {
	runs, err := j.DB.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		return err
	}
	here := absPath(j.Dir)
	for _, r := range runs {
		if r.Dir == "" || absPath(r.Dir) != here {
			continue
		}
		if r.Status.Active() {
			return fmt.Errorf("%s is the folder of run %s, recorded as %s: stop it, or choose another --out", j.Dir, r.ID, r.Status)
		}
		if err := j.DB.DetachRunDir(ctx, r.ID); err != nil {
			return err
		}
		j.logf("%s held run %s, which ended before its first checkpoint: this run takes the folder over", j.Dir, r.ID)
	}
	for _, name := range []string{"log.jsonl", heldOutFile} {
		if err := os.Remove(filepath.Join(j.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// savedIn names what a completed run saved in dir: its adapter, or the
// model of a full fine-tuning.
func savedIn(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "model")); err == nil {
		return filepath.Join(dir, "model")
	}
	return filepath.Join(dir, "adapter")
}

// findResumed makes sure the run to resume is recorded under j.ID: the
// folder's name unless it was trained with --out, when the database's run
// whose folder it is names it.
func (j *TrainJob) findResumed(ctx context.Context) error {
	r, err := j.DB.GetRun(ctx, j.ID)
	if err == nil {
		return resumable(r)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	runs, lerr := j.DB.ListRuns(ctx, store.RunFilter{})
	if lerr != nil {
		return lerr
	}
	want, _ := filepath.Abs(j.Dir)
	for _, r := range runs {
		if got, _ := filepath.Abs(r.Dir); got == want {
			j.ID = r.ID
			return resumable(r)
		}
	}
	return fmt.Errorf("resume %s: no run in the database has this folder (%w): pass the --db it was trained with", j.Dir, err)
}

// resumable refuses a run that has nothing left to train or that trains
// now, saying which.
func resumable(r store.Run) error {
	switch {
	case r.Status == store.StatusCompleted:
		return fmt.Errorf("run %s has completed: nothing to resume (it saved %s)", r.ID, savedIn(r.Dir))
	case r.Status.Active():
		return fmt.Errorf("run %s is %s already (pid %d): stop it first", r.ID, r.Status, r.PID)
	}
	return nil
}

// saveConfig records what the run resolved at its start in its
// config.yaml (a resume reads it) and in its database record.
func (j *TrainJob) saveConfig() error {
	if err := writeRunConfig(filepath.Join(j.Dir, "config.yaml"), &j.Cfg); err != nil {
		return err
	}
	if j.DB == nil {
		return nil
	}
	cfgJSON, _ := json.Marshal(j.Cfg)
	return j.DB.SetRunConfig(context.Background(), j.ID, string(cfgJSON))
}

func (j *TrainJob) logf(format string, args ...any) {
	if j.Log != nil {
		fmt.Fprintf(j.Log, format+"\n", args...)
	}
}

func (j *TrainJob) close() {
	if j.net != nil {
		j.net.Close()
	}
	if j.m != nil {
		j.m.Close()
	}
	if j.teacher != nil {
		j.teacher.Close()
	}
}

// load opens the model, data and objective, and sizes the run.
func (j *TrainJob) load() error {
	c := &j.Cfg
	var err error
	if j.be, err = tensor.Open(c.Device); err != nil {
		return err
	}
	if c.CPUBF16 {
		j.be = withCPUBF16(j.be, true, j.Log)
		if cpu, ok := j.be.(tensor.CPU); ok && cpu.BF16Products {
			j.logf("bf16 products on the cpu: BF16 weights times bf16-rounded activations and gradients, attention on bf16-rounded operands")
		}
	} else if _, onCPU := j.be.(tensor.CPU); onCPU && tensor.BF16ProductsFast() {
		// Measured (BENCHMARKS.md): AMX 2–3× f32's step; AVX-512 BF16's dot
		// products 1.8–2.3× on AMD Zen 4, but slower than f32 FMA on an Intel
		// core without AMX.
		hint := "AVX-512 BF16: with --cpu-bf16 (cpu_bf16: true) a step over a BF16 or NF4 base runs its products on bf16 dot products (on AMD Zen 4 1.8–2.3× faster than f32's)"
		if tensor.AMX() {
			hint = "AMX: with --cpu-bf16 (cpu_bf16: true) a step over a BF16 or NF4 base runs its products on bf16 tiles, 2–3× faster"
		}
		j.logf("this CPU has %s, in bf16 mixed precision", hint)
	}
	if j.m, err = model.Load(c.Model); err != nil {
		return err
	}
	if limit := j.m.ContextLimit(); limit > 0 && c.SeqLen > limit {
		return fmt.Errorf("--seq-len %d is over the model's context of %d tokens (max_position_embeddings or its sliding window): train at %d or less", c.SeqLen, limit, limit)
	}
	tok, err := tokenizer.Load(c.Model)
	if err != nil {
		return err
	}
	tmpl, _ := chat.Load(c.Model) // optional: only chat-formatted data needs it
	if _, err := quant.QuantizeModel(j.m, c.Quant, c.DoubleQuant && c.Quant == "nf4", false); err != nil {
		return fmt.Errorf("--quant: %w", err)
	}
	baseHeld := j.m.HeldBytes() // before a full fine-tune rebinds the model to its f32 parameters, which the plan counts apart
	if c.Full {
		j.net, err = train.NewFullNet(j.be, j.m)
	} else {
		var a *lora.Adapter
		a, err = lora.NewFor(j.m, lora.Config{R: c.LoRA.R, Alpha: c.LoRA.Alpha, Dropout: c.LoRA.Dropout,
			Targets: strings.Split(c.LoRA.Targets, ","), RSLoRA: c.LoRA.RSLoRA, BaseModel: c.Model})
		if err == nil {
			lora.Init(a, c.Seed)
			j.net, err = train.NewNet(j.be, j.m, a)
		}
	}
	if err != nil {
		return err
	}
	// auto starts from the least memory; the fit keeps more where it fits.
	j.net.Checkpoint = c.GradCheckpointing.Recomputes()
	j.net.KeepAttention = c.KeepAttention && !c.GradCheckpointing.Auto()
	if c.Device != "cpu" && !c.Full {
		// SFT steps with every activation on the device; without one (dropout,
		// or a build without it) each op goes through the backend instead.
		if ok, err := j.net.Accelerate(c.Device); ok {
			j.logf("device-resident steps on %s", c.Device)
			j.gpu = true
		} else {
			j.logf("SFT steps op by op through the %s backend: %v", c.Device, err)
		}
	}
	j.net.DropoutSeed = c.Seed
	j.opt = train.NewAdamW(len(j.net.Params), c.WeightDecay)

	if err := j.loadData(tok, tmpl); err != nil {
		return err
	}
	switch c.Method {
	case "kd":
		if c.KD.Teacher != "" {
			kd, err := j.loadTeacher(tok)
			if err != nil {
				return err
			}
			j.obj = kd
			if j.gpu {
				if j.net.KDOnDevice(kd) {
					j.logf("logit KD on %s, the teacher there too", c.Device)
				} else {
					j.logf("logit KD with the teacher on the host (%s does not hold it)", c.Device)
				}
			}
		} else {
			j.obj = train.SFT{} // sequence-level KD: SFT on the teacher's traces
		}
	case "dpo":
		d := &train.DPO{Beta: c.DPO.Beta, LabelSmoothing: c.DPO.LabelSmoothing, Loss: c.DPO.Loss}
		if err := d.Validate(); err != nil {
			return err
		}
		j.obj = &train.DPOObjective{DPO: d}
		if j.gpu && j.net.RowsOnDevice() {
			j.logf("DPO on %s, the reference policy the adapter switched off", c.Device)
		}
	default:
		j.obj = train.SFT{}
	}
	// After the objective: a KD teacher's device memory counts in the fit.
	fit := j.fitHostCheckpointing // the activations in host memory (op by op too)
	if j.gpu && c.OnGPU() {
		fit = j.fitCheckpointing
	}
	if err := fit(); err != nil {
		return err
	}
	if j.gpu && !j.Resume { // a resumed run keeps the micro-batch it recorded
		if err := j.fitDevice(tok, tmpl); err != nil {
			return err
		}
	}
	j.steps = c.Steps
	if j.steps <= 0 {
		j.steps = max(1, c.Epochs*len(j.batches)/c.Accum)
	}
	plan := j.net.PlanMemory(c.SeqLen, baseHeld)
	if !(j.gpu && c.OnGPU()) {
		// Give back what loading and encoding held (the tokenizer's tables,
		// the rows' text: tens of MB the heap kept), then make the step's
		// workspace at the size the plan counts, once.
		debug.FreeOSMemory()
		j.net.Reserve(c.SeqLen)
	}
	if j.teacher != nil { // logit KD holds its teacher (as distill plan counts it)
		plan.Teacher = j.teacher.HeldBytes()
		plan.TeacherActs = train.KDTeacherBytes(j.teacher, c.SeqLen, j.m.Config.VocabSize)
	}
	if j.gpu && c.OnGPU() {
		plan = j.devicePlan(c.SeqLen)
		j.planDevice = plan.Total() - plan.Runtime
		j.planDevOpt = plan.Optimizer > 0
		if plan.Optimizer == 0 {
			j.logf("GPU memory plan; the optimizer's moments (%.1f MB) stay on the host", float64(2*plan.Adapter)/1e6)
		} else {
			j.logf("GPU memory plan; the optimizer (clipping, AdamW and its moments) on the device too")
		}
	}
	if !(j.gpu && c.OnGPU()) {
		j.planHost = plan.Total()
	}
	if j.Log != nil {
		plan.Print(j.Log)
	}
	j.logf("%d training micro-batches, %d validation; %d optimizer steps", len(j.batches), len(j.val), j.steps)
	return nil
}
