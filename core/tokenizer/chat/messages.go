package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// ReadMessages reads a conversation from a JSON file: either a list of
// messages [{"role": ..., "content": ...}, ...] or an object whose
// "messages" field is that list (other fields of the object are ignored).
// Every message needs a non-empty string role and a string content; other
// message fields are rejected rather than dropped, since a template might
// have rendered them. Errors name the file and the message index and field.
func ReadMessages(path string) ([]Message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	msgs, err := parseMessages(data)
	if err != nil {
		return nil, fmt.Errorf("read messages: %s: %w", path, err)
	}
	return msgs, nil
}

// parseMessages decodes the JSON that ReadMessages reads.
func parseMessages(data []byte) ([]Message, error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v) // for the syntax error's offset
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	list := json.RawMessage(bytes.TrimSpace(data))
	if len(list) > 0 && list[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(list, &obj); err != nil {
			return nil, err
		}
		var ok bool
		if list, ok = obj["messages"]; !ok {
			return nil, fmt.Errorf("object has no \"messages\" field; want a list of messages or {\"messages\": [...]}")
		}
		if len(bytes.TrimSpace(list)) == 0 || bytes.TrimSpace(list)[0] != '[' {
			return nil, fmt.Errorf("messages: want a list, got %s", jsonKind(list))
		}
	} else if len(list) == 0 || list[0] != '[' {
		return nil, fmt.Errorf("want a list of messages or {\"messages\": [...]}, got %s", jsonKind(list))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("messages: the list is empty")
	}
	msgs := make([]Message, len(items))
	for i, item := range items {
		m, err := parseMessage(item)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]%w", i, err)
		}
		msgs[i] = m
	}
	return msgs, nil
}

// fieldError is an error about one field of a message; it prints as
// ".field: reason" to follow "messages[i]".
type fieldError struct {
	field, reason string
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return ": " + e.reason
	}
	return "." + e.field + ": " + e.reason
}

func parseMessage(raw json.RawMessage) (Message, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Message{}, &fieldError{"", "want an object {\"role\", \"content\"}, got " + jsonKind(raw)}
	}
	var m Message
	for _, f := range []struct {
		name string
		dst  *string
	}{{"role", &m.Role}, {"content", &m.Content}} {
		v, ok := fields[f.name]
		if !ok {
			return Message{}, &fieldError{f.name, "missing"}
		}
		if err := json.Unmarshal(v, f.dst); err != nil || isNull(v) {
			return Message{}, &fieldError{f.name, "want a string, got " + jsonKind(v)}
		}
		delete(fields, f.name)
	}
	if m.Role == "" {
		return Message{}, &fieldError{"role", "empty"}
	}
	if len(fields) > 0 {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		return Message{}, &fieldError{names[0], fmt.Sprintf("not supported: a message has only \"role\" and \"content\" (unsupported: %s)", strings.Join(names, ", "))}
	}
	return m, nil
}
