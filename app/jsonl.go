package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// jsonlField reads one optional string field of every line of a JSONL
// file, by line number (lines without it are absent from the map).
func jsonlField(path, field string) (map[int]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var row map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &row) != nil {
			continue // the data loader reports bad lines
		}
		if raw, ok := row[field]; ok {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("%s:%d: field %q must be a string", path, line, field)
			}
			out[line] = s
		}
	}
	return out, sc.Err()
}
