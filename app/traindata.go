package app

import (
	"path/filepath"

	"fmt"

	"distill/core/data"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/core/train"
)

// loadData reads, checks, encodes and packs the training and validation
// sets; every skipped or truncated row is reported, none dropped silently.
func (j *TrainJob) loadData(tok *tokenizer.Tokenizer, tmpl *chat.Template) error {
	c := &j.Cfg
	path := c.Data
	if c.Method == "kd" && c.KD.Traces != "" {
		path = c.KD.Traces // sequence-level KD: the teacher's outputs are the targets
	}
	opt := data.Options{Format: c.Format, Strict: c.Strict, Chat: c.Chat, SchemaPath: c.Schema, MaxTokens: c.SeqLen, TruncateLeft: true}
	var ds, vs *data.Dataset
	var err error
	if c.Val != "" { // the validation file must match the training file's format
		ds, vs, err = data.LoadWithValidation(path, c.Val, opt)
	} else {
		ds, err = data.Load(path, opt)
	}
	if err != nil {
		return err
	}
	j.logf("%s", ds.Summary())
	j.format = ds.Format
	if c.Val == "" && c.ValPerClass > 0 {
		if ds.Format != data.FormatClassification {
			return fmt.Errorf("--val-per-class needs classification data, %s is %s", path, ds.Format)
		}
		tr, va, short, err := data.BalancedSplit(ds.Rows, data.PerClass{Count: c.ValPerClass}, c.Seed)
		if err != nil {
			return err
		}
		for _, s := range short {
			j.logf("class %q: %d rows, %d held out for validation instead of %d", s.Label, s.Rows, s.Got, s.Want)
		}
		ds, vs = ds.Subset(tr), ds.Subset(va)
	} else if c.Val == "" && c.ValFraction > 0 {
		tr, va, err := data.Split(ds.Rows, c.ValFraction, c.Seed)
		if err != nil {
			return err
		}
		ds, vs = ds.Subset(tr), ds.Subset(va)
	}
	if vs != nil {
		if n := data.Leaked(ds.Rows, vs.Rows); n > 0 {
			j.logf("%d of %d validation rows have the same input as a training row (duplicates in the data): validation overstates how the model does on unseen input; deduplicate the file", n, len(vs.Rows))
		}
	}
	if c.Val == "" && vs != nil && len(vs.Rows) > 0 {
		// Keep the held-out rows with the run, so it can be evaluated later
		// on exactly the rows it never trained on.
		if err := saveHeldOut(path, vs.Rows, filepath.Join(j.Dir, heldOutFile)); err != nil {
			j.logf("held-out rows not saved: %v", err)
		}
	}
	if c.PlanStages != "" {
		n := 0
		if ds, n, err = planStages(ds, c.PlanStages); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s: --plan-stages: no row has a \"plan\"", path)
		}
		j.logf("%d of %d rows carry a plan: each trains codegen --plan's plan stage and its code stage", n, len(ds.Rows)-n)
		if vs != nil {
			if vs, _, err = planStages(vs, c.PlanStages); err != nil {
				return err
			}
		}
	}
	enc := &data.Encoder{Tok: tok, Tmpl: tmpl, Opt: opt}
	if j.batches, err = j.encode(enc, ds); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(j.batches) == 0 {
		return fmt.Errorf("%s: no example to train on", path)
	}
	if vs != nil && len(vs.Rows) > 0 {
		if j.val, err = j.encode(enc, vs); err != nil {
			return fmt.Errorf("validation: %w", err)
		}
	}
	return nil
}

// encode turns a dataset into packed micro-batches of at most SeqLen tokens.
func (j *TrainJob) encode(enc *data.Encoder, ds *data.Dataset) ([]*train.Batch, error) {
	if j.Cfg.Method == "dpo" {
		pairs, rep, err := enc.Pairs(ds)
		if err != nil {
			return nil, err
		}
		j.logf("%s", rep.String())
		return packPairs(pairs, j.Cfg.SeqLen)
	}
	exs, rep, err := enc.Examples(ds)
	if err != nil {
		return nil, err
	}
	j.logf("%s", rep.String())
	return train.Pack(exs, j.Cfg.SeqLen)
}

// packPairs lays pairs out as consecutive (chosen, rejected) segments in
// micro-batches of at most seqLen tokens, whole pairs only.
func packPairs(pairs []data.PreferencePair, seqLen int) ([]*train.Batch, error) {
	var out []*train.Batch
	cur := &train.Batch{}
	for i, p := range pairs {
		n := 2*len(p.Prompt) + len(p.Chosen) + len(p.Rejected)
		if n > seqLen {
			return nil, fmt.Errorf("pair %d needs %d tokens, more than --seq-len %d", i, n, seqLen)
		}
		if cur.Len()+n > seqLen {
			out = append(out, cur)
			cur = &train.Batch{}
		}
		for _, ans := range [][]int{p.Chosen, p.Rejected} {
			ids := append(append([]int(nil), p.Prompt...), ans...)
			mask := make([]bool, len(ids))
			for t := len(p.Prompt); t < len(ids); t++ {
				mask[t] = true
			}
			cur.AddSequence(ids, mask)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// loadTeacher opens the logit-KD teacher, refusing one whose tokenizer
// differs from the student's: its logits would be over other tokens.
func (j *TrainJob) loadTeacher(studentTok *tokenizer.Tokenizer) (*train.KD, error) {
	c := &j.Cfg
	ttok, err := tokenizer.Load(c.KD.Teacher)
	if err != nil {
		return nil, err
	}
	if !sameVocabulary(studentTok, ttok) {
		return nil, fmt.Errorf("teacher %s uses a different tokenizer from the student %s: logit distillation needs a shared vocabulary — generate teacher traces instead (distill kd traces --teacher %s --data %s --out traces.jsonl) and train with --traces", c.KD.Teacher, c.Model, c.KD.Teacher, c.Data)
	}
	if j.teacher, err = model.Load(c.KD.Teacher); err != nil {
		return nil, err
	}
	if _, err := quant.QuantizeModel(j.teacher, c.KD.TeacherQuant, c.KD.TeacherQuant == "nf4", false); err != nil {
		return nil, fmt.Errorf("--teacher-quant: %w", err)
	}
	kd := &train.KD{Teacher: j.teacher, Backend: j.be, Divergence: c.KD.Divergence, Temperature: c.KD.Temperature, Alpha: c.KD.Alpha, Beta: c.KD.Beta}
	return kd, kd.Validate(j.m)
}

// sameVocabulary compares two tokenizers token by token.
func sameVocabulary(a, b *tokenizer.Tokenizer) bool {
	if a.VocabSize() != b.VocabSize() {
		return false
	}
	for id := 0; id < a.VocabSize(); id++ {
		if a.Token(id) != b.Token(id) {
			return false
		}
	}
	return true
}
