package chat

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// The tojson filter of ardanlabs/jinja v1.8.0 sorts object keys (and
// escapes <, >, &) when given indent=, which Llama 3.1-style templates use
// to print tool definitions; transformers and @huggingface/jinja keep key
// order. Its filters cannot be replaced, but a filter name it does not know
// is looked up among the render variables, so Parse renames the filter in
// the template source and RenderWith supplies this package's tojson under
// the new name.
const tojsonName = "distill_tojson"

// rerouteTojson rewrites every "| tojson" filter application in a template
// source to "| distill_tojson". Text, comments, string literals and raw
// blocks are left alone; the tag scanning follows the engine's scanner.
func rerouteTojson(src string) string {
	return rewriteTags(src, func(tag string, kind byte, inRaw bool) string {
		if kind == '#' || inRaw {
			return tag
		}
		return renameFilter(tag, "tojson", tojsonName)
	})
}

// rewriteTags returns src with each tag — "{{ … }}", "{% … %}" or
// "{# … #}", found as the engine's scanner finds them, skipping quoted
// strings — replaced by fn(tag, its second byte, whether it lies inside
// {% raw %}, the raw and endraw tags counted as their insides). Text
// between tags, and what follows an unclosed tag (the engine reports it),
// is kept.
func rewriteTags(src string, fn func(tag string, kind byte, inRaw bool) string) string {
	var b strings.Builder
	inRaw := false
	i := 0
	for i < len(src) {
		open := strings.Index(src[i:], "{")
		if open < 0 || i+open+1 >= len(src) {
			break
		}
		open += i
		closer := tagCloser(src[open+1])
		if closer == "" {
			b.WriteString(src[i : open+1])
			i = open + 1
			continue
		}
		b.WriteString(src[i:open])
		end := tagEnd(src, open+2, closer)
		if end < 0 {
			i = open
			break
		}
		tag := src[open:end]
		if closer == "%}" {
			switch tagKeyword(tag) {
			case "raw":
				inRaw = true
			case "endraw":
				inRaw = false
			}
		}
		b.WriteString(fn(tag, src[open+1], inRaw))
		i = end
	}
	b.WriteString(src[i:])
	return b.String()
}

// tagCloser is the closer of the tag whose opener is '{' then c: "}}",
// "%}" or "#}"; "" when "{" c opens none.
func tagCloser(c byte) string {
	switch c {
	case '{':
		return "}}"
	case '%':
		return "%}"
	case '#':
		return "#}"
	}
	return ""
}

// tagEnd returns the index just past the closer of the tag whose body
// starts at from, skipping quoted strings outside comments; -1 if unclosed.
func tagEnd(src string, from int, closer string) int {
	for i := from; i < len(src); i++ {
		c := src[i]
		if closer != "#}" && (c == '\'' || c == '"') {
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			continue
		}
		if strings.HasPrefix(src[i:], closer) {
			return i + len(closer)
		}
	}
	return -1
}

// tagKeyword returns the first word of a {% ... %} tag.
func tagKeyword(tag string) string {
	body := strings.TrimSuffix(strings.TrimPrefix(tag, "{%"), "%}")
	body = strings.Trim(body, "-+ \t\r\n")
	if i := strings.IndexAny(body, " \t\r\n"); i >= 0 {
		body = body[:i]
	}
	return body
}

// renameFilter replaces filter name from with to in one tag: an identifier
// after '|' (and optional spaces) outside string literals.
func renameFilter(tag, from, to string) string {
	var b strings.Builder
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if c == '\'' || c == '"' {
			j := i + 1
			for j < len(tag) && tag[j] != c {
				if tag[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(tag))
			b.WriteString(tag[i:j])
			i = j - 1
			continue
		}
		b.WriteByte(c)
		if c != '|' {
			continue
		}
		j := i + 1
		for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\n' || tag[j] == '\r') {
			j++
		}
		k := j + len(from)
		if strings.HasPrefix(tag[j:], from) && (k == len(tag) || !isIdentByte(tag[k])) {
			b.WriteString(tag[i+1 : j])
			b.WriteString(to)
			i = k - 1
		}
	}
	return b.String()
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// tojsonFilter is transformers' tojson: Python's json.dumps(x,
// ensure_ascii=False, indent=None, separators=None, sort_keys=False), its
// arguments given by position or by keyword.
var tojsonFilter = jinja.NewCallable(tojsonName, func(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: no value")
	}
	opt := jsonOptions{itemSep: ", ", keySep: ": "}
	names := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	if len(args)-1 > len(names) {
		return jinja.Undefined(), fmt.Errorf("tojson: want at most %d arguments, got %d", len(names), len(args)-1)
	}
	params := map[string]jinja.Value{}
	for i, a := range args[1:] {
		params[names[i]] = a
	}
	for k, v := range kwargs {
		params[k] = v
	}
	for k, v := range params {
		if v.IsNone() || v.IsUndefined() {
			continue
		}
		switch k {
		case "ensure_ascii":
			opt.ensureASCII = v.IsTruthy()
		case "sort_keys":
			opt.sortKeys = v.IsTruthy()
		case "indent":
			switch {
			case v.IsInt():
				opt.indent = strings.Repeat(" ", max(0, int(v.AsInt())))
			case v.IsString():
				opt.indent = v.AsString()
			default:
				return jinja.Undefined(), fmt.Errorf("tojson: indent must be an integer or a string, got %s", v)
			}
			opt.indented = true
		case "separators":
			if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Get(0).IsString() || !v.AsList().Get(1).IsString() {
				return jinja.Undefined(), fmt.Errorf("tojson: separators must be two strings, got %s", v)
			}
			opt.itemSep, opt.keySep = v.AsList().Get(0).AsString(), v.AsList().Get(1).AsString()
			opt.customSep = true
		default:
			return jinja.Undefined(), fmt.Errorf("tojson: unknown argument %q", k)
		}
	}
	if opt.indented && !opt.customSep {
		opt.itemSep = "," // json.dumps drops the space before a newline
	}
	var b strings.Builder
	if err := writeJSON(&b, args[0], &opt, 0); err != nil {
		return jinja.Undefined(), err
	}
	return jinja.NewString(b.String()), nil
})

type jsonOptions struct {
	ensureASCII, sortKeys bool
	indented              bool
	indent                string
	customSep             bool
	itemSep, keySep       string
}

// writeJSON writes v as json.dumps does.
func writeJSON(b *strings.Builder, v jinja.Value, opt *jsonOptions, depth int) error {
	switch {
	case v.IsUndefined(), v.IsNone():
		b.WriteString("null")
	case v.IsBool():
		b.WriteString(strconv.FormatBool(v.AsBool()))
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		b.WriteString(pyFloat(v.AsFloat()))
	case v.IsString():
		writeJSONString(b, v.AsString(), opt.ensureASCII)
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, item := range items {
			if i > 0 {
				b.WriteString(opt.itemSep)
			}
			newline(b, opt, depth+1)
			if err := writeJSON(b, item, opt, depth+1); err != nil {
				return err
			}
		}
		newline(b, opt, depth)
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		if d.Len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := d.OrderedKeys()
		if opt.sortKeys {
			sort.Strings(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(opt.itemSep)
			}
			newline(b, opt, depth+1)
			writeJSONString(b, k, opt.ensureASCII)
			b.WriteString(opt.keySep)
			val, _ := d.Get(k)
			if err := writeJSON(b, val, opt, depth+1); err != nil {
				return err
			}
		}
		newline(b, opt, depth)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: cannot encode %s", v)
	}
	return nil
}

func newline(b *strings.Builder, opt *jsonOptions, depth int) {
	if opt.indented {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(opt.indent, depth))
	}
}

// writeJSONString quotes s as json.dumps does: only '"', '\\' and control
// characters are escaped, and with ensureASCII everything outside ' '..'~'.
func writeJSONString(b *strings.Builder, s string, ensureASCII bool) {
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				u4(rune(c))
				break
			}
			if !ensureASCII {
				b.WriteByte(c)
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r >= 0x10000 {
				r -= 0x10000
				u4(0xd800 + r>>10)
				u4(0xdc00 + r&0x3ff)
			} else {
				u4(r)
			}
			i += size
			continue
		}
		i++
	}
	b.WriteByte('"')
}

// pyFloat formats f as Python's repr (what json.dumps prints): the shortest
// digits that round-trip, with ".0" on integral values, and an exponent
// below 1e-4 or from 1e16 on.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, x, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(x)
	if exp < -4 || exp >= 16 {
		return mant + "e" + x
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
