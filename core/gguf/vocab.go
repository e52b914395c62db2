package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"distill/core/model"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

// llama.cpp's token types (llama.h's enum llama_token_type).
const (
	tokNormal      int32 = 1
	tokUnknown     int32 = 2
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
	tokByte        int32 = 6
)

// Split regexes llama.cpp knows by a pre-tokenizer name
// (tokenizer.ggml.pre): it runs its own copy of each, chosen by that name,
// so a tokenizer is exported only when its regex is one of these.
const (
	qwen2Regex  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// vocabKVs reads m.Dir's tokenizer.json (and tokenizer_config.json, the
// chat template) into llama.cpp's tokenizer metadata, with one token per
// embedding row: the holes and the tail past the tokenizer's last id
// filled with unused "[PAD<id>]" tokens as llama.cpp's converter does.
// A tokenizer whose settings llama.cpp would not honour is refused rather
// than exported to tokenize differently.
func vocabKVs(m *model.Model) ([]KV, error) {
	dir, n := m.Dir, m.Config.VocabSize
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (a GGUF file carries its tokenizer; export from a model folder that has tokenizer.json)", err)
	}
	var tj struct {
		Model struct {
			Type         string          `json:"type"`
			Vocab        map[string]int  `json:"vocab"`
			Merges       json.RawMessage `json:"merges"`
			ByteFallback bool            `json:"byte_fallback"`
			UnkToken     *string         `json:"unk_token"`
		} `json:"model"`
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Normalizer   json.RawMessage `json:"normalizer"`
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	}
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("%s: model.type %q: only BPE tokenizers are exported", path, tj.Model.Type)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, err
	}

	tokens := make([]string, n)
	types := make([]int32, n)
	set := func(id int, s string, typ int32, field string) error {
		if id < 0 || id >= n {
			return fmt.Errorf("%s: %s: token %q has id %d, outside the model's %d embedding rows", path, field, s, id, n)
		}
		tokens[id], types[id] = s, typ
		return nil
	}
	for s, id := range tj.Model.Vocab {
		typ := tokNormal
		if tj.Model.ByteFallback && isByteToken(s) {
			typ = tokByte
		}
		if tj.Model.UnkToken != nil && s == *tj.Model.UnkToken {
			typ = tokUnknown
		}
		if err := set(id, s, typ, "model.vocab"); err != nil {
			return nil, err
		}
	}
	for _, a := range tj.AddedTokens {
		typ := tokUserDefined
		if a.Special || looksSpecial(a.Content) {
			typ = tokControl
		}
		if a.ID >= 0 && a.ID < n && types[a.ID] == tokUnknown {
			typ = tokUnknown
		}
		if err := set(a.ID, a.Content, typ, "added_tokens"); err != nil {
			return nil, err
		}
	}
	for id := range tokens {
		if types[id] == 0 {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokUnused
		}
	}
	// llama.cpp maps each token's text to one id and refuses a file that
	// spells two ids alike.
	seen := make(map[string]int, n)
	for id, s := range tokens {
		if prev, ok := seen[s]; ok {
			return nil, fmt.Errorf("%s: token %q is both id %d and id %d (model.vocab and added_tokens disagree?); llama.cpp needs each token once", path, s, prev, id)
		}
		seen[s] = id
	}

	merges, err := readMerges(tj.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("%s: model.merges: %v", path, err)
	}
	var kvs []KV
	if tj.Model.ByteFallback {
		// SentencePiece-style (Llama 2, Mistral): llama.cpp's "llama"
		// tokenizer merges the pair whose result scores highest. HF's merges
		// were ordered by those scores, so a token's score is minus the rank
		// of the merge that makes it.
		scores := make([]float32, n)
		for rank, m := range merges {
			if id, ok := tj.Model.Vocab[strings.Replace(m, " ", "", 1)]; ok && scores[id] == 0 {
				scores[id] = -float32(rank + 1)
			}
		}
		prefix, err := spmPrefix(tj.Normalizer, tj.PreTokenizer)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		kvs = append(kvs,
			KV{"tokenizer.ggml.model", "llama"},
			KV{"tokenizer.ggml.pre", "default"},
			KV{"tokenizer.ggml.tokens", tokens},
			KV{"tokenizer.ggml.scores", scores},
			KV{"tokenizer.ggml.token_type", types},
			KV{"tokenizer.ggml.add_space_prefix", prefix},
		)
	} else {
		if err := byteLevelNormalizer(tj.Normalizer); err != nil {
			return nil, fmt.Errorf("%s: normalizer: %v", path, err)
		}
		pre, err := preName(tj.PreTokenizer)
		if err != nil {
			return nil, fmt.Errorf("%s: pre_tokenizer: %v", path, err)
		}
		kvs = append(kvs,
			KV{"tokenizer.ggml.model", "gpt2"},
			KV{"tokenizer.ggml.pre", pre},
			KV{"tokenizer.ggml.tokens", tokens},
			KV{"tokenizer.ggml.token_type", types},
			KV{"tokenizer.ggml.merges", merges},
		)
	}

	// What the tokenizer adds around a text, read off its own encoding.
	front, back := tok.AddsSpecial()
	addBOS, addEOS := front >= 0, back >= 0
	bos, eos, err := specialIDs(m, tok)
	if err != nil {
		return nil, err
	}
	if bos < 0 {
		bos = front
	}
	if bos >= 0 {
		kvs = append(kvs, KV{"tokenizer.ggml.bos_token_id", uint32(bos)})
	}
	kvs = append(kvs, KV{"tokenizer.ggml.eos_token_id", uint32(eos)})
	if tj.Model.UnkToken != nil {
		if id, ok := tj.Model.Vocab[*tj.Model.UnkToken]; ok {
			kvs = append(kvs, KV{"tokenizer.ggml.unknown_token_id", uint32(id)})
		}
	}
	kvs = append(kvs,
		KV{"tokenizer.ggml.add_bos_token", addBOS},
		KV{"tokenizer.ggml.add_eos_token", addEOS},
	)
	tmpl, err := chat.Load(dir)
	switch {
	case err == nil:
		kvs = append(kvs, KV{"tokenizer.chat_template", tmpl.Source()})
	case errors.Is(err, chat.ErrNoChatTemplate), errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}
	return kvs, nil
}

// specialIDs are the BOS (-1 when none) and EOS ids to write:
// tokenizer_config.json's, else config.json's (llama.cpp's converter
// stops there, and takes only a single id), else generation_config.json's
// first. An EOS is required: without one llama.cpp would stop generating
// at its default id (11 for a byte-level vocabulary, 2 for SentencePiece).
func specialIDs(m *model.Model, tok *tokenizer.Tokenizer) (bos, eos int, err error) {
	gen, err := model.LoadGenerationConfig(m.Dir)
	if err != nil {
		return 0, 0, err
	}
	first := func(own int, ok bool, lists ...model.IDList) int {
		if ok {
			return own
		}
		for _, l := range lists {
			if len(l) > 0 {
				return l[0]
			}
		}
		return -1
	}
	id, ok := tok.BOS()
	bos = first(id, ok, m.Config.BOSTokenID, gen.BOSTokenID)
	id, ok = tok.EOS()
	eos = first(id, ok, m.Config.EOSTokenID, gen.EOSTokenID)
	if eos < 0 {
		return 0, 0, fmt.Errorf("%s: no end-of-sequence token (tokenizer_config.json's eos_token, config.json's or generation_config.json's eos_token_id); set one, or llama.cpp would stop generating at a default id, an ordinary token in most vocabularies", m.Dir)
	}
	for _, x := range []struct {
		name string
		id   int
	}{{"bos", bos}, {"eos", eos}} {
		if x.id >= m.Config.VocabSize {
			return 0, 0, fmt.Errorf("%s: %s token id %d is outside the model's %d embedding rows", m.Dir, x.name, x.id, m.Config.VocabSize)
		}
	}
	return bos, eos, nil
}

// looksSpecial is llama.cpp's converter's test for an added token that
// tokenizer.json leaves unmarked but that is a control token by its
// spelling (<|fim_prefix|> and the like): it is then stored as one, so
// llama.cpp's chat and infill code treat it as the model's others.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>") ||
		strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">")
}

var byteTokenRE = regexp.MustCompile(`^<0x[0-9A-F]{2}>$`)

func isByteToken(s string) bool { return byteTokenRE.MatchString(s) }

// readMerges accepts both of tokenizer.json's spellings, "a b" and
// ["a", "b"], and returns llama.cpp's ("a b").
func readMerges(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			out[i] = s
			continue
		}
		var pair []string
		if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("entry %d is neither \"a b\" nor [\"a\", \"b\"]", i)
		}
		if strings.Contains(pair[0], " ") || strings.Contains(pair[1], " ") {
			return nil, fmt.Errorf("entry %d: %q holds a space, which llama.cpp's \"a b\" form cannot carry", i, pair)
		}
		out[i] = pair[0] + " " + pair[1]
	}
	return out, nil
}

type preJSON struct {
	Type          string          `json:"type"`
	Pretokenizers []preJSON       `json:"pretokenizers"`
	Pattern       json.RawMessage `json:"pattern"`
	Behavior      string          `json:"behavior"`
	Invert        bool            `json:"invert"`
	UseRegex      *bool           `json:"use_regex"`
	Individual    bool            `json:"individual_digits"`
	Prepend       string          `json:"prepend_scheme"`
	AddPrefix     *bool           `json:"add_prefix_space"`
	Replacement   string          `json:"replacement"`
}

func flatten(p preJSON) []preJSON {
	if p.Type != "Sequence" {
		return []preJSON{p}
	}
	var out []preJSON
	for _, q := range p.Pretokenizers {
		out = append(out, flatten(q)...)
	}
	return out
}

// preName names a byte-level tokenizer's pre-tokenizer as llama.cpp does:
// its split regex, and whether digits are split first. Settings llama.cpp
// has no counterpart for (a prefix space, a second regex after the split)
// refuse the export.
func preName(raw json.RawMessage) (string, error) {
	var p preJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", err
	}
	var kinds []string
	regex, digits, gpt2, split := "", false, false, true
	for _, q := range flatten(p) {
		kinds = append(kinds, q.Type)
		switch q.Type {
		case "Split":
			var pat struct{ Regex string }
			if err := json.Unmarshal(q.Pattern, &pat); err == nil {
				regex = pat.Regex
			}
			split = q.Behavior == "Isolated" && !q.Invert
		case "Digits":
			digits = q.Individual
		case "ByteLevel":
			if q.AddPrefix != nil && *q.AddPrefix {
				return "", errors.New("ByteLevel add_prefix_space is true: llama.cpp's byte-level tokenizers never add a leading space, so the GGUF would tokenize differently; export is refused")
			}
			gpt2 = q.UseRegex == nil || *q.UseRegex
		}
	}
	switch strings.Join(kinds, "+") {
	case "Split+ByteLevel":
		if split && !gpt2 {
			switch regex {
			case qwen2Regex:
				return "qwen2", nil
			case llama3Regex:
				return "llama-bpe", nil
			}
		}
	case "Digits+ByteLevel":
		if digits && gpt2 {
			return "smollm", nil
		}
	case "ByteLevel":
		if gpt2 {
			return "gpt-2", nil
		}
	}
	b, _ := json.Marshal(p)
	return "", fmt.Errorf("%s is not a pre-tokenizer llama.cpp names (Qwen2's or Llama 3's split, SmolLM's digits, GPT-2's), so the GGUF would tokenize differently; export is refused", b)
}

type normJSON struct {
	Type        string          `json:"type"`
	Prepend     string          `json:"prepend"`
	Pattern     json.RawMessage `json:"pattern"`
	Content     string          `json:"content"`
	Normalizers []normJSON      `json:"normalizers"`
}

func readNormalizers(raw json.RawMessage) ([]normJSON, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var n normJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	if n.Type == "Sequence" {
		return n.Normalizers, nil
	}
	return []normJSON{n}, nil
}

// byteLevelNormalizer accepts none, or NFC (Qwen's): llama.cpp's
// byte-level tokenizers normalise nothing, and NFC changes only text
// that is not already composed, which is llama.cpp's known gap on Qwen.
// Anything else (lowercasing, stripping accents) is refused.
func byteLevelNormalizer(raw json.RawMessage) error {
	ns, err := readNormalizers(raw)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.Type != "NFC" {
			return fmt.Errorf("%s normalizer: llama.cpp's byte-level tokenizers would not apply it, so the GGUF would tokenize differently; export is refused", n.Type)
		}
	}
	return nil
}

// spmPrefix checks that a SentencePiece-style tokenizer only turns spaces
// into "▁" and perhaps puts one before the text — what llama.cpp's
// "llama" tokenizer does — and says whether it prepends (llama.cpp's
// add_space_prefix): Llama 2's Prepend normaliser, or a Metaspace
// pre-tokenizer that prepends.
func spmPrefix(norm, pre json.RawMessage) (bool, error) {
	ns, err := readNormalizers(norm)
	if err != nil {
		return false, fmt.Errorf("normalizer: %v", err)
	}
	prefix := false
	for _, n := range ns {
		var pat struct{ String *string }
		switch {
		case n.Type == "Prepend" && n.Prepend == "▁":
			prefix = true
		case n.Type == "Replace" && json.Unmarshal(n.Pattern, &pat) == nil && pat.String != nil && *pat.String == " " && n.Content == "▁":
		default:
			b, _ := json.Marshal(n)
			return false, fmt.Errorf("normalizer %s: llama.cpp's SentencePiece tokenizer only maps spaces to \"▁\" and prepends one, so the GGUF would tokenize differently; export is refused", b)
		}
	}
	if len(pre) == 0 || string(pre) == "null" {
		return prefix, nil
	}
	var p preJSON
	if err := json.Unmarshal(pre, &p); err != nil {
		return false, fmt.Errorf("pre_tokenizer: %v", err)
	}
	for _, q := range flatten(p) {
		if q.Type != "Metaspace" || (q.Replacement != "" && q.Replacement != "▁") {
			b, _ := json.Marshal(p)
			return false, fmt.Errorf("pre_tokenizer %s: llama.cpp's SentencePiece tokenizer has only a Metaspace \"▁\" counterpart; export is refused", b)
		}
		prefix = prefix || q.Prepend != "never" && (q.AddPrefix == nil || *q.AddPrefix)
	}
	return prefix, nil
}
