package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"distill/core/data"
	"distill/core/infer"
	"distill/core/model"
)

// servePerPosition is the serve model's KV cache bytes a position.
func servePerPosition(t *testing.T) int64 {
	dir, _ := serveModel(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return infer.CacheBytesPerPosition(m)
}

// startLongStream starts a streamed 3,000-token completion, cancelled with
// ctx, and returns once its first token is out: it is decoding.
func startLongStream(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions",
		strings.NewReader(`{"prompt":"Once upon a time","max_tokens":3000,"temperature":0,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first SSE line %q: %v", line, err)
	}
}

// blockWorker makes the worker stop at the start of its next job until
// release is called; started is closed when it has stopped there.
func blockWorker(s *Server) (started <-chan struct{}, release func()) {
	st, gate := make(chan struct{}), make(chan struct{})
	var once, relOnce sync.Once
	s.sched.beforeJob = func(*job) {
		once.Do(func() {
			close(st)
			<-gate
		})
	}
	return st, func() { relOnce.Do(func() { close(gate) }) }
}

// waitDepth waits until n jobs wait in the queue (polling, no deadline of
// its own: the test's timeout bounds it).
func waitDepth(s *Server, n int64) {
	for s.sched.depth.Load() != n {
		time.Sleep(time.Millisecond)
	}
}

func TestServeQueueFullIs429(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.Queue = 1 })
	started, release := blockWorker(s)
	defer release()
	body := `{"task":"generate","input":"x","options":{"max_tokens":1}}`
	results := make(chan int, 2)
	go func() { results <- postCode(ts.URL+"/infer/base", body) }() // taken by the worker
	<-started
	go func() { results <- postCode(ts.URL+"/infer/base", body) }() // fills the queue
	waitDepth(s, 1)
	code, h, resp := post(t, ts.URL+"/infer/base", body)
	wantError(t, code, resp, 429, errRateLimit, "")
	if h.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	release()
	for range 2 {
		if c := <-results; c != 200 {
			t.Fatalf("queued request: %d", c)
		}
	}
}

func TestServeTimeoutIs504(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.Timeout = 200 * time.Millisecond })
	started, release := blockWorker(s)
	defer release()
	go postCode(ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	<-started
	// This one waits in the queue past its deadline.
	code, _, body := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	wantError(t, code, body, 504, errTimeout, "")
}

// TestServeBatchesClassifications: classifications waiting together for the
// same adapter and labels are scored in one pass, each with the result it
// gets alone.
func TestServeBatchesClassifications(t *testing.T) {
	s, ts := newTestServer(t, nil)
	labels := []string{"Good", "Standard", "Bad"}
	texts := []string{"earns 90k, no late payments", "three late payments this year", "new customer", "owes 40k on 6 cards"}
	alone := map[string]map[string]any{}
	for _, text := range texts {
		code, _, body := post(t, ts.URL+"/infer/sft", map[string]any{"task": "classify", "input": text, "labels": labels})
		if code != 200 || body["batch_size"].(float64) != 1 {
			t.Fatalf("alone: %d %v", code, body)
		}
		alone[text] = body["output"].(map[string]any)
	}
	started, release := blockWorker(s)
	go postCode(ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	<-started
	type answer struct {
		text string
		code int
		body map[string]any
	}
	answers := make(chan answer, len(texts))
	for _, text := range texts {
		go func() {
			b, _ := json.Marshal(map[string]any{"task": "classify", "input": text, "labels": labels})
			resp, err := http.Post(ts.URL+"/infer/sft", "application/json", bytes.NewReader(b))
			if err != nil {
				answers <- answer{text, -1, map[string]any{"error": err.Error()}}
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			answers <- answer{text, resp.StatusCode, body}
		}()
	}
	waitDepth(s, int64(len(texts)))
	release()
	for range texts {
		a := <-answers
		if a.code != 200 {
			t.Fatalf("batched: %d %v", a.code, a.body)
		}
		if a.body["batch_size"].(float64) != float64(len(texts)) {
			t.Fatalf("batch_size %v, want %d", a.body["batch_size"], len(texts))
		}
		got, want := a.body["output"].(map[string]any), alone[a.text]
		if got["label"] != want["label"] {
			t.Fatalf("%q: batched label %v, alone %v", a.text, got["label"], want["label"])
		}
		for _, l := range labels {
			g := got["probabilities"].(map[string]any)[l].(float64)
			w := want["probabilities"].(map[string]any)[l].(float64)
			if math.Abs(g-w) > 1e-5 {
				t.Fatalf("%q label %s: batched p=%.6f, alone p=%.6f", a.text, l, g, w)
			}
		}
	}
}

// TestServeBatchesGenerations: generations waiting together on the same
// adapter decode together, each with the text it gets alone (greedy).
func TestServeBatchesGenerations(t *testing.T) {
	s, ts := newTestServer(t, nil)
	prompts := []string{"Once upon a time", "The invoice total is", "def add(a, b):"}
	body := func(p string, n int) string {
		return fmt.Sprintf(`{"task":"generate","input":%q,"options":{"max_tokens":%d,"temperature":0}}`, p, n)
	}
	alone := map[string]string{}
	for i, p := range prompts {
		code, _, out := post(t, ts.URL+"/infer/dpo", body(p, 4+3*i))
		if code != 200 || out["batch_size"].(float64) != 1 {
			t.Fatalf("alone: %d %v", code, out)
		}
		alone[p] = out["output"].(map[string]any)["text"].(string)
	}
	started, release := blockWorker(s)
	go postCode(ts.URL+"/infer/base", `{"task":"classify","input":"x","labels":["a","b"]}`)
	<-started
	type answer struct {
		prompt string
		code   int
		body   map[string]any
	}
	answers := make(chan answer, len(prompts))
	for i, p := range prompts {
		go func() {
			resp, err := http.Post(ts.URL+"/infer/dpo", "application/json", strings.NewReader(body(p, 4+3*i)))
			if err != nil {
				answers <- answer{p, -1, nil}
				return
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			answers <- answer{p, resp.StatusCode, out}
		}()
	}
	waitDepth(s, int64(len(prompts)))
	release()
	for range prompts {
		a := <-answers
		if a.code != 200 || a.body["batch_size"].(float64) != float64(len(prompts)) {
			t.Fatalf("batched %q: %d %v", a.prompt, a.code, a.body)
		}
		if got := a.body["output"].(map[string]any)["text"].(string); got != alone[a.prompt] {
			t.Fatalf("%q: batched %q, alone %q", a.prompt, got, alone[a.prompt])
		}
	}
}

// TestServeBatchesExtractions: schema-constrained generations with
// different schemas waiting together decode together, each with the JSON it
// gets alone, valid against its schema.
func TestServeBatchesExtractions(t *testing.T) {
	s, ts := newTestServer(t, nil)
	bodies := []string{
		`{"task":"extract","input":"Invoice 42 from ACME","schema":{"type":"object","properties":{"vendor":{"type":"string","maxLength":8},"total":{"type":"integer"}},"required":["vendor","total"]},"options":{"max_tokens":30}}`,
		`{"task":"extract","input":"colours","schema":{"type":"array","items":{"enum":["red","green"]},"minItems":1,"maxItems":3},"options":{"max_tokens":20}}`,
		`{"task":"extract","input":"a number","schema":{"type":"integer","minimum":0,"maximum":99},"options":{"max_tokens":5}}`,
	}
	alone := map[string]string{}
	for _, b := range bodies {
		code, _, out := post(t, ts.URL+"/infer/base", b)
		if code != 200 || out["batch_size"].(float64) != 1 || out["output"].(map[string]any)["valid"] != true {
			t.Fatalf("alone: %d %v", code, out)
		}
		alone[b] = out["output"].(map[string]any)["text"].(string)
	}
	started, release := blockWorker(s)
	go postCode(ts.URL+"/infer/base", `{"task":"classify","input":"x","labels":["a","b"]}`)
	<-started
	type answer struct {
		body string
		code int
		out  map[string]any
	}
	answers := make(chan answer, len(bodies))
	for _, b := range bodies {
		go func() {
			resp, err := http.Post(ts.URL+"/infer/base", "application/json", strings.NewReader(b))
			if err != nil {
				answers <- answer{b, -1, nil}
				return
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			answers <- answer{b, resp.StatusCode, out}
		}()
	}
	waitDepth(s, int64(len(bodies)))
	release()
	for range bodies {
		a := <-answers
		if a.code != 200 || a.out["batch_size"].(float64) != float64(len(bodies)) {
			t.Fatalf("batched: %d %v", a.code, a.out)
		}
		out := a.out["output"].(map[string]any)
		if out["valid"] != true || out["text"] != alone[a.body] {
			t.Fatalf("batched %q (valid %v), alone %q", out["text"], out["valid"], alone[a.body])
		}
	}
}

// TestServeGenerationJoinsRunningBatch: a generation that arrives while
// another decodes joins its batch between steps and is answered when it
// finishes, before the long one.
func TestServeGenerationJoinsRunningBatch(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.MaxTokens = 3000 })
	finished := make(chan int, 4) // tokens of each finished generation, in order
	s.sched.afterJob = func(j *job) { finished <- j.tokens }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startLongStream(t, ctx, ts.URL)
	// The long generation is decoding: this one joins it.
	code, _, out := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"Hello","options":{"max_tokens":3,"temperature":0}}`)
	if code != 200 || out["batch_size"].(float64) != 2 {
		t.Fatalf("joining generation: %d %v", code, out)
	}
	if first := <-finished; first > 3 {
		t.Fatalf("the first generation to finish made %d tokens: the short one waited for the long one", first)
	}
	cancel()
	if last := <-finished; last >= 3000 {
		t.Fatalf("the long generation ran to the end (%d tokens) after its client left", last)
	}
}

// TestServeDisconnectCancels: a client that goes away mid-stream stops its
// generation on the worker long before max_tokens.
func TestServeDisconnectCancels(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.MaxTokens = 3000 })
	done := make(chan *job, 1)
	s.sched.afterJob = func(j *job) { done <- j }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
		strings.NewReader(`{"prompt":"Once upon a time","max_tokens":3000,"temperature":0,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first SSE line %q: %v", line, err)
	}
	cancel()
	resp.Body.Close()
	j := <-done
	if !errors.Is(j.err, context.Canceled) {
		t.Fatalf("the job ended with %v, want context.Canceled", j.err)
	}
	if j.tokens >= 3000 {
		t.Fatalf("the worker generated all %d tokens after the client left", j.tokens)
	}
	t.Logf("stopped after %d of 3000 tokens", j.tokens)
}

// TestServeCloseFailsQueued: closing the server fails waiting requests with
// 503 and later ones too; the worker exits.
func TestServeCloseFailsQueued(t *testing.T) {
	s, ts := newTestServer(t, nil)
	started, release := blockWorker(s)
	go postCode(ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	<-started
	codes := make(chan int, 1)
	go func() {
		codes <- postCode(ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	}()
	waitDepth(s, 1)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	<-s.sched.stop // Close has begun: the worker takes no more work once released
	release()
	<-closed
	if code := <-codes; code != 503 {
		t.Fatalf("queued request at shutdown: %d, want 503", code)
	}
	select {
	case <-s.sched.stopped:
	default:
		t.Fatal("the worker is still running after Close")
	}
	if err := s.sched.submit(&job{ctx: context.Background()}); !errors.Is(err, errShutdown) {
		t.Fatalf("submit after Close: %v", err)
	}
}

// postCode posts body and returns the status (-1 when the request failed);
// safe in goroutines other than the test's.
func postCode(url, body string) int {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeBenchNoErrors: the bounded load test (serve-bench) on loopback,
// small: every request of every endpoint succeeds, and concurrent
// classifications do get batched.
func TestServeBenchNoErrors(t *testing.T) {
	dir, _ := serveModel(t)
	rep, err := serveBench(context.Background(), dir, 8, 40, 4, 8)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 {
		t.Fatalf("%d errors: %v", rep.Errors, rep.FirstErrors)
	}
	for _, m := range benchMix {
		if rep.PerEndpoint[m.name].N == 0 {
			t.Fatalf("no successful %s requests: %+v", m.name, rep.PerEndpoint)
		}
	}
	if rep.P50 <= 0 || rep.P95 < rep.P50 || rep.Throughput <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	t.Logf("%.1f req/s, p50 %s, p95 %s, mean classify batch %.2f", rep.Throughput, rep.P50, rep.P95, rep.MeanClassifyBatch)
}

// TestServeNoGoroutineLeak: after requests of every kind (a stream cut
// short by its client among them) and Close, the goroutines started for
// the server are gone.
func TestServeNoGoroutineLeak(t *testing.T) {
	dir, db := serveModel(t)
	http.DefaultClient.CloseIdleConnections()
	before := goroutines()
	s := NewServer(ServeConfig{Model: dir, DB: db})
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(dir, "model.safetensors")
	if n, ok := mappings(weights); ok && n == 0 {
		t.Fatalf("%s is not mapped after Load: the handle check below would prove nothing", weights)
	}
	ts := httptest.NewServer(s.Handler())
	for _, body := range []string{
		`{"task":"classify","input":"x","labels":["a","b"]}`,
		`{"task":"generate","input":"x","options":{"max_tokens":2}}`,
		`{"task":"extract","input":"x","schema":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}`,
	} {
		if code := postCode(ts.URL+"/infer/sft", body); code != 200 {
			t.Fatalf("%s: %d", body, code)
		}
	}
	if code := postCode(ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":3,"stream":true}`); code != 200 {
		t.Fatalf("stream: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"x","max_tokens":2000,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n')
	cancel()
	resp.Body.Close()
	ts.Close()
	s.Close()
	if n, ok := mappings(weights); ok && n != 0 {
		t.Fatalf("%s is still mapped %d times after Close: the model handle leaked", weights, n)
	}
	http.DefaultClient.CloseIdleConnections()
	var now int
	for range 500 { // goroutines take a moment to unwind after Close
		if now = goroutines(); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("%d goroutines before the server, %d after Close:\n%s", before, now, buf[:runtime.Stack(buf, true)])
}

// mappings counts the memory mappings of path in this process (Linux);
// ok is false where /proc is not there.
func mappings(path string) (int, bool) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, false
	}
	return strings.Count(string(b), path), true
}

// goroutines counts this process's goroutines but the compute backend's
// helper pool (core/tensor starts its workers on first use and keeps them).
func goroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "core/tensor.(*helper)") {
			n++
		}
	}
	return n
}

// TestServeKVMemoryBoundsTheBatch: with --kv-memory room for two
// sequences' caches, three generations waiting together decode at most two
// at a time — the third waits for room and then runs, each with the text
// it gets alone — and a request whose cache alone is over the bound gets
// 413 naming the flag.
func TestServeKVMemoryBoundsTheBatch(t *testing.T) {
	perPos := servePerPosition(t)
	const maxTokens = 6
	body := `{"task":"generate","input":"Once upon a time","options":{"max_tokens":6,"temperature":0}}`
	_, ts0 := newTestServer(t, nil)
	code, _, out := post(t, ts0.URL+"/infer/base", body)
	if code != 200 {
		t.Fatalf("alone: %d %v", code, out)
	}
	alone := out["output"].(map[string]any)["text"].(string)
	seq := int64(out["usage"].(map[string]any)["prompt_tokens"].(float64)+maxTokens) * perPos

	s, ts := newTestServer(t, func(c *ServeConfig) { c.KVMemory = 2*seq + seq/2 })
	if s.sched.cacheBudget != 2*seq+seq/2 {
		t.Fatalf("budget %d, want --kv-memory's %d", s.sched.cacheBudget, 2*seq+seq/2)
	}
	started, release := blockWorker(s)
	go postCode(ts.URL+"/infer/base", `{"task":"classify","input":"x","labels":["a","b"]}`)
	<-started
	type answer struct {
		code int
		body map[string]any
	}
	answers := make(chan answer, 3)
	for range 3 {
		go func() {
			resp, err := http.Post(ts.URL+"/infer/base", "application/json", strings.NewReader(body))
			if err != nil {
				answers <- answer{-1, nil}
				return
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			answers <- answer{resp.StatusCode, out}
		}()
	}
	waitDepth(s, 3)
	release()
	sizes := map[float64]int{}
	for range 3 {
		a := <-answers
		if a.code != 200 {
			t.Fatalf("%d %v", a.code, a.body)
		}
		sizes[a.body["batch_size"].(float64)]++
		if got := a.body["output"].(map[string]any)["text"].(string); got != alone {
			t.Fatalf("batched %q, alone %q", got, alone)
		}
	}
	if sizes[2] != 2 || sizes[1] != 1 {
		t.Fatalf("batch sizes %v: want two decoding together and the third after them", sizes)
	}
	// The caches came back: two fit together again.
	for range 2 {
		go func() { answers <- answer{postCode(ts.URL+"/infer/base", body), nil} }()
	}
	for range 2 {
		if a := <-answers; a.code != 200 {
			t.Fatalf("after the batch: %d", a.code)
		}
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\ndistill_kv_cache_bytes 0\n", fmt.Sprintf("\ndistill_kv_cache_budget_bytes %g\n", float64(2*seq+seq/2))} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	long := fmt.Sprintf(`{"task":"generate","input":"Once upon a time","options":{"max_tokens":%d}}`, 3*maxTokens+10)
	code, _, out = post(t, ts.URL+"/infer/base", long)
	wantError(t, code, out, http.StatusRequestEntityTooLarge, errTooLarge, "input")
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "--kv-memory") {
		t.Errorf("message %q does not name --kv-memory", msg)
	}
	// OpenAI's endpoints: without max_tokens the budget is what the bound
	// leaves (not the context's rest, refused); past it, OpenAI's 400.
	code, _, out = post(t, ts.URL+"/v1/completions", `{"prompt":"Once upon a time","temperature":0}`)
	if code != 200 {
		t.Fatalf("a completion without max_tokens: %d %v", code, out)
	}
	if n := out["usage"].(map[string]any)["total_tokens"].(float64); int64(n)*perPos > s.sched.cacheBudget {
		t.Errorf("a completion without max_tokens took %v positions, past the bound of %d bytes", n, s.sched.cacheBudget)
	}
	code, _, out = post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":%d}`, 3*maxTokens+10))
	wantError(t, code, out, http.StatusBadRequest, errInvalid, "messages")
	if c := out["error"].(map[string]any)["code"]; c != codeContextLength {
		t.Errorf("chat past --kv-memory: code %v, want %s", c, codeContextLength)
	}
}

// TestServeKVMemoryHoldsJoiners: a generation arriving while a long one
// decodes joins it only if both caches fit --kv-memory; if not, it waits
// for the long one to leave (here, cancelled) and then runs alone.
func TestServeKVMemoryHoldsJoiners(t *testing.T) {
	perPos := servePerPosition(t)
	// Room for the long one's cache (its prompt, under 25 tokens, and
	// 3,000) but not for the short one's besides (its prompt and 30).
	s, ts := newTestServer(t, func(c *ServeConfig) { c.MaxTokens, c.KVMemory = 3000, (3000+25)*perPos })
	finished := make(chan int, 2) // each finished generation's max_tokens
	s.sched.afterJob = func(j *job) { finished <- j.gen.item.Opt.MaxTokens }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startLongStream(t, ctx, ts.URL)
	type answer struct {
		code int
		body map[string]any
	}
	short := make(chan answer, 1)
	go func() {
		code, _, out := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"Hello","options":{"max_tokens":30,"temperature":0}}`)
		short <- answer{code, out}
	}()
	// Wait until the decoding batch has taken it off the channel without
	// starting it, then for several decode steps at which it could join.
	for deadline := time.Now().Add(10 * time.Second); len(s.sched.q) > 0 || s.sched.depth.Load() == 0; {
		select {
		case a := <-short:
			t.Fatalf("the short generation answered while the long one decoded: %d %v", a.code, a.body)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the short generation never reached the worker")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if first := <-finished; first != 3000 {
		t.Fatalf("the first generation to finish asked for %d tokens: want the long one, cancelled", first)
	}
	a := <-short
	if a.code != 200 || a.body["batch_size"].(float64) != 1 {
		t.Fatalf("the short generation: %d %v; want it alone, after the long one", a.code, a.body)
	}
}

// TestServeKVMemoryAuto: by default the caches get what the host had
// available before the load, less a tenth and the rest of the plan — and
// never less than one full-context sequence, so every request the context
// admits still runs; --kv-memory none sets no bound.
func TestServeKVMemoryAuto(t *testing.T) {
	defer func(f func() int64) { hostAvailable = f }(hostAvailable)
	dir, _ := serveModel(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var s *Server
	plan := func() infer.HostPlan {
		return infer.PlanHost(m, s.cfg.MaxBatch, s.contextLimit(), s.cfg.AdapterCap, model.DecoderPlanRank)
	}
	const avail = 10 << 30
	hostAvailable = func() int64 { return avail }
	s, _ = newTestServer(t, nil)
	p := plan()
	if want := avail - avail/10 - (p.Total() - p.Caches); s.sched.cacheBudget != want {
		t.Errorf("%d bytes available: budget %d, want %d", int64(avail), s.sched.cacheBudget, want)
	}
	hostAvailable = func() int64 { return 1 << 20 }
	s, _ = newTestServer(t, nil)
	if p := plan(); s.sched.cacheBudget != p.Caches/int64(s.cfg.MaxBatch) {
		t.Errorf("1 MiB available: budget %d, want one full-context sequence's %d", s.sched.cacheBudget, p.Caches/int64(s.cfg.MaxBatch))
	}
	s, _ = newTestServer(t, func(c *ServeConfig) { c.KVMemory = -1 })
	if s.sched.cacheBudget != 0 {
		t.Errorf("--kv-memory none: budget %d, want no bound", s.sched.cacheBudget)
	}
}

// TestServeCPUBF16HalvesTheCaches: --cpu-bf16 holds the KV caches in bf16,
// so the bound counts half the bytes a position, and a full-context
// sequence's floor is half too; generations run on them.
func TestServeCPUBF16HalvesTheCaches(t *testing.T) {
	defer func(f func() int64) { hostAvailable = f }(hostAvailable)
	hostAvailable = func() int64 { return 1 << 20 } // the budget: one full-context sequence
	perPos := servePerPosition(t)
	s, ts := newTestServer(t, func(c *ServeConfig) { c.CPUBF16 = true })
	if !s.m.KVCacheBF16 || s.cacheBytes(10) != 10*perPos/2 {
		t.Fatalf("--cpu-bf16: KVCacheBF16 %v, 10 positions counted %d bytes; want bf16 caches of %d", s.m.KVCacheBF16, s.cacheBytes(10), 10*perPos/2)
	}
	if want := int64(s.contextLimit()) * perPos / 2; s.sched.cacheBudget != want {
		t.Errorf("budget %d, want one full-context bf16 sequence's %d", s.sched.cacheBudget, want)
	}
	code, _, out := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"Once upon a time","options":{"max_tokens":6,"temperature":0}}`)
	if code != 200 || out["output"].(map[string]any)["text"].(string) == "" {
		t.Fatalf("%d %v", code, out)
	}
	// --cpu-offload's layers run on the f32 CPU backend, whose attention
	// over rounded rows would answer differently: their caches stay f32;
	// with every layer offloaded all run bf16 on the CPU, in bf16 caches.
	for offload, want := range map[int]int64{1: 4, 1000: 2} {
		s, _ := newTestServer(t, func(c *ServeConfig) { c.CPUBF16, c.Device, c.CPUOffload = true, "fakegpu", offload })
		if got := s.m.CacheElemBytes(); got != want {
			t.Errorf("--cpu-bf16 --cpu-offload %d: %d-byte cache elements, want %d", offload, got, want)
		}
	}
}

// TestServeKVMemoryDropsAbandonedWaiters: a generation waiting for room
// whose client leaves stops holding up those behind it: the next one that
// fits joins the running batch at once.
func TestServeKVMemoryDropsAbandonedWaiters(t *testing.T) {
	perPos := servePerPosition(t)
	// The long one's cache (its prompt, under 25 tokens, and 3,000) leaves
	// 40 to 64 positions: not enough for an 80-token budget, enough for 10.
	s, ts := newTestServer(t, func(c *ServeConfig) { c.MaxTokens, c.KVMemory = 3000, (3000+25+40)*perPos })
	longCtx, cancelLong := context.WithCancel(context.Background())
	defer cancelLong()
	startLongStream(t, longCtx, ts.URL)
	waitCtx, leave := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(waitCtx, "POST", ts.URL+"/infer/base",
			strings.NewReader(`{"task":"generate","input":"Hello","options":{"max_tokens":80,"temperature":0}}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		left <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); len(s.sched.q) > 0 || s.sched.depth.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the waiting generation never reached the worker")
		}
	}
	leave()
	if err := <-left; err == nil {
		t.Fatal("the abandoned request was answered")
	}
	code, _, out := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"Hello","options":{"max_tokens":10,"temperature":0}}`)
	if code != 200 || out["batch_size"].(float64) != 2 {
		t.Fatalf("the generation after the abandoned one: %d %v; want it to join the long one", code, out)
	}
}

// TestServeKVMemoryClassifiesWithinTheContext: a classification that fits
// the context and --kv-memory's check, whose labels' tokens take its cache
// past the bound, runs (alone) rather than failing.
func TestServeKVMemoryClassifiesWithinTheContext(t *testing.T) {
	s, ts := newTestServer(t, nil)
	input := "The parcel arrived late and damaged"
	labels := []string{"extraordinarily satisfied", "unacceptably disappointed", "indifferently neutral", "overwhelmingly confused"}
	n := len(s.tok.Encode(strings.ReplaceAll(data.DefaultTextTemplate, "{text}", input), true))
	longest, extra := 0, 0
	for _, l := range labels {
		k := len(s.tok.Encode(" "+l, false))
		longest, extra = max(longest, k), extra+k-1
	}
	if extra <= longest+1 {
		t.Fatalf("labels of %d tokens at most, %d in all: want their cache past the context check's", longest, extra+len(labels))
	}
	s.sched.cacheBudget = s.cacheBytes(n + longest + 1) // what checkContext asks, less than classify holds
	body, _ := json.Marshal(map[string]any{"task": "classify", "input": input, "labels": labels})
	if code, _, out := post(t, ts.URL+"/infer/base", string(body)); code != 200 {
		t.Fatalf("%d %v", code, out)
	}
}

// TestServeExtractionJoinsRunningBatch: a schema-constrained generation
// arriving while a long one decodes joins it, is answered first with the
// JSON it gets alone, and the long one goes on (continuous batching, as
// for plain generations).
func TestServeExtractionJoinsRunningBatch(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.MaxTokens = 3000 })
	short := `{"task":"extract","input":"a number","schema":{"type":"integer","minimum":0,"maximum":99},"options":{"max_tokens":5}}`
	code, _, out := post(t, ts.URL+"/infer/base", short)
	if code != 200 {
		t.Fatalf("alone: %d %v", code, out)
	}
	alone := out["output"].(map[string]any)["text"].(string)
	finished := make(chan int, 2) // each finished extraction's max_tokens
	s.sched.afterJob = func(j *job) { finished <- j.ext.item.MaxTokens }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(
		`{"messages":[{"role":"user","content":"numbers"}],"max_tokens":3000,"stream":true,"temperature":0,`+
			`"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"array","items":{"type":"integer"},"minItems":400}}}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first SSE line %q: %v", line, err)
	}
	code, _, out = post(t, ts.URL+"/infer/base", short)
	if code != 200 || out["batch_size"].(float64) != 2 || out["output"].(map[string]any)["text"] != alone {
		t.Fatalf("joining extraction: %d %v; want batch 2 and %q", code, out, alone)
	}
	if first := <-finished; first != 5 {
		t.Fatalf("the first extraction to finish asked for %d tokens: the short one waited for the long one", first)
	}
	cancel()
	if last := <-finished; last != 3000 {
		t.Fatalf("then %d", last)
	}
}

// panicBatch is a decodeBatch whose second add panics: what a fault inside
// the model's code does to the worker.
type panicBatch struct {
	jobs []*job
	adds int
}

func (p *panicBatch) Len() int { return len(p.jobs) }
func (p *panicBatch) add(js []*job) []error {
	p.jobs = append(p.jobs, js...) // taken before the fault, as a batch may
	if p.adds++; p.adds == 2 {
		panic("fault in the batch")
	}
	return make([]error, len(js))
}
func (p *panicBatch) step() []jobDone { return nil }
func (p *panicBatch) drop() []*job {
	js := p.jobs
	p.jobs = nil
	return js
}

// A panic inside a decoding batch fails every job it holds exactly once —
// the one running and the one joining — with a 500, lets go of their
// caches, and leaves the worker going.
func TestRunDecodingSurvivesAPanic(t *testing.T) {
	s := newScheduler(4, 8, func(model.Delta) {}, newServeMetrics())
	finished := map[*job]int{}
	s.afterJob = func(j *job) { finished[j]++ }
	mk := func() *job {
		return &job{ctx: context.Background(), kind: "generate", gen: &genJob{key: "k"}, cache: 100}
	}
	a, b := mk(), mk()
	for _, j := range []*job{a, b} {
		if err := s.submit(j); err != nil {
			t.Fatal(err)
		}
	}
	first := <-s.q
	s.runDecoding([]*job{first}, &panicBatch{})
	for _, j := range []*job{a, b} {
		var ae *apiError
		if finished[j] != 1 || !errors.As(j.err, &ae) || ae.Status != 500 {
			t.Fatalf("job finished %d times, err %v; want once, a 500", finished[j], j.err)
		}
	}
	if s.inUse != 0 || s.depth.Load() != 0 {
		t.Fatalf("after the panic: %d bytes held, %d queued; want none", s.inUse, s.depth.Load())
	}
}
