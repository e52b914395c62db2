package views

import (
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/table"
)

// Marks pick two rows of a list for comparison (space toggles one).

// toggleMark removes id from marks or adds it, keeping the last two.
func toggleMark[K comparable](marks []K, id K) []K {
	if j := slices.Index(marks, id); j >= 0 {
		return slices.Delete(marks, j, j+1)
	}
	if marks = append(marks, id); len(marks) > 2 {
		marks = marks[1:]
	}
	return marks
}

// markedPair is the two marked rows of all, or the one marked and the one
// under the cursor (nil when there is none). want says how many rows were
// asked for: fewer than two means the user must mark more; two asked but
// fewer found means a marked row is gone.
func markedPair[T any, K comparable](marks []K, cursor *T, all []T, id func(T) K) (pair []T, want int) {
	ids := slices.Clone(marks)
	if cursor != nil && len(ids) == 1 && id(*cursor) != ids[0] {
		ids = append(ids, id(*cursor))
	}
	for _, k := range ids {
		for _, r := range all {
			if id(r) == k {
				pair = append(pair, r)
			}
		}
	}
	return pair, len(ids)
}

// The row under a list's cursor is marked with "▸" in the first cell's
// first column, which every row keeps blank for it (a marked row shows
// "✓" in the second), so the selection shows without colour (NO_COLOR)
// as well as with it.
const (
	rowBlank  = " "
	rowCursor = "▸"
)

// rowSlot is the first cell's two leading columns: the cursor's, blank
// until the view draws it, and the comparison mark's.
func rowSlot(marked bool) string {
	if marked {
		return rowBlank + "✓"
	}
	return rowBlank + " "
}

// tableWithCursor draws t with its cursor's row marked.
func tableWithCursor(t table.Model) string {
	rows, c := t.Rows(), t.Cursor()
	if c < 0 || c >= len(rows) || len(rows[c]) == 0 {
		return t.View()
	}
	rows = slices.Clone(rows)
	row := slices.Clone(rows[c])
	if rest, ok := strings.CutPrefix(row[0], rowBlank); ok {
		row[0] = rowCursor + rest
	}
	rows[c] = row
	t.SetRows(rows)
	return t.View()
}
