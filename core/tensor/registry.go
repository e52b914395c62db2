package tensor

import (
	"sort"
	"sync"
)

// Registry holds constructors by device name, registered from init() by
// the packages a build includes (the cuda build adds "cuda"): backends
// here, device-resident forward passes in core/model, training steps in
// core/train. A later registration under a name replaces the earlier.
type Registry[F any] struct {
	mu sync.Mutex
	m  map[string]F
}

// Register makes f available under name.
func (r *Registry[F]) Register(name string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]F{}
	}
	r.m[name] = f
}

// Lookup returns name's constructor, whether there is one, and the names
// registered (sorted), for an error that says what the build has.
func (r *Registry[F]) Lookup(name string) (f F, ok bool, names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok = r.m[name]
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return f, ok, names
}
