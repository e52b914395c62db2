package app

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/idp"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/store"
)

// ServeConfig configures the inference server (`distill serve`).
type ServeConfig struct {
	Model      string            // base model folder
	Device     string            // cpu or cuda
	Quant      string            // none, nf4 or q8
	DB         string            // adapter registry (SQLite); "" serves the base model only
	Pins       map[string]string // method (sft, kd, dpo) → adapter name served at /infer/<method>
	AdapterCap int               // adapters kept loaded (LRU)
	Queue      int               // requests that may wait for the model; more get 429
	MaxBatch   int               // classifications scored together
	Timeout    time.Duration     // per request, queueing included
	MaxBody    int64             // bytes of a request body
	MaxTokens  int               // most tokens a request may generate
	KVMemory   int64             // bytes the decoding sequences' KV caches may hold together; 0: auto (see cacheBudget), < 0: no bound
	APIKey     string            // bearer token; "" accepts every request
	CORSOrigin string            // origins (comma-separated, or "*") whose web pages may call the API; "" none
	CPUOffload int               // the first layers run on the CPU (GPU backends only; the CPU backend ignores it); model.AutoCPULayers: the device picks
	CPUBF16    bool              // the CPU's products of BF16 weights take bf16-rounded activations, its attention bf16-rounded operands (--cpu-bf16)
	Log        *slog.Logger
}

// withDefaults fills zero fields.
func (c ServeConfig) withDefaults() ServeConfig {
	if c.Device == "" {
		c.Device = "cpu"
	}
	if c.Quant == "" {
		c.Quant = "none"
	}
	if c.AdapterCap <= 0 {
		c.AdapterCap = 4
	}
	if c.Queue <= 0 {
		c.Queue = 64
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 8
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 2048
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Server serves one base model and its adapters over HTTP. One worker
// goroutine owns the model; handlers parse requests at the edge, queue
// jobs and format the results.
type Server struct {
	cfg     ServeConfig
	log     *slog.Logger
	met     *serveMetrics
	handler http.Handler
	routes  []route

	ready     atomic.Bool
	loadErr   atomic.Value // error from Load, for /readyz
	closeOnce sync.Once
	life      sync.Mutex // Load's publication of the model against Close
	closed    bool

	// Set by Load.
	be       tensor.Backend
	m        *model.Model
	tok      *tokenizer.Tokenizer
	tmpl     *chat.Template // nil: the model has no chat template
	gc       *model.GenerationConfig
	eos      []int
	db       *store.DB
	adapters *adapterCache
	sched    *scheduler
	grammars *grammarCache
	started  time.Time
	// checks bounds the codegen checks (compilers) running at once: the
	// queue bounds generation, not what the handlers run after it.
	checks chan struct{}
}

// route is one endpoint: its mux pattern and the name metrics use.
type route struct {
	pattern, name string
	h             http.HandlerFunc
	model         bool // needs the model loaded (503 until then)
}

// NewServer builds the server's routes; Load loads the model.
func NewServer(cfg ServeConfig) *Server {
	s := &Server{cfg: cfg.withDefaults(), met: newServeMetrics(), started: time.Now(), checks: make(chan struct{}, max(1, runtime.NumCPU()/2))}
	s.log = s.cfg.Log
	s.routes = []route{
		{"GET /healthz", "healthz", s.handleHealth, false},
		{"GET /readyz", "readyz", s.handleReady, false},
		{"GET /metrics", "metrics", s.met.handler().ServeHTTP, false},
		{"GET /openapi.json", "openapi", s.handleOpenAPI, false},
		{"GET /v1/models", "models", s.handleModels, true},
		{"GET /v1/models/{id}", "model", s.handleModel, true},
		{"POST /infer/{adapter}", "infer", s.handleInfer, true},
		{"POST /v1/chat/completions", "chat_completions", s.handleChat, true},
		{"POST /v1/completions", "completions", s.handleCompletions, true},
	}
	mux := http.NewServeMux()
	for _, r := range s.routes {
		h := http.Handler(r.h)
		if r.model {
			h = s.needModel(h)
		}
		mux.Handle(r.pattern, s.met.instrument(r.name, s.log, h))
	}
	s.handler = recoverMiddleware(s.log, s.cors(s.auth(s.notFound(mux))))
	return s
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Load opens the device, the tokenizer, the chat template (if any) and the
// base model, opens the adapter registry and starts the model worker.
func (s *Server) Load() error {
	err := s.load()
	if err != nil {
		s.loadErr.Store(err)
	}
	return err
}

func (s *Server) load() error {
	dev, q, dq, none := s.cfg.Device, s.cfg.Quant, s.cfg.Quant == "nf4", ""
	bf := s.cfg.CPUBF16
	avail := hostAvailable() // before the model takes its share
	tok, be, m, err := openForTask(engineFlags{device: &dev, quant: &q, doubleQuant: &dq, adapter: &none, cpuBF16: &bf, cpuOffload: s.cfg.CPUOffload, notice: warnWriter{s.log}}, s.cfg.Model)
	if err != nil {
		return err
	}
	gc, err := model.LoadGenerationConfig(s.cfg.Model)
	if err != nil {
		m.Close()
		return err
	}
	if n := s.cfg.CPUOffload; n > len(m.Layers) && dev != "cpu" {
		s.log.Warn("--cpu-offload is more than the model's layers: every layer runs on the CPU", "cpu-offload", n, "layers", len(m.Layers))
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Model, "tokenizer_config.json")); err == nil {
		if t, err := chat.Load(s.cfg.Model); err == nil {
			s.tmpl = t
		} else {
			s.log.Warn("no usable chat template: chat requests are rendered as plain role-tagged text", "err", err)
		}
	}
	var reg store.AdapterStore
	var db *store.DB
	if s.cfg.DB != "" {
		if db, err = store.Open(s.cfg.DB); err != nil {
			// The registry is only read: a database this user cannot write
			// (its folder, for SQLite's WAL) is served read-only.
			ro, rerr := store.OpenReadOnly(s.cfg.DB)
			if rerr != nil {
				m.Close()
				return fmt.Errorf("adapter registry: %w", err)
			}
			s.log.Warn("adapter registry opened read-only", "db", s.cfg.DB, "err", err)
			db = ro
		}
		reg = db
	}
	// Close may run meanwhile (a signal while loading): it and this
	// publication take turns, and a closed server releases what was loaded.
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		m.Close()
		if db != nil {
			db.Close()
		}
		return errClosedWhileLoading
	}
	s.db = db
	s.be, s.m, s.tok, s.gc = be, m, tok, gc
	s.eos = m.EOSIDs(gc)
	if id, ok := tok.EOS(); ok {
		s.eos = append(s.eos, id)
	}
	s.adapters = newAdapterCache(m, reg, s.cfg.Pins, s.cfg.AdapterCap, s.met)
	s.grammars = newGrammarCache(tok, 32)
	s.sched = newScheduler(s.cfg.Queue, s.cfg.MaxBatch, func(d model.Delta) { m.Delta = d }, s.met)
	s.sched.cacheBudget = s.cacheBudget(avail)
	s.met.kvBudget.Set(float64(s.sched.cacheBudget))
	s.sched.newGenBatch = func() *infer.Batch { return infer.NewBatch(be, m, tok) }
	s.sched.newExtBatch = func() *idp.Batch { return idp.NewBatch(be, m, tok) }
	go s.sched.loop()
	s.ready.Store(true)
	s.log.Info("model loaded", "model", s.cfg.Model, "layers", len(m.Layers), "vocab", m.Config.VocabSize,
		"backend", be.Name(), "device_resident", m.Attached(), "cpu_layers", m.CPULayers, "kv_cache_bf16", m.CacheElemBytes() == 2)
	return nil
}

// cacheBudget is the bytes of KV cache the sequences decoding together may
// hold: --kv-memory, or by default what the host had available before the
// model loaded, less a tenth and less the rest of the server's plan
// (infer.PlanHost: the weights, the largest prompt pass and decode step,
// the adapters kept loaded, the runtime), and at least one full-context
// sequence's (so every request the context admits runs, alone if it must).
// A batch takes no sequence whose cache would pass it — the sequence waits
// for room — so however long the requests, the caches cannot take the
// machine's memory; a request that alone needs more is refused (413). It
// logs the plan. Without /proc (no MemAvailable) and with --kv-memory none
// there is no bound (0).
func (s *Server) cacheBudget(avail int64) int64 {
	ctx := s.contextLimit()
	p := infer.PlanHost(s.m, s.cfg.MaxBatch, ctx, s.cfg.AdapterCap, model.DecoderPlanRank)
	fixed, perSeq := p.Total()-p.Caches, p.Caches/int64(max(1, s.cfg.MaxBatch))
	budget := s.cfg.KVMemory
	if budget == 0 && avail > 0 {
		if budget = avail - avail/10 - fixed; budget < perSeq {
			s.log.Warn("little host memory is left for KV caches: long sequences decode one at a time; free memory, use --quant nf4 or fewer --adapters, or set --kv-memory",
				"left", mb(max(budget, 0)), "available", mb(avail), "rest_of_plan", mb(fixed), "full_context_sequence", mb(perSeq))
			budget = perSeq
		}
	}
	if budget > 0 && budget < perSeq && s.cfg.KVMemory > 0 {
		s.log.Warn("--kv-memory holds less than one full-context sequence's KV cache: requests whose prompt and max_tokens need more are refused (413)",
			"kv_memory", mb(budget), "full_context_sequence", mb(perSeq), "positions", budget/max(1, s.cacheBytes(1)))
	}
	if budget <= 0 {
		s.log.Info("host memory plan", "weights", mb(p.Weights), "kv_caches", "no bound (--kv-memory none, or no MemAvailable)",
			"kv_cache_per_full_sequence", mb(perSeq), "max_batch", s.cfg.MaxBatch, "context", ctx)
		return 0
	}
	s.log.Info("host memory plan", "weights", mb(p.Weights), "kv_caches", mb(budget),
		"full_context_sequences", budget/max(1, perSeq), "kv_cache_per_full_sequence", mb(perSeq),
		"prefill", mb(p.Prefill), "decode", mb(p.Decode), "adapters", mb(p.Adapters),
		"total", mb(fixed+budget), "available", mb(avail), "max_batch", s.cfg.MaxBatch, "context", ctx)
	return budget
}

// errClosedWhileLoading: Close came first (a signal during the load).
var errClosedWhileLoading = errors.New("the server was closed while the model loaded")

// Close stops the worker (failing queued requests with 503) and releases
// the model and the registry.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.life.Lock()
		defer s.life.Unlock()
		s.closed = true
		s.ready.Store(false)
		if s.sched != nil {
			s.sched.close()
		}
		if s.m != nil {
			s.m.Close()
		}
		if s.db != nil {
			s.db.Close()
		}
	})
	return nil
}

// contextLimit is the most positions a request may use: the model's
// (a sliding window it does not implement past included), so a sequence
// admitted never fails a batched step it shares with others.
func (s *Server) contextLimit() int {
	if n := s.m.ContextLimit(); n > 0 {
		return n
	}
	return 4096
}

func (s *Server) needModel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			e := errorf(http.StatusServiceUnavailable, errUnavailable, "", "the model is still loading: retry shortly (GET /readyz says when it is ready)")
			e.RetryAfter = 5
			writeError(w, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors lets web pages of the configured origins call the API: it answers
// browsers' preflight requests (before auth, as browsers send them without
// credentials) and marks responses readable by the page's origin. Without
// --cors-origin it sends nothing and browsers refuse cross-origin calls.
func (s *Server) cors(next http.Handler) http.Handler {
	if s.cfg.CORSOrigin == "" {
		return next
	}
	allowed := map[string]bool{}
	for _, o := range strings.Split(s.cfg.CORSOrigin, ",") {
		allowed[strings.TrimRight(strings.TrimSpace(o), "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin == "" || !allowed["*"] && !allowed[origin] {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Retry-After")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			headers := r.Header.Get("Access-Control-Request-Headers") // the SDKs send their own x-stainless-* headers
			if headers == "" {
				headers = "Authorization, Content-Type"
			}
			h.Set("Access-Control-Allow-Headers", headers)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// auth checks the bearer token on every endpoint but the probes.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.APIKey == "" {
		return next
	}
	want := []byte("Bearer " + s.cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="distill"`)
			writeError(w, errorf(http.StatusUnauthorized, errAuth, "", "missing or wrong API key: send the header `Authorization: Bearer <key>` with the key the server was started with (--api-key or DISTILL_API_KEY)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// notFound answers unknown paths and wrong methods with JSON errors (the
// mux's own answers are plain text).
func (s *Server) notFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, p := mux.Handler(r2); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, errorf(http.StatusMethodNotAllowed, errInvalid, "", "%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		writeError(w, errorf(http.StatusNotFound, errNotFound, "", "no endpoint %s %s (GET /openapi.json lists them)", r.Method, r.URL.Path))
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSONStatus(w, http.StatusOK, map[string]any{"status": "ok", "uptime_seconds": time.Since(s.started).Seconds()})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.ready.Load() {
		writeJSONStatus(w, http.StatusOK, map[string]any{"status": "ready", "model": filepath.Base(s.cfg.Model)})
		return
	}
	msg := "the model is loading"
	if err, ok := s.loadErr.Load().(error); ok {
		msg = "the model failed to load: " + oneLine(err.Error())
	}
	writeError(w, &apiError{Status: http.StatusServiceUnavailable, Type: errUnavailable, Message: msg, RetryAfter: 5})
}

// isLoopback reports whether addr (host:port) binds only the loopback
// interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnWriter logs each write as a warning (the engine's notices).
type warnWriter struct{ log *slog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
