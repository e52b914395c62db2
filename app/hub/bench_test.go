package hub_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"distill/app/hub"
	"distill/app/hub/hubtest"
)

// BenchmarkPull pulls a 512 MB LFS file over loopback: what the client
// costs (its hash check, the write, the fsync) when the network is not the
// limit. Compare with the disk's own write rate.
func BenchmarkPull(b *testing.B) {
	const size = 512 << 20
	files := map[string][]byte{"config.json": []byte(`{}`), "model.safetensors": randomBytes(size, 9)}
	h := hubtest.New("acme/big", "0123456789abcdef0123456789abcdef01234567", files, map[string]bool{"model.safetensors": true})
	defer h.Close()
	c := hub.NewClient(h.API.URL, "")
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		out := filepath.Join(b.TempDir(), "m")
		if _, err := c.Pull(context.Background(), hub.PullOptions{Repo: "acme/big", Revision: "main", Out: out}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}
