package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/store"
)

// The serve tests share one tiny checkpoint (the demo shape: Qwen3, 2
// layers, hidden 64, the real Qwen3 tokenizer and chat template) and a
// registry with three adapters for it and one for another base.
var (
	serveOnce    sync.Once
	serveFixture struct {
		model, db string
		err       error
	}
)

// serveModel returns the shared model folder and registry database.
func serveModel(t testing.TB) (dir, db string) {
	t.Helper()
	serveOnce.Do(func() {
		root, err := os.MkdirTemp("", "distill-serve-test-")
		if err != nil {
			serveFixture.err = err
			return
		}
		serveFixture.err = writeServeFixture(root)
		serveFixture.model = filepath.Join(root, "base")
		serveFixture.db = filepath.Join(root, "runs.db")
	})
	if serveFixture.err != nil {
		t.Fatalf("serve fixture: %v (run `make tools` for the tokenizers)", serveFixture.err)
	}
	return serveFixture.model, serveFixture.db
}

func writeServeFixture(root string) error {
	base := filepath.Join(root, "base")
	var out, errb bytes.Buffer
	if code := Main([]string{"demo-model", "--out", base, "--tokenizer", filepath.Join(npmModels, "tokenizer-qwen3", "models")}, &out, &errb); code != 0 {
		return errFixture(errb.String())
	}
	m, err := model.Load(base)
	if err != nil {
		return err
	}
	defer m.Close()
	db, err := store.Open(filepath.Join(root, "runs.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	// Three adapters over the base with random (non-zero) B, so each
	// changes the model's scores; registered oldest first.
	for i, reg := range []struct{ name, method string }{{"sft-old", store.MethodSFT}, {"sft-new", store.MethodSFT}, {"dpo-1", store.MethodDPO}} {
		path := filepath.Join(root, reg.name)
		if err := writeAdapter(m, path, uint64(i+1)); err != nil {
			return err
		}
		if err := db.RegisterAdapter(ctx, store.Adapter{Name: reg.name, Path: path, Method: reg.method, BaseModel: base}); err != nil {
			return err
		}
	}
	// An adapter trained on another base (3 layers, not 2).
	other := filepath.Join(root, "other-base")
	s := model.Shapes["demo"]
	s.Layers = 3
	if err := model.WriteRandom(other, s, tensor.BF16, 5); err != nil {
		return err
	}
	om, err := model.Load(other)
	if err != nil {
		return err
	}
	defer om.Close()
	alien := filepath.Join(root, "alien")
	if err := writeAdapter(om, alien, 9); err != nil {
		return err
	}
	// Its config records its base folder; registered again with a hub id
	// as its base, so only the tensors' shapes can refuse it.
	if err := db.RegisterAdapter(ctx, store.Adapter{Name: "alien", Path: alien, Method: store.MethodKD}); err != nil {
		return err
	}
	return db.RegisterAdapter(ctx, store.Adapter{Name: "alien-hub", Path: alien, BaseModel: "someone/other-model"})
}

type errFixture string

func (e errFixture) Error() string { return string(e) }

func writeAdapter(m *model.Model, dir string, seed uint64) error {
	a, err := lora.NewFor(m, lora.Config{R: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "down_proj"}})
	if err != nil {
		return err
	}
	lora.Init(a, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, l := range a.Layers {
		for _, p := range l {
			if p != nil {
				for i := range p.B {
					p.B[i] = float32(rng.NormFloat64()) * 0.5
				}
			}
		}
	}
	return lora.Save(dir, a)
}

// newTestServer loads a server over the shared model; edit adjusts its
// config. It is closed when the test ends.
func newTestServer(t *testing.T, edit func(*ServeConfig)) (*Server, *httptest.Server) {
	t.Helper()
	dir, db := serveModel(t)
	cfg := ServeConfig{Model: dir, DB: db}
	if edit != nil {
		edit(&cfg)
	}
	s := NewServer(cfg)
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// post sends a JSON body (a string is sent as is) and decodes the answer.
func post(t *testing.T, url string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return decodeResponse(t, resp)
}

func get(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return decodeResponse(t, resp)
}

func decodeResponse(t *testing.T, resp *http.Response) (int, http.Header, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v: %q", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, resp.Header, out
}

// wantError checks an error answer: the status, and the JSON error shape
// with a message, a type and (when given) the param.
func wantError(t *testing.T, status int, body map[string]any, wantStatus int, wantType, wantParam string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %v", status, wantStatus, body)
	}
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %v", body)
	}
	for _, k := range []string{"message", "type", "param"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error has no %q: %v", k, e)
		}
	}
	if msg, _ := e["message"].(string); len(msg) < 10 {
		t.Fatalf("error message %q says too little", msg)
	}
	if e["type"] != wantType {
		t.Fatalf("error type %v, want %s: %v", e["type"], wantType, e)
	}
	if wantParam != "" && e["param"] != wantParam {
		t.Fatalf("error param %v, want %s: %v", e["param"], wantParam, e)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if serveFixture.model != "" {
		os.RemoveAll(filepath.Dir(serveFixture.model))
	}
	os.Exit(code)
}
