package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"distill/core/data"
	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/classify"
	"distill/core/task/codegen"
	"distill/core/task/idp"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

// usage counts a request's tokens.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func (u *usage) add(prompt, completion int) {
	u.PromptTokens += prompt
	u.CompletionTokens += completion
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
}

// inferResponse is the answer of POST /infer/{adapter}.
type inferResponse struct {
	Task      string  `json:"task"`
	Model     string  `json:"model"`   // the base model folder's name (no server paths are shown)
	Adapter   string  `json:"adapter"` // "base" or the adapter's registered name
	Method    string  `json:"adapter_method,omitempty"`
	Output    any     `json:"output"`
	Usage     usage   `json:"usage"`
	LatencyMS float64 `json:"latency_ms"`
	QueueMS   float64 `json:"queue_ms"`
	BatchSize int     `json:"batch_size,omitempty"` // classify, generate: requests run in the same pass
}

// grammarCache keeps compiled JSON Schemas by their compact text.
type grammarCache struct {
	mu  sync.Mutex
	tok *tokenizer.Tokenizer
	cap int
	g   map[string]*idp.Grammar
}

func newGrammarCache(tok *tokenizer.Tokenizer, capacity int) *grammarCache {
	return &grammarCache{tok: tok, cap: capacity, g: map[string]*idp.Grammar{}}
}

// get compiles schema (once per distinct schema); a schema the compiler
// refuses is a 422 naming the reason.
func (c *grammarCache) get(schema json.RawMessage, param string) (*idp.Grammar, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, schema); err != nil {
		return nil, errorf(http.StatusBadRequest, errInvalid, param, "%s is not valid JSON: %v", param, err)
	}
	key := buf.String()
	c.mu.Lock()
	g := c.g[key]
	c.mu.Unlock()
	if g != nil {
		return g, nil
	}
	g, err := compileSchema(buf.Bytes(), c.tok)
	if err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, errUnprocess, param, "the JSON Schema does not compile to a decoding constraint: %s", oneLine(err.Error()))
	}
	c.mu.Lock()
	if len(c.g) >= c.cap {
		clear(c.g)
	}
	c.g[key] = g
	c.mu.Unlock()
	return g, nil
}

// compileSchema is idp.Compile with a panic turned into an error: a schema
// is client input.
func compileSchema(schema []byte, tok *tokenizer.Tokenizer) (g *idp.Grammar, err error) {
	defer func() {
		if v := recover(); v != nil {
			g, err = nil, fmt.Errorf("the schema compiler failed: %v", v)
		}
	}()
	return idp.Compile(schema, tok)
}

// deltaOf is the model.Delta an adapter applies (an untyped nil for the
// base model, never a typed nil pointer).
func deltaOf(sa *servedAdapter) model.Delta {
	if sa == nil {
		return nil
	}
	return sa.A
}

func adapterName(sa *servedAdapter) string {
	if sa == nil {
		return baseName
	}
	return sa.Name
}

// jobStats is what a finished job reports beside its result.
type jobStats struct {
	queued    time.Duration
	batchSize int
}

func (s *Server) do(j *job) (jobStats, error) {
	// checkContext refused the generations whose cache is over the bound;
	// a classification's (its prompt and the labels' tokens) may be, by a
	// few positions: it runs alone.
	if b := s.sched.cacheBudget; b > 0 {
		j.cache = min(j.cache, b)
	}
	if err := s.sched.submit(j); err != nil {
		return jobStats{}, err
	}
	select {
	case <-j.done: // the worker is done with j: its fields and results may be read
		st := jobStats{batchSize: j.batchSize}
		if !j.started.IsZero() {
			st.queued = j.started.Sub(j.queued)
		}
		return st, j.err
	case <-j.ctx.Done():
		// The worker may still hold j (it stops at its next check of the
		// context): touch nothing it writes.
		return jobStats{}, j.ctx.Err()
	}
}

// cacheBytes is the KV cache of a sequence of n positions.
func (s *Server) cacheBytes(n int) int64 { return int64(n) * infer.CacheBytesPerPosition(s.m) }

// generate runs one generation on the worker, decoded together with the
// other generations waiting on the same adapter.
func (s *Server) generate(ctx context.Context, sa *servedAdapter, ids []int, opt infer.GenerateOptions) (*infer.Result, jobStats, error) {
	key := ""
	if sa != nil {
		key = sa.Path
	}
	gj := &genJob{key: key, item: infer.BatchItem{Prompt: ids, Opt: opt}}
	st, err := s.do(&job{ctx: ctx, delta: deltaOf(sa), kind: "generate", gen: gj, cache: s.cacheBytes(len(ids) + opt.MaxTokens)})
	if err != nil {
		return nil, st, err
	}
	r := gj.result
	s.countTokens(r.PromptTokens, r.CompletionTokens, r.TokensPerSecond)
	return r, st, nil
}

// extract runs one schema-constrained generation on the worker, decoded
// together with the others waiting on the same adapter.
func (s *Server) extract(ctx context.Context, sa *servedAdapter, g *idp.Grammar, ids []int, maxTokens int, sampling infer.Sampling, onText func(string) bool) (idp.Result, jobStats, error) {
	key := ""
	if sa != nil {
		key = sa.Path
	}
	ej := &extractJob{key: key, item: idp.BatchItem{Grammar: g, Prompt: ids, MaxTokens: maxTokens, Sampling: sampling, OnText: onText}}
	st, err := s.do(&job{ctx: ctx, delta: deltaOf(sa), kind: "extract", ext: ej, cache: s.cacheBytes(len(ids) + maxTokens)})
	if err != nil {
		return idp.Result{}, st, err
	}
	r := ej.result
	tps := 0.0
	if r.DecodeSeconds > 0 {
		tps = float64(r.CompletionTokens) / r.DecodeSeconds
	}
	s.countTokens(r.PromptTokens, r.CompletionTokens, tps)
	return r, st, nil
}

func (s *Server) countTokens(prompt, completion int, tps float64) {
	s.met.tokens.WithLabelValues("prompt").Add(float64(prompt))
	s.met.tokens.WithLabelValues("completion").Add(float64(completion))
	if completion > 0 && tps > 0 {
		s.met.tokensPerS.Observe(tps)
	}
}

// encodePrompt tokenises text, through the chat template when asked (and
// the model has one).
func (s *Server) encodePrompt(text, system string, useChat bool) ([]int, error) {
	if !useChat {
		return s.tok.Encode(text, true), nil
	}
	var msgs []chat.Message
	if system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: system})
	}
	return s.encodeChat(append(msgs, chat.Message{Role: "user", Content: text}))
}

// encodeChat renders messages through the model's chat template, or as
// plain "role: content" lines when it has none.
func (s *Server) encodeChat(msgs []chat.Message) ([]int, error) {
	if s.tmpl == nil {
		var b strings.Builder
		var plain [][2]int // the contents: text, whatever special tokens they hold
		for _, m := range msgs {
			fmt.Fprintf(&b, "%s: ", m.Role)
			plain = append(plain, [2]int{b.Len(), b.Len() + len(m.Content)})
			b.WriteString(m.Content + "\n")
		}
		b.WriteString("assistant:")
		return s.tok.EncodeText(b.String(), true, plain), nil
	}
	_, ids, err := s.tmpl.Encode(s.tok, msgs, true)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, errInvalid, "messages", "the chat template refuses these messages: %s", oneLine(err.Error()))
	}
	return ids, nil
}

// sampling is the checkpoint's generation_config.json overridden by the
// request's fields. A request without a seed (or with a negative one, as
// front-ends send -1) gets a random one, as OpenAI's API does: retrying a
// sampled request gives another answer. top_p 0 keeps the top token only
// (infer's 0 is "off").
func (s *Server) sampling(temp *float64, topK *int, topP, minP *float64, seed *int64) infer.Sampling {
	f := func(p *float64) float64 {
		if p == nil {
			return -1
		}
		return *p
	}
	k, sd := -1, mrand.Uint64()
	if topK != nil {
		k = *topK
	}
	if seed != nil && *seed >= 0 {
		sd = uint64(*seed)
	}
	p := f(topP)
	if p == 0 {
		p = math.SmallestNonzeroFloat64
	}
	return samplingFrom(s.gc, f(temp), k, p, f(minP), -1, sd)
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	req, input, err := parseInferRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	sa, err := s.adapters.get(ctx, r.PathValue("adapter"))
	if err != nil {
		writeError(w, err)
		return
	}
	resp := &inferResponse{Task: req.Task, Model: filepath.Base(s.cfg.Model), Adapter: adapterName(sa)}
	if sa != nil {
		resp.Method = sa.Method
	}
	var st jobStats
	switch req.Task {
	case "classify":
		st, err = s.inferClassify(ctx, sa, req, input, resp)
	case "extract":
		st, err = s.inferExtract(ctx, sa, req, input, resp)
	case "generate":
		st, err = s.inferGenerate(ctx, sa, req, input, resp)
	case "codegen":
		st, err = s.inferCodegen(ctx, sa, req, input, resp)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	resp.LatencyMS = float64(time.Since(t0).Microseconds()) / 1000
	resp.QueueMS = float64(st.queued.Microseconds()) / 1000
	writeJSONStatus(w, http.StatusOK, resp)
}

func (s *Server) inferClassify(ctx context.Context, sa *servedAdapter, req *inferRequest, input string, resp *inferResponse) (jobStats, error) {
	o := req.Options
	tmpl := data.DefaultTextTemplate
	if o.Template != "" {
		tmpl = o.Template
	}
	// The prompt and the longest label's continuation must fit the context.
	longest, extra := 0, 0
	for _, l := range req.Labels {
		n := len(s.tok.Encode(" "+l, false))
		longest, extra = max(longest, n), extra+max(n-1, 0)
	}
	n := len(s.tok.Encode(strings.ReplaceAll(tmpl, "{text}", input), true))
	if err := s.checkContext(n, longest+1, "input"); err != nil || n == 0 {
		return jobStats{}, err // an empty prompt is a 400 here, not its batch's failure
	}
	var nulls []string
	if o.Calibrate == nil || *o.Calibrate {
		nulls = classify.DefaultNullInputs
		if len(o.NullInputs) > 0 {
			nulls = o.NullInputs
		}
	}
	opt := classify.Options{Labels: req.Labels, LengthNormalize: o.LengthNormalize, NullInputs: nulls, Bias: o.Bias, End: answerEnd(s.tok)}
	path := ""
	if sa != nil {
		path = sa.Path
	}
	// The classifier cache and batch key: every field that changes the
	// scores, JSON-encoded so no two different requests share it (map keys
	// are sorted by encoding/json).
	keyJSON, _ := json.Marshal([]any{path, req.Labels, tmpl, nulls, o.LengthNormalize, o.Bias})
	key := string(keyJSON)
	cj := &classifyJob{key: key, text: input, build: func() (*classify.Classifier, error) {
		return classify.New(s.be, s.m, s.tok, func(t string) string { return strings.ReplaceAll(tmpl, "{text}", t) }, opt)
	}}
	// Its cache alone: the prompt and every label's tokens but the last
	// (classify's). Batched, its share of the batch's cache is less with
	// single-token labels and up to a repeat of its prompt's rest per label
	// with longer ones: a batch holds 2,048 such positions at most.
	cache := s.cacheBytes(n + extra)
	st, err := s.do(&job{ctx: ctx, delta: deltaOf(sa), kind: "classify", batch: cj, cache: cache})
	if err != nil {
		return st, err
	}
	s.countTokens(cj.result.PromptTokens, 0, 0)
	resp.Output, resp.BatchSize = cj.result, st.batchSize
	resp.Usage.add(cj.result.PromptTokens, 0)
	return st, nil
}

func (s *Server) inferExtract(ctx context.Context, sa *servedAdapter, req *inferRequest, input string, resp *inferResponse) (jobStats, error) {
	o := req.Options
	g, err := s.grammars.get(req.Schema, "schema")
	if err != nil {
		return jobStats{}, err
	}
	maxTokens, err := s.checkMaxTokens(o.MaxTokens, 512, "options.max_tokens")
	if err != nil {
		return jobStats{}, err
	}
	if g.MinTokens() > maxTokens {
		return jobStats{}, errorf(http.StatusUnprocessableEntity, errUnprocess, "options.max_tokens", "the schema's shortest value needs %d tokens, more than max_tokens %d", g.MinTokens(), maxTokens)
	}
	ids, err := s.encodePrompt(idpPrompt(input), o.System, o.Chat)
	if err != nil {
		return jobStats{}, err
	}
	if err := s.checkContext(len(ids), maxTokens, "input"); err != nil {
		return jobStats{}, err
	}
	res, st, err := s.extract(ctx, sa, g, ids, maxTokens, s.sampling(o.Temperature, o.TopK, o.TopP, o.MinP, o.Seed), nil)
	if err != nil {
		return st, err
	}
	out := map[string]any{"json": res.JSON, "text": res.Text, "valid": res.Valid, "stop_reason": res.StopReason}
	if res.JSON == nil {
		out["json"] = nil
	}
	if res.ValidationError != "" {
		out["validation_error"] = res.ValidationError
	}
	resp.Output = out
	resp.Usage.add(res.PromptTokens, res.CompletionTokens)
	resp.BatchSize = st.batchSize
	return st, nil
}

func (s *Server) inferGenerate(ctx context.Context, sa *servedAdapter, req *inferRequest, input string, resp *inferResponse) (jobStats, error) {
	o := req.Options
	maxTokens, err := s.checkMaxTokens(o.MaxTokens, 128, "options.max_tokens")
	if err != nil {
		return jobStats{}, err
	}
	ids, err := s.encodePrompt(input, o.System, o.Chat)
	if err != nil {
		return jobStats{}, err
	}
	if err := s.checkContext(len(ids), maxTokens, "input"); err != nil {
		return jobStats{}, err
	}
	res, st, err := s.generate(ctx, sa, ids, infer.GenerateOptions{MaxTokens: maxTokens, EOS: s.eos, Stop: o.Stop,
		Sampling: s.sampling(o.Temperature, o.TopK, o.TopP, o.MinP, o.Seed)})
	if err != nil {
		return st, err
	}
	resp.Output = map[string]any{"text": res.Text, "stop_reason": res.StopReason, "tokens_per_second": res.TokensPerSecond}
	resp.BatchSize = st.batchSize
	resp.Usage.add(res.PromptTokens, res.CompletionTokens)
	return st, nil
}

// inferCodegen runs codegen.Run in the handler: each generation stage is a
// job for the worker; the optional checks (build, lint) run here, off the
// model's goroutine. Tests are never run for HTTP requests.
func (s *Server) inferCodegen(ctx context.Context, sa *servedAdapter, req *inferRequest, input string, resp *inferResponse) (jobStats, error) {
	o := req.Options
	maxTokens, err := s.checkMaxTokens(o.MaxTokens, codegen.DefaultCodeTokens, "options.max_tokens")
	if err != nil {
		return jobStats{}, err
	}
	var total jobStats
	gen := func(ctx context.Context, prompt string, n int) (string, error) {
		ids, err := s.encodePrompt(prompt, "", o.Chat)
		if err != nil {
			return "", err
		}
		n = min(n, s.cfg.MaxTokens)
		if err := s.checkContext(len(ids), n, "input"); err != nil {
			return "", err
		}
		res, st, err := s.generate(ctx, sa, ids, infer.GenerateOptions{MaxTokens: n, EOS: s.eos})
		total.queued += st.queued
		if err != nil {
			return "", err
		}
		resp.Usage.add(res.PromptTokens, res.CompletionTokens)
		return res.Text, nil
	}
	task := codegen.Task{Prompt: input, Language: o.Language}
	opt := codegen.Options{Plan: o.Plan, CodeTokens: maxTokens, PlanTokens: min(codegen.DefaultPlanTokens, s.cfg.MaxTokens),
		Checks: map[string][]codegen.Check{o.Language: {}}} // generation only: the checks wait their turn below
	res, err := codegen.Run(ctx, gen, task, opt)
	if err != nil {
		return total, err
	}
	if o.Check {
		select {
		case s.checks <- struct{}{}:
		case <-ctx.Done():
			return total, ctx.Err()
		}
		checked, err := codegen.CheckCode(ctx, task, res.Code, codegen.Options{})
		<-s.checks
		if err != nil {
			return total, err
		}
		res.Checks, res.Built, res.Linted = checked.Checks, checked.Built, checked.Linted
	}
	resp.Output = codegenJSON(res)
	return total, nil
}
