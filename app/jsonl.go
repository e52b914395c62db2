package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"unicode/utf8"
)

// jsonlObject is one line of a JSONL file: its 1-based line and fields.
type jsonlObject struct {
	Line   int
	Fields map[string]json.RawMessage
}

// readJSONLObjects reads a JSONL file of objects: a byte-order mark before
// the first line and blank lines are skipped; a line that is not a JSON
// object is an error naming it.
func readJSONLObjects(path string) ([]jsonlObject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []jsonlObject
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("%s:%d: the line is not UTF-8 text", path, line)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("%s:%d: want one JSON object per line: %v", path, line, err)
		}
		out = append(out, jsonlObject{line, fields})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// str reads field as a string: "" where absent or null, an error naming
// the line where it is another JSON type.
func (o jsonlObject) str(path, field string) (string, error) {
	raw, ok := o.Fields[field]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s:%d: field %q must be a string", path, o.Line, field)
	}
	return s, nil
}
