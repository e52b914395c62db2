package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"distill/core/data"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/train"
	"distill/store"
)

// loop trains in spans ending at checkpoint boundaries, so checkpoints fall
// between optimizer steps; a cancelled context ends the span early, and the
// run is checkpointed before Run returns.
func (j *TrainJob) loop(ctx context.Context) error {
	c := &j.Cfg
	// Steps' elapsed time runs from the run's start, across its spans and
	// (from its log) the sessions before a resume.
	j.runStart = time.Now()
	if j.Resume {
		j.priorElapsed = loggedElapsed(filepath.Join(j.Dir, "log.jsonl"))
	}
	logFile, err := os.OpenFile(filepath.Join(j.Dir, "log.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cfg := train.Config{Accum: c.Accum, MaxGradNorm: c.MaxGradNorm, WeightDecay: c.WeightDecay, Objective: j.obj,
		Schedule: train.Schedule{Kind: c.Schedule, Peak: c.LR, Warmup: c.Warmup, Total: j.steps}, Gate: j.pause.wait}
	data := &train.Shuffled{Batches: j.batches, Seed: c.Seed}
	// A run stopped at a validation step checkpointed before validating:
	// its resume validates first, as the uninterrupted run would have.
	if j.Resume && c.EvalEvery > 0 && j.opt.Step > 0 && j.opt.Step%c.EvalEvery == 0 && j.opt.Step < j.steps && !j.validatedAt(j.opt.Step) {
		if err := j.evaluate(); err != nil {
			return err
		}
	}
	// Train runs in spans that end at the next checkpoint or validation.
	for j.opt.Step < j.steps {
		next := j.steps
		if c.CheckpointEvery > 0 {
			next = min(next, (j.opt.Step/c.CheckpointEvery+1)*c.CheckpointEvery)
		}
		if c.EvalEvery > 0 {
			next = min(next, (j.opt.Step/c.EvalEvery+1)*c.EvalEvery)
		}
		cfg.Steps = next
		events := make(chan train.Event, 8)
		done := make(chan error, 1)
		go func() { done <- j.record(events, logFile) }()
		err := train.Train(ctx, j.net, j.opt, cfg, data, events)
		close(events)
		if rerr := <-done; err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		// A checkpoint at its steps, at the end, and when stopped.
		if c.CheckpointEvery > 0 && j.opt.Step%c.CheckpointEvery == 0 || j.opt.Step >= j.steps || ctx.Err() != nil {
			if err := j.recordShed(); err != nil {
				return err
			}
			if cerr := j.checkpoint(); cerr != nil {
				return cerr
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.EvalEvery > 0 && j.opt.Step%c.EvalEvery == 0 && j.opt.Step < j.steps {
			if err := j.evaluate(); err != nil {
				return err
			}
		}
	}
	if err := j.evaluate(); err != nil {
		return err
	}
	if err := j.finish(); err != nil {
		return err
	}
	j.finished = true // every step trained and the result saved: completed, even if Ctrl-C came during the saving
	return nil
}

// record writes each event to log.jsonl and the store, and forwards it.
func (j *TrainJob) record(events <-chan train.Event, log *os.File) error {
	var first error
	for e := range events {
		e.TotalSteps = j.steps // a span ends at the next checkpoint, the run later
		e.Elapsed = j.priorElapsed + time.Since(j.runStart) - j.pause.pausedFor()
		// The plan put the optimizer's moments on the device, but they did
		// not fit there after all (Train fell back to the host).
		if j.planDevOpt && !e.OptimizerOnDevice && !j.hostOptLog {
			j.hostOptLog = true
			j.logf("step %d: no room on the device for the optimizer's moments; clipping and AdamW run on the host (the plan above counted them on the device)", e.Step)
		}
		for _, n := range e.Notes {
			j.logf("step %d: %s", e.Step, n)
		}
		line := map[string]any{"step": e.Step, "loss": e.Loss, "lr": e.LR, "grad_norm": e.GradNorm,
			"tokens_per_second": e.TokensPerSec, "rss_bytes": e.RSS, "elapsed_s": e.Elapsed.Seconds(), "time": time.Now().UTC()}
		points := []store.Metric{{Step: e.Step, Name: "loss", Value: e.Loss}, {Step: e.Step, Name: "lr", Value: e.LR},
			{Step: e.Step, Name: "grad_norm", Value: e.GradNorm}, {Step: e.Step, Name: "tokens_per_second", Value: e.TokensPerSec},
			{Step: e.Step, Name: "rss_bytes", Value: float64(e.RSS)},
			// For a workstation that watches the run from another process.
			{Step: e.Step, Name: "elapsed_s", Value: e.Elapsed.Seconds()}}
		if e.TotalSteps != j.totalRecorded { // once per session: it holds for every later step
			j.totalRecorded = e.TotalSteps
			points = append(points, store.Metric{Step: e.Step, Name: "total_steps", Value: float64(e.TotalSteps)})
			if j.planHost > 0 { // the memory plan, for a workstation's gauge
				points = append(points, store.Metric{Step: e.Step, Name: "plan_bytes", Value: float64(j.planHost)})
			}
		}
		if j.gpu { // the card's memory in use, through NVML (every process on it)
			if g, ok := trainingGPU(); ok {
				line["vram_bytes"] = g.Used
				points = append(points, store.Metric{Step: e.Step, Name: "vram_bytes", Value: float64(g.Used)})
				j.vramPeak = max(j.vramPeak, g.Used)
			}
		}
		for k, v := range e.Extra {
			line[k] = v
			points = append(points, store.Metric{Step: e.Step, Name: k, Value: v})
		}
		b, _ := json.Marshal(line)
		if _, err := log.Write(append(b, '\n')); err != nil && first == nil {
			first = err
		}
		if err := j.DB.AddMetrics(context.Background(), j.ID, points); err != nil {
			// Another process holding the database past its busy timeout
			// must not end hours of training: the step is in log.jsonl.
			j.metricsLost++
			if j.metricsLost == 1 {
				j.logf("step %d: the run database did not take the step's metrics (%v); training goes on, every step is in log.jsonl", e.Step, err)
			}
		}
		if j.Events != nil {
			j.Events(e)
		}
	}
	return first
}

// checkpoint writes checkpoints/step-N and records it.
func (j *TrainJob) checkpoint() error {
	dir := filepath.Join(j.Dir, "checkpoints", fmt.Sprintf("step-%06d", j.opt.Step))
	if err := train.SaveCheckpoint(dir, j.net, j.opt, train.State{Step: j.opt.Step, Seed: j.Cfg.Seed}); err != nil {
		return err
	}
	if err := j.DB.AddCheckpoint(context.Background(), store.Checkpoint{RunID: j.ID, Step: j.opt.Step, Path: absPath(dir)}); err != nil {
		// The checkpoint is on disk, where a resume finds it too: another
		// process holding the database must not end the run.
		j.logf("step %d: checkpoint saved to %s, but the run database did not record it (%v); training goes on", j.opt.Step, dir, err)
	}
	j.pruneCheckpoints()
	return nil
}

// pruneCheckpoints deletes all but the newest keep_checkpoints checkpoints
// (the one just saved is the newest), on disk and in the database. A
// failure to delete costs disk space only: it is logged, not fatal.
func (j *TrainJob) pruneCheckpoints() {
	keep := j.Cfg.KeepCheckpoints
	if keep <= 0 {
		return
	}
	saved := withSavedCheckpoints(nil, j.ID, j.Dir) // by step, from the folder itself
	for _, cp := range saved[:max(0, len(saved)-keep)] {
		if err := os.RemoveAll(cp.Path); err != nil {
			j.logf("step %d: older checkpoint %s not deleted: %v", j.opt.Step, cp.Path, err)
			continue
		}
		if err := j.DB.DeleteCheckpoint(context.Background(), j.ID, cp.Step); err != nil {
			j.logf("step %d: older checkpoint %s deleted, but the run database still lists it (%v)", j.opt.Step, cp.Path, err)
		}
	}
}

// evaluate computes the validation metrics and records them.
func (j *TrainJob) evaluate() error {
	if len(j.val) == 0 {
		return nil
	}
	metrics := map[string]float64{}
	if o, ok := j.obj.(*train.DPOObjective); ok {
		var st train.DPOStats
		for _, b := range j.val {
			pol, err := j.net.SequenceLogProbs(b, false)
			if err != nil {
				return err
			}
			ref, err := j.net.SequenceLogProbs(b, true)
			if err != nil {
				return err
			}
			s := o.DPO.ScorePairs(b, pol, ref) // as the steps score them (IPO per token)
			st.Pairs, st.Correct = st.Pairs+s.Pairs, st.Correct+s.Correct
			st.RewardChosen, st.RewardRejected = st.RewardChosen+s.RewardChosen, st.RewardRejected+s.RewardRejected
		}
		metrics["val_accuracy"] = float64(st.Correct) / float64(max(1, st.Pairs))
		metrics["val_margin"] = (st.RewardChosen - st.RewardRejected) / float64(max(1, st.Pairs))
	} else {
		var sum float64
		n := 0
		for _, b := range j.val {
			lp, err := j.net.SequenceLogProbs(b, false)
			if err != nil {
				return err
			}
			for _, v := range lp {
				sum -= v
			}
			n += b.Counted()
		}
		metrics["val_loss"] = sum / float64(max(1, n))
	}
	var points []store.Metric
	for k, v := range metrics {
		points = append(points, store.Metric{Step: j.opt.Step, Name: k, Value: v})
		j.logf("step %d: %s %.4f", j.opt.Step, k, v)
	}
	if j.Validated != nil {
		j.Validated(j.opt.Step, metrics)
	}
	if v, ok := metrics["val_loss"]; ok {
		j.recordBest("val_loss", v, true)
	} else if v, ok := metrics["val_accuracy"]; ok {
		j.recordBest("val_accuracy", v, false)
	}
	return j.DB.AddMetrics(context.Background(), j.ID, points)
}

// validatedAt says the store holds the run's validation at step.
func (j *TrainJob) validatedAt(step int) bool {
	for _, name := range []string{"val_loss", "val_accuracy"} {
		ms, err := j.DB.Metrics(context.Background(), j.ID, name)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Step == step {
				return true
			}
		}
	}
	return false
}

// recordBest keeps the run's best validation figure: v when it beats the
// one recorded (lower for a loss, higher for an accuracy) or none is.
func (j *TrainJob) recordBest(name string, v float64, lowerBetter bool) {
	ctx := context.Background()
	if r, err := j.DB.GetRun(ctx, j.ID); err == nil && r.BestMetric != nil && r.BestMetricName == name {
		if b := *r.BestMetric; lowerBetter && b <= v || !lowerBetter && b >= v {
			return
		}
	}
	if err := j.DB.SetBestMetric(ctx, j.ID, name, v); err != nil {
		j.logf("step %d: the run database did not take the best %s (%v)", j.opt.Step, name, err)
	}
}

// finish saves the trained adapter (PEFT layout) and registers it.
func (j *TrainJob) finish() error {
	if j.net.Adapter == nil {
		return j.writeModel(filepath.Join(j.Dir, "model"))
	}
	dir := filepath.Join(j.Dir, "adapter")
	if err := lora.Save(dir, j.net.Adapter); err != nil {
		return err
	}
	j.logf("adapter saved to %s", dir)
	if j.metricsLost > 0 {
		j.logf("%d steps' metrics are in log.jsonl only: the run database did not take them", j.metricsLost)
	}
	if peak, total, ok := j.net.DeviceMemory(); ok {
		j.logf("device memory: peak %.1f MB in the pool, plan %.1f MB (the CUDA context aside), of %.1f GB on the card",
			float64(peak)/1e6, float64(j.planDevice)/1e6, float64(total)/1e9)
		if j.vramPeak > 0 {
			j.logf("device memory in use at the steps' ends (NVML, every process on the card): at most %.1f MB", float64(j.vramPeak)/1e6)
		}
	}
	for _, s := range j.net.DeviceSummary() {
		j.logf("%s", s)
	}
	// The registry's task: what the adapter was trained to do.
	task := map[string]string{data.FormatClassification: "classification", data.FormatIDP: "idp",
		data.FormatMessages: "chat", data.FormatPromptCompletion: "generate", data.FormatPreference: "generate"}[j.format]
	if j.Cfg.PlanStages != "" {
		task = "codegen"
	}
	return j.DB.RegisterAdapter(context.Background(), store.Adapter{Name: j.ID, Path: absPath(dir), BaseModel: absPath(j.Cfg.Model),
		Method: j.Cfg.Method, Task: task, RunID: j.ID, Metrics: json.RawMessage(`{}`)})
}

// writeModel saves a full fine-tuning run's weights as a HF model folder
// (f32 safetensors plus the base's config, generation config and tokenizer
// files), loadable by distill and by transformers.
func (j *TrainJob) writeModel(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := model.WriteSafetensors(filepath.Join(dir, "model.safetensors"), j.net.Weights(), map[string]string{"format": "pt"}); err != nil {
		return err
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} {
		src := filepath.Join(j.Cfg.Model, f)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := copyFile(src, filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	j.logf("model saved to %s", dir)
	return nil
}

// loggedElapsed is the last elapsed_s a run's log.jsonl records: the time
// its earlier sessions trained. 0 without one.
func loggedElapsed(path string) time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var last float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Elapsed *float64 `json:"elapsed_s"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Elapsed != nil {
			last = *line.Elapsed
		}
	}
	return time.Duration(last * float64(time.Second))
}
