// Package eval computes evaluation metrics for the three task kinds and
// renders them as plain-text tables: classification (Classification), IDP
// structured extraction (IDP) and code generation (Codegen). Everything here
// is a pure function of its inputs: no model, no storage, no terminal. The
// reports marshal to JSON with snake_case keys (the file written under
// runs/<run-id>/eval/), Summary gives the headline numbers for the
// evaluations table, and Table prints the report for a person.
//
// Conventions shared by every report:
//
//   - A ratio whose denominator is zero is 0 (scikit-learn's zero_division=0),
//     never NaN, so every report marshals to JSON.
//   - Rates are fractions in [0, 1]; only the confusion matrix's row
//     percentages are in [0, 100].
//   - F1 is 2·TP / (2·TP + FP + FN), which equals the harmonic mean of
//     precision and recall whenever both are defined, and is 0 when
//     TP + FP + FN is 0.
//   - Input problems tied to one example are *RowError values carrying the
//     example's 0-based index in the slices passed in.
package eval

import (
	"fmt"
)

// RowError is a problem with one example: Row is its 0-based index in the
// slices given to Classification or IDP.
type RowError struct {
	Row int
	Msg string
}

func (e *RowError) Error() string { return fmt.Sprintf("eval: row %d: %s", e.Row, e.Msg) }

// ratio is num/den, or 0 when den is 0.
func ratio(num, den float64) float64 {
	if den == 0 {
		return 0
	}
	return num / den
}

// f1 is 2·TP / (2·TP + FP + FN), 0 when that denominator is 0.
func f1(tp, fp, fn int) float64 {
	return ratio(float64(2*tp), float64(2*tp+fp+fn))
}
