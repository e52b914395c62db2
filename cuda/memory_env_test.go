//go:build cuda

package cuda

import "testing"

// DISTILL_CUDA_MEMORY's values: bytes, binary and decimal units; anything
// else is refused rather than read as no limit.
func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"6GiB": 6 << 30, "6000MB": 6e9, "512 MiB": 512 << 20, "1048576": 1 << 20, "7KB": 7000} {
		if got, err := parseMemory(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "six GB", "-1GB", "1.5GB", "6TB", "0", "99999999999GiB"} {
		if got, err := parseMemory(in); err == nil {
			t.Errorf("%q: read as %d", in, got)
		}
	}
}
