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
// every macro body: `{% macro f() %}` becomes `{% macro f() %}{{ enter() }}`
// and `{% endmacro %}` becomes `{{ leave() }}{% endmacro %}`. Expression
// tags, because the library's whitespace handling leaves them be: its
// trim_blocks/lstrip_blocks defaults apply to block tags only, and every
// trim (a default or a "-" mark) reaches past tags to the nearest text, so
// the neighbours' trims are as before and the output is unchanged (block
// tags here trimmed a second newline). Tags inside {% raw %} are left; where
// the macro and endmacro tags found do not pair up, the template is left as
// it is (unguarded) rather than miscounted.
func guardMacros(src string) string {
	opened, closed := 0, 0
	out := rewriteTags(src, func(tag string, kind byte, inRaw bool) string {
		if kind != '%' || inRaw {
			return tag
		}
		switch tagKeyword(tag) {
		case "macro":
			opened++
			return tag + "{{ " + enterName + "() }}"
		case "endmacro":
			closed++
			return "{{ " + leaveName + "() }}" + tag
		}
		return tag
	})
	if opened != closed {
		return src
	}
	return out
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

// maxRange bounds the items one range() makes: range(10**12) would
// otherwise build its list until memory ran out. maxRangeTotal bounds them
// over a render: loops nested in loops (range(4096) inside range(4096)
// inside range(4096)) would otherwise run for hours, each list within the
// first bound.
const (
	maxRange      = 1 << 20
	maxRangeTotal = 1 << 22
)

// boundedRange is one render's range: the library's — its arguments
// converted as it converts them (floats truncated, strings parsed,
// anything else 0) — but refusing more than maxRange items a call and
// maxRangeTotal a render.
func boundedRange() jinja.Value {
	made := 0.0
	return jinja.NewCallable("range", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		items, err := rangeItems(args)
		if err != nil {
			return jinja.Undefined(), err
		}
		if made += float64(len(items)); made > maxRangeTotal {
			return jinja.Undefined(), fmt.Errorf("range: over %d items in one render, loops within loops (fix the model's chat template)", maxRangeTotal)
		}
		return jinja.NewList(items), nil
	})
}

// rangeItems is range(args): at most maxRange items.
func rangeItems(args []jinja.Value) ([]jinja.Value, error) {
	n := make([]int64, len(args))
	for i, a := range args {
		n[i] = rangeInt(a)
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
		return nil, fmt.Errorf("range: expected 1-3 arguments, got %d", len(n))
	}
	if step == 0 {
		return nil, fmt.Errorf("range: step must not be zero")
	}
	// The count in float64: stop − start may not fit an int64.
	count := 0.0
	if span := float64(stop) - float64(start); step > 0 && span > 0 || step < 0 && span < 0 {
		count = math.Ceil(span / float64(step))
	}
	if count > maxRange {
		return nil, fmt.Errorf("range: %.0f items, over the %d a chat template may make (fix the model's chat template)", count, maxRange)
	}
	var items []jinja.Value
	for i := start; step > 0 && i < stop || step < 0 && i > stop; i += step {
		items = append(items, jinja.NewInt(i))
	}
	return items, nil
}

// rangeInt is the library's conversion of a range argument.
func rangeInt(v jinja.Value) int64 {
	switch {
	case v.IsInt():
		return v.AsInt()
	case v.IsFloat():
		return int64(v.AsFloat())
	case v.IsBool():
		if v.AsBool() {
			return 1
		}
	case v.IsString():
		var n int64
		fmt.Sscanf(v.AsString(), "%d", &n)
		return n
	}
	return 0
}
