package app

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"distill/core/data"
)

// heldOutFile is where a run keeps the rows it held out for validation,
// as lines copied from its training file.
const heldOutFile = "val.jsonl"

// saveHeldOut copies the source lines of rows (JSONL only: a CSV record may
// span lines) from src into dst, atomically.
func saveHeldOut(src string, rows []data.Row, dst string) error {
	if ext := strings.ToLower(filepath.Ext(src)); ext != ".jsonl" && ext != ".json" {
		return fmt.Errorf("%s: only JSONL rows are copied", src)
	}
	want := make(map[int]bool, len(rows))
	for _, r := range rows {
		want[r.Line] = true
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var out bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for line := 1; sc.Scan(); line++ {
		if want[line] {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
			delete(want, line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if len(want) > 0 {
		return fmt.Errorf("%s changed while training: %d held-out lines are gone", src, len(want))
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
