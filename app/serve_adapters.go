package app

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"distill/core/lora"
	"distill/core/model"
	"distill/store"
)

// methodAliases are the endpoint names that mean "the latest (or pinned)
// adapter trained with this method".
var methodAliases = []string{store.MethodSFT, store.MethodKD, store.MethodDPO}

// baseName is the name of the base model in /infer/{name} and `model`.
const baseName = "base"

// servedAdapter is an adapter loaded over the server's base model.
type servedAdapter struct {
	Name, Path, Method string
	A                  *lora.Adapter
}

// adapterCache resolves adapter names through the registry and keeps the
// most recently used adapters in memory (an LRU of at most cap). Adapters
// are unmerged LoRA deltas, so swapping one in never touches the base
// weights: the worker sets model.Delta per job.
type adapterCache struct {
	mu     sync.Mutex
	cap    int
	order  *list.List // of *servedAdapter, most recent first
	byPath map[string]*list.Element
	m      *model.Model
	reg    store.AdapterStore // nil: no registry
	pins   map[string]string  // method → adapter name
	met    *serveMetrics
}

func newAdapterCache(m *model.Model, reg store.AdapterStore, pins map[string]string, capacity int, met *serveMetrics) *adapterCache {
	return &adapterCache{cap: max(1, capacity), order: list.New(), byPath: map[string]*list.Element{}, m: m, reg: reg, pins: pins, met: met}
}

// lookup finds the registry entry a name means: an adapter's own name, or a
// method alias (sft, kd, dpo) meaning the pinned or the latest adapter of
// that method. The error is a 404 apiError that says what to do.
func (c *adapterCache) lookup(ctx context.Context, name string) (store.Adapter, error) {
	method := ""
	for _, m := range methodAliases {
		if name == m {
			method = m
		}
	}
	if pin := c.pins[method]; method != "" && pin != "" {
		name, method = pin, ""
	}
	if c.reg == nil {
		if method != "" {
			return store.Adapter{}, errorf(http.StatusNotFound, errNotFound, "model", "no %s adapter: the server runs without an adapter registry (start it with --db, or pin one with --%s)", method, method).withCode(codeModelNotFound)
		}
		return store.Adapter{}, errorf(http.StatusNotFound, errNotFound, "model", "adapter %q not found: the server runs without an adapter registry (--db)", name).withCode(codeModelNotFound)
	}
	var a store.Adapter
	var err error
	if method != "" {
		a, err = c.reg.LatestAdapter(ctx, method)
	} else {
		a, err = c.reg.Adapter(ctx, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		if method != "" {
			return a, errorf(http.StatusNotFound, errNotFound, "model", "no %s adapter is registered: train one (distill train %s) or pin one with --%s NAME", method, method, method).withCode(codeModelNotFound)
		}
		return a, errorf(http.StatusNotFound, errNotFound, "model", "adapter %q is not registered (GET /v1/models lists the names served)", name).withCode(codeModelNotFound)
	}
	return a, err
}

// get returns the adapter a name means, loading it on first use; nil for
// the base model.
func (c *adapterCache) get(ctx context.Context, name string) (*servedAdapter, error) {
	if name == "" || name == baseName || name == filepath.Base(c.m.Dir) {
		return nil, nil
	}
	reg, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byPath[reg.Path]; ok {
		c.order.MoveToFront(e)
		sa := e.Value.(*servedAdapter)
		return &servedAdapter{Name: reg.Name, Path: sa.Path, Method: reg.Method, A: sa.A}, nil
	}
	if err := checkBase(reg, c.m.Dir); err != nil {
		return nil, err
	}
	a, err := lora.Load(reg.Path, c.m)
	if err != nil {
		if strings.Contains(err.Error(), "different base") {
			return nil, errorf(http.StatusConflict, errConflict, "model", "adapter %q cannot run on this server's base model: %s", reg.Name, oneLine(err.Error()))
		}
		return nil, errorf(http.StatusInternalServerError, errServer, "model", "adapter %q (%s) does not load: %s", reg.Name, reg.Path, oneLine(err.Error()))
	}
	c.met.adapterLoad.Inc()
	sa := &servedAdapter{Name: reg.Name, Path: reg.Path, Method: reg.Method, A: a}
	c.byPath[reg.Path] = c.order.PushFront(sa)
	for c.order.Len() > c.cap {
		old := c.order.Remove(c.order.Back()).(*servedAdapter)
		delete(c.byPath, old.Path)
		old.A.Retire() // a device decoder frees its upload (requests still running on it keep theirs)
	}
	c.met.adapters.Set(float64(c.order.Len()))
	return sa, nil
}

// loaded lists the paths held, most recent first (tests).
func (c *adapterCache) loaded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for e := c.order.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*servedAdapter).Path)
	}
	return out
}

// checkBase refuses an adapter whose recorded base model (the registry's
// base_model, else the adapter config's base_model_name_or_path) is a local
// folder with a config.json other than the served base's. A hub id cannot
// be checked here; lora.Load still checks every tensor's shape.
func checkBase(reg store.Adapter, dir string) error {
	recorded := reg.BaseModel
	if recorded == "" {
		if cfg, err := lora.LoadConfig(reg.Path); err == nil {
			recorded = lora.BasePath(reg.Path, cfg)
		}
	}
	if recorded == "" {
		return nil
	}
	theirs, err := os.ReadFile(filepath.Join(recorded, "config.json"))
	if err != nil {
		return nil // not a local folder: nothing to compare
	}
	ours, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || bytes.Equal(bytes.TrimSpace(theirs), bytes.TrimSpace(ours)) {
		return nil
	}
	return errorf(http.StatusConflict, errConflict, "model",
		"adapter %q was trained on base model %s, whose config.json differs from the served base %s: serve it with `distill serve --model %s`",
		reg.Name, recorded, dir, recorded)
}
