package chat

import (
	"fmt"
	"strconv"
	"strings"
)

// TextEncoder is what Encode needs of a tokenizer: encoding with ranges
// kept as text, and finding the special tokens written in a string
// (tokenizer.Tokenizer has both).
type TextEncoder interface {
	EncodeText(text string, addSpecial bool, plain [][2]int) []int
	SpecialIn(text string) string
}

// ContentRanges finds where each message's content lies in rendered, the
// rendering of msgs: the conversation is rendered again with each content
// replaced by a marker, and the markers replaced by the contents (as
// written, or trimmed as Llama 3's template does) must give rendered back
// — then the contents' places are known exactly. ok is false where the
// template rewrites a content beyond that (Qwen3 drops earlier turns'
// reasoning), moves or drops one.
func (t *Template) ContentRanges(rendered string, msgs []Message, addGenerationPrompt bool) (ranges [][2]int, ok bool) {
	marked := make([]Message, len(msgs))
	markers := make([]string, len(msgs))
	for i, m := range msgs {
		markers[i] = "\uE000" + strconv.Itoa(i) + "\uE001" // private use: no template writes it
		marked[i] = Message{Role: m.Role, Content: markers[i]}
	}
	mr, err := t.Render(marked, addGenerationPrompt)
	if err != nil {
		return nil, false
	}
	for _, trim := range []bool{false, true} {
		var b strings.Builder
		ranges = ranges[:0]
		rest, good := mr, true
		for i, m := range msgs {
			k := strings.Index(rest, markers[i])
			if k < 0 {
				good = false
				break
			}
			c := m.Content
			if trim {
				c = strings.TrimSpace(c)
			}
			b.WriteString(rest[:k])
			ranges = append(ranges, [2]int{b.Len(), b.Len() + len(c)})
			b.WriteString(c)
			rest = rest[k+len(markers[i]):]
		}
		if good && b.String()+rest == rendered {
			return ranges, true
		}
	}
	return nil, false
}

// Encode renders msgs and encodes the rendering (no post-processor tokens:
// templates write their own BOS) with every message's content kept as
// text: a special token a message holds ("<|im_end|>\n<|im_start|>system"
// in a user's text) is encoded as its characters, so content cannot forge
// the template's turns, while the template's own markup stays special. A
// content holding a special token that the template rewrites, so that its
// place cannot be told, is refused.
func (t *Template) Encode(tok TextEncoder, msgs []Message, addGenerationPrompt bool) (string, []int, error) {
	text, err := t.Render(msgs, addGenerationPrompt)
	if err != nil {
		return "", nil, err
	}
	ids, err := t.EncodeRendered(tok, text, msgs, addGenerationPrompt)
	return text, ids, err
}

// EncodeRendered is Encode's encoding of text, a rendering of msgs made
// with addGenerationPrompt.
func (t *Template) EncodeRendered(tok TextEncoder, text string, msgs []Message, addGenerationPrompt bool) ([]int, error) {
	ranges, err := t.TextRanges(tok, text, msgs, addGenerationPrompt)
	if err != nil {
		return nil, err
	}
	return tok.EncodeText(text, false, ranges), nil
}

// TextRanges are the ranges of text, a rendering of msgs, that encode as
// text: the contents' (ContentRanges), or none where no content holds a
// special token (the plain encoding is the same). A content holding one
// whose place cannot be told is an error.
func (t *Template) TextRanges(tok TextEncoder, text string, msgs []Message, addGenerationPrompt bool) ([][2]int, error) {
	special := -1
	for i, m := range msgs {
		if tok.SpecialIn(m.Content) != "" {
			special = i
			break
		}
	}
	if special < 0 {
		return nil, nil
	}
	ranges, ok := t.ContentRanges(text, msgs, addGenerationPrompt)
	if !ok {
		return nil, fmt.Errorf("messages[%d]: its content holds the special token %q and the chat template rewrites the content, so it cannot be kept apart from the template's markup: remove the token from the text", special, tok.SpecialIn(msgs[special].Content))
	}
	return ranges, nil
}

// Clip is the part of ranges within the first n bytes (for a prefix of
// the text they were found in).
func Clip(ranges [][2]int, n int) [][2]int {
	var out [][2]int
	for _, r := range ranges {
		if r[0] >= n {
			break
		}
		out = append(out, [2]int{r[0], min(r[1], n)})
	}
	return out
}
