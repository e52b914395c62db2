package model_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/model"
)

// A header whose shape's element count wraps around int64 to the bytes its
// data_offsets span is refused, naming the tensor; it used to load, and
// reading the tensor panicked.
func TestSafetensorsShapeOverflowIsRefused(t *testing.T) {
	header := `{"w":{"dtype":"F32","shape":[4611686018427387906],"data_offsets":[0,8]}}`
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(append(b, header...), make([]byte, 8)...)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := model.OpenSafetensors(path)
	if err == nil {
		f.Close()
		t.Fatal("opened a header whose shape overflows")
	}
	if !strings.Contains(err.Error(), `tensor "w"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should name the file and the tensor", err)
	}
}
