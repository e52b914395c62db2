package eval

import (
	"bufio"
	"fmt"
	"strings"
	"unicode/utf8"
)

// textTable lays out rows of cells in columns two spaces apart. Columns
// marked right are right-aligned (numbers); the rest are left-aligned.
// Trailing blanks are trimmed from every line.
type textTable struct {
	right []bool
	rows  [][]string
}

func newTable(right ...bool) *textTable { return &textTable{right: right} }

func (t *textTable) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *textTable) write(w *bufio.Writer, indent string) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.Reset()
		b.WriteString(indent)
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < len(t.right) && t.right[i] {
				b.WriteString(pad)
				b.WriteString(c)
			} else {
				b.WriteString(c)
				b.WriteString(pad)
			}
		}
		w.WriteString(strings.TrimRight(b.String(), " "))
		w.WriteByte('\n')
	}
}

// f4 formats a metric with four decimals.
func f4(x float64) string { return fmt.Sprintf("%.4f", x) }

// pct1 formats a fraction in [0, 1] as a percentage with one decimal.
func pct1(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// itoa formats a count.
func itoa(n int) string { return fmt.Sprint(n) }

// plural is "1 task" or "n tasks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
