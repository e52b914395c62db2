package views

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"distill/app"
)

// runComparison is two runs side by side: their settings, how training
// went, and both loss curves on one scale.
type runComparison struct {
	a, b   app.RunRow
	ha, hb []app.Progress
}

// runsCompareReady carries the histories loadRunComparison read.
type runsCompareReady struct {
	cmp runComparison
	err error
}

func loadRunComparison(svc Service, a, b app.RunRow) tea.Cmd {
	return func() tea.Msg {
		ha, err := svc.RunHistory(a.ID)
		if err != nil {
			return runsCompareReady{err: fmt.Errorf("%s: %w", a.ID, err)}
		}
		hb, err := svc.RunHistory(b.ID)
		if err != nil {
			return runsCompareReady{err: fmt.Errorf("%s: %w", b.ID, err)}
		}
		return runsCompareReady{cmp: runComparison{a: a, b: b, ha: ha, hb: hb}}
	}
}

// runStats summarises a run's recorded steps.
type runStats struct {
	steps          int
	last, min      float64
	tokPerSec      float64
	elapsed        time.Duration
	losses         []float64
	hasLoss, valid bool
}

func statsOf(h []app.Progress) runStats {
	var s runStats
	var tps float64
	for _, p := range h {
		if p.Done {
			continue
		}
		s.losses = append(s.losses, p.Loss)
		if !s.hasLoss || p.Loss < s.min {
			s.min = p.Loss
		}
		s.hasLoss = true
		s.last, s.steps, s.elapsed = p.Loss, p.Step, p.Elapsed
		tps += p.TokensPerSec
	}
	if n := len(s.losses); n > 0 {
		s.tokPerSec = tps / float64(n)
		s.valid = true
	}
	return s
}

func (c runComparison) view(st Styles, width, height int) []string {
	sa, sb := statsOf(c.ha), statsOf(c.hb)
	col := max(16, (width-18)/2)
	row := func(name, x, y string) string {
		return " " + st.Muted.Render(fit(name, 14)) + fit(cut(x, col-1), col) + cut(y, col-1)
	}
	num := func(s runStats, f func(runStats) string) string {
		if !s.valid {
			return "—"
		}
		return f(s)
	}
	lines := []string{" " + st.Title.Render("compare runs"), "",
		row("run", c.a.ID, c.b.ID),
		row("method", strings.ToUpper(c.a.Method), strings.ToUpper(c.b.Method)),
		row("base", c.a.Base, c.b.Base),
		row("data", c.a.Dataset, c.b.Dataset),
		row("status", statusLabel(c.a.Status), statusLabel(c.b.Status)),
		row("best", c.a.Best, c.b.Best),
		row("steps", num(sa, func(s runStats) string { return fmt.Sprint(s.steps) }), num(sb, func(s runStats) string { return fmt.Sprint(s.steps) })),
		row("final loss", num(sa, func(s runStats) string { return fmt.Sprintf("%.4f", s.last) }), num(sb, func(s runStats) string { return fmt.Sprintf("%.4f", s.last) })),
		row("lowest loss", num(sa, func(s runStats) string { return fmt.Sprintf("%.4f", s.min) }), num(sb, func(s runStats) string { return fmt.Sprintf("%.4f", s.min) })),
		row("tokens/s", num(sa, func(s runStats) string { return fmt.Sprintf("%.0f", s.tokPerSec) }), num(sb, func(s runStats) string { return fmt.Sprintf("%.0f", s.tokPerSec) })),
		row("elapsed", num(sa, func(s runStats) string { return humanDuration(s.elapsed) }), num(sb, func(s runStats) string { return humanDuration(s.elapsed) })),
	}
	if sa.valid && sb.valid {
		// One scale for both curves, so their heights compare.
		lo, hi := bounds(append(append([]float64(nil), sa.losses...), sb.losses...))
		w := max(8, width-18)
		spark := func(values []float64) string {
			cols := resample(values, w)
			var b strings.Builder
			for _, v := range cols {
				b.WriteRune(blocks[1+level(v, lo, hi, 7)])
			}
			return b.String()
		}
		lines = append(lines, "", " "+st.Muted.Render(fmt.Sprintf("loss by step, one scale %s–%s", short(lo), short(hi))),
			" "+st.Muted.Render(fit("A", 14))+spark(sa.losses),
			" "+st.Muted.Render(fit("B", 14))+spark(sb.losses))
	}
	for i, l := range lines {
		if lipgloss.Width(l) > width {
			lines[i] = fit(l, width)
		}
	}
	return lines
}
