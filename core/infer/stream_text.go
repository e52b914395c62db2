package infer

import (
	"strings"

	"distill/core/tokenizer"
)

// streamText is a generation's text as it grows: each token decoded
// incrementally (tokenizer.StreamDecoder: complete characters only, and
// linear in the tokens where decoding every token's whole output again
// was quadratic), stop strings searched where a token's text could
// complete one, and the part that may be handed out: never the start of
// a stop string that may still complete.
type streamText struct {
	dec     textStream
	stops   []string
	maxStop int
	text    string
	emitted int // bytes handed out
}

func newStreamText(tok Detokenizer, stops []string) *streamText {
	st := &streamText{dec: streamOf(tok), stops: stops}
	for _, s := range stops {
		st.maxStop = max(st.maxStop, len(s))
	}
	return st
}

// add appends id's text; on a stop string the text is cut before it and
// add reports true.
func (st *streamText) add(id int) (stopped bool) {
	return st.grow(st.dec.Add(id))
}

// grow appends piece, searching for a stop string from where one ending
// in piece could start.
func (st *streamText) grow(piece string) bool {
	if piece == "" {
		return false
	}
	from := max(0, len(st.text)-st.maxStop+1)
	st.text += piece
	if cut, hit := firstStop(st.text[from:], st.stops); hit {
		st.text = st.text[:from+cut]
		return true
	}
	return false
}

// ready returns the text that may be handed out now, holding back what
// could still grow into a stop string, and counts it as handed out.
func (st *streamText) ready() string {
	safe := len(st.text) - max(st.maxStop-1, 0)
	for safe > st.emitted && safe < len(st.text) && !utf8RuneStart(st.text[safe]) {
		safe--
	}
	if safe <= st.emitted {
		return ""
	}
	out := st.text[st.emitted:safe]
	st.emitted = safe
	return out
}

// finish adds the characters the decoder still holds (an unfinished one
// becomes U+FFFD, as Decode renders it; a stop string in them cuts) and
// returns all that was not handed out.
func (st *streamText) finish(stopped bool) string {
	if !stopped {
		st.grow(st.dec.Flush())
	}
	out := st.text[min(st.emitted, len(st.text)):]
	st.emitted = len(st.text)
	return out
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// textStream decodes ids one at a time into complete characters.
type textStream interface {
	Add(id int) string
	Flush() string
}

// streamOf is tok's stream decoder (tokenizer.Tokenizer has one), or one
// that decodes every id so far again for a Detokenizer without.
func streamOf(tok Detokenizer) textStream {
	if s, ok := tok.(interface {
		NewStreamDecoder(skipSpecial bool) *tokenizer.StreamDecoder
	}); ok {
		return s.NewStreamDecoder(true)
	}
	return &redecoder{tok: tok}
}

// redecoder is textStream by Decode of all the ids each time, holding back
// a tail of U+FFFD (bytes of a character still to come).
type redecoder struct {
	tok  Detokenizer
	ids  []int
	done int // bytes returned
}

func (r *redecoder) Add(id int) string {
	r.ids = append(r.ids, id)
	t := r.tok.Decode(r.ids, true)
	if strings.HasSuffix(t, "\uFFFD") || len(t) <= r.done {
		return ""
	}
	out := t[r.done:]
	r.done = len(t)
	return out
}

func (r *redecoder) Flush() string {
	t := r.tok.Decode(r.ids, true)
	if len(t) <= r.done {
		return ""
	}
	out := t[r.done:]
	r.done = len(t)
	return out
}

// firstStop is the index of the earliest stop string in text.
func firstStop(text string, stops []string) (int, bool) {
	best, hit := len(text), false
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && i < best {
			best, hit = i, true
		}
	}
	return best, hit
}
