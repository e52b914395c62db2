package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// GPT-2's byte-level alphabet: every byte gets a printable rune so that BPE
// never sees whitespace or control characters. Printable Latin-1 bytes map
// to themselves; the other 68 bytes map to U+0100 upwards, in byte order.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	// byteRuneStr[b] is string(byteToRune[b]), precomputed.
	byteRuneStr [256]string
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteRuneStr[b] = string(byteToRune[b])
	}
}

// byteLevelEncode maps raw bytes to their byte-level runes ("Ġ" for a space).
func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteRuneStr[s[i]])
	}
	return sb.String()
}

// byteLevelDecode maps byte-level runes back to bytes. ok is false when a
// rune is outside the alphabet (HF then keeps the token's UTF-8 bytes).
func byteLevelDecode(tok string) (b []byte, ok bool) {
	b = make([]byte, 0, len(tok))
	for _, r := range tok {
		c, found := runeToByte[r]
		if !found {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// lossyUTF8 converts bytes to a string, replacing each maximal ill-formed
// subpart with one U+FFFD, as Rust's String::from_utf8_lossy and the WHATWG
// TextDecoder do (Go's own conversion would give one U+FFFD per byte).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	i := 0
	for i < len(b) {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		n, lo, hi := utf8Lead(c)
		if n == 0 {
			sb.WriteString("\uFFFD")
			i++
			continue
		}
		j := i + 1
		ok := true
		for k := 1; k < n; k++ {
			if j >= len(b) {
				ok = false
				break
			}
			cb := b[j]
			l, h := byte(0x80), byte(0xBF)
			if k == 1 {
				l, h = lo, hi
			}
			if cb < l || cb > h {
				ok = false
				break
			}
			j++
		}
		if ok {
			sb.Write(b[i:j])
		} else {
			sb.WriteString("\uFFFD")
		}
		i = j
	}
	return sb.String()
}

// utf8Lead returns the sequence length a lead byte announces and the valid
// range of the second byte; n is 0 for bytes that never start a sequence.
func utf8Lead(c byte) (n int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}

// parseByteToken recognises SentencePiece byte-fallback tokens "<0xNN>".
func parseByteToken(tok string) (byte, bool) {
	if len(tok) != 6 || tok[0] != '<' || tok[1] != '0' || tok[2] != 'x' || tok[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(tok[3])
	lo, ok2 := hexVal(tok[4])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// byteTokenName is the vocabulary name of byte b under byte fallback.
func byteTokenName(b byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})
}
