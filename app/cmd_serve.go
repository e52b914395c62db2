package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"distill/core/model"
)

func init() {
	register(command{name: "serve", usage: "--model DIR [--addr HOST:PORT] [--db FILE] [--api-key KEY] — HTTP inference API (/infer/*, OpenAI-compatible /v1/*)", run: runServe})
}

func runServe(env *Env, args []string) error {
	fs := newFlags(env, "serve", "--model DIR [--addr HOST:PORT] [--db FILE] [--api-key KEY] [flags]")
	dir := fs.String("model", "", "base model folder")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", defaultDB, "run database holding the adapter registry (\"\" serves the base model only)")
	device := fs.String("device", "cpu", "compute device: cpu or cuda (on cuda the forward pass is device-resident where the build has it — weights and KV caches on the GPU — else op by op, copying each op's operands)")
	quant := fs.String("quant", "none", "quantise the base's projections on load: none, nf4 or q8")
	apiKey := fs.String("api-key", "", "require the header Authorization: Bearer KEY on every endpoint but /healthz and /readyz (default: $DISTILL_API_KEY; empty: no auth)")
	sft := fs.String("sft", "", "adapter name served at /infer/sft (default: the latest SFT adapter registered)")
	kd := fs.String("kd", "", "adapter name served at /infer/kd (default: the latest KD adapter)")
	dpo := fs.String("dpo", "", "adapter name served at /infer/dpo (default: the latest DPO adapter)")
	adapters := fs.Int("adapters", 4, "adapters kept in memory (LRU); more are loaded again on use")
	queue := fs.Int("queue", 64, "requests that may wait for the model; beyond it requests get 429 with Retry-After")
	batch := fs.Int("max-batch", 8, "classifications of the same adapter and labels scored in one pass")
	timeout := fs.Duration("timeout", 2*time.Minute, "per-request limit, queueing included (504 past it)")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body in bytes (413 past it)")
	maxTokens := fs.Int("max-tokens", 2048, "most tokens one request may generate (400 past it)")
	kvMemory := fs.String("kv-memory", "auto", "host memory the decoding sequences' KV caches may hold together (e.g. 4GB): a sequence waits for room in the batch, a request needing more alone gets 413; auto: what the machine has available at start less the rest of the plan (`distill plan serve`) and a tenth; none: no bound")
	cors := fs.String("cors-origin", "", "let web pages from these origins (comma-separated, e.g. http://localhost:3000, or * for any) call the API from a browser; default none")
	verbose := fs.Bool("verbose", false, "log every request (method, path, status, latency); without it only server errors are logged per request")
	cpuBF16 := addCPUBF16Flag(fs)
	offloadFlag := fs.String("cpu-offload", "auto", "with a GPU backend: run the first N decoder layers on the CPU, so the GPU never holds their weights; auto: none where every layer fits the GPU's free memory, else the fewest that leave the rest room (the CPU backend ignores it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
	}
	if err := checkServeFlags(*adapters, *queue, *batch, *maxTokens, *maxBody, *timeout, *quant); err != nil {
		return err
	}
	kvBytes, err := parseKVMemory(*kvMemory)
	if err != nil {
		return err
	}
	offload, err := parseOffload(*offloadFlag)
	if err != nil {
		return err
	}
	if err := checkModelDir(*dir); err != nil {
		return err
	}
	key := *apiKey
	if key == "" {
		key = os.Getenv("DISTILL_API_KEY")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	if *db != "" {
		if _, err := os.Stat(*db); err != nil {
			log.Warn("no run database: only the base model is served", "db", *db)
			*db = ""
		}
	}
	if !isLoopback(*addr) && key == "" {
		log.Warn("listening beyond loopback without an API key: anyone who can reach this address can use the model; set --api-key or DISTILL_API_KEY", "addr", *addr)
	}
	if offload > 0 && *device == "cpu" {
		log.Warn("--cpu-offload has no effect on the CPU backend (every layer is already in CPU memory)", "cpu-offload", offload)
	}
	s := NewServer(ServeConfig{Model: *dir, Device: *device, Quant: *quant, DB: *db,
		Pins:       map[string]string{"sft": *sft, "kd": *kd, "dpo": *dpo},
		AdapterCap: *adapters, Queue: *queue, MaxBatch: *batch, Timeout: *timeout, MaxBody: *maxBody,
		MaxTokens: *maxTokens, KVMemory: kvBytes, APIKey: key, CORSOrigin: *cors, CPUOffload: offload, CPUBF16: *cpuBF16, Log: log})
	defer s.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Requests live under base: cancelling it stops their work (at the next
	// token) when they outlast the shutdown's grace period.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return base }}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening; the model loads now (GET /readyz says when it is ready)", "addr", "http://"+ln.Addr().String())
	go func() {
		if err := s.Load(); err != nil {
			log.Error("model did not load", "err", err)
			stop()
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second Ctrl-C now ends the process at once, grace period or not
	log.Info("shutting down (Ctrl-C again to stop at once)")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch err := srv.Shutdown(sctx); {
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn("requests still running after the 30 s grace period: cancelling them")
		cancelBase()
		srv.Close()
	case err != nil && !errors.Is(err, http.ErrServerClosed):
		return err
	}
	if err, ok := s.loadErr.Load().(error); ok && !errors.Is(err, errClosedWhileLoading) {
		return err
	}
	return nil
}

// parseKVMemory reads --kv-memory: auto (0), none (-1) or a size.
func parseKVMemory(v string) (int64, error) {
	switch v {
	case "auto":
		return 0, nil
	case "none":
		return -1, nil
	}
	b, err := parseBytes(v)
	if err != nil || b <= 0 {
		return 0, fmt.Errorf("--kv-memory %q: give auto, none or a size such as 4GB", v)
	}
	return b, nil
}

// checkServeFlags refuses serve's limits when not positive: ServeConfig's
// zero values mean "the default" for callers in code, but a flag given as
// 0 or less on the command line is a mistake to name, not to replace.
func checkServeFlags(adapters, queue, batch, maxTokens int, maxBody int64, timeout time.Duration, quant string) error {
	for _, c := range []struct {
		flag, want string
		v          int64
	}{
		{"--adapters", "adapters kept in memory, 1 or more", int64(adapters)},
		{"--queue", "requests that may wait, 1 or more", int64(queue)},
		{"--max-batch", "1 or more (1: no classification batching)", int64(batch)},
		{"--max-tokens", "1 or more tokens per request", int64(maxTokens)},
		{"--max-body", "a positive number of bytes", maxBody},
	} {
		if c.v <= 0 {
			return fmt.Errorf("%s %d: want %s", c.flag, c.v, c.want)
		}
	}
	if timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration, e.g. 2m", timeout)
	}
	switch quant {
	case "none", "nf4", "q8":
	default:
		return fmt.Errorf("--quant %q: want none, nf4 or q8", quant)
	}
	return nil
}

// parseOffload reads --cpu-offload: auto (model.AutoCPULayers) or a count
// of layers, 0 or more.
func parseOffload(s string) (int, error) {
	if s == "auto" {
		return model.AutoCPULayers, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--cpu-offload is auto or a number of layers (0 or more), not %q", s)
	}
	return n, nil
}
