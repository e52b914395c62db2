// Package tokenizer implements Hugging Face tokenizer.json tokenizers of the
// BPE family — byte-level (GPT-2, Llama 3, Qwen2/Qwen3, SmolLM) and
// SentencePiece-style with byte fallback (Llama 2, Mistral, TinyLlama) —
// encoding and decoding as the tokenizers library does.
//
// Encoding runs HF's pipeline: added tokens are cut out of the raw text
// first (special tokens written in the text are recognised; lstrip, rstrip,
// single_word and normalized are honoured), then each remaining section is
// normalised, pre-tokenized and BPE-encoded word by word with a per-word
// cache, and with addSpecial the post-processor adds BOS/EOS. The Qwen and
// Llama 3 split regexes are matched by hand-written scanners (checked against
// regexp2, which runs any other pattern). Tests compare every id with
// transformers.js on the real Qwen3, Llama 3 and Llama 2 tokenizer files
// (testdata/goldens_*.json, made by tools/js/tokenizer_goldens.mjs).
//
// Supported tokenizer.json components:
//
//	model           BPE (vocab, merges as "a b" or ["a","b"], unk_token, fuse_unk,
//	                byte_fallback, ignore_merges, continuing_subword_prefix,
//	                end_of_word_suffix; BPE dropout is not applied)
//	normalizer      NFC NFD NFKC NFKD Prepend Replace Lowercase Strip StripAccents Sequence
//	pre_tokenizer   ByteLevel Split Metaspace Digits WhitespaceSplit Sequence
//	post_processor  TemplateProcessing (single sequence) ByteLevel BertProcessing
//	                RobertaProcessing Sequence
//	decoder         ByteLevel Metaspace Replace ByteFallback Fuse Strip BPEDecoder Sequence
//
// Anything else (Unigram, WordPiece and WordLevel models, BertNormalizer,
// Precompiled, BertPreTokenizer, Whitespace, Punctuation, UnicodeScripts,
// WordPiece and CTC decoders) fails to load with an error that wraps
// ErrUnsupported and names the file and field. Truncation, padding and
// offsets are not implemented.
//
// A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"strings"
	"sync"
)

// Tokenizer encodes text to token ids and decodes ids to text.
type Tokenizer struct {
	model      *bpeModel
	normalizer normalizer     // nil: none
	pre        []preTokenizer // steps in order; none: the whole section is one word
	post       postProcessor  // nil: addSpecial adds nothing
	dec        decoder        // nil: tokens joined with spaces, as HF

	byteFallbackDec bool // dec has a ByteFallback step

	added          []*addedToken
	addedByID      map[int]*addedToken
	addedByContent map[string]*addedToken
	rawMatcher     *addedMatcher // added tokens matched in the raw text
	normMatcher    *addedMatcher // "normalized" added tokens, matched after normalisation

	idToTok []string     // vocabulary and added tokens by id ("" for holes)
	skip    map[int]bool // ids Decode drops when skipSpecial

	bos, eos int // -1 when unknown

	bytesOnce sync.Once
	tokBytes  [][]byte
}

// Encode returns the token ids of text. Special tokens written in the text
// (e.g. "<|im_start|>") are recognised as such, as HF and transformers.js
// do by default. With addSpecial the post-processor's tokens are added
// (e.g. Llama's BOS); without it none are.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	return t.EncodeText(text, addSpecial, nil)
}

// EncodeText is Encode where the byte ranges plain of text (a chat
// message's content in its rendering) are text whatever they hold: a
// special token written there ("<|im_end|>" in a user's message) is
// encoded as its characters, not as the token — HF's split_special_tokens
// for those ranges — so content cannot forge the template's turns. The
// ranges are sorted and do not overlap.
func (t *Tokenizer) EncodeText(text string, addSpecial bool, plain [][2]int) []int {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ids := make([]int, 0, len(text)/3+4)
	sc.segs = t.rawMatcher.split(text, true, sc.segs[:0], plain)
	for _, sg := range sc.segs {
		if sg.added != nil {
			ids = append(ids, sg.added.ID)
			continue
		}
		s := sg.text
		if t.normalizer != nil {
			s = t.normalizer.normalize(s)
		}
		if t.normMatcher == nil {
			ids = t.encodeSection(s, sg.first, ids, sc)
			continue
		}
		for _, sub := range t.normMatcher.split(s, sg.first, nil, nil) {
			if sub.added != nil {
				ids = append(ids, sub.added.ID)
			} else {
				ids = t.encodeSection(sub.text, sub.first, ids, sc)
			}
		}
	}
	clear(sc.segs) // drop references to text before pooling
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids
}

// SpecialIn returns the first special token written in text ("" when
// none): what EncodeText keeps as text in a plain range.
func (t *Tokenizer) SpecialIn(text string) string {
	for _, sg := range t.rawMatcher.split(text, true, nil, nil) {
		if sg.added != nil && sg.added.Special {
			return sg.added.Content
		}
	}
	return ""
}

// scratch holds Encode's reusable buffers.
type scratch struct {
	segs []segment
	a, b []piece
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// encodeSection pre-tokenizes one normalised section and runs the model on
// each pre-token.
func (t *Tokenizer) encodeSection(s string, first bool, ids []int, sc *scratch) []int {
	if s == "" {
		return ids
	}
	if len(t.pre) == 0 {
		return t.model.tokenize(s, ids)
	}
	cur, nxt := append(sc.a[:0], piece{s: s, first: first}), sc.b[:0]
	for _, step := range t.pre {
		nxt = nxt[:0]
		for _, p := range cur {
			nxt = step.split(p, nxt)
		}
		cur, nxt = nxt, cur
	}
	for _, p := range cur {
		ids = t.model.tokenize(p.s, ids)
	}
	clear(cur)
	clear(nxt)
	sc.a, sc.b = cur[:0], nxt[:0]
	return ids
}

// Decode returns the text of ids. With skipSpecial, special tokens (added
// tokens marked special, and tokenizer_config.json's
// additional_special_tokens) are left out. Ids outside the vocabulary are
// skipped. The text is not "cleaned up" (transformers'
// clean_up_tokenization_spaces is not applied), so for byte-level tokenizers
// Decode(Encode(s)) == s.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if !t.validID(id) || (skipSpecial && t.skip[id]) {
			continue
		}
		toks = append(toks, t.idToTok[id])
	}
	if t.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.dec.decodeChain(toks, t.isAddedContent), "")
}

func (t *Tokenizer) validID(id int) bool { return id >= 0 && id < len(t.idToTok) }

func (t *Tokenizer) isSkippable(id int) bool { return t.skip[id] }

func (t *Tokenizer) isAddedContent(s string) bool {
	_, ok := t.addedByContent[s]
	return ok
}

// VocabSize is the largest id over the vocabulary and the added tokens,
// plus one.
func (t *Tokenizer) VocabSize() int { return len(t.idToTok) }

// TokenID returns the id of a token string: an added token's content or a
// raw vocabulary entry (byte-level form, e.g. "Ġthe").
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if a, ok := t.addedByContent[tok]; ok {
		return a.ID, true
	}
	id, ok := t.model.vocab[tok]
	return id, ok
}

// Token returns the raw vocabulary string of id ("" when out of range).
func (t *Tokenizer) Token(id int) string {
	if !t.validID(id) {
		return ""
	}
	return t.idToTok[id]
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	a, ok := t.addedByID[id]
	return ok && a.Special
}

// BOS returns the id of tokenizer_config.json's bos_token.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// AddsSpecial reports what Encode with addSpecial puts around a text: the
// token in front (BOS) and the one behind (EOS), -1 where it adds none,
// read off its own encoding.
func (t *Tokenizer) AddsSpecial() (front, back int) {
	front, back = -1, -1
	bare, full := t.Encode("a", false), t.Encode("a", true)
	if len(full) <= len(bare) {
		return front, back
	}
	if full[0] != bare[0] {
		front = full[0]
	}
	if full[len(full)-1] != bare[len(bare)-1] {
		back = full[len(full)-1]
	}
	return front, back
}

// EOS returns the id of tokenizer_config.json's eos_token.
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// TokenBytes returns the bytes id stands for: the byte-level characters
// mapped back to bytes, "▁" as a space, "<0xNN>" as the byte NN, an added
// token as its content. Position-dependent decoding (Llama 2 dropping the
// leading space of the first token) is not applied. The slice is shared:
// do not modify it. Nil for ids out of range.
func (t *Tokenizer) TokenBytes(id int) []byte {
	t.bytesOnce.Do(t.buildTokenBytes)
	if !t.validID(id) {
		return nil
	}
	return t.tokBytes[id]
}

func (t *Tokenizer) buildTokenBytes() {
	t.tokBytes = make([][]byte, len(t.idToTok))
	for id, tok := range t.idToTok {
		switch {
		case t.addedByID[id] != nil:
			t.tokBytes[id] = []byte(tok)
		case t.dec != nil:
			t.tokBytes[id] = []byte(t.dec.raw(tok))
		default:
			t.tokBytes[id] = []byte(tok)
		}
	}
}

// fallbackByte reports whether id is a byte-fallback token ("<0xNN>") of a
// tokenizer whose decoder turns those into bytes, and which byte.
func (t *Tokenizer) fallbackByte(id int) (byte, bool) {
	if !t.byteFallbackDec || !t.validID(id) {
		return 0, false
	}
	return parseByteToken(t.idToTok[id])
}
