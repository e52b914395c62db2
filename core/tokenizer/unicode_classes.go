package tokenizer

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"unicode"
)

// The pre-tokenizer's letter and number classes (\p{L} and \p{N} in the
// Qwen and Llama 3 split patterns) come from the Unicode version the
// reference tokenizers run on, not Go's: Go 1.26's unicode tables are
// Unicode 15.0, so letters and digits added since (CJK Extension I, Garay,
// Todhri, …) were "other" here and split text where the references do not.
// tools/js/unicode_classes.mjs writes the table from Node's regular
// expressions (make goldens).

//go:embed unicode_classes.json
var unicodeClassesJSON []byte

var letterTable, numberTable = loadUnicodeClasses()

func loadUnicodeClasses() (letters, numbers *unicode.RangeTable) {
	var t struct {
		Letter, Number [][2]rune
	}
	if err := json.Unmarshal(unicodeClassesJSON, &t); err != nil || len(t.Letter) == 0 || len(t.Number) == 0 {
		panic(fmt.Sprintf("tokenizer: the embedded unicode_classes.json is unusable (%v): rerun tools/js/unicode_classes.mjs", err))
	}
	return rangeTable(t.Letter), rangeTable(t.Number)
}

// rangeTable makes sorted inclusive ranges a unicode.RangeTable.
func rangeTable(rs [][2]rune) *unicode.RangeTable {
	t := &unicode.RangeTable{}
	for _, r := range rs {
		lo, hi := r[0], r[1]
		if lo <= 0xFFFF {
			t.R16 = append(t.R16, unicode.Range16{Lo: uint16(lo), Hi: uint16(min(hi, 0xFFFF)), Stride: 1})
			if hi <= 0xFFFF {
				continue
			}
			lo = 0x10000
		}
		t.R32 = append(t.R32, unicode.Range32{Lo: uint32(lo), Hi: uint32(hi), Stride: 1})
	}
	for _, r := range t.R16 {
		if r.Hi <= unicode.MaxLatin1 {
			t.LatinOffset++
		}
	}
	return t
}
