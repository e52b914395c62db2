package data

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// readCSV reads a classification CSV: a header row naming the columns, one
// of them the label (Options.LabelColumn, default "label"); every other
// column is a feature, and a file whose only other column is "text" holds
// text rows. Fields may be quoted (RFC 4180: "" is a quote, and quoted
// fields may span lines); header names are trimmed of spaces, values are
// kept as they are.
func (d *Dataset) readCSV() error {
	if d.Format != "" && d.Format != FormatClassification {
		return fmt.Errorf("load dataset %s: a CSV file holds classification rows, not %s; use JSONL for %s", d.Path, d.Format, d.Format)
	}
	d.Format = FormatClassification
	data, err := readFile(d.Path)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	cr := csv.NewReader(bytes.NewReader(data))
	header, err := cr.Read()
	if err == io.EOF {
		return nil // no rows: Load reports the empty file
	}
	if err != nil {
		return fmt.Errorf("load dataset %s: header: %w", d.Path, err)
	}
	label := d.opt.labelColumn()
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
		if header[i] == "" {
			return fmt.Errorf("load dataset %s:1: column %d has no name in the header", d.Path, i+1)
		}
		if slices.Contains(header[:i], header[i]) {
			return fmt.Errorf("load dataset %s:1: column %q appears twice in the header", d.Path, header[i])
		}
	}
	if !slices.Contains(header, label) {
		return fmt.Errorf("load dataset %s:1: no %q column in the header [%s]; name the label column in the options", d.Path, label, strings.Join(header, ", "))
	}
	if len(header) < 2 {
		return fmt.Errorf("load dataset %s:1: the header has only the label column; a classifier needs text or feature columns", d.Path)
	}
	d.setFeatures(header)
	labelAt := slices.Index(header, label)
	const quoteRunaway = 20 // lines one bad record may span before it is an unclosed quote, not a bad row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("load dataset %s: %w", d.Path, err)
			}
			line := pe.StartLine
			if span := pe.Line - pe.StartLine; span >= quoteRunaway {
				// An unclosed quote takes every later line into one field:
				// skipping that "row" would drop them all, silently.
				return fmt.Errorf("load dataset %s:%d: a quoted field opened on this line runs to line %d (%d lines read as one field): close the quote, or write a quote inside a field as \"\"", d.Path, line, pe.Line, span+1)
			}
			msg := pe.Err.Error()
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				msg = fmt.Sprintf("%d fields, but the header has %d columns", len(rec), len(header))
			} else if pe.Line != pe.StartLine {
				msg = fmt.Sprintf("%s (at line %d, column %d)", msg, pe.Line, pe.Column)
			} else {
				msg = fmt.Sprintf("%s (at column %d)", msg, pe.Column)
			}
			if err := d.skip(line, errors.New(msg)); err != nil {
				return err
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if col, at := invalidUTF8(rec); col >= 0 {
			// Latin-1 or another encoding: its bytes would be trained on as
			// mojibake.
			if err := d.skip(line, rowErr(header[col], "not UTF-8 at byte %d of the field (re-save the file as UTF-8)", at+1)); err != nil {
				return err
			}
			continue
		}
		r := Row{Line: line, Label: rec[labelAt]}
		if strings.TrimSpace(r.Label) == "" {
			if err := d.skip(line, rowErr(label, "empty")); err != nil {
				return err
			}
			continue
		}
		if err := d.checkLabel(r.Label, label); err != nil {
			if err := d.skip(line, err); err != nil {
				return err
			}
			continue
		}
		if d.textRows {
			r.Text = rec[1-labelAt]
		} else {
			r.Features = make(map[string]string, len(header)-1)
			for i, h := range header {
				if i != labelAt {
					r.Features[h] = rec[i]
				}
			}
		}
		d.Rows = append(d.Rows, r)
	}
}

// invalidUTF8 finds the first field of rec that is not UTF-8 and the
// offset of its first bad byte; -1 when all are.
func invalidUTF8(rec []string) (col, at int) {
	for i, f := range rec {
		if bad := firstBadByte(f); bad >= 0 {
			return i, bad
		}
	}
	return -1, 0
}

// firstBadByte is the offset of the first byte of s that is not part of
// UTF-8 text; -1 when s is UTF-8.
func firstBadByte(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}
