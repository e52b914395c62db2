package app

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveMetrics are the server's Prometheus metrics, in a registry of its
// own (so several servers in one process, as in tests, do not collide).
type serveMetrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // endpoint, code
	latency      *prometheus.HistogramVec // endpoint
	tokens       *prometheus.CounterVec   // kind: prompt, completion
	tokensPerS   prometheus.Histogram
	queueDepth   prometheus.Gauge
	queueWait    prometheus.Histogram
	batchSize    prometheus.Histogram
	genBatchSize prometheus.Histogram
	rejected     prometheus.Counter
	adapters     prometheus.Gauge
	adapterLoad  prometheus.Counter
	inFlight     prometheus.Gauge
	kvCache      prometheus.Gauge // bytes the decoding sequences' caches reserve
	kvBudget     prometheus.Gauge // --kv-memory's bound (0: none)
}

func newServeMetrics() *serveMetrics {
	m := &serveMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "distill_http_requests_total",
			Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "distill_http_request_duration_seconds",
			Help: "Request latency by endpoint, queueing included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"endpoint"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "distill_tokens_total",
			Help: "Tokens processed: prompt (prefill and scoring) and completion (generated)."}, []string{"kind"}),
		tokensPerS: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "distill_generation_tokens_per_second",
			Help: "Decode throughput of each generation.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distill_queue_depth",
			Help: "Requests waiting for the model worker."}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "distill_queue_wait_seconds",
			Help: "Time from queueing to the worker taking a request.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "distill_classify_batch_size",
			Help: "Classifications scored together in one pass.", Buckets: []float64{1, 2, 4, 8, 16, 32}}),
		genBatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "distill_generate_batch_size",
			Help: "Generations (plain or schema-constrained) decoded together.", Buckets: []float64{1, 2, 4, 8, 16, 32}}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "distill_queue_rejected_total",
			Help: "Requests refused with 429 because the queue was full."}),
		adapters: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distill_adapters_loaded",
			Help: "Adapters held in memory (LRU)."}),
		adapterLoad: prometheus.NewCounter(prometheus.CounterOpts{Name: "distill_adapter_loads_total",
			Help: "Adapters loaded from disk (LRU misses)."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distill_http_in_flight_requests",
			Help: "Requests being served."}),
		kvCache: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distill_kv_cache_bytes",
			Help: "Host KV cache reserved by the sequences decoding now (prompt and token budget each)."}),
		kvBudget: prometheus.NewGauge(prometheus.GaugeOpts{Name: "distill_kv_cache_budget_bytes",
			Help: "The bound on the decoding sequences' KV caches (--kv-memory; 0: none)."}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.tokens, m.tokensPerS, m.queueDepth, m.queueWait, m.batchSize, m.genBatchSize,
		m.rejected, m.adapters, m.adapterLoad, m.inFlight, m.kvCache, m.kvBudget,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *serveMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusWriter records the status a handler wrote; it passes Flush through
// (Unwrap) so server-sent events stream.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts, times and logs the requests of one endpoint (server
// errors at warn level, everything else at debug).
func (m *serveMetrics) instrument(endpoint string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		m.inFlight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			code := sw.status
			if code == 0 {
				code = 499 // the client went away before any answer
			}
			d := time.Since(t0)
			m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
			m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
			level := slog.LevelDebug
			if code >= 500 {
				level = slog.LevelWarn
			}
			log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", code, "ms", float64(d.Microseconds())/1000)
		}()
		next.ServeHTTP(sw, r)
	})
}
