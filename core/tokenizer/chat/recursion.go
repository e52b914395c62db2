package chat

import (
	"fmt"
	"strings"

	"github.com/ardanlabs/jinja"
)

// maxMacroDepth bounds how deeply a template's macro calls may nest. Real
// templates recurse a few levels (a JSON schema's nesting, in some tool-use
// templates); one that recurses without end would otherwise overflow the Go
// stack, which kills the process — a whole server, for a model's template.
const maxMacroDepth = 500

// Names of the callables the guard calls; RenderWith binds them per render.
const (
	enterName = "__distill_macro_enter"
	leaveName = "__distill_macro_leave"
)

// guardMacros puts a call to the depth guard at the start and the end of
// every macro body, as block tags that take on the whitespace control of the
// tags beside them, so the output is unchanged: `{% macro f() -%}` becomes
// `{% macro f() -%}{% set … = enter() -%}`, `{%- endmacro %}` becomes
// `{%- set … = leave() %}{%- endmacro %}`. Tags inside {% raw %} are left.
// Where the macro and endmacro tags found do not pair up, the template is
// left as it is (unguarded) rather than miscounted.
func guardMacros(src string) string {
	var b strings.Builder
	inRaw, opened, closed := false, 0, 0
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
		end := tagEnd(src, open+2, closer)
		if end < 0 {
			break
		}
		tag := src[open:end]
		b.WriteString(src[i:open])
		kw := ""
		if closer == "%}" { // expressions and comments pass as they are
			kw = tagKeyword(tag)
		}
		switch {
		case kw == "raw":
			inRaw = true
		case kw == "endraw":
			inRaw = false
		case inRaw:
		case kw == "macro":
			b.WriteString(tag)
			b.WriteString("{% set __distill_depth = " + enterName + "() " + trimMark(tag[len(tag)-3]) + "%}")
			opened++
			i = end
			continue
		case kw == "endmacro":
			b.WriteString("{%" + trimMark(tag[2]) + " set __distill_depth = " + leaveName + "() %}")
			closed++
		}
		b.WriteString(tag)
		i = end
	}
	b.WriteString(src[i:])
	if opened != closed {
		return src
	}
	return b.String()
}

// trimMark is c when it is a tag's whitespace control (- or +), else "".
func trimMark(c byte) string {
	if c == '-' || c == '+' {
		return string(c)
	}
	return ""
}

// depthGuard returns the enter and leave callables of one render.
func depthGuard() (enter, leave jinja.Value) {
	depth := 0
	enter = jinja.NewCallable(enterName, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
		if depth++; depth > maxMacroDepth {
			return jinja.Undefined(), fmt.Errorf("macro calls nest deeper than %d: the template recurses without end (fix the model's chat template)", maxMacroDepth)
		}
		return jinja.NewString(""), nil
	})
	leave = jinja.NewCallable(leaveName, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
		depth = max(0, depth-1)
		return jinja.NewString(""), nil
	})
	return enter, leave
}
