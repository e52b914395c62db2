package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"distill/core/tokenizer/chat"
)

// skip is an expected bad row: its line, field, and a piece of its message.
type skip struct {
	line  int
	field string
	msg   string
}

func TestLoadFormats(t *testing.T) {
	tests := []struct {
		path    string
		opt     Options
		format  string
		lines   []int // lines of the rows kept
		skipped []skip
	}{
		{"testdata/pc.jsonl", Options{}, FormatPromptCompletion, []int{1, 3, 9}, []skip{
			{4, "", "not valid JSON at column"},
			{5, "completion", "missing"},
			{6, "completion", "want a string, got a number"},
			{7, "", "want a JSON object, got an array"},
			{8, "prompt", "the key appears twice"},
		}},
		{"testdata/messages.jsonl", Options{}, FormatMessages, []int{1, 2}, []skip{
			{3, "messages[1].role", `unknown role "bot"`},
			{4, "messages", "no assistant message"},
			{5, "messages[1].content", "empty"},
			{6, "messages", "want a list of messages, got a string"},
			{7, "messages[0].name", "not supported"},
		}},
		{"testdata/text_cls.jsonl", Options{}, FormatClassification, []int{1, 2, 3, 4, 6}, []skip{
			{5, "label", "missing"},
			{7, "label", "got null"},
			{8, "extra", "unexpected key: the first row's features are [text]"},
		}},
		{"testdata/features_cls.jsonl", Options{}, FormatClassification, []int{1, 2, 4}, []skip{
			{3, "species_hint", "missing"},
		}},
		{"testdata/cls.csv", Options{}, FormatClassification, []int{2, 3, 4, 8, 10}, []skip{
			{6, "", "3 fields, but the header has 2 columns"},
			{7, "label", "empty"},
			{9, "", `bare " in non-quoted-field (at column 5)`},
		}},
		{"testdata/tickets.csv", Options{LabelColumn: "category"}, FormatClassification, []int{2, 3}, nil},
		{"testdata/idp.jsonl", Options{SchemaPath: "testdata/schema.json"}, FormatIDP, []int{1, 4}, []skip{
			{2, "target", "does not match the schema testdata/schema.json: at /total: got string, want number"},
			{3, "target", "want a JSON object, got a string"},
		}},
		{"testdata/idp.jsonl", Options{}, FormatIDP, []int{1, 2, 4}, []skip{
			{3, "target", "want a JSON object, got a string"},
		}},
		{"testdata/pref.jsonl", Options{}, FormatPreference, []int{1, 2}, []skip{
			{3, "rejected", "the same as chosen"},
			{4, "rejected", "missing"},
			{5, "prompt", "want a string or a list of messages, got a number"},
		}},
		// A declared format settles keys that fit two formats.
		{"testdata/ambiguous.jsonl", Options{Format: FormatPromptCompletion}, FormatPromptCompletion, []int{1}, nil},
		{"testdata/ambiguous.jsonl", Options{Format: FormatClassification}, FormatClassification, []int{1}, nil},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path)+"/"+tt.format, func(t *testing.T) {
			d, err := Load(tt.path, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if d.Format != tt.format {
				t.Errorf("format %q, want %q", d.Format, tt.format)
			}
			var lines []int
			for _, r := range d.Rows {
				lines = append(lines, r.Line)
			}
			if !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("rows at lines %v, want %v", lines, tt.lines)
			}
			checkSkips(t, d, tt.skipped)
		})
	}
}

// checkSkips compares d's skipped rows with want: line, field, message.
func checkSkips(t *testing.T, d *Dataset, want []skip) {
	t.Helper()
	if len(d.Skipped) != len(want) {
		t.Fatalf("%d skipped rows, want %d:\n%s", len(d.Skipped), len(want), d.Summary())
	}
	for i, w := range want {
		got := d.Skipped[i]
		if got.Path != d.Path || got.Line != w.line || got.Field != w.field || !strings.Contains(got.Msg, w.msg) {
			t.Errorf("skipped[%d] = %v\nwant line %d, field %q, message with %q", i, &got, w.line, w.field, w.msg)
		}
		prefix := d.Path + ":" + strconv.Itoa(w.line) + ": "
		if !strings.HasPrefix(got.Error(), prefix) || (w.field != "" && !strings.HasSuffix(got.Error(), "(field "+w.field+")")) {
			t.Errorf("skipped[%d].Error() = %q: want %q... (field %s)", i, got.Error(), prefix, w.field)
		}
	}
}

func TestRowContents(t *testing.T) {
	d := mustLoad(t, "testdata/messages.jsonl", Options{})
	want := []chat.Message{{Role: "system", Content: "You are terse."}, {Role: "user", Content: "Capital of France?"}, {Role: "assistant", Content: "Paris."}}
	if !reflect.DeepEqual(d.Rows[0].Messages, want) {
		t.Errorf("messages %+v, want %+v", d.Rows[0].Messages, want)
	}

	d = mustLoad(t, "testdata/features_cls.jsonl", Options{})
	if want := []string{"sepal_length", "sepal_width", "species_hint"}; !reflect.DeepEqual(d.FeatureOrder, want) {
		t.Errorf("FeatureOrder %v, want %v", d.FeatureOrder, want)
	}
	// Non-string values keep their JSON text; null is empty; labels may be numbers.
	r := d.Rows[2]
	if want := map[string]string{"sepal_length": "6.1", "sepal_width": "2.9", "species_hint": "true"}; !reflect.DeepEqual(r.Features, want) || r.Label != "3" {
		t.Errorf("row at line 4: features %v label %q", r.Features, r.Label)
	}
	if got := d.Rows[1].Features["species_hint"]; got != "" {
		t.Errorf("null feature = %q, want empty", got)
	}
	if got, want := d.Labels(), []string{"3", "setosa", "versicolor"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Labels() = %v, want %v", got, want)
	}

	d = mustLoad(t, "testdata/cls.csv", Options{})
	if d.FeatureOrder != nil {
		t.Errorf("text CSV has FeatureOrder %v", d.FeatureOrder)
	}
	var texts []string
	for _, r := range d.Rows {
		texts = append(texts, r.Text+"="+r.Label)
	}
	if want := []string{"Hello, world=greeting", `She said "hi"=greeting`, "multi\nline text=other", "plain text=other", "last one=greeting"}; !reflect.DeepEqual(texts, want) {
		t.Errorf("CSV rows %q, want %q", texts, want)
	}

	d = mustLoad(t, "testdata/tickets.csv", Options{LabelColumn: "category"})
	if want := []string{"priority", "subject"}; !reflect.DeepEqual(d.FeatureOrder, want) {
		t.Errorf("FeatureOrder %v, want %v", d.FeatureOrder, want)
	}
	if r := d.Rows[0]; r.Features["subject"] != "Server down, urgent" || r.Label != "ops" {
		t.Errorf("tickets row 1: %+v", r)
	}

	d = mustLoad(t, "testdata/pref.jsonl", Options{})
	if r := d.Rows[1]; r.Prompt != "" || len(r.PromptMessages) != 2 || r.Chosen != "Cold" || r.Rejected != "Warm" {
		t.Errorf("preference row with messages: %+v", r)
	}
}

func TestIDPTargets(t *testing.T) {
	d := mustLoad(t, "testdata/idp.jsonl", Options{SchemaPath: "testdata/schema.json"})
	// Keys in the schema's property order (through $ref and items), keys the
	// schema lacks after them; no HTML escaping; numbers as written.
	want := []string{
		`{"invoice_number":"A-17","total":12.5,"vendor":{"name":"ACME <GmbH>","country":"DE"},"items":[{"name":"bolt","qty":2}]}`,
		`{"invoice_number":"D-4","total":3,"note":"extra key"}`,
	}
	for i, w := range want {
		if got := d.IDPCompletion(d.Rows[i]); got != w {
			t.Errorf("row %d target\n got %s\nwant %s", i, got, w)
		}
	}
	p := d.IDPPrompt(d.Rows[0])
	if !strings.Contains(p, `{"type":"object","properties":{"invoice_number":`) || !strings.Contains(p, "INVOICE #A-17 from ACME (DE).") || !strings.HasSuffix(p, "JSON:\n") {
		t.Errorf("IDP prompt:\n%s", p)
	}
	if string(d.Schema) == "" || !strings.Contains(string(d.Schema), "\n") {
		t.Errorf("Dataset.Schema should be the file as read, got %q", d.Schema)
	}

	// Without a schema the target keeps its own key order.
	d = mustLoad(t, "testdata/idp.jsonl", Options{Template: "Doc: {document}\nOut:"})
	if got, want := d.IDPCompletion(d.Rows[0]), `{"total":12.5,"items":[{"qty":2,"name":"bolt"}],"vendor":{"country":"DE","name":"ACME <GmbH>"},"invoice_number":"A-17"}`; got != want {
		t.Errorf("target without schema\n got %s\nwant %s", got, want)
	}
	if got, want := d.IDPPrompt(d.Rows[1]), "Doc: INVOICE #B-2. Total: unknown\nOut:"; got != want {
		t.Errorf("IDPPrompt = %q, want %q", got, want)
	}
}

func TestStrict(t *testing.T) {
	for _, tt := range []struct {
		path string
		opt  Options
		want string
	}{
		{"testdata/pc.jsonl", Options{Strict: true}, "testdata/pc.jsonl:4: not valid JSON at column 18"},
		{"testdata/cls.csv", Options{Strict: true}, "testdata/cls.csv:6: 3 fields, but the header has 2 columns"},
		{"testdata/messages.jsonl", Options{Strict: true}, `testdata/messages.jsonl:3: unknown role "bot": want system, user or assistant (field messages[1].role)`},
		{"testdata/idp.jsonl", Options{Strict: true, SchemaPath: "testdata/schema.json"}, "testdata/idp.jsonl:2: does not match the schema testdata/schema.json: at /total: got string, want number (field target)"},
	} {
		_, err := Load(tt.path, tt.opt)
		var re *RowError
		if !errors.As(err, &re) {
			t.Fatalf("%s: err %v, want a *RowError", tt.path, err)
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s strict:\n got %v\nwant %s...", tt.path, err, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	write := tempWriter(t)
	empty := write("empty.jsonl", "\n\n")
	allBad := write("bad.jsonl", "{\n[1]\n")
	noLabel := write("nolabel.csv", "text,class\nhi,greeting\n")
	onlyLabel := write("onlylabel.jsonl", "{\"label\": \"a\"}\n")
	latin1 := write("latin1.jsonl", "{\"prompt\": \"caf\xe9\", \"completion\": \"x\"}\n")
	unclosed := write("unclosed.csv", "text,label\ngood,pos\n\"oops,neg\n"+strings.Repeat("fine,pos\n", 100))
	array := write("pretty.json", "[\n  {\"prompt\": \"a\", \"completion\": \"b\"}\n]\n")
	for _, tt := range []struct {
		name string
		path string
		opt  Options
		is   error
		want []string // pieces of the message
	}{
		{"unknown keys", "testdata/unknown.jsonl", Options{}, ErrUnknownFormat,
			[]string{"testdata/unknown.jsonl:3:", "{answer, question}", "set the format explicitly"}},
		{"ambiguous keys", "testdata/ambiguous.jsonl", Options{}, ErrAmbiguousFormat,
			[]string{"testdata/ambiguous.jsonl:1:", "{completion, label, prompt}", "prompt_completion and classification"}},
		{"unknown declared format", "testdata/pc.jsonl", Options{Format: "chatml"}, ErrUnknownFormat,
			[]string{`"chatml"`, "prompt_completion, messages, classification, idp, preference"}},
		{"empty file", empty, Options{}, ErrNoRows, []string{"the file is empty"}},
		{"a JSON array", array, Options{}, nil, []string{"pretty.json: the file is one JSON array; distill reads JSONL", "jq -c"}},
		{"all rows bad", allBad, Options{}, ErrNoRows, []string{"all 2 rows are bad", "bad.jsonl:1: not valid JSON"}},
		{"CSV as messages", "testdata/cls.csv", Options{Format: FormatMessages}, nil, []string{"a CSV file holds classification rows, not messages"}},
		{"only a label", onlyLabel, Options{}, nil, []string{"onlylabel.jsonl:1: a classification row needs a \"text\" or feature keys"}},
		{"CSV without the label column", noLabel, Options{}, nil, []string{`no "label" column in the header [text, class]`}},
		{"a Latin-1 line", latin1, Options{Format: FormatPromptCompletion}, ErrNoRows, []string{"latin1.jsonl:1: not UTF-8 at byte 16 (re-save the file as UTF-8)"}},
		{"CSV with an unclosed quote", unclosed, Options{}, nil, []string{"unclosed.csv:3: a quoted field opened on this line runs to line", "close the quote"}},
		{"schema for another format", "testdata/pc.jsonl", Options{SchemaPath: "testdata/schema.json"}, nil, []string{"applies to idp datasets, not prompt_completion"}},
		{"schema not JSON", "testdata/idp.jsonl", Options{SchemaPath: "testdata/pc.jsonl"}, nil, []string{"load schema testdata/pc.jsonl: not valid JSON"}},
		{"missing schema", "testdata/idp.jsonl", Options{SchemaPath: "testdata/nope.json"}, nil, []string{"testdata/nope.json", "no such file"}},
		{"missing file", "testdata/nope.jsonl", Options{}, nil, []string{"testdata/nope.jsonl", "no such file"}},
		{"unknown placeholder", "testdata/text_cls.jsonl", Options{Template: "{review}\nLabel:"}, nil,
			[]string{"unknown placeholder {review}; this dataset has {text}"}},
		{"placeholder of a feature dataset", "testdata/features_cls.jsonl", Options{Template: "{text}"}, nil,
			[]string{"unknown placeholder {text}; this dataset has {sepal_length}, {sepal_width}, {species_hint}, {features}"}},
		{"unclosed brace", "testdata/text_cls.jsonl", Options{Template: "{text"}, nil, []string{`unclosed "{"`}},
		{"stray brace", "testdata/text_cls.jsonl", Options{Template: "{text} }"}, nil, []string{`stray "}"`}},
		{"template for messages", "testdata/messages.jsonl", Options{Template: "{text}"}, nil, []string{"applies to classification and idp datasets, not messages"}},
		{"same verbaliser", "testdata/text_cls.jsonl", Options{Verbalizers: map[string]string{"positive": " yes", "negative": " no", "neutral": " yes"}}, nil,
			[]string{`labels "neutral" and "positive" have the same verbaliser " yes"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, tt.opt)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestVerbalizersAndPrompts(t *testing.T) {
	verb := map[string]string{"positive": " good", "negative": " bad"}
	d := mustLoad(t, "testdata/text_cls.jsonl", Options{Verbalizers: verb})
	// "neutral" has no verbaliser: its row is a bad row, not a silent default.
	if len(d.Rows) != 4 || d.Skipped[0].Line != 3 || !strings.Contains(d.Skipped[0].Msg, `label "neutral" has no verbaliser (have: negative, positive)`) {
		t.Fatalf("rows %d, skipped %v", len(d.Rows), d.Skipped)
	}
	if got := d.Verbalizer("negative"); got != " bad" {
		t.Errorf("Verbalizer(negative) = %q", got)
	}

	for _, tt := range []struct {
		path, tmpl string
		row        int
		want       string
	}{
		{"testdata/text_cls.jsonl", "", 0, "I loved this film\nLabel:"},
		{"testdata/text_cls.jsonl", "Review: {text}\nSentiment:", 1, "Review: Terrible acting\nSentiment:"},
		{"testdata/text_cls.jsonl", "{{literal}} {text}}}", 2, "{literal} It was fine}"},
		{"testdata/features_cls.jsonl", "", 0, "sepal_length: 5.1\nsepal_width: 3.5\nspecies_hint: small\nLabel:"},
		{"testdata/features_cls.jsonl", "Flower {sepal_length}x{sepal_width}:", 1, "Flower 7.0x3.2:"},
		{"testdata/tickets.csv", "", 0, "priority: high\nsubject: Server down, urgent\nLabel:"},
	} {
		d := mustLoad(t, tt.path, Options{Template: tt.tmpl, LabelColumn: map[bool]string{true: "category"}[strings.HasSuffix(tt.path, "tickets.csv")]})
		if got := d.ClassificationPrompt(d.Rows[tt.row]); got != tt.want {
			t.Errorf("%s %q: prompt %q, want %q", tt.path, tt.tmpl, got, tt.want)
		}
		if got := d.Verbalizer("x"); got != " x" {
			t.Errorf("default verbaliser %q", got)
		}
	}
}

func mustLoad(t *testing.T, path string, opt Options) *Dataset {
	t.Helper()
	d, err := Load(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCSVNotUTF8: a CSV row in another encoding (Latin-1's é) is a bad row
// naming its line and column, as in JSONL, not text trained on as mojibake.
func TestCSVNotUTF8(t *testing.T) {
	p := filepath.Join(t.TempDir(), "latin1.csv")
	if err := os.WriteFile(p, []byte("text,label\ncaf\xe9 tr\xe8s bon,pos\ngood,pos\nbad,neg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rows) != 2 || len(d.Skipped) != 1 || !strings.Contains(d.Skipped[0].Error(), ":2:") || !strings.Contains(d.Skipped[0].Error(), "not UTF-8") || !strings.Contains(d.Skipped[0].Error(), "text") {
		t.Errorf("rows %d, skipped %v", len(d.Rows), d.Skipped)
	}
}

// Alpaca and ShareGPT rows, as LLaMA-Factory users bring them, load as
// prompt/completion and messages rows; what they carry that distill would
// drop (Alpaca's history, ShareGPT's tool turns) is refused by field.
func TestForeignLayouts(t *testing.T) {
	write := tempWriter(t)
	alpaca := write("alpaca.jsonl", `{"instruction": "Translate to French.", "input": "cat", "output": "chat"}
{"instruction": "Say hi.", "input": "", "output": "hi"}
{"instruction": "Say hi.", "output": "hi"}
{"instruction": "Go on.", "input": "", "output": "ok", "history": [["a", "b"]]}
{"instruction": "", "output": "x"}
`)
	ds, err := Load(alpaca, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != FormatPromptCompletion || len(ds.Rows) != 3 {
		t.Fatalf("format %s, %d rows: %s", ds.Format, len(ds.Rows), ds.Summary())
	}
	if r := ds.Rows[0]; r.Prompt != "Translate to French.\ncat" || r.Completion != "chat" {
		t.Errorf("row 1: %+v", r)
	}
	if r := ds.Rows[1]; r.Prompt != "Say hi." || r.Completion != "hi" {
		t.Errorf("row 2: %+v", r)
	}
	checkSkips(t, ds, []skip{{4, "history", "write the conversation"}, {5, "instruction", "empty"}})

	share := write("sharegpt.jsonl", `{"system": "Be brief.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}
{"conversations": [{"from": "human", "value": "2+2?"}, {"from": "function_call", "value": "{}"}]}
{"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": ""}]}
`)
	if ds, err = Load(share, Options{}); err != nil {
		t.Fatal(err)
	}
	want := []chat.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello."}}
	if ds.Format != FormatMessages || len(ds.Rows) != 1 || !reflect.DeepEqual(ds.Rows[0].Messages, want) {
		t.Fatalf("format %s, rows %+v", ds.Format, ds.Rows)
	}
	checkSkips(t, ds, []skip{{2, "conversations[1].from", `"function_call" turns are not supported`}, {3, "conversations[1].value", "empty"}})
}

// tempWriter returns a function that writes a file of text into a fresh
// temporary folder and returns its path.
func tempWriter(t *testing.T) func(name, text string) string {
	t.Helper()
	dir := t.TempDir()
	return func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}
