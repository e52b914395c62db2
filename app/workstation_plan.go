package app

import (
	"fmt"
	"slices"
	"strings"

	"distill/core/data"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/train"
)

// PlanRow is a training run's predicted peak memory, in bytes, and its parts,
// for the Launch view's memory-plan line.
type PlanRow struct {
	GPU         bool  `json:"gpu"` // device memory of a device-resident step (else host memory)
	Total       int64 `json:"total"`
	Weights     int64 `json:"weights"`
	Teacher     int64 `json:"teacher"` // KD: the teacher's weights as held
	Adapter     int64 `json:"adapter"`
	Grads       int64 `json:"gradients"`
	Optimizer   int64 `json:"optimizer"`
	Activations int64 `json:"activations"`
	Workspace   int64 `json:"workspace"`
	Runtime     int64 `json:"runtime"`
	// Recomputes: the plan recomputes each layer's activations in the
	// backward (grad_checkpointing true, or auto where keeping them does
	// not fit the host, and on a GPU, where the run decides).
	Recomputes bool `json:"recomputes"`
}

// PlanRun predicts cfg's peak memory without reading any data: it builds the
// net the way a run does (the base model memory-mapped, quantised as cfg
// asks, with the adapter or full training) and asks it for its plan.
func (w *Workstation) PlanRun(cfg RunConfig) (PlanRow, error) {
	c := &cfg
	if c.Model == "" {
		return PlanRow{}, fmt.Errorf("no base model")
	}
	if c.SeqLen <= 0 {
		return PlanRow{}, fmt.Errorf("seq-len must be positive")
	}
	if c.Method == "kd" && c.KD.Teacher != "" {
		if err := checkTeacher(c.Model, c.KD.Teacher, c.Data); err != nil {
			return PlanRow{}, &FieldError{Field: "kd.teacher", Err: err}
		}
	}
	// The plan is layout arithmetic: no backend runs, so the CPU's stands in
	// for any device (a build without CUDA still plans a GPU run).
	var be tensor.Backend = tensor.CPU{}
	wb, err := w.quantizedBytes(c.Model, c.Quant, c.DoubleQuant && c.Quant == "nf4")
	if err != nil {
		return PlanRow{}, err
	}
	// the layout alone sizes the adapter and activations: the net is built
	// over the memory-mapped checkpoint, never quantised here
	m, err := model.Load(c.Model)
	if err != nil {
		return PlanRow{}, err
	}
	defer m.Close()
	var net *train.Net
	if c.Full {
		net, err = train.NewFullNet(be, m)
	} else {
		var a *lora.Adapter
		a, err = lora.NewFor(m, lora.Config{R: c.LoRA.R, Alpha: c.LoRA.Alpha, Dropout: c.LoRA.Dropout,
			Targets: strings.Split(c.LoRA.Targets, ","), RSLoRA: c.LoRA.RSLoRA, BaseModel: c.Model})
		if err == nil {
			net, err = train.NewNet(be, m, a)
		}
	}
	if err != nil {
		return PlanRow{}, err
	}
	net.Checkpoint, net.KeepAttention = c.GradCheckpointing.Recomputes(), c.KeepAttention && !c.GradCheckpointing.Auto()
	if c.GradCheckpointing.Auto() && !c.OnGPU() { // as the run will decide (the GPU's: recomputing, the least)
		keepsOnHost(net, c.SeqLen, hostAvailable())
	}
	var teacherBytes int64
	var teacher *model.Model
	kd := c.Method == "kd" && c.KD.Teacher != "" // logit KD holds the teacher too
	if kd {
		tq := c.KD.TeacherQuant
		if teacherBytes, err = w.quantizedBytes(c.KD.Teacher, tq, tq == "nf4"); err != nil {
			return PlanRow{}, &FieldError{Field: "kd.teacher", Err: err}
		}
		if teacher, err = model.Load(c.KD.Teacher); err != nil {
			return PlanRow{}, &FieldError{Field: "kd.teacher", Err: err}
		}
		defer teacher.Close()
	}
	p := net.PlanMemory(c.SeqLen, wb)
	switch {
	case c.OnGPU() && kd: // the teacher's weights and forward pass on the device too
		p = net.DeviceKDPlan(c.SeqLen, wb, c.Quant == "nf4", teacher, teacherBytes, c.KD.TeacherQuant == "nf4")
	case c.OnGPU():
		p = net.DevicePlan(c.SeqLen, wb, c.Quant == "nf4")
	case kd:
		p.Teacher, p.TeacherActs = teacherBytes, train.KDTeacherBytes(teacher, c.SeqLen, m.Config.VocabSize)
	}
	return PlanRow{GPU: c.OnGPU(), Total: p.Total(), Weights: p.Weights, Teacher: p.Teacher + p.TeacherActs, Adapter: p.Adapter, Grads: p.Grads,
		Optimizer: p.Optimizer, Activations: p.Activations, Workspace: p.Workspace, Runtime: p.Runtime, Recomputes: net.Checkpoint}, nil
}

// LargestSeqLen is the longest micro-batch (in tokens, at most limit) whose
// plan fits budget bytes, found by bisection (the plan grows with it); 0
// when not even 16 tokens fit.
func (w *Workstation) LargestSeqLen(cfg RunConfig, budget int64, limit int) (int, error) {
	if cfg.GradCheckpointing.Auto() {
		// What a run of that budget could still do — recompute — rather
		// than what this machine's memory would have it choose; it also
		// keeps the totals monotonic in the length, as the bisection needs.
		cfg.GradCheckpointing = CheckpointOn
	}
	fits := func(n int) (bool, error) {
		cfg.SeqLen = n
		p, err := w.PlanRun(cfg)
		return err == nil && p.Total <= budget, err
	}
	lo, hi := 16, limit
	if ok, err := fits(lo); err != nil || !ok {
		return 0, err
	}
	if ok, _ := fits(hi); ok {
		return hi, nil
	}
	for hi-lo > 1 { // fits(lo) and !fits(hi)
		mid := (lo + hi) / 2
		ok, err := fits(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// quantizedBytes is the frozen base's size as a run holds it, quantised as
// asked; it is computed once per model and quantisation and remembered, so
// replanning after other fields change costs no quantisation.
func (w *Workstation) quantizedBytes(dir, q string, dq bool) (int64, error) {
	k := fmt.Sprintf("%s|%s|%v", dir, q, dq)
	w.mu.Lock()
	n, ok := w.planBytes[k]
	w.mu.Unlock()
	if ok {
		return n, nil
	}
	m, err := model.Load(dir)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	if _, err := quant.QuantizeModel(m, q, dq, false); err != nil {
		return 0, fmt.Errorf("quant: %w", err)
	}
	n = m.HeldBytes()
	w.mu.Lock()
	if w.planBytes == nil {
		w.planBytes = map[string]int64{}
	}
	w.planBytes[k] = n
	w.mu.Unlock()
	return n, nil
}

// DefaultRunConfig is the configuration a run gets from the CLI's defaults,
// for the Launch form to start from.
func DefaultRunConfig(method string) RunConfig { return defaultRunConfig(method) }

// ValidateRunConfig checks cfg as StartRun will, for errors shown in place.
func ValidateRunConfig(cfg RunConfig) error { return cfg.validate() }

// DataInfo is what the Launch form shows about a training file.
type DataInfo struct {
	Format  string // as detected (or declared by a schema)
	Rows    int
	Skipped int      // bad rows that training would skip
	Labels  []string // classification, most frequent first
	Shares  []float64
}

// DataInfo reads a training file as a run would and summarises it; the
// error names the file and line of the first problem.
func (w *Workstation) DataInfo(path string) (DataInfo, error) {
	ds, err := data.Load(path, data.Options{})
	if err != nil {
		return DataInfo{}, err
	}
	info := DataInfo{Format: ds.Format, Rows: len(ds.Rows), Skipped: len(ds.Skipped)}
	if ds.Format == data.FormatClassification && len(ds.Rows) > 0 {
		count := map[string]int{}
		for _, r := range ds.Rows {
			count[r.Label]++
		}
		info.Labels = ds.Labels()
		slices.SortStableFunc(info.Labels, func(a, b string) int { return count[b] - count[a] })
		for _, l := range info.Labels {
			info.Shares = append(info.Shares, float64(count[l])/float64(len(ds.Rows)))
		}
	}
	return info, nil
}

// FieldError is a plan refused because of one field of the run config
// (named by its YAML key), so a form can show it beside that field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// checkTeacher refuses a logit-distillation teacher whose vocabulary is not
// the student's, with the way out (sequence-level KD on traces).
func checkTeacher(student, teacher, dataPath string) error {
	st, err := tokenizer.Load(student)
	if err != nil {
		return err
	}
	tt, err := tokenizer.Load(teacher)
	if err != nil {
		return err
	}
	if !sameVocabulary(st, tt) {
		return fmt.Errorf("%s uses a different tokenizer from %s: logit KD needs a shared vocabulary — generate traces (distill kd traces --teacher %s --data %s --out traces.jsonl) and train with --traces", teacher, student, teacher, dataPath)
	}
	return nil
}
