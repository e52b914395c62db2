package chat

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadMessages(t *testing.T) {
	want := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi \"there\"\n"}}
	for _, text := range []string{
		`[{"role": "system", "content": "Be brief."}, {"content": "Hi \"there\"\n", "role": "user"}]`,
		` {"id": 7, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \"there\"\n"}]}`,
	} {
		path := filepath.Join(t.TempDir(), "conv.json")
		writeFile(t, path, text)
		got, err := ReadMessages(path)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", text, got, want)
		}
	}
}

func TestReadMessagesErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"invalid JSON", `[{"role": "user",}]`, "not valid JSON"},
		{"a string", `"hello"`, "want a list of messages or {\"messages\": [...]}, got a string"},
		{"object without messages", `{"conversation": []}`, `object has no "messages" field`},
		{"messages not a list", `{"messages": {"role": "user"}}`, "messages: want a list, got an object"},
		{"empty", `[]`, "messages: the list is empty"},
		{"item not an object", `[{"role": "user", "content": "a"}, "b"]`, "messages[1]: want an object"},
		{"missing role", `[{"content": "a"}]`, "messages[0].role: missing"},
		{"missing content", `[{"role": "user"}, {"role": "user"}]`, "messages[0].content: missing"},
		{"role not a string", `[{"role": "user", "content": "a"}, {"role": 1, "content": "b"}]`, "messages[1].role: want a string, got a number"},
		{"empty role", `[{"role": "", "content": "a"}]`, "messages[0].role: empty"},
		{"content null", `[{"role": "assistant", "content": null}]`, "messages[0].content: want a string, got null"},
		{"content list", `[{"role": "user", "content": [{"type": "text", "text": "a"}]}]`, "messages[0].content: want a string, got a list"},
		{"unknown fields", `[{"role": "assistant", "content": "", "tool_calls": [], "name": "x"}]`, `messages[0].name: not supported: a message has only "role" and "content" (unsupported: name, tool_calls)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "conv.json")
			writeFile(t, path, tc.text)
			_, err := ReadMessages(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q\nwant the file name and %q", err, tc.want)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "nope.json")
	if _, err := ReadMessages(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v", err)
	}
}
