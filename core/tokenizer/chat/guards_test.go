package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/ardanlabs/jinja"
)

// A template whose macros recurse without end gets an error, not a stack
// overflow (fatal in Go: it killed the process); bounded recursion, as a
// tool-use template's schema printer does, renders as before.
func TestMacroRecursionBounded(t *testing.T) {
	msgs := []Message{{Role: "user", Content: "hi"}}
	tm, err := Parse(`{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(msgs, true); err == nil || !strings.Contains(err.Error(), "recurses without end") {
		t.Fatalf("endless recursion: %v", err)
	}
	tm, err = Parse(`{% macro f(n) %}{% if n > 0 %}({{ f(n - 1) }}){% endif %}{% endmacro %}{{ f(400) }}{{ f(3) }}`, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := tm.Render(msgs, true)
	if want := strings.Repeat("(", 400) + strings.Repeat(")", 400) + "((()))"; err != nil || out != want {
		t.Fatalf("recursion 400 deep, then 3 (the depth goes back down): %.40q…, %v", out, err)
	}
}

// The guard's tags leave a template's output as it was, whatever whitespace
// control its macro tags use; tags in {% raw %} and templates whose macro
// tags do not pair up are left alone.
func TestMacroGuardKeepsOutput(t *testing.T) {
	for _, src := range []string{
		"{% macro m(x) %}\n  <{{ x }}>\n{% endmacro %}\n[{{ m(1) }}]\n",
		"{%- macro m(x) -%}\n  <{{ x }}>\n{%- endmacro -%}\n[{{ m(1) }}]\n",
		"{%macro m(x)%}  <{{ x }}>  {%endmacro%}[{{ m('a%}b') }}]",
		"{% macro m(x, y='q') -%}\n {{ x }}{{ y }}\n   {% endmacro -%}\n {{ m(2) }}",
		"{% raw %}{% macro m() %}{% endmacro %}{% endraw %}{% macro n() %}n{% endmacro %}{{ n() }}",
		"{% for i in range(3) %}{% macro m(i) %}<{{ i }}>{% endmacro %}{{ m(i) }}\n{% endfor %}",
		// trim_blocks' newline after a block tag, and the text after
		// endmacro: a guard of block tags trimmed a second newline
		"{% macro m(x) %}\n\n<{{ x }}>{% endmacro %}[{{ m(1) }}]",
		"{% macro m(x) %}<{{ x }}>{% endmacro %}\n\n[{{ m(1) }}]",
		"{% macro m(x) %}<{{ x }}>{% endmacro %}\n\n{% if true %}[{{ m(1) }}]{% endif %}",
		"  {% macro m(x) %}\n  <{{ x }}>\n  {% endmacro %}\n  [{{ m(1) }}]",
		"{% macro m(x) +%}\n<{{ x }}>{% endmacro %}[{{ m(1) }}]", // no "+" in this library: kept as it was
	} {
		guarded := guardMacros(src)
		if !strings.Contains(src, "endmacro %}{% endraw") && !strings.Contains(guarded, enterName) {
			t.Errorf("%q: no guard in %q", src, guarded)
		}
		want := renderPlain(t, src)
		tm, err := Parse(src, "", "")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		got, err := tm.Render(nil, false)
		if err != nil || got != want {
			t.Errorf("%q: guarded %q, %v; unguarded %q", src, got, err, want)
		}
	}
	raw := "{% raw %}{% macro m() %}{% endmacro %}{% endraw %}"
	if g := guardMacros(raw); g != raw {
		t.Errorf("raw block rewritten: %q", g)
	}
	odd := "{% macro m() %}x{% endmacro %}{{ '{% endmacro %}' }}"
	if g := guardMacros(odd + "{% endmacro %}"); g != odd+"{% endmacro %}" {
		t.Errorf("unpaired macro tags rewritten: %q", g)
	}
}

func renderPlain(t *testing.T, src string) string {
	t.Helper()
	c, err := jinja.Compile(src)
	if err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	out, err := c.RenderValues(map[string]jinja.Value{})
	if err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	return out
}

// Text that only looks like a macro tag — in an expression's string, in a
// comment — is not one.
func TestMacroGuardSkipsExpressionsAndComments(t *testing.T) {
	src := "{# {% macro c() %} #}{% macro m() %}{{ '{% endmacro %}' }}{% endmacro %}{{ m() }}"
	g := guardMacros(src)
	if strings.Count(g, enterName) != 1 || strings.Count(g, leaveName) != 1 {
		t.Fatalf("guarded %q", g)
	}
	tm, err := Parse(src, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tm.Render(nil, false); err != nil || got != renderPlain(t, src) {
		t.Errorf("%q: %q, %v", src, got, err)
	}
}

// range() keeps Python's meaning and refuses a list no template needs,
// which the library would build until memory ran out.
func TestRangeBounded(t *testing.T) {
	for src, want := range map[string]string{
		"{% for i in range(4) %}{{ i }}{% endfor %}":                   "0123",
		"{% for i in range(2, 9, 3) %}{{ i }},{% endfor %}":            "2,5,8,",
		"{% for i in range(5, -1, -2) %}{{ i }},{% endfor %}":          "5,3,1,",
		"{% for i in range(3, 3) %}x{% endfor %}{{ range(0)|length }}": "0",
		"{{ range(true)|length }}":                                     "1",
		// as the library converts: truncated, parsed, none and undefined 0
		"{% for i in range(7 / 2) %}{{ i }}{% endfor %}":    "012",
		"{% for i in range('3') %}{{ i }}{% endfor %}":      "012",
		"{% for i in range(none) %}{{ i }}{% endfor %}|":    "|",
		"{% for i in range(nothing) %}{{ i }}{% endfor %}|": "|",
	} {
		tm, err := Parse(src, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tm.Render(nil, false); err != nil || got != want || got != renderPlain(t, src) {
			t.Errorf("%s: %q, %v; want %q (the library's: %q)", src, got, err, want, renderPlain(t, src))
		}
	}
	tm, err := Parse("{% for i in range(10**12) %}x{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(nil, false); err == nil || !strings.Contains(err.Error(), "range: 1000000000000 items") {
		t.Errorf("range(10**12): %v", err)
	}
	// a span past int64: refused, not a panic
	tm, err = Parse("{% for i in range(-9223372036854775807, 9223372036854775807) %}{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(nil, false); err == nil || !strings.Contains(err.Error(), "items, over the") {
		t.Errorf("range over all int64: %v", err)
	}
	// Loops within loops, each list within the bound: 16.8M items refused
	// in one render (seconds of rendering here, and each loop more
	// multiplies them by thousands); the budget is the render's, so the
	// next render starts afresh.
	tm, err = Parse("{% for i in range(4096) %}{% for j in range(4096) %}{% endfor %}{% endfor %}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := tm.Render(nil, false); err == nil || !strings.Contains(err.Error(), "in one render") {
		t.Errorf("nested range(4096): %v", err)
	}
	t.Logf("nested loops refused after %v", time.Since(start))
	tm, err = Parse("{% for i in range(1024) %}{% for j in range(1024) %}{% endfor %}{% endfor %}.", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // 1M items a render, 5M over the five
		if got, err := tm.Render(nil, false); err != nil || got != "." {
			t.Fatalf("nested range(1024): %q, %v", got, err)
		}
	}
}
