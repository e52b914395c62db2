package app

import (
	"distill/core/infer"
	"distill/core/task/idp"
)

// decodeBatch is what the worker's runDecoding drives: sequences decoding
// a token a step, which jobs join between steps and leave as each
// finishes — generations (infer.Batch) or schema-constrained ones
// (idp.Batch).
type decodeBatch interface {
	Len() int
	// add prefills the jobs' sequences; errs[i] is set for one not added.
	add(js []*job) []error
	// step decodes a token of each and returns the jobs that finished,
	// their results (and token counts) set.
	step() []jobDone
	// drop takes every job out, for a step that failed as a whole.
	drop() []*job
}

// jobDone is a job that left its batch, and its error.
type jobDone struct {
	j   *job
	err error
}

// genBatch is decodeBatch over plain generations.
type genBatch struct {
	b      *infer.Batch
	byItem map[*infer.BatchItem]*job
}

func newGenBatch(b *infer.Batch) *genBatch {
	return &genBatch{b: b, byItem: map[*infer.BatchItem]*job{}}
}

func (g *genBatch) Len() int { return g.b.Len() }

func (g *genBatch) add(js []*job) []error {
	items := make([]*infer.BatchItem, len(js))
	for i, j := range js {
		j.gen.item.Ctx = j.ctx
		items[i] = &j.gen.item
		g.byItem[items[i]] = j // before Add: a panic inside leaves none unknown to step
	}
	errs := g.b.Add(items)
	for i, err := range errs {
		if err != nil {
			delete(g.byItem, items[i])
		}
	}
	return errs
}

func (g *genBatch) step() []jobDone {
	var out []jobDone
	for _, f := range g.b.Step() {
		j := g.byItem[f.Item]
		if j == nil {
			continue
		}
		delete(g.byItem, f.Item)
		e := f.Err
		if f.Result != nil {
			j.tokens = f.Result.CompletionTokens
			if e == nil {
				e = j.ctx.Err() // a cancelled generation is an error, not a short answer
			}
			if e == nil {
				j.gen.result = f.Result
			}
		}
		out = append(out, jobDone{j, e})
	}
	return out
}

func (g *genBatch) drop() []*job {
	var js []*job
	for item, j := range g.byItem {
		delete(g.byItem, item)
		js = append(js, j)
	}
	return js
}

// extBatch is decodeBatch over schema-constrained generations.
type extBatch struct {
	b      *idp.Batch
	byItem map[*idp.BatchItem]*job
}

func newExtBatch(b *idp.Batch) *extBatch {
	return &extBatch{b: b, byItem: map[*idp.BatchItem]*job{}}
}

func (x *extBatch) Len() int { return x.b.Len() }

func (x *extBatch) add(js []*job) []error {
	items := make([]*idp.BatchItem, len(js))
	for i, j := range js {
		j.ext.item.Ctx = j.ctx
		items[i] = &j.ext.item
		x.byItem[items[i]] = j
	}
	errs := x.b.Add(items)
	for i, err := range errs {
		if err != nil {
			delete(x.byItem, items[i])
		}
	}
	return errs
}

func (x *extBatch) step() []jobDone {
	var out []jobDone
	for _, f := range x.b.Step() {
		j := x.byItem[f.Item]
		if j == nil {
			continue
		}
		delete(x.byItem, f.Item)
		j.tokens = f.Result.CompletionTokens
		e := f.Err
		if e == nil {
			e = j.ctx.Err()
		}
		if e == nil {
			j.ext.result = f.Result
		}
		out = append(out, jobDone{j, e})
	}
	return out
}

func (x *extBatch) drop() []*job {
	var js []*job
	for item, j := range x.byItem {
		delete(x.byItem, item)
		js = append(js, j)
	}
	return js
}
