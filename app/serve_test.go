package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"distill/core/model"
)

func TestServeProbesMetricsOpenAPI(t *testing.T) {
	dir, _ := serveModel(t)
	s := NewServer(ServeConfig{Model: dir})
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// Before Load: alive, not ready; model endpoints say so with 503.
	if code, _, body := get(t, ts.URL+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	code, h, body := get(t, ts.URL+"/readyz")
	wantError(t, code, body, 503, errUnavailable, "")
	if h.Get("Retry-After") == "" {
		t.Fatal("readyz 503 without Retry-After")
	}
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"generate","input":"hi"}`)
	wantError(t, code, body, 503, errUnavailable, "")

	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(t, ts.URL+"/readyz"); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz after load: %d %v", code, body)
	}
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"generate","input":"hi","options":{"max_tokens":3}}`)
	if code != 200 {
		t.Fatalf("generate: %d %v", code, body)
	}

	// Metrics: request counts by endpoint and code, latency histograms,
	// tokens, queue depth, process memory.
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`distill_http_requests_total{code="200",endpoint="infer"} 1`,
		`distill_http_requests_total{code="503",endpoint="infer"} 1`,
		`distill_http_request_duration_seconds_bucket{endpoint="infer"`,
		`distill_tokens_total{kind="completion"} 3`,
		"distill_generation_tokens_per_second_count 1",
		"distill_queue_depth 0",
		"process_resident_memory_bytes",
		"go_memstats_heap_alloc_bytes",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// OpenAPI: every route, and the method aliases, are described.
	code, _, spec := get(t, ts.URL+"/openapi.json")
	if code != 200 || spec["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %d %v", code, spec["openapi"])
	}
	paths := spec["paths"].(map[string]any)
	for _, r := range s.routes {
		method, path, _ := strings.Cut(r.pattern, " ")
		p, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("openapi.json lacks %s", path)
			continue
		}
		if _, ok := p[strings.ToLower(method)]; !ok {
			t.Errorf("openapi.json lacks %s %s", method, path)
		}
	}
	for _, a := range []string{"base", "sft", "kd", "dpo"} {
		if _, ok := paths["/infer/"+a]; !ok {
			t.Errorf("openapi.json lacks /infer/%s", a)
		}
	}
}

func TestServeInferTasks(t *testing.T) {
	s, ts := newTestServer(t, nil)

	// classify: calibrated probabilities over the labels, summing to 1, the
	// margin between the top two, token counts and latency.
	code, _, body := post(t, ts.URL+"/infer/base", map[string]any{"task": "classify", "input": "Earns 90k; no late payments", "labels": []string{"Good", "Standard", "Bad"}})
	if code != 200 {
		t.Fatalf("classify: %d %v", code, body)
	}
	out := body["output"].(map[string]any)
	probs := out["probabilities"].(map[string]any)
	sum, top, second := 0.0, 0.0, 0.0
	for _, l := range []string{"Good", "Standard", "Bad"} {
		p := probs[l].(float64)
		sum += p
		if p > top {
			top, second = p, top
		} else if p > second {
			second = p
		}
	}
	if math.Abs(sum-1) > 1e-9 || math.Abs(out["margin"].(float64)-(top-second)) > 1e-9 || probs[out["label"].(string)].(float64) != top {
		t.Fatalf("classify output inconsistent: %v", out)
	}
	if body["adapter"] != "base" || body["usage"].(map[string]any)["prompt_tokens"].(float64) <= 0 || body["latency_ms"].(float64) <= 0 {
		t.Fatalf("classify envelope: %v", body)
	}
	if _, ok := out["raw_probabilities"]; !ok {
		t.Fatalf("classify output lacks raw (uncalibrated) probabilities: %v", out)
	}

	// extract: the JSON always satisfies the schema.
	schema := `{"type":"object","properties":{"vendor":{"type":"string","maxLength":12},"total":{"type":"integer","minimum":0},"paid":{"type":"boolean"}},"required":["vendor","total","paid"],"additionalProperties":false}`
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"extract","input":"Invoice 42 from ACME, total 120, paid","schema":`+schema+`,"options":{"max_tokens":60}}`)
	if code != 200 {
		t.Fatalf("extract: %d %v", code, body)
	}
	out = body["output"].(map[string]any)
	doc, _ := json.Marshal(out["json"])
	g, err := s.grammars.get(json.RawMessage(schema), "schema")
	if err != nil {
		t.Fatal(err)
	}
	if out["valid"] != true || g.Validate(doc) != nil {
		t.Fatalf("extract output does not satisfy the schema: %s (%v)", doc, out)
	}
	if u := body["usage"].(map[string]any); u["completion_tokens"].(float64) < 1 || u["completion_tokens"].(float64) > 60 {
		t.Fatalf("extract usage: %v", u)
	}

	// generate: within max_tokens, the text decodes the tokens counted.
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"generate","input":"Once upon a time","options":{"max_tokens":7,"temperature":0}}`)
	if code != 200 {
		t.Fatalf("generate: %d %v", code, body)
	}
	if u := body["usage"].(map[string]any); u["completion_tokens"].(float64) > 7 || u["prompt_tokens"].(float64) != float64(len(s.tok.Encode("Once upon a time", true))) {
		t.Fatalf("generate usage: %v", u)
	}
	if _, ok := body["output"].(map[string]any)["text"].(string); !ok {
		t.Fatalf("generate output: %v", body)
	}

	// codegen (checks off by default over HTTP): code and the raw answer.
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"codegen","input":"add two ints","options":{"max_tokens":8}}`)
	if code != 200 {
		t.Fatalf("codegen: %d %v", code, body)
	}
	out = body["output"].(map[string]any)
	if out["language"] != "go" || out["checks"] == nil {
		t.Fatalf("codegen output: %v", out)
	}
	if u := body["usage"].(map[string]any); u["completion_tokens"].(float64) < 1 {
		t.Fatalf("codegen usage: %v", u)
	}

	// The CLI's language names are the API's too, and the checks run when
	// asked (under the server's bound on concurrent checks).
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"codegen","input":"add two ints","options":{"max_tokens":4,"language":"py","check":true}}`)
	if code != 200 {
		t.Fatalf("codegen in py: %d %v", code, body)
	}
	out = body["output"].(map[string]any)
	if checks, _ := out["checks"].([]any); out["language"] != "python" || len(checks) == 0 {
		t.Fatalf("codegen in py with checks: %v", out)
	}
	code, _, body = post(t, ts.URL+"/infer/base", `{"task":"codegen","input":"x","options":{"language":"cobol"}}`)
	wantError(t, code, body, 422, errUnprocess, "options.language")
}

func TestServeAdapters(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.AdapterCap = 2 })
	req := map[string]any{"task": "classify", "input": "the card was charged twice", "labels": []string{"billing", "tech"}}
	scores := map[string]map[string]any{}
	for _, name := range []string{"base", "sft", "sft-old", "dpo"} {
		code, _, body := post(t, ts.URL+"/infer/"+name, req)
		if code != 200 {
			t.Fatalf("/infer/%s: %d %v", name, code, body)
		}
		scores[name] = body["output"].(map[string]any)["log_likelihoods"].(map[string]any)
		want := map[string]string{"base": "base", "sft": "sft-new", "sft-old": "sft-old", "dpo": "dpo-1"}[name]
		if body["adapter"] != want {
			t.Fatalf("/infer/%s served adapter %v, want %s (the latest of the method)", name, body["adapter"], want)
		}
	}
	// Each adapter changes the scores; the base is unchanged by their use.
	if scores["base"]["billing"] == scores["sft"]["billing"] || scores["sft"]["billing"] == scores["sft-old"]["billing"] {
		t.Fatalf("adapters do not change the scores: %v", scores)
	}
	_, _, again := post(t, ts.URL+"/infer/base", req)
	if again["output"].(map[string]any)["log_likelihoods"].(map[string]any)["billing"] != scores["base"]["billing"] {
		t.Fatal("the base model's scores changed after serving adapters: an adapter leaked into the base")
	}
	// LRU of 2: sft-new, sft-old and dpo-1 were loaded; the oldest went.
	if got := s.adapters.loaded(); len(got) != 2 || !strings.HasSuffix(got[0], "dpo-1") || !strings.HasSuffix(got[1], "sft-old") {
		t.Fatalf("LRU holds %v, want [dpo-1 sft-old]", got)
	}
	// An evicted adapter is retired (a GPU decoder frees its upload); one
	// held is not.
	ctx := context.Background()
	old, err := s.adapters.get(ctx, "sft-old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.adapters.get(ctx, "dpo-1"); err != nil || old.A.Retired() {
		t.Fatalf("sft-old, held, is retired (%v)", err)
	}
	if _, err := s.adapters.get(ctx, "sft"); err != nil || !old.A.Retired() {
		t.Fatalf("sft-old, evicted by sft-new, is not retired (%v); LRU %v", err, s.adapters.loaded())
	}
	// No KD adapter for this base: kd resolves to "alien", trained on a
	// 3-layer base, refused with 409 and a message saying so.
	code, _, body := post(t, ts.URL+"/infer/kd", req)
	wantError(t, code, body, 409, errConflict, "model")
	if msg := body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "trained on") {
		t.Fatalf("409 message does not say why: %s", msg)
	}
	code, _, body = post(t, ts.URL+"/infer/alien-hub", req)
	wantError(t, code, body, 409, errConflict, "model")
	if msg := body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "different base") {
		t.Fatalf("409 message does not say why: %s", msg)
	}
	code, _, body = post(t, ts.URL+"/infer/no-such-adapter", req)
	wantError(t, code, body, 404, errNotFound, "model")

	// Pinned by flag.
	_, ts2 := newTestServer(t, func(c *ServeConfig) { c.Pins = map[string]string{"sft": "sft-old"} })
	code, _, body = post(t, ts2.URL+"/infer/sft", req)
	if code != 200 || body["adapter"] != "sft-old" {
		t.Fatalf("pinned sft: %d %v", code, body)
	}
	// Without a registry, a method alias is a 404 that says how to fix it.
	_, ts3 := newTestServer(t, func(c *ServeConfig) { c.DB = "" })
	code, _, body = post(t, ts3.URL+"/infer/dpo", req)
	wantError(t, code, body, 404, errNotFound, "model")
}

func TestServeErrors(t *testing.T) {
	_, ts := newTestServer(t, func(c *ServeConfig) { c.MaxBody = 64 << 10; c.MaxTokens = 64 })
	long := strings.Repeat("word ", 14000) // 70 kB, over --max-body
	for _, tc := range []struct {
		name, path, body string
		status           int
		typ, param       string
	}{
		{"malformed", "/infer/base", `{"task":`, 400, errInvalid, ""},
		{"not an object", "/infer/base", `[1,2]`, 400, errInvalid, ""},
		{"trailing data", "/infer/base", `{"task":"generate","input":"x"} {}`, 400, errInvalid, ""},
		{"empty body", "/infer/base", ``, 400, errInvalid, ""},
		{"wrong type", "/infer/base", `{"task":"classify","input":"x","labels":"a,b"}`, 400, errInvalid, "labels"},
		{"input not a string", "/infer/base", `{"task":"generate","input":{"a":1}}`, 400, errInvalid, "input"},
		{"unknown field", "/infer/base", `{"task":"generate","input":"x","temprature":1}`, 400, errInvalid, "temprature"},
		{"missing task", "/infer/base", `{"input":"x"}`, 400, errInvalid, "task"},
		{"one label", "/infer/base", `{"task":"classify","input":"x","labels":["a"]}`, 400, errInvalid, "labels"},
		{"extract without schema", "/infer/base", `{"task":"extract","input":"x"}`, 400, errInvalid, "schema"},
		{"max_tokens over the limit", "/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":100000}}`, 400, errInvalid, "options.max_tokens"},
		{"negative top_k", "/infer/base", `{"task":"generate","input":"x","options":{"top_k":-1}}`, 400, errInvalid, "options.top_k"},
		{"min_p over 1", "/infer/base", `{"task":"generate","input":"x","options":{"min_p":2}}`, 400, errInvalid, "options.min_p"},
		{"too many stop strings", "/infer/base", `{"task":"generate","input":"x","options":{"stop":[` + strings.Repeat(`"s",`, maxStops) + `"s"]}}`, 400, errInvalid, "options.stop"},
		{"unknown task", "/infer/base", `{"task":"translate","input":"x"}`, 422, errUnprocess, "task"},
		{"schema does not compile", "/infer/base", `{"task":"extract","input":"x","schema":{"type":"object","patternProperties":{"^a":{}}}}`, 422, errUnprocess, "schema"},
		{"schema of a wrong type", "/infer/base", `{"task":"extract","input":"x","schema":{"type":"frobnicate"}}`, 422, errUnprocess, "schema"},
		{"unknown adapter", "/infer/nope", `{"task":"generate","input":"x"}`, 404, errNotFound, "model"},
		{"body over --max-body", "/infer/base", `{"task":"generate","input":"` + long + `"}`, 413, errTooLarge, ""},
		{"input over the context", "/infer/base", `{"task":"generate","input":"` + strings.Repeat("z ", 4100) + `"}`, 413, errTooLarge, "input"},
		{"too many null inputs", "/infer/base", `{"task":"classify","input":"x","labels":["a","b"],"options":{"null_inputs":[` + strings.Repeat(`"n",`, 16) + `"n"]}}`, 413, errTooLarge, "options.null_inputs"},
		{"too many labels", "/infer/base", `{"task":"classify","input":"x","labels":[` + manyLabels(257) + `]}`, 413, errTooLarge, "labels"},
		{"control character in a label", "/infer/base", `{"task":"classify","input":"x","labels":["a\u0001b","c"]}`, 400, errInvalid, "labels"},
		{"label over the context", "/infer/base", `{"task":"classify","input":"x","labels":["` + strings.TrimSpace(strings.Repeat("z ", 4100)) + `","b"]}`, 413, errTooLarge, "input"},
		{"chat: no messages", "/v1/chat/completions", `{"model":"base","messages":[]}`, 400, errInvalid, "messages"},
		{"chat: bad role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, errInvalid, "messages[0].role"},
		{"chat: unknown model", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, errNotFound, "model"},
		{"chat: bad schema", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"$ref":"#/nowhere"}}}}}}`, 422, errUnprocess, "response_format.json_schema.schema"},
		{"chat: n=2", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"n":2}`, 400, errInvalid, "n"},
		{"chat: tools", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, errInvalid, "tools"},
		{"chat: logprobs", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"logprobs":true}`, 400, errInvalid, "logprobs"},
		{"chat: bad response_format", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, 400, errInvalid, "response_format.type"},
		{"chat: temperature 3", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"temperature":3}`, 400, errInvalid, "temperature"},
		{"chat: image part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, errInvalid, "messages"},
		{"chat: wrong type", "/v1/chat/completions", `{"messages":"hello"}`, 400, errInvalid, "messages"},
		{"completions: no prompt", "/v1/completions", `{"model":"base"}`, 400, errInvalid, "prompt"},
		{"completions: max_tokens 0", "/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, errInvalid, "max_tokens"},
		{"unknown path", "/v2/nothing", `{}`, 404, errNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := post(t, ts.URL+tc.path, tc.body)
			wantError(t, code, body, tc.status, tc.typ, tc.param)
		})
	}
	code, h, body := get(t, ts.URL+"/infer/base")
	wantError(t, code, body, 405, errInvalid, "")
	if h.Get("Allow") != "POST" {
		t.Fatalf("405 Allow %q", h.Get("Allow"))
	}
}

func TestServeAuth(t *testing.T) {
	_, ts := newTestServer(t, func(c *ServeConfig) { c.APIKey = "s3cret" })
	code, h, body := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":1}}`)
	wantError(t, code, body, 401, errAuth, "")
	if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: %v", h)
	}
	for _, key := range []string{"Bearer wrong", "s3cret", "Bearer s3cretX"} {
		req, _ := http.NewRequest("GET", ts.URL+"/v1/models", nil)
		req.Header.Set("Authorization", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("Authorization %q: %d", key, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := decodeResponse(t, resp); code != 200 || len(body["data"].([]any)) < 4 {
		t.Fatalf("models with the key: %d %v", code, body)
	}
	// The probes stay open for orchestrators.
	if code, _, _ := get(t, ts.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz behind auth: %d", code)
	}
	if !isLoopback("127.0.0.1:8080") || !isLoopback("[::1]:80") || !isLoopback("localhost:1") || isLoopback("0.0.0.0:8080") || isLoopback(":8080") {
		t.Fatal("isLoopback")
	}
}

func TestRecoverMiddleware(t *testing.T) {
	h := recoverMiddleware(NewServer(ServeConfig{}).log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]int
		m["x"] = 1 // panics
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	wantError(t, rec.Code, body, 500, errServer, "")
}

func TestServeCommandFlags(t *testing.T) {
	if code, _, stderr := run("serve"); code != 1 || !strings.Contains(stderr, "--model is required") {
		t.Fatalf("serve without --model: %d %q", code, stderr)
	}
	if code, _, stderr := run("serve", "--model", "x", "--cpu-offload", "-1"); code != 1 || !strings.Contains(stderr, "--cpu-offload") {
		t.Fatalf("serve --cpu-offload -1: %d %q", code, stderr)
	}
	for _, v := range []string{"lots", "0", "-1GB"} {
		if code, _, stderr := run("serve", "--model", "x", "--kv-memory", v); code != 1 || !strings.Contains(stderr, "--kv-memory") {
			t.Fatalf("serve --kv-memory %s: %d %q", v, code, stderr)
		}
	}
	code, _, stderr := run("serve", "-h")
	if code != 0 {
		t.Fatalf("serve -h: %d", code)
	}
	for _, flag := range []string{"-addr", "-api-key", "-cpu-offload", "-queue", "-max-batch", "-timeout", "-max-body", "-max-tokens", "-kv-memory", "-adapters", "-sft", "-kd", "-dpo", "-db"} {
		if !strings.Contains(stderr, flag) {
			t.Errorf("serve -h does not document %s", flag)
		}
	}
	if !strings.Contains(stderr, "GPU backend") {
		t.Error("serve -h does not say --cpu-offload is for a GPU backend")
	}
	// A folder that is no model is refused before binding (a model folder
	// that does not load fails the command after binding:
	// TestServeModelLoadFails).
	if code, _, stderr := run("serve", "--model", t.TempDir(), "--addr", "127.0.0.1:0", "--db", ""); code != 1 || !strings.Contains(stderr, "has no config.json: not a model folder") {
		t.Fatalf("serve of an empty folder: %d %q", code, stderr)
	}
}

func manyLabels(n int) string {
	ls := make([]string, n)
	for i := range ls {
		ls[i] = fmt.Sprintf("%q", fmt.Sprint("l", i))
	}
	return strings.Join(ls, ",")
}

// A value JSON cannot hold (NaN) is a 500 with a JSON error, never a 200
// with an empty body.
func TestWriteJSONRefusesNaN(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSONStatus(rec, http.StatusOK, map[string]float64{"p": math.NaN()})
	var body map[string]map[string]any
	if rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"]["type"] != errServer {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body.String())
	}
}

// --cpu-offload N on a GPU backend runs the first N layers on the CPU's
// f32 backend (model.CPULayers; core/model's tests check what that does);
// N at least the model's depth runs everything on the CPU backend as
// --device cpu would (CPULayers 0, so --cpu-bf16 holds for every layer);
// the CPU backend ignores it. "fakegpu" is the test backend that
// gpufit_test.go registers.
func TestServeCPUOffload(t *testing.T) {
	for _, c := range []struct {
		device  string
		offload int
		want    int
	}{
		{"fakegpu", 1, 1},
		{"fakegpu", 1000, 0},
		{"fakegpu", model.AutoCPULayers, 0}, // no device-resident pass for it: op by op
		{"cpu", 1, 0},
	} {
		s, ts := newTestServer(t, func(cfg *ServeConfig) { cfg.Device, cfg.CPUOffload = c.device, c.offload })
		if s.m.CPULayers != c.want {
			t.Errorf("%s --cpu-offload %d: %d layers on the CPU's f32 backend, want %d", c.device, c.offload, s.m.CPULayers, c.want)
		}
		code, _, body := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"hi","options":{"max_tokens":2}}`)
		if code != 200 {
			t.Errorf("%s --cpu-offload %d: generate %d %v", c.device, c.offload, code, body)
		}
	}
}

// A model whose config turns on a sliding window (Mistral's, which the
// engine refuses to attend past) admits only requests that fit it, so no
// sequence fails mid-decode and takes its batch with it.
func TestServeRefusesPastTheSlidingWindow(t *testing.T) {
	s, ts := newTestServer(t, nil)
	s.m.Config.Window = 24
	code, _, body := post(t, ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":30}}`)
	wantError(t, code, body, 413, errTooLarge, "input")
	if msg := body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "context of 24 tokens") {
		t.Errorf("413 message does not give the window: %s", msg)
	}
	if code, _, body = post(t, ts.URL+"/infer/base", `{"task":"generate","input":"x","options":{"max_tokens":3}}`); code != 200 {
		t.Errorf("a request within the window: %d %v", code, body)
	}
}
