package tokenizer

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small scanner for the two big fields of tokenizer.json, model.vocab
// (an object of token → id) and model.merges (an array of "a b" strings or
// of [a, b] pairs). encoding/json spends most of a load re-validating and
// reflecting over them; the input here has already been validated by
// encoding/json as part of the whole file, so the scanner only needs to
// walk it, and it is several times faster.

type jsonScan struct {
	b []byte
	i int
}

var errScan = errors.New("unexpected JSON")

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScan) expect(c byte) error {
	if s.peek() != c {
		return errScan
	}
	s.i++
	return nil
}

// str reads a JSON string.
func (s *jsonScan) str() (string, error) {
	if s.peek() != '"' {
		return "", errScan
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			out := string(s.b[start:s.i])
			s.i++
			return out, nil
		}
		if c == '\\' {
			return s.strSlow(start)
		}
		s.i++
	}
	return "", errScan
}

// strSlow decodes a string with escapes, as encoding/json does (invalid
// surrogates become U+FFFD).
func (s *jsonScan) strSlow(start int) (string, error) {
	buf := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(buf), nil
		case c != '\\':
			buf = append(buf, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", errScan
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", errScan
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					if v, ok := s.hex4(); ok {
						r2 = v
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						buf = utf8.AppendRune(buf, dec)
						continue
					}
					s.i = save
				}
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errScan
		}
	}
	return "", errScan
}

func (s *jsonScan) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// integer reads a JSON number that must be an integer.
func (s *jsonScan) integer() (int, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		s.i++
	}
	return strconv.Atoi(string(s.b[start:s.i]))
}

// scanVocab parses {"token": id, ...}.
func scanVocab(b []byte) (map[string]int, error) {
	s := &jsonScan{b: b}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	vocab := make(map[string]int, len(b)/16)
	if s.peek() == '}' {
		return vocab, nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		v, err := s.integer()
		if err != nil {
			return nil, err
		}
		vocab[k] = v
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			return vocab, nil
		default:
			return nil, errScan
		}
	}
}

// scanMerges parses ["a b", ...] or [["a", "b"], ...]. pairs reports
// whether each element was a pair; strings are returned unsplit otherwise.
func scanMerges(b []byte) (merges [][2]string, pairs bool, err error) {
	s := &jsonScan{b: b}
	if err := s.expect('['); err != nil {
		return nil, false, err
	}
	if s.peek() == ']' {
		return nil, false, nil
	}
	pairs = s.peek() == '['
	for {
		var m [2]string
		if pairs {
			if err := s.expect('['); err != nil {
				return nil, false, err
			}
			if m[0], err = s.str(); err != nil {
				return nil, false, err
			}
			if err := s.expect(','); err != nil {
				return nil, false, err
			}
			if m[1], err = s.str(); err != nil {
				return nil, false, err
			}
			if err := s.expect(']'); err != nil {
				return nil, false, err
			}
		} else if m[0], err = s.str(); err != nil {
			return nil, false, err
		}
		merges = append(merges, m)
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			return merges, pairs, nil
		default:
			return nil, false, errScan
		}
	}
}
