package app

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/classify"
	"distill/core/task/idp"
)

// job is one unit of model work. One worker goroutine owns the model and
// runs jobs one at a time, setting the model's adapter (an unmerged LoRA
// Delta) for each, so the base weights are shared by every adapter.
type job struct {
	ctx     context.Context
	delta   model.Delta // nil: the base model
	kind    string      // classify, extract, generate (metrics and logs)
	queued  time.Time
	started time.Time

	// run does the work of a job that is not batched.
	run func(ctx context.Context) error
	// batch, when set, marks a classification that may be scored together
	// with other waiting classifications of the same key.
	batch *classifyJob
	// gen, when set, marks a generation that may decode together with other
	// waiting generations on the same adapter.
	gen *genJob
	// ext, when set, marks a schema-constrained generation that may decode
	// together with other waiting ones on the same adapter.
	ext *extractJob

	// cache is the bytes of KV cache the job's sequence holds while it
	// decodes (its prompt and token budget); the scheduler keeps the
	// caches of the jobs it runs together within its budget.
	cache int64

	err       error
	batchSize int
	tokens    int // generated (set by the job's run)
	done      chan struct{}
}

// classifyJob is one input for a classifier; key names the classifier
// (adapter, labels, template and options) so equal keys batch together.
type classifyJob struct {
	key    string
	text   string
	build  func() (*classify.Classifier, error)
	result *classify.Result
}

// genJob is one generation; key names the adapter, so generations on the
// same adapter decode together (infer.GenerateBatch).
type genJob struct {
	key    string
	item   infer.BatchItem
	result *infer.Result
}

// extractJob is one schema-constrained generation; key names the adapter.
type extractJob struct {
	key    string
	item   idp.BatchItem
	result idp.Result
}

// batchKey is the key jobs batch by ("" for a job that runs alone).
func (j *job) batchKey() string {
	switch {
	case j.batch != nil:
		return "classify\x00" + j.batch.key
	case j.gen != nil:
		return "generate\x00" + j.gen.key
	case j.ext != nil:
		return "extract\x00" + j.ext.key
	}
	return ""
}

// scheduler is the bounded queue in front of the worker. submit never
// blocks: a full queue is errQueueFull (HTTP 429), so memory stays bounded
// by the queue's capacity however many clients connect.
type scheduler struct {
	q        chan *job
	capacity int64
	depth    atomic.Int64 // submitted, not yet started
	maxBatch int
	// cacheBudget bounds the KV caches of the sequences decoding together
	// (0: no bound); inUse is theirs now (worker-owned).
	cacheBudget int64
	inUse       int64
	stop        chan struct{}
	stopped     chan struct{}
	stopOnce    sync.Once
	mu          sync.Mutex // orders submit against close, so no job slips in after the drain
	closed      bool

	classifiers map[string]*classify.Classifier // worker-owned cache
	pending     []*job                          // worker-owned: taken from the channel while batching, run next
	setDelta    func(model.Delta)
	// newGenBatch starts an infer.Batch on the server's model.
	newGenBatch func() *infer.Batch
	// newExtBatch starts an idp.Batch on the server's model.
	newExtBatch func() *idp.Batch
	met         *serveMetrics
	beforeJob   func(*job) // test hook, called on the worker before a job runs
	afterJob    func(*job) // test hook, called on the worker after a job ran
}

func newScheduler(capacity, maxBatch int, setDelta func(model.Delta), met *serveMetrics) *scheduler {
	return &scheduler{
		q: make(chan *job, capacity), capacity: int64(capacity), maxBatch: max(1, maxBatch),
		stop: make(chan struct{}), stopped: make(chan struct{}),
		classifiers: map[string]*classify.Classifier{}, setDelta: setDelta, met: met,
	}
}

// submit queues j or fails at once with errQueueFull or errShutdown.
func (s *scheduler) submit(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errShutdown
	}
	if s.depth.Load() >= s.capacity { // the worker only lowers depth meanwhile
		s.met.rejected.Inc()
		return errQueueFull
	}
	s.depth.Add(1)
	j.queued, j.done = time.Now(), make(chan struct{})
	s.q <- j // never blocks: depth < capacity = cap(q)
	s.met.queueDepth.Set(float64(s.depth.Load()))
	return nil
}

// close stops the worker; queued jobs fail with errShutdown.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.stopped
}

// loop is the worker: it takes jobs in order, batching waiting
// classifications of the same key into one scoring pass, and waiting
// generations (plain or schema-constrained) on the same adapter into one
// decode.
func (s *scheduler) loop() {
	defer close(s.stopped)
	for {
		var j *job
		if len(s.pending) > 0 {
			j, s.pending = s.pending[0], s.pending[1:]
		} else {
			select {
			case j = <-s.q:
			case <-s.stop:
				s.drain(s.pending)
				return
			}
		}
		select {
		case <-s.stop:
			s.drain(append([]*job{j}, s.pending...))
			return
		default:
		}
		key := j.batchKey()
		if key == "" {
			s.runOne(j)
			continue
		}
		group, bytes := []*job{j}, j.cache
		// joins is whether p may join the group: the same key, room in the
		// batch and in the cache budget, and no earlier job of the key
		// left waiting (jobs start in the order they came).
		held := false
		joins := func(p *job) bool {
			ok := !held && len(group) < s.maxBatch && p.batchKey() == key && s.fits(bytes+p.cache)
			held = held || (!ok && p.batchKey() == key)
			return ok
		}
		var rest []*job
		for _, p := range s.pending {
			if joins(p) {
				group, bytes = append(group, p), bytes+p.cache
			} else {
				rest = append(rest, p)
			}
		}
		s.pending = rest
	collect:
		for !held && len(group) < s.maxBatch {
			select {
			case p := <-s.q:
				if joins(p) {
					group, bytes = append(group, p), bytes+p.cache
				} else {
					s.pending = append(s.pending, p)
				}
			default:
				break collect
			}
		}
		switch {
		case j.gen != nil:
			s.runDecoding(group, newGenBatch(s.newGenBatch()))
		case j.ext != nil:
			s.runDecoding(group, newExtBatch(s.newExtBatch()))
		default:
			s.runBatch(group)
		}
	}
}

// hold adds n bytes to the caches held by the decoding sequences.
func (s *scheduler) hold(n int64) {
	s.inUse += n
	s.met.kvCache.Set(float64(s.inUse))
}

// release gives back n bytes held for a batch that ended.
func (s *scheduler) release(n int64) {
	s.hold(-n)
	s.collect(n)
}

// collectAfter is the KV cache let go of at once past which the worker
// runs Go's collector before it goes on. Left to itself the collector lets
// the heap grow by as much as is live before it runs (GOGC=100): the
// finished sequences' caches stayed in memory beside their successors',
// and a server whose caches turned over under --kv-memory peaked past its
// plan. A collection over a heap of pointer-free float slices is short.
const collectAfter = 64 << 20

func (s *scheduler) collect(freed int64) {
	if s.cacheBudget > 0 && freed >= collectAfter {
		runtime.GC()
	}
}

// fits says whether bytes of KV cache are within the budget.
func (s *scheduler) fits(bytes int64) bool { return s.cacheBudget <= 0 || bytes <= s.cacheBudget }

// drain fails every job left when the server stops.
func (s *scheduler) drain(left []*job) {
	for {
		select {
		case j := <-s.q:
			left = append(left, j)
		default:
			for _, j := range left {
				s.depth.Add(-1)
				j.err = errShutdown
				close(j.done)
			}
			s.met.queueDepth.Set(float64(s.depth.Load()))
			return
		}
	}
}

// start marks j as taken off the queue; false when its client has gone
// (or its deadline passed) while it waited, in which case it is finished.
func (s *scheduler) start(j *job) bool {
	s.depth.Add(-1)
	s.met.queueDepth.Set(float64(s.depth.Load()))
	j.started = time.Now()
	s.met.queueWait.Observe(j.started.Sub(j.queued).Seconds())
	if err := j.ctx.Err(); err != nil {
		s.finish(j, err)
		return false
	}
	if s.beforeJob != nil {
		s.beforeJob(j)
	}
	return true
}

func (s *scheduler) finish(j *job, err error) {
	j.err = err
	if s.afterJob != nil {
		s.afterJob(j)
	}
	close(j.done)
}

func (s *scheduler) runOne(j *job) {
	if !s.start(j) {
		return
	}
	s.setDelta(j.delta)
	j.batchSize = 1
	s.finish(j, safeRun(func() error { return j.run(j.ctx) }))
}

// startAll starts each job of group and returns those still wanted (not
// cancelled or timed out while they waited).
func (s *scheduler) startAll(group []*job) []*job {
	var live []*job
	for _, j := range group {
		if s.start(j) {
			live = append(live, j)
		}
	}
	return live
}

// runBatch scores a group of classifications with one classifier in one
// branched pass (classify.ClassifyBatch).
func (s *scheduler) runBatch(group []*job) {
	live := s.startAll(group)
	if len(live) == 0 {
		return
	}
	s.setDelta(live[0].delta)
	s.met.batchSize.Observe(float64(len(live)))
	var held int64
	for _, j := range live {
		held += j.cache
	}
	s.hold(held)
	defer s.release(held)
	var c *classify.Classifier // built, when the batch got that far
	err := safeRun(func() error {
		key := live[0].batch.key
		c = s.classifiers[key]
		if c == nil {
			b, err := live[0].batch.build()
			if err != nil {
				return err
			}
			if len(s.classifiers) >= 64 { // a bound, not an LRU: rebuilding is one null-input pass
				clear(s.classifiers)
			}
			s.classifiers[key], c = b, b
		}
		texts := make([]string, len(live))
		for i, j := range live {
			texts[i] = j.batch.text
		}
		rs, err := c.ClassifyBatch(texts)
		if err != nil {
			return err
		}
		for i, j := range live {
			j.batch.result = rs[i]
		}
		return nil
	})
	if err != nil && c != nil && len(live) > 1 {
		// Scoring failed, not the classifier they share: one input's
		// failure must not fail its neighbours, so each is scored alone
		// and only the one at fault gets the error.
		for _, j := range live {
			j.batchSize = 1
			if cerr := j.ctx.Err(); cerr != nil {
				s.finish(j, cerr)
				continue
			}
			s.finish(j, safeRun(func() error {
				r, cerr := c.Classify(j.batch.text)
				j.batch.result = r
				return cerr
			}))
		}
		return
	}
	for _, j := range live {
		j.batchSize = len(live)
		s.finish(j, err)
	}
}

// runDecoding decodes a group of generations, plain or schema-constrained
// (each masked by its own grammar), together on b: one pass over the
// weights per token for all, each answered as soon as it finishes. While
// nothing else waits, jobs of the same key that arrive meanwhile join the
// running batch between steps (continuous batching); once another kind of
// request waits, the batch takes no one new, so that request runs as soon
// as the batch drains.
func (s *scheduler) runDecoding(group []*job, b decodeBatch) {
	key := group[0].batchKey()
	broken := false // a panic inside the batch: its jobs failed, it is dropped
	admit := func(js []*job) {
		live := s.startAll(js)
		if len(live) == 0 {
			return
		}
		for _, j := range live {
			s.hold(j.cache)
		}
		var errs []error
		if err := safeRun(func() error { errs = b.add(live); return nil }); err != nil {
			s.fail(b, err)
			broken = true
			return
		}
		var failed int64
		added := false
		for i, j := range live {
			if errs[i] != nil {
				s.hold(-j.cache)
				failed += j.cache
				s.finish(j, errs[i])
				continue
			}
			j.batchSize, added = b.Len(), true
		}
		s.collect(failed)
		if added {
			s.met.genBatchSize.Observe(float64(b.Len()))
		}
	}
	s.setDelta(group[0].delta)
	admit(group)
	for b.Len() > 0 && !broken {
		var done []jobDone
		if err := safeRun(func() error { done = b.step(); return nil }); err != nil {
			s.fail(b, err)
			return
		}
		var freed int64
		for _, d := range done {
			s.hold(-d.j.cache)
			freed += d.j.cache
			s.finish(d.j, d.err)
		}
		s.collect(freed)
		// Newcomers of the same key join while nothing else waits and
		// their caches fit beside the batch's: one that waits for room
		// joins first when the batch has some, before anyone after it.
		var join []*job
		bytes := s.inUse
		stopping := false
		select {
		case <-s.stop: // stopping: what waits fails with 503, no one joins
			stopping = true
		default:
		}
		for len(s.pending) > 0 && s.pending[0].ctx.Err() != nil { // its client left while it waited for room
			p := s.pending[0]
			s.pending = s.pending[1:]
			s.start(p) // finishes it
		}
		if !stopping && len(s.pending) > 0 && s.pending[0].batchKey() == key && b.Len() < s.maxBatch && s.fits(bytes+s.pending[0].cache) {
			join, bytes, s.pending = append(join, s.pending[0]), bytes+s.pending[0].cache, s.pending[1:]
		}
	poll:
		for len(s.pending) == 0 && b.Len()+len(join) < s.maxBatch {
			select {
			case <-s.stop: // stopping: what waits fails with 503, no one joins
				break poll
			default:
			}
			select {
			case p := <-s.q:
				if p.batchKey() == key && s.fits(bytes+p.cache) {
					join, bytes = append(join, p), bytes+p.cache
				} else {
					s.pending = append(s.pending, p)
				}
			default:
				break poll
			}
		}
		if len(join) > 0 {
			admit(join)
		}
	}
}

// fail finishes every job of b with err (a panic inside it: it cannot go
// on) and lets go of their caches.
func (s *scheduler) fail(b decodeBatch, err error) {
	var freed int64
	for _, j := range b.drop() {
		s.hold(-j.cache)
		freed += j.cache
		s.finish(j, err)
	}
	s.collect(freed)
}

// safeRun runs f, turning a panic into an error so the worker survives.
func safeRun(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errorf(500, errServer, "", "internal error in the model worker: %v", v)
		}
	}()
	return f()
}
