package views

import (
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

// comparison is two evaluations shown side by side: a is the baseline, b
// the candidate; differences read b − a.
type comparison struct {
	a, b       app.EvalReport
	rowA, rowB app.EvalRow
}

// compareReady carries the two reports that loadComparison read.
type compareReady struct {
	cmp comparison
	err error
}

// signed formats a difference with its sign, coloured: better is good.
func signed(st Styles, d float64, format string, higherBetter bool) string {
	s := fmt.Sprintf("%+"+format, d)
	switch {
	case d == 0 || strings.Trim(s, "+-0.%") == "":
		return st.Muted.Render(s)
	case (d > 0) == higherBetter:
		return st.Good.Render(s)
	}
	return st.Bad.Render(s)
}

// who names the model or adapter an evaluation scored.
func who(r app.EvalReport) string {
	if r.Adapter != "" {
		return r.Adapter
	}
	return r.Model + " (base)"
}

// compareView draws the comparison in width × height cells.
func (c comparison) view(st Styles, raw bool, width, height int) []string {
	title := fmt.Sprintf("compare #%d %s  ◂▸  #%d %s", c.a.ID, who(c.a), c.b.ID, who(c.b))
	lines := []string{" " + st.Title.Render(cut(title, max(10, width-2))), ""}
	if c.a.Kind != c.b.Kind {
		return append(lines, " "+st.Bad.Render(fmt.Sprintf("cannot compare %s evaluation with %s one: mark two of the same kind", article(c.a.Kind), article(c.b.Kind))))
	}
	switch {
	case c.a.Calibrated != nil && c.b.Calibrated != nil:
		a, b := c.a.Calibrated, c.b.Calibrated
		if raw && c.a.Raw != nil && c.b.Raw != nil {
			a, b = c.a.Raw, c.b.Raw
		}
		lines = append(lines, compareClass(st, a, b, width)...)
	case c.a.IDP != nil && c.b.IDP != nil:
		lines = append(lines, compareIDP(st, c.a.IDP, c.b.IDP, height-len(lines))...)
	case c.a.Code != nil && c.b.Code != nil:
		lines = append(lines, compareCode(st, c.a.Code, c.b.Code)...)
	default:
		lines = append(lines, " "+st.Warn.Render("these reports hold nothing to compare"))
	}
	return lines
}

// compareClass shows both confusion matrices side by side when they fit,
// the per-cell difference, and the per-class F1 of each with its change.
func compareClass(st Styles, a, b *app.ClassEval, width int) []string {
	var out []string
	same := slices.Equal(a.Labels, b.Labels)
	lw := labelWidth(append(slices.Clone(a.Labels), b.Labels...))
	if same {
		ma, mb := matrixLines(st, a, lw), matrixLines(st, b, lw)
		ma, mb = ma[:len(ma)-1], mb[:len(mb)-1] // one legend below both
		wa := 0
		for _, l := range ma {
			wa = max(wa, lipgloss.Width(l))
		}
		if wa*2+3 <= width {
			out = append(out, fit(" "+st.Muted.Render("baseline"), wa+3)+st.Muted.Render("candidate"))
			for i := range ma {
				out = append(out, fit(ma[i], wa+3)+mb[i])
			}
			out = append(out, "")
		}
	}
	var delta []string
	if same {
		delta = deltaMatrix(st, a, b, lw)
	} else {
		delta = []string{" " + st.Warn.Render("the label sets differ: no cell-by-cell difference")}
	}
	scores := []string{st.Muted.Render(fmt.Sprintf("%-*s %6s %6s %7s", lw, "F1", "base", "cand", "Δ"))}
	for _, l := range b.Labels {
		fa, fb, okA, okB := 0.0, 0.0, false, false
		for _, p := range a.PerClass {
			if p.Label == l {
				fa, okA = p.F1, true
			}
		}
		for _, p := range b.PerClass {
			if p.Label == l {
				fb, okB = p.F1, true
			}
		}
		if !okA || !okB {
			continue
		}
		scores = append(scores, fmt.Sprintf("%-*s %6.2f %6.2f %s", lw, cut(l, lw), fa, fb, fit(signed(st, fb-fa, "6.2f", true), 7)))
	}
	scores = append(scores,
		fmt.Sprintf("%-*s %6.3f %6.3f %s", lw, "macro-F1", a.MacroF1, b.MacroF1, signed(st, b.MacroF1-a.MacroF1, "6.3f", true)),
		fmt.Sprintf("%-*s %6.3f %6.3f %s", lw, "accuracy", a.Accuracy, b.Accuracy, signed(st, b.Accuracy-a.Accuracy, "6.3f", true)))
	return append(out, besideOrBelow(delta, scores, width)...)
}

// deltaMatrix is the candidate's confusion counts minus the baseline's, per
// cell: more on the diagonal is better, more off it worse.
func deltaMatrix(st Styles, a, b *app.ClassEval, lw int) []string {
	const cw = 6
	count := func(c *app.ClassEval, i, j int) int {
		if i < len(c.Confusion) && j < len(c.Confusion[i]) {
			return c.Confusion[i][j]
		}
		return 0
	}
	out := []string{spaces(lw+2) + st.Muted.Render("Δ count (candidate − baseline), predicted →")}
	hdr := spaces(lw + 2)
	for _, l := range b.Labels {
		hdr += fit(cut(l, cw), cw) + " "
	}
	out = append(out, hdr)
	for i, l := range b.Labels {
		line := " " + fit(l, lw) + " "
		for j := range b.Labels {
			d := count(b, i, j) - count(a, i, j)
			line += fit(signed(st, float64(d), ".0f", i == j), cw) + " "
		}
		out = append(out, line)
	}
	return out
}

// compareIDP lists every field's F1 in both, regressions first.
func compareIDP(st Styles, a, b *app.IDPEval, height int) []string {
	out := []string{
		fmt.Sprintf(" schema-valid %5.1f%% → %5.1f%%  %s", 100*a.SchemaValidRate, 100*b.SchemaValidRate, signed(st, 100*(b.SchemaValidRate-a.SchemaValidRate), ".1f", true)),
		fmt.Sprintf(" exact match  %5.1f%% → %5.1f%%  %s", 100*a.ExactMatchRate, 100*b.ExactMatchRate, signed(st, 100*(b.ExactMatchRate-a.ExactMatchRate), ".1f", true)),
		fmt.Sprintf(" micro F1     %6.3f → %6.3f  %s", a.Micro.F1, b.Micro.F1, signed(st, b.Micro.F1-a.Micro.F1, ".3f", true)),
		"",
	}
	base := map[string]app.FieldScore{}
	fw := 8
	for _, f := range a.PerField {
		base[f.Field] = f
	}
	type row struct {
		field  string
		fa, fb float64
	}
	var rows []row
	for _, f := range b.PerField {
		fw = max(fw, min(28, lipgloss.Width(f.Field)))
		rows = append(rows, row{f.Field, base[f.Field].F1, f.F1})
	}
	slices.SortStableFunc(rows, func(x, y row) int {
		if dx, dy := x.fb-x.fa, y.fb-y.fa; dx != dy {
			if dx < dy {
				return -1
			}
			return 1
		}
		return strings.Compare(x.field, y.field)
	})
	out = append(out, st.Muted.Render(fmt.Sprintf(" %-*s %6s %6s %7s", fw, "field F1", "base", "cand", "Δ")))
	room := max(1, height-len(out))
	for i, r := range rows {
		if i == room-1 && len(rows) > room {
			out = append(out, st.Muted.Render(fmt.Sprintf(" … %d more fields", len(rows)-i)))
			break
		}
		out = append(out, fmt.Sprintf(" %-*s %6.2f %6.2f %s", fw, cut(r.field, fw), r.fa, r.fb, signed(st, r.fb-r.fa, "6.2f", true)))
	}
	return out
}

// compareCode sets the build, lint and pass@1 rates of both side by side.
func compareCode(st Styles, a, b *app.CodeEval) []string {
	line := func(name string, x, y float64) string {
		return fmt.Sprintf(" %-8s %5.1f%% → %5.1f%%  %s", name, 100*x, 100*y, signed(st, 100*(y-x), ".1f", true))
	}
	return []string{
		fmt.Sprintf(" %d tasks → %d tasks", a.N, b.N), "",
		line("build", a.BuildRate, b.BuildRate),
		line("lint", a.LintRate, b.LintRate),
		line("pass@1", a.PassAt1, b.PassAt1),
	}
}

// article is kind with "a" or "an" before it ("an idp", "a classification").
func article(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}
