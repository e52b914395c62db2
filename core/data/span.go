package data

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

// chatEncoding renders a conversation with the chat template, tokenizes it
// (addSpecial=false: templates write their own BOS) and finds the token span
// of each assistant message (only the last message with lastOnly).
//
// An assistant message's span is what it adds to the rendering: render the
// messages before it with the generation prompt (gp) and the messages up to
// it (up); the turn is up[len(gp):] — the content, anything the template
// puts around it (Qwen3's empty <think></think> block) and the end-of-turn
// token — and it sits at len(gp) in the whole conversation's rendering.
// When the token ids of gp and up are prefixes of the conversation's ids,
// the span is read off their lengths. Otherwise characters are mapped to
// tokens (see tokenOffsets): either a BPE merge crossed the boundary (gp
// ending in a space, say), or the template renders a turn differently once
// later messages follow — Qwen3 writes the <think> block only in turns after
// the last user message, so an earlier turn is located by its content and
// its end-of-turn text instead (locateTurn).
//
// Whitespace the template writes after the end-of-turn token (Qwen's "\n"
// after <|im_end|>) is left out of the span: the model stops at the
// end-of-turn token and never writes it.
func (e *Encoder) chatEncoding(msgs []chat.Message, lastOnly bool) ([]int, [][2]int, error) {
	full, err := e.Tmpl.Render(msgs, false)
	if err != nil {
		return nil, nil, err
	}
	// The messages' contents are text: a special token written in one is
	// not the template's (it would teach a turn's end mid-answer).
	plain, err := e.Tmpl.TextRanges(e.Tok, full, msgs, false)
	if err != nil {
		return nil, nil, err
	}
	ids := e.Tok.EncodeText(full, false, plain)
	var offs *tokenOffsets
	var spans [][2]int
	e.trailerOnce.Do(func() { e.trailerList = e.trailers() }) // the template's and tokenizer's alone: once
	trailers := e.trailerList
	for i, m := range msgs {
		if m.Role != "assistant" || (lastOnly && i != len(msgs)-1) {
			continue
		}
		gp, err := e.Tmpl.Render(msgs[:i], true)
		if err != nil {
			return nil, nil, fmt.Errorf("messages[%d]: rendering the messages before it: %w", i, err)
		}
		up, err := e.Tmpl.Render(msgs[:i+1], false)
		if err != nil {
			return nil, nil, fmt.Errorf("messages[%d]: rendering the messages up to it: %w", i, err)
		}
		for _, t := range trailers { // the next turn's header, not this turn's
			if strings.HasSuffix(gp, t) && strings.HasSuffix(up, t) {
				up = up[:len(up)-len(t)]
				break
			}
		}
		if !strings.HasPrefix(up, gp) {
			return nil, nil, fmt.Errorf("messages[%d]: the chat template's generation prompt does not start its assistant turn "+
				"(the messages before it rendered with add_generation_prompt are not a prefix of the messages up to it), "+
				"so the assistant's tokens cannot be told apart", i)
		}
		if !strings.HasPrefix(full, gp) {
			return nil, nil, fmt.Errorf("messages[%d]: the chat template renders the messages before it differently once "+
				"later messages follow, so the assistant's tokens cannot be found", i)
		}
		a, b := -1, -1 // token span, once known
		cs, ce := len(gp), len(up)
		if strings.HasPrefix(full, up) {
			gpIDs, upIDs := e.Tok.EncodeText(gp, false, chat.Clip(plain, len(gp))), e.Tok.EncodeText(up, false, chat.Clip(plain, len(up)))
			if hasPrefix(ids, gpIDs) && hasPrefix(ids, upIDs) {
				a, b = len(gpIDs), len(upIDs)
			}
		} else {
			var found bool
			if cs, ce, found = locateTurn(full, gp, up, m.Content); !found {
				return nil, nil, fmt.Errorf("messages[%d]: cannot find the assistant turn in the rendered conversation: "+
					"the chat template rewrites it once later messages follow", i)
			}
		}
		if a < 0 { // known in characters only: map them to tokens
			if offs == nil {
				if offs, err = newTokenOffsets(e.Tok, ids, full); err != nil {
					return nil, nil, fmt.Errorf("messages[%d]: %w", i, err)
				}
			}
			a, b = offs.span(cs, ce)
		}
		b = e.trimSeparator(ids, a, b)
		if a >= b {
			return nil, nil, fmt.Errorf("messages[%d]: the assistant turn renders to no tokens", i)
		}
		spans = append(spans, [2]int{a, b})
	}
	return ids, spans, nil
}

// trailers are the candidates for text a chat template writes at the end
// of every rendering, add_generation_prompt or not — Meta's first Llama 3
// Instruct template ends every rendering with the assistant header — which
// belongs to no turn: the suffixes of the empty conversation's rendering
// that start at one of its tokens and hold more than whitespace, longest
// first. One counts where it ends both the rendering up to a turn and the
// generation prompt before it. None where the template refuses to render
// no messages.
func (e *Encoder) trailers() []string {
	r0, err := e.Tmpl.Render(nil, false)
	if err != nil || strings.TrimSpace(r0) == "" {
		return nil
	}
	ids := e.Tok.Encode(r0, false)
	ends, ok := alignTokens(e.Tok, ids, r0)
	if !ok {
		return nil
	}
	var out []string
	for k := range ends {
		start := 0
		if k > 0 {
			start = ends[k-1]
		}
		if t := r0[start:]; strings.TrimSpace(t) != "" {
			out = append(out, t)
		}
	}
	return out
}

// locateTurn finds, in the whole rendering, the characters of an assistant
// turn that the template renders differently in the conversation's history:
// it starts where the generation prompt ends and runs to the end of the
// content followed by what the template writes after it (the end-of-turn
// text). The content is looked for as it is and, since Qwen3's template
// keeps only what follows "</think>" in earlier turns, as that part.
func locateTurn(full, gp, up, content string) (start, end int, ok bool) {
	turn, rest := up[len(gp):], full[len(gp):]
	cands := []string{content}
	if i := strings.LastIndex(content, "</think>"); i >= 0 {
		cands = append(cands, strings.TrimLeft(content[i+len("</think>"):], "\n"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		j := strings.LastIndex(turn, c)
		if j < 0 {
			continue
		}
		tail := c + turn[j+len(c):]
		if k := strings.Index(rest, tail); k >= 0 {
			return len(gp), len(gp) + k + len(tail), true
		}
	}
	return 0, 0, false
}

// trimSeparator drops whitespace tokens after a special token at the end
// of the span [a, b).
func (e *Encoder) trimSeparator(ids []int, a, b int) int {
	k := b
	for k > a && isSpaceToken(e.Tok, ids[k-1]) {
		k--
	}
	if k < b && k > a && e.Tok.IsSpecial(ids[k-1]) {
		return k
	}
	return b
}

func isSpaceToken(tok *tokenizer.Tokenizer, id int) bool {
	b := tok.TokenBytes(id)
	return len(b) > 0 && strings.TrimSpace(string(b)) == ""
}

func hasPrefix(ids, prefix []int) bool {
	return len(prefix) <= len(ids) && slices.Equal(ids[:len(prefix)], prefix)
}

// tokenOffsets maps byte offsets of a text to its tokens. The tokens'
// bytes (TokenBytes) are aligned with the text in order: for byte-level
// tokenizers they are the text exactly; SentencePiece-style tokenizers
// also write a "▁" (a space) the text lacks at the start of a section
// (Llama 2 does after every special token), which the alignment skips.
// Where alignment fails (a normalizer that rewrites the text), the end of
// the first k tokens is taken as len(Decode(ids[:k])), by binary search,
// provided decoding all the ids gives the text back.
type tokenOffsets struct {
	tok  *tokenizer.Tokenizer
	ids  []int
	ends []int // ends[k]: where token k ends; nil: decode prefixes
}

func newTokenOffsets(tok *tokenizer.Tokenizer, ids []int, text string) (*tokenOffsets, error) {
	o := &tokenOffsets{tok: tok, ids: ids}
	if ends, ok := alignTokens(tok, ids, text); ok {
		o.ends = ends
		return o, nil
	}
	if tok.Decode(ids, false) != text {
		return nil, errors.New("cannot map the rendered conversation's characters to tokens: " +
			"its tokens neither line up with the text nor decode back to it")
	}
	return o, nil
}

// alignTokens returns where each token ends in text, if the tokens' bytes
// spell the text, allowing an inserted leading space per token.
func alignTokens(tok *tokenizer.Tokenizer, ids []int, text string) ([]int, bool) {
	ends := make([]int, len(ids))
	n := 0
	for k, id := range ids {
		b := string(tok.TokenBytes(id))
		switch {
		case strings.HasPrefix(text[n:], b):
			n += len(b)
		case strings.HasPrefix(b, " ") && strings.HasPrefix(text[n:], b[1:]):
			n += len(b) - 1
		default:
			return nil, false
		}
		ends[k] = n
	}
	return ends, n == len(text)
}

// end is the byte offset where the first k tokens end.
func (o *tokenOffsets) end(k int) int {
	if k == 0 {
		return 0
	}
	if o.ends != nil {
		return o.ends[k-1]
	}
	return len(o.tok.Decode(o.ids[:k], false))
}

// span returns the tokens [a, b) that overlap the bytes [cs, ce).
func (o *tokenOffsets) span(cs, ce int) (a, b int) {
	n := len(o.ids)
	a = sort.Search(n, func(k int) bool { return o.end(k+1) > cs })
	b = sort.Search(n+1, func(k int) bool { return o.end(k) >= ce })
	return a, b
}
