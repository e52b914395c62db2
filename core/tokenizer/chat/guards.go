package chat

import (
	"fmt"
	"math"

	"github.com/ardanlabs/jinja"
)

// Guards against templates that would not end: a model's chat template is
// user input, and the template library bounds neither recursion nor range.

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
	opened, closed := 0, 0
	out := rewriteTags(src, func(tag string, kind byte, inRaw bool) string {
		if kind != '%' || inRaw {
			return tag
		}
		switch tagKeyword(tag) {
		case "macro":
			opened++
			return tag + "{% set __distill_depth = " + enterName + "() " + trimMark(tag[len(tag)-3]) + "%}"
		case "endmacro":
			closed++
			return "{%" + trimMark(tag[2]) + " set __distill_depth = " + leaveName + "() %}" + tag
		}
		return tag
	})
	if opened != closed {
		return src
	}
	return out
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

// maxRange bounds the items range() makes: range(10**12) would otherwise
// build its list until memory ran out.
const maxRange = 1 << 20

// boundedRange is Python's range over integers, refusing more than maxRange
// items; it stands in for the library's, which has no bound.
var boundedRange = jinja.NewCallable("range", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	n := make([]int64, len(args))
	for i, a := range args {
		switch {
		case a.IsInt():
			n[i] = a.AsInt()
		case a.IsFloat() && a.AsFloat() == math.Trunc(a.AsFloat()) && math.Abs(a.AsFloat()) < 1<<62:
			n[i] = int64(a.AsFloat()) // 10**12 is a float here
		case a.IsBool():
			if a.AsBool() {
				n[i] = 1
			}
		default:
			return jinja.Undefined(), fmt.Errorf("range: want integers, got %s", jinjaText(a))
		}
	}
	start, stop, step := int64(0), int64(0), int64(1)
	switch len(n) {
	case 1:
		stop = n[0]
	case 2:
		start, stop = n[0], n[1]
	case 3:
		start, stop, step = n[0], n[1], n[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range: expected 1-3 arguments, got %d", len(n))
	}
	if step == 0 {
		return jinja.Undefined(), fmt.Errorf("range: step must not be zero")
	}
	count := int64(0)
	if step > 0 && stop > start {
		count = (stop-start-1)/step + 1
	} else if step < 0 && stop < start {
		count = (start-stop-1)/(-step) + 1
	}
	if count > maxRange {
		return jinja.Undefined(), fmt.Errorf("range: %d items, over the %d a chat template may make (fix the model's chat template)", count, maxRange)
	}
	items := make([]jinja.Value, count)
	for i := range items {
		items[i] = jinja.NewInt(start + int64(i)*step)
	}
	return jinja.NewList(items), nil
})
