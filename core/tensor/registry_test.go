package tensor

import (
	"slices"
	"testing"
)

// A registry finds what was registered, names what it has (sorted) when
// asked for what it has not, and a later registration replaces an earlier.
func TestRegistry(t *testing.T) {
	var r Registry[int]
	if _, ok, names := r.Lookup("x"); ok || len(names) != 0 {
		t.Fatalf("empty registry: ok %v, names %v", ok, names)
	}
	r.Register("b", 1)
	r.Register("a", 2)
	r.Register("b", 3)
	if f, ok, _ := r.Lookup("b"); !ok || f != 3 {
		t.Errorf("b = %d, %v; want the later 3", f, ok)
	}
	if _, ok, names := r.Lookup("c"); ok || !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("c: ok %v, names %v", ok, names)
	}
}
