package hub

import (
	"net/http"
	"strings"
	"testing"
)

// The token stays home: dropped on a redirect to another host, another
// port or from https to http on the same host; kept on the same origin.
func TestKeepTokenHome(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		kept     bool
	}{
		{"https://hub.example/a", "https://hub.example/b", true},
		{"https://hub.example/a", "https://cdn.example/b", false},
		{"https://hub.example/a", "https://cdn.hub.example/b", false},
		{"https://hub.example/a", "http://hub.example/b", false},
		{"https://hub.example/a", "https://hub.example:8443/b", false},
	} {
		via, _ := http.NewRequest("GET", tc.from, nil)
		req, _ := http.NewRequest("GET", tc.to, nil)
		req.Header.Set("Authorization", "Bearer hf_x")
		if err := keepTokenHome(req, []*http.Request{via}); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization") != ""; got != tc.kept {
			t.Errorf("%s → %s: token kept %v", tc.from, tc.to, got)
		}
	}
}

// A pull the disk cannot hold is refused before it starts.
func TestCheckSpace(t *testing.T) {
	if err := checkSpace(t.TempDir(), 1<<62); err == nil || !strings.Contains(err.Error(), "GB free") {
		t.Errorf("4 EB: %v", err)
	}
	if err := checkSpace(t.TempDir(), 1<<20); err != nil {
		t.Errorf("1 MB: %v", err)
	}
}
