package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

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

// vocabKVs reads dir's tokenizer.json (and tokenizer_config.json, the chat
// template) into llama.cpp's tokenizer metadata, with n tokens: the
// embedding's rows, the holes and the tail past the tokenizer's last id
// filled with unused "[PAD<id>]" tokens as llama.cpp's converter does.
func vocabKVs(dir string, n int) ([]KV, error) {
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
		if a.Special {
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
		prefix, err := spacePrefix(tj.Normalizer, tj.PreTokenizer)
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
	bare, full := tok.Encode("a", false), tok.Encode("a", true)
	addBOS := len(full) > len(bare) && full[0] != bare[0]
	addEOS := len(full) > len(bare) && full[len(full)-1] != bare[len(bare)-1]
	if id, ok := tok.BOS(); ok {
		kvs = append(kvs, KV{"tokenizer.ggml.bos_token_id", uint32(id)})
	} else if addBOS {
		kvs = append(kvs, KV{"tokenizer.ggml.bos_token_id", uint32(full[0])})
	}
	if id, ok := tok.EOS(); ok {
		kvs = append(kvs, KV{"tokenizer.ggml.eos_token_id", uint32(id)})
	}
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
	UseRegex      *bool           `json:"use_regex"`
	Individual    bool            `json:"individual_digits"`
	Prepend       string          `json:"prepend_scheme"`
	AddPrefix     *bool           `json:"add_prefix_space"`
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
// its split regex, and whether digits are split first.
func preName(raw json.RawMessage) (string, error) {
	var p preJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", err
	}
	var kinds []string
	regex, digits, gpt2 := "", false, false
	for _, q := range flatten(p) {
		kinds = append(kinds, q.Type)
		switch q.Type {
		case "Split":
			var pat struct{ Regex string }
			if err := json.Unmarshal(q.Pattern, &pat); err == nil {
				regex = pat.Regex
			}
		case "Digits":
			digits = q.Individual
		case "ByteLevel":
			gpt2 = q.UseRegex == nil || *q.UseRegex
		}
	}
	switch strings.Join(kinds, "+") {
	case "Split+ByteLevel":
		switch regex {
		case qwen2Regex:
			return "qwen2", nil
		case llama3Regex:
			return "llama-bpe", nil
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

// spacePrefix says whether a SentencePiece-style tokenizer puts "▁" before
// the text (Llama 2's Prepend normaliser, or a Metaspace pre-tokenizer that
// prepends), which llama.cpp calls add_space_prefix.
func spacePrefix(norm, pre json.RawMessage) (bool, error) {
	var n struct {
		Type        string `json:"type"`
		Prepend     string `json:"prepend"`
		Normalizers []struct {
			Type    string `json:"type"`
			Prepend string `json:"prepend"`
		} `json:"normalizers"`
	}
	if len(norm) > 0 && string(norm) != "null" {
		if err := json.Unmarshal(norm, &n); err != nil {
			return false, fmt.Errorf("normalizer: %v", err)
		}
		if n.Type == "Prepend" && n.Prepend == "▁" {
			return true, nil
		}
		for _, s := range n.Normalizers {
			if s.Type == "Prepend" && s.Prepend == "▁" {
				return true, nil
			}
		}
	}
	if len(pre) > 0 && string(pre) != "null" {
		var p preJSON
		if err := json.Unmarshal(pre, &p); err != nil {
			return false, fmt.Errorf("pre_tokenizer: %v", err)
		}
		for _, q := range flatten(p) {
			if q.Type == "Metaspace" {
				return q.Prepend != "never" && (q.AddPrefix == nil || *q.AddPrefix), nil
			}
		}
	}
	return false, nil
}
