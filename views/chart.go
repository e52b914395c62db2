package views

import (
	"fmt"
	"strings"
)

// blocks are the eighths of a cell, from empty to full.
var blocks = []rune{' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'}

// resample maps values onto at most n columns, each the mean of its share.
func resample(values []float64, n int) []float64 {
	if len(values) <= n || n <= 0 {
		return values
	}
	out := make([]float64, n)
	for i := range out {
		lo, hi := i*len(values)/n, (i+1)*len(values)/n
		var s float64
		for _, v := range values[lo:hi] {
			s += v
		}
		out[i] = s / float64(hi-lo)
	}
	return out
}

// sparkline draws values in one row of width cells.
func sparkline(values []float64, width int) string {
	cols := resample(values, width)
	lo, hi := bounds(cols)
	var b strings.Builder
	for _, v := range cols {
		b.WriteRune(blocks[1+level(v, lo, hi, 7)])
	}
	return b.String()
}

func bounds(values []float64) (lo, hi float64) {
	for i, v := range values {
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

// level scales v from [lo, hi] to 0..n; a flat series sits half way.
func level(v, lo, hi float64, n int) int {
	if hi <= lo {
		return n / 2
	}
	l := int((v-lo)/(hi-lo)*float64(n) + 0.5)
	return max(0, min(n, l))
}

// chartMark is a point drawn over a column chart (a validation loss).
type chartMark struct {
	step  int
	value float64
}

// columnChart draws values as columns of eighth blocks, height rows high and
// width cells wide including the y-axis labels, with an x-axis of steps
// first..last underneath (height+2 lines in all). Marks are drawn as • in
// the column of their step, on the same scale (which widens to hold them).
func columnChart(values []float64, first, last, width, height int, marks ...chartMark) []string {
	const label = 7 // "12.345 ┤"
	plot := max(1, width-label-1)
	height = max(1, height)
	cols := resample(values, plot)
	lo, hi := bounds(cols)
	for _, m := range marks {
		lo, hi = min(lo, m.value), max(hi, m.value)
	}
	// each mark's row and column
	type cell struct{ r, c int }
	dots := map[cell]bool{}
	for _, m := range marks {
		c := 0
		if last > first {
			c = (m.step - first) * (len(cols) - 1) / (last - first)
		}
		l := 1 + level(m.value, lo, hi, height*8-1)
		dots[cell{height - 1 - (l-1)/8, max(0, min(len(cols)-1, c))}] = true
	}
	lines := make([]string, 0, height+2)
	for r := 0; r < height; r++ {
		var b strings.Builder
		switch r {
		case 0:
			fmt.Fprintf(&b, "%*s ┤", label-1, short(hi))
		case height - 1:
			fmt.Fprintf(&b, "%*s ┤", label-1, short(lo))
		default:
			fmt.Fprintf(&b, "%*s │", label-1, "")
		}
		floor := (height - 1 - r) * 8
		for c, v := range cols {
			if dots[cell{r, c}] {
				b.WriteRune('•')
				continue
			}
			l := 1 + level(v, lo, hi, height*8-1) // the lowest value still shows
			b.WriteRune(blocks[max(0, min(8, l-floor))])
		}
		lines = append(lines, strings.TrimRight(b.String(), " "))
	}
	lines = append(lines, strings.Repeat(" ", label)+"└"+strings.Repeat("─", len(cols)))
	left, right := fmt.Sprintf("step %d", first), fmt.Sprintf("%d", last)
	gap := len(cols) - len(left) - len(right)
	if gap < 1 {
		right, gap = "", max(0, len(cols)-len(left))
	}
	lines = append(lines, strings.Repeat(" ", label+1)+left+strings.Repeat(" ", gap)+right)
	return lines
}

// short formats a chart label in at most six cells.
func short(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	if len(s) > 6 {
		s = fmt.Sprintf("%.3g", v)
	}
	return s
}
