package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder is one step of tokenizer.json's decoder chain. Like HF's
// Decoder::decode_chain it maps a list of token strings to a new list; the
// final list is concatenated.
type decoder interface {
	decodeChain(toks []string, added func(string) bool) []string
	// raw maps a single token to the bytes it stands for, without the
	// position-dependent steps (Strip, Metaspace's first-token rule); used
	// by TokenBytes.
	raw(tok string) string
}

type decoderSeq []decoder

func (seq decoderSeq) decodeChain(toks []string, added func(string) bool) []string {
	for _, d := range seq {
		toks = d.decodeChain(toks, added)
	}
	return toks
}

func (seq decoderSeq) raw(tok string) string {
	for _, d := range seq {
		tok = d.raw(tok)
	}
	return tok
}

// byteLevelDec maps byte-level characters back to bytes and decodes UTF-8,
// replacing invalid sequences with U+FFFD. Added tokens pass through as
// their content, as in transformers.js (HF maps them through the byte table,
// which gives the same text for the ASCII contents real tokenizers use).
type byteLevelDec struct{}

func (byteLevelDec) decodeChain(toks []string, added func(string) bool) []string {
	var out []string
	var buf []byte
	flush := func() {
		if len(buf) > 0 {
			out = append(out, lossyUTF8(buf))
			buf = buf[:0]
		}
	}
	for _, t := range toks {
		if added != nil && added(t) {
			flush()
			out = append(out, t)
			continue
		}
		if b, ok := byteLevelDecode(t); ok {
			buf = append(buf, b...)
		} else {
			buf = append(buf, t...)
		}
	}
	flush()
	return out
}

func (byteLevelDec) raw(tok string) string {
	if b, ok := byteLevelDecode(tok); ok {
		return string(b)
	}
	return tok
}

// replaceDec replaces a pattern in each token.
type replaceDec struct {
	r replaceNorm
}

func (d replaceDec) decodeChain(toks []string, _ func(string) bool) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = d.r.normalize(t)
	}
	return out
}

func (d replaceDec) raw(tok string) string { return d.r.normalize(tok) }

// byteFallbackDec turns runs of "<0xNN>" tokens into text. An invalid UTF-8
// run becomes one U+FFFD per byte, as HF does.
type byteFallbackDec struct{}

func (byteFallbackDec) decodeChain(toks []string, _ func(string) bool) []string {
	out := make([]string, 0, len(toks))
	var buf []byte
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if s := string(buf); isValidUTF8(s) {
			out = append(out, s)
		} else {
			for range buf {
				out = append(out, "\uFFFD")
			}
		}
		buf = buf[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok {
			buf = append(buf, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

func (byteFallbackDec) raw(tok string) string {
	if b, ok := parseByteToken(tok); ok {
		return string([]byte{b})
	}
	return tok
}

// fuseDec joins all tokens into one.
type fuseDec struct{}

func (fuseDec) decodeChain(toks []string, _ func(string) bool) []string {
	return []string{strings.Join(toks, "")}
}

func (fuseDec) raw(tok string) string { return tok }

// stripDec removes up to start leading and stop trailing content characters
// from each token.
type stripDec struct {
	content     rune
	start, stop int
}

func (d stripDec) decodeChain(toks []string, _ func(string) bool) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		r := []rune(t)
		lo := 0
		for lo < d.start && lo < len(r) && r[lo] == d.content {
			lo++
		}
		hi := len(r)
		for k := 0; k < d.stop && hi > lo && r[hi-1] == d.content; k++ {
			hi--
		}
		out[i] = string(r[lo:hi])
	}
	return out
}

func (stripDec) raw(tok string) string { return tok }

// metaspaceDec turns the metaspace character back into spaces; in the first
// token it is dropped unless prepend_scheme is "never" (HF behaviour).
type metaspaceDec struct {
	replacement rune
	prepend     prependScheme
}

func (d metaspaceDec) decodeChain(toks []string, _ func(string) bool) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		drop := i == 0 && d.prepend != prependNever
		out[i] = strings.Map(func(r rune) rune {
			if r == d.replacement {
				if drop {
					return -1
				}
				return ' '
			}
			return r
		}, t)
	}
	return out
}

func (d metaspaceDec) raw(tok string) string {
	return strings.ReplaceAll(tok, string(d.replacement), " ")
}

// bpeSuffixDec is the BPEDecoder: the end-of-word suffix becomes a space
// (nothing after the last token).
type bpeSuffixDec struct {
	suffix string
}

func (d bpeSuffixDec) decodeChain(toks []string, _ func(string) bool) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		rep := " "
		if i == len(toks)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, rep)
	}
	return out
}

func (d bpeSuffixDec) raw(tok string) string { return strings.ReplaceAll(tok, d.suffix, " ") }

func isValidUTF8(s string) bool {
	for i := 0; i < len(s); {
		if s[i] < 0x80 {
			i++
			continue
		}
		n, lo, hi := utf8Lead(s[i])
		if n == 0 || i+n > len(s) || s[i+1] < lo || s[i+1] > hi {
			return false
		}
		for k := 2; k < n; k++ {
			if s[i+k] < 0x80 || s[i+k] > 0xBF {
				return false
			}
		}
		i += n
	}
	return true
}

// StreamDecoder turns ids into text as they are generated, emitting only
// complete characters: bytes of a multi-byte character split over tokens are
// held back until the character is complete. The concatenation of what Add
// and Flush return equals Decode of all the ids (with the same skipSpecial).
//
// It keeps a short window of ids and, like HF's DecodeStream, decodes the
// window and emits what it adds to the text decoded before, so
// position-dependent decoders (Llama 2's leading-space strip) are right.
// For runs of byte-fallback tokens that are not valid UTF-8 the streamed
// text can differ from Decode, which (as HF) turns the whole run into U+FFFD
// after the fact. Not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int
	prefix      string
}

// NewStreamDecoder returns a StreamDecoder for t.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Add consumes one id and returns the text it completes (possibly "").
func (d *StreamDecoder) Add(id int) string {
	if !d.t.validID(id) || (d.skipSpecial && d.t.isSkippable(id)) {
		return "" // Decode drops these too
	}
	d.ids = append(d.ids, id)
	text := d.t.Decode(d.ids, d.skipSpecial)
	if len(text) <= len(d.prefix) || strings.HasSuffix(text, "\uFFFD") && d.incomplete() {
		return "" // incomplete character (or nothing new) so far
	}
	return d.emit(text)
}

// incomplete says the window's bytes end in the first bytes of a
// character that more tokens could complete. A U+FFFD the model writes as
// a character (bytes EF BF BD) is complete: it is streamed, not held back
// with the window growing behind it.
func (d *StreamDecoder) incomplete() bool {
	var b []byte
	for _, id := range d.ids[max(0, len(d.ids)-utf8.UTFMax):] {
		b = append(b, d.t.TokenBytes(id)...)
	}
	for k := 1; k <= min(len(b), utf8.UTFMax-1); k++ {
		if c := b[len(b)-k]; utf8.RuneStart(c) {
			return c >= 0xC0 && !utf8.FullRune(b[len(b)-k:])
		}
	}
	return false
}

// Flush returns any text still held back (incomplete characters become
// U+FFFD, as Decode renders them) and resets the decoder: the next id starts
// a new text.
func (d *StreamDecoder) Flush() string {
	text := ""
	if len(d.ids) > 0 {
		text = d.t.Decode(d.ids, d.skipSpecial)
	}
	out := ""
	if len(text) > len(d.prefix) {
		out = d.emit(text)
	}
	d.ids, d.prefix = d.ids[:0], ""
	return out
}

func (d *StreamDecoder) emit(text string) string {
	var out string
	if strings.HasPrefix(text, d.prefix) {
		out = text[len(d.prefix):]
	} else {
		// The window's text changed in place (an invalid byte-fallback
		// run, see above); emit the text from the first difference.
		k := 0
		for k < len(text) && k < len(d.prefix) && text[k] == d.prefix[k] {
			k++
		}
		out = text[k:]
	}
	// Keep the last token as context for the next step, so that it is not
	// decoded as a first token. When it is a byte-fallback token, keep the
	// tokens of its whole character: HF decodes a run of byte tokens as a
	// unit, and a run that starts mid-character would decode to U+FFFD.
	j := len(d.ids) - 1
	if b, ok := d.t.fallbackByte(d.ids[j]); ok && !utf8.RuneStart(b) {
		for k := j - 1; k >= 0 && j-k < utf8.UTFMax; k-- {
			b, ok := d.t.fallbackByte(d.ids[k])
			if !ok {
				break
			}
			if utf8.RuneStart(b) {
				j = k
				break
			}
		}
	}
	d.ids = append(d.ids[:0], d.ids[j:]...)
	d.prefix = d.t.Decode(d.ids, d.skipSpecial)
	return out
}
