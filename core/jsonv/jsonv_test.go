package jsonv

import (
	"errors"
	"slices"
	"testing"
)

func mustParse(t *testing.T, s string) *Value {
	t.Helper()
	v, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return v
}

func TestParseKeepsKeyOrder(t *testing.T) {
	v := mustParse(t, `{"z":1,"a":{"y":true,"b":null},"m":[3,"x"]}`)
	if v.Kind != Object || !slices.Equal(v.Keys, []string{"z", "a", "m"}) {
		t.Fatalf("keys %v (kind %d), want [z a m]", v.Keys, v.Kind)
	}
	if inner := v.Get("a"); !slices.Equal(inner.Keys, []string{"y", "b"}) {
		t.Errorf("inner keys %v, want [y b]", inner.Keys)
	}
	if m := v.Get("m"); m.Kind != Array || len(m.Vals) != 2 || m.Vals[1].Text != "x" {
		t.Errorf("array %+v", m)
	}
	if v.Get("nope") != nil || v.Get("z").Get("z") != nil || (*Value)(nil).Get("z") != nil {
		t.Error("Get of a missing key, on a scalar or on nil should be nil")
	}
}

func TestParseScalars(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind Kind
		text string
		name string
	}{
		{`"a\u00e9<"`, String, "aé<", "a string"},
		{`1.50`, Number, "1.50", "a number"},
		{`-0`, Number, "-0", "a number"},
		{`1e400`, Number, "1e400", "a number"},
		{`12345678901234567890123`, Number, "12345678901234567890123", "a number"},
		{`true`, Bool, "true", "a boolean"},
		{`false`, Bool, "false", "a boolean"},
		{` null `, Null, "", "null"},
		{`[]`, Array, "", "an array"},
		{`{}`, Object, "", "an object"},
	} {
		v := mustParse(t, c.in)
		if v.Kind != c.kind || v.Text != c.text || v.KindName() != c.name {
			t.Errorf("%s: kind %d text %q name %q, want %d %q %q", c.in, v.Kind, v.Text, v.KindName(), c.kind, c.text, c.name)
		}
	}
	if !mustParse(t, "true").IsTrue() || mustParse(t, "true").IsFalse() ||
		!mustParse(t, "false").IsFalse() || mustParse(t, `"true"`).IsTrue() || (*Value)(nil).IsTrue() {
		t.Error("IsTrue/IsFalse")
	}
}

func TestParseDuplicateKey(t *testing.T) {
	for _, s := range []string{`{"a":1,"b":2,"a":3}`, `[{"x":{"k":1,"k":1}}]`} {
		_, err := Parse([]byte(s))
		var de *DuplicateKeyError
		if !errors.As(err, &de) {
			t.Fatalf("%s: %v, want a *DuplicateKeyError", s, err)
		}
		if want := map[byte]string{'{': "a", '[': "k"}[s[0]]; de.Key != want || err.Error() != `duplicate key "`+want+`"` {
			t.Errorf("%s: key %q, error %q", s, de.Key, err)
		}
	}
	// The same key in different objects is fine.
	mustParse(t, `{"a":{"a":1},"b":[{"a":2},{"a":3}]}`)
	// A syntax error wins over a duplicate key before it.
	var se *SyntaxError
	if _, err := Parse([]byte(`{"a":1,"a":2,`)); !errors.As(err, &se) {
		t.Errorf("duplicate then syntax error: %v, want a *SyntaxError", err)
	}
}

func TestParseSyntaxErrorColumn(t *testing.T) {
	for _, c := range []struct {
		in   string
		col  int64
		want string
	}{
		{`{"a":1,}`, 8, "not valid JSON at column 8: invalid character '}' looking for beginning of object key string"},
		{`{"type":`, 8, "not valid JSON at column 8: unexpected end of JSON input"},
		{`{"a":1} x`, 9, "not valid JSON at column 9: invalid character 'x' after top-level value"},
		{``, 0, "not valid JSON at column 0: unexpected end of JSON input"},
		{`[1,2,tru]`, 9, "not valid JSON at column 9: invalid character ']' in literal true (expecting 'e')"},
	} {
		_, err := Parse([]byte(c.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: %v, want a *SyntaxError", c.in, err)
			continue
		}
		if se.Column != c.col || err.Error() != c.want {
			t.Errorf("%q: column %d, %q; want %d, %q", c.in, se.Column, err, c.col, c.want)
		}
	}
}

func TestCompactRoundTrip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{ "b" : 1.0, "a" : [ true, null, "x<y&z" ], "c": {} }`, `{"b":1.0,"a":[true,null,"x<y&z"],"c":{}}`},
		{`"line\nbreak \"q\" \u2028 é"`, `"line\nbreak \"q\" \u2028 é"`},
		{` [ 1e400 , -0.000 , 10E+3 ] `, `[1e400,-0.000,10E+3]`},
		{`{"":{"/~":[[]]}}`, `{"":{"/~":[[]]}}`},
	} {
		got := string(mustParse(t, c.in).AppendCompact([]byte("> ")))
		if got != "> "+c.want {
			t.Errorf("%s: compact %s, want %s", c.in, got, c.want)
		}
		// The compact text parses back to the same value.
		if again := string(mustParse(t, c.want).AppendCompact(nil)); again != c.want {
			t.Errorf("%s: round trip %s", c.want, again)
		}
	}
	if got := string(AppendString(nil, "a<b>\"\\\t")); got != `"a<b>\"\\\t"` {
		t.Errorf("AppendString: %s", got)
	}
}

func TestCanonical(t *testing.T) {
	a := mustParse(t, `{"b":[{"y":1,"x":2}],"a":"s"}`)
	b := mustParse(t, `{"a":"s","b":[{"x":2,"y":1}]}`)
	if a.Canonical() != b.Canonical() || a.Canonical() != `{"a":"s","b":[{"x":2,"y":1}]}` {
		t.Errorf("canonical %s vs %s", a.Canonical(), b.Canonical())
	}
	// Key order still matters to the compact form; array order and number
	// text matter to both.
	if string(a.AppendCompact(nil)) == string(b.AppendCompact(nil)) {
		t.Error("compact forms of differently ordered objects are equal")
	}
	for _, p := range [][2]string{{`[1,2]`, `[2,1]`}, {`1`, `1.0`}, {`"1"`, `1`}, {`null`, `false`}} {
		if mustParse(t, p[0]).Canonical() == mustParse(t, p[1]).Canonical() {
			t.Errorf("%s and %s have the same canonical form", p[0], p[1])
		}
	}
}

func TestResolvePointer(t *testing.T) {
	root := mustParse(t, `{"$defs":{"a/b":{"t":1},"m~n":[10,11,12]},"":{"x":"empty key"},"list":[{"k":"v"}]}`)
	for _, c := range []struct {
		ptr  string
		want string // compact JSON of the target, "" for unresolved
	}{
		{"", string(root.AppendCompact(nil))},
		{"/$defs/a~1b", `{"t":1}`},
		{"/$defs/a~1b/t", `1`},
		{"/$defs/m~0n/2", `12`},
		{"/$defs/m~0n/0", `10`},
		{"/", `{"x":"empty key"}`},
		{"/list/0/k", `"v"`},
		{"/$defs/m~0n/3", ""},
		{"/$defs/m~0n/01", ""},
		{"/$defs/m~0n/+1", ""},
		{"/$defs/m~0n/-0", ""},
		{"/$defs/m~0n/-", ""},
		{"/$defs/m~0n/99999999999999999999999", ""},
		{"/$defs/a/b", ""},
		{"/$defs/a~1b/t/0", ""},
		{"/nope", ""},
		{"/nope/deeper", ""},
		{"$defs", ""},
	} {
		got := root.Resolve(c.ptr)
		switch {
		case c.want == "" && got != nil:
			t.Errorf("Resolve(%q) = %s, want nil", c.ptr, got.AppendCompact(nil))
		case c.want != "" && got == nil:
			t.Errorf("Resolve(%q) = nil, want %s", c.ptr, c.want)
		case c.want != "" && string(got.AppendCompact(nil)) != c.want:
			t.Errorf("Resolve(%q) = %s, want %s", c.ptr, got.AppendCompact(nil), c.want)
		}
	}
	// PointerToken escapes what Resolve unescapes.
	for _, k := range []string{"a/b", "m~n", "~1", "/~0/", ""} {
		v := &Value{Kind: Object, Keys: []string{k}, Vals: []*Value{{Kind: Number, Text: "7"}}}
		if got := v.Resolve("/" + PointerToken(k)); got == nil || got.Text != "7" {
			t.Errorf("key %q: token %q does not resolve", k, PointerToken(k))
		}
	}
}
