package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxVocabID bounds token ids (the largest real vocabularies hold ~260k).
const maxVocabID = 1 << 24

// ErrUnsupported is wrapped by load errors for tokenizer.json features this
// package does not implement (a model, normalizer, pre-tokenizer,
// post-processor or decoder type).
var ErrUnsupported = errors.New("unsupported")

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json
// (BOS/EOS, additional special tokens, and the add_bos_token/add_eos_token
// settings that transformers' Llama and Gemma tokenizers apply on top of
// tokenizer.json). A bos_token or eos_token the vocabulary lacks is treated
// as absent.
func Load(dir string) (*Tokenizer, error) {
	t, err := LoadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokenizer config: %w", err)
	}
	if err := t.applyConfig(cfgPath, data); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadFile reads a tokenizer.json file on its own (no tokenizer_config.json:
// BOS and EOS are then unknown).
func LoadFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	l := &loader{file: path}
	return l.build(data)
}

// loader turns tokenizer.json into a Tokenizer; its errors name the file and
// the JSON field.
type loader struct {
	file string
}

func (l *loader) errf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", l.file, field, fmt.Sprintf(format, args...))
}

func (l *loader) unsupported(field, kind, typ string) error {
	return fmt.Errorf("%s: %s: %w %s type %q", l.file, field, ErrUnsupported, kind, typ)
}

type fileJSON struct {
	AddedTokens   []*addedToken   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *modelJSON      `json:"model"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func (l *loader) unmarshal(raw json.RawMessage, field string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return l.errf(field, "%v", err)
	}
	return nil
}

func (l *loader) build(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", l.file, err)
	}
	if f.Model == nil {
		return nil, l.errf("model", "missing")
	}
	t := &Tokenizer{bos: -1, eos: -1, addedByID: map[int]*addedToken{}, addedByContent: map[string]*addedToken{}}
	var err error
	if t.model, err = l.model(f.Model); err != nil {
		return nil, err
	}
	if !isNull(f.Normalizer) {
		if t.normalizer, err = l.normalizer(f.Normalizer, "normalizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		pre, err := l.preTokenizer(f.PreTokenizer, "pre_tokenizer")
		if err != nil {
			return nil, err
		}
		if b, ok := lastPreStep(pre).(*byteLevelPre); ok {
			b.lazy = true
			t.model.setByteInput()
		}
		t.pre = flattenPre(pre, nil)
	}
	if !isNull(f.Decoder) {
		if t.dec, err = l.decoder(f.Decoder, "decoder"); err != nil {
			return nil, err
		}
		t.byteFallbackDec = hasByteFallback(t.dec)
	}
	// Vocabulary by id, then the added tokens on top.
	maxID := -1
	for tok, id := range t.model.vocab {
		if id < 0 || id >= maxVocabID {
			return nil, l.errf("model.vocab", "token %q has id %d, out of range [0, %d)", tok, id, maxVocabID)
		}
		maxID = max(maxID, id)
	}
	for i, a := range f.AddedTokens {
		if a == nil || a.Content == "" {
			return nil, l.errf(fmt.Sprintf("added_tokens[%d]", i), "missing content")
		}
		if a.ID < 0 || a.ID >= maxVocabID {
			return nil, l.errf(fmt.Sprintf("added_tokens[%d].id", i), "id %d out of range [0, %d)", a.ID, maxVocabID)
		}
		maxID = max(maxID, a.ID)
	}
	t.idToTok = make([]string, maxID+1)
	for tok, id := range t.model.vocab {
		t.idToTok[id] = tok
	}
	var rawTokens, normTokens []*addedToken
	for _, a := range f.AddedTokens {
		t.idToTok[a.ID] = a.Content
		t.addedByID[a.ID] = a
		t.addedByContent[a.Content] = a
		t.added = append(t.added, a)
		if a.Normalized {
			normTokens = append(normTokens, a)
		} else {
			rawTokens = append(rawTokens, a)
		}
	}
	// HF matches special tokens before the others; order only matters for
	// duplicates, which keep the first.
	t.rawMatcher = newAddedMatcher(specialFirst(rawTokens), func(a *addedToken) string { return a.Content })
	if len(normTokens) > 0 {
		t.normMatcher = newAddedMatcher(specialFirst(normTokens), func(a *addedToken) string {
			if t.normalizer == nil {
				return a.Content
			}
			return t.normalizer.normalize(a.Content)
		})
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = l.postProcessor(f.PostProcessor, "post_processor"); err != nil {
			return nil, err
		}
		for _, id := range t.post.process(nil) { // the special tokens it adds
			if id < 0 || id >= len(t.idToTok) || t.idToTok[id] == "" {
				return nil, l.errf("post_processor", "adds token id %d, which is not in the vocabulary or added_tokens", id)
			}
		}
	}
	t.skip = map[int]bool{}
	for _, a := range t.added {
		if a.Special {
			t.skip[a.ID] = true
		}
	}
	return t, nil
}

func specialFirst(toks []*addedToken) []*addedToken {
	out := make([]*addedToken, 0, len(toks))
	for _, a := range toks {
		if a.Special {
			out = append(out, a)
		}
	}
	for _, a := range toks {
		if !a.Special {
			out = append(out, a)
		}
	}
	return out
}

func hasByteFallback(d decoder) bool {
	switch d := d.(type) {
	case byteFallbackDec:
		return true
	case decoderSeq:
		for _, x := range d {
			if hasByteFallback(x) {
				return true
			}
		}
	}
	return false
}

func lastPreStep(p preTokenizer) preTokenizer {
	for {
		seq, ok := p.(preTokenizerSeq)
		if !ok || len(seq) == 0 {
			return p
		}
		p = seq[len(seq)-1]
	}
}

// ---- model ----

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

func (l *loader) model(mj *modelJSON) (*bpeModel, error) {
	typ := mj.Type
	if typ == "" && mj.Merges != nil {
		typ = "BPE" // files from before the "type" field
	}
	if typ != "BPE" {
		if typ == "" {
			return nil, l.errf("model.type", "missing")
		}
		return nil, l.unsupported("model.type", "model", typ)
	}
	m := &bpeModel{unkID: -1, fuseUnk: mj.FuseUnk, byteFallback: mj.ByteFallback, ignoreMerges: mj.IgnoreMerges}
	if isNull(mj.Vocab) {
		return nil, l.errf("model.vocab", "missing")
	}
	var err error
	if m.vocab, err = scanVocab(mj.Vocab); err != nil {
		// Let encoding/json say what is wrong.
		if err := l.unmarshal(mj.Vocab, "model.vocab", &m.vocab); err != nil {
			return nil, err
		}
		return nil, l.errf("model.vocab", "want an object of token: id")
	}
	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, l.errf("model.unk_token", "%q is not in model.vocab", *mj.UnkToken)
		}
		m.unkID = id
	}
	if mj.ContinuingSubwordPrefix != nil {
		m.contPrefix = *mj.ContinuingSubwordPrefix
	}
	if mj.EndOfWordSuffix != nil {
		m.eowSuffix = *mj.EndOfWordSuffix
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[byteTokenName(byte(b))]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	if err := l.merges(mj.Merges, m); err != nil {
		return nil, err
	}
	m.setCut()
	return m, nil
}

func (l *loader) merges(raw json.RawMessage, m *bpeModel) error {
	var pairs [][2]string
	if !isNull(raw) {
		var isPairs bool
		var err error
		if pairs, isPairs, err = scanMerges(raw); err != nil {
			var any []any
			if err := l.unmarshal(raw, "model.merges", &any); err != nil {
				return err
			}
			return l.errf("model.merges", "want [\"a b\", ...] or [[\"a\", \"b\"], ...]")
		}
		if !isPairs {
			for i, p := range pairs {
				a, b, ok := strings.Cut(p[0], " ")
				if !ok || strings.Contains(b, " ") {
					return l.errf(fmt.Sprintf("model.merges[%d]", i), "%q is not two tokens separated by a space", p[0])
				}
				pairs[i] = [2]string{a, b}
			}
		}
	}
	m.merges = make(map[uint64]mergeRule, len(pairs))
	for i, p := range pairs {
		a, okA := m.vocab[p[0]]
		b, okB := m.vocab[p[1]]
		right := strings.TrimPrefix(p[1], m.contPrefix)
		id, okM := m.vocab[p[0]+right]
		if !okA || !okB || !okM {
			return l.errf(fmt.Sprintf("model.merges[%d]", i), "merge %q + %q uses a token missing from model.vocab", p[0], p[1])
		}
		m.merges[pairKey(int32(a), int32(b))] = mergeRule{rank: int32(i), id: int32(id)}
	}
	return nil
}

// setByteInput switches the model to raw-byte words (see bpeModel.byteInput).
func (m *bpeModel) setByteInput() {
	m.byteInput = true
	for b := 0; b < 256; b++ {
		m.levelIDs[b] = -1
		if id, ok := m.vocab[byteRuneStr[b]]; ok {
			m.levelIDs[b] = int32(id)
		}
	}
	if m.ignoreMerges {
		m.rawVocab = make(map[string]int, len(m.vocab))
		for tok, id := range m.vocab {
			if b, ok := byteLevelDecode(tok); ok {
				m.rawVocab[string(b)] = id
			}
		}
	}
}

// setCut enables cutting long words before the SentencePiece metaspace when
// that provably cannot change the result (see bpeModel.cutRune).
func (m *bpeModel) setCut() {
	const meta = '▁'
	if m.ignoreMerges || m.contPrefix != "" || m.eowSuffix != "" {
		return
	}
	if _, ok := m.vocab[string(meta)]; !ok {
		return
	}
	idTok := make(map[int32]string, len(m.vocab))
	for tok, id := range m.vocab {
		idTok[int32(id)] = tok
	}
	bad := map[rune]bool{}
	for key := range m.merges {
		left, right := idTok[int32(key>>32)], idTok[int32(uint32(key))]
		if r, _ := utf8.DecodeRuneInString(right); r == meta {
			last, _ := utf8.DecodeLastRuneInString(left)
			bad[last] = true
		}
	}
	m.cutRune, m.cutAfter = meta, bad
}

// ---- normalizers ----

type typed struct {
	Type string `json:"type"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// pattern compiles a {"String": ...} or {"Regex": ...} pattern.
func (l *loader) pattern(p patternJSON, field string) (matcher, string, error) {
	switch {
	case p.String != nil:
		return literalMatcher{*p.String}, *p.String, nil
	case p.Regex != nil:
		m, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, "", l.errf(field+".Regex", "%v", err)
		}
		return m, "", nil
	}
	return nil, "", l.errf(field, "want {\"String\": ...} or {\"Regex\": ...}")
}

func (l *loader) normalizer(raw json.RawMessage, field string) (normalizer, error) {
	var ty typed
	if err := l.unmarshal(raw, field, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		var v struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		seq := normalizerSeq{}
		for i, r := range v.Normalizers {
			n, err := l.normalizer(r, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, n)
		}
		return seq, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Prepend":
		var v struct {
			Prepend string `json:"prepend"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		return prependNorm{v.Prepend}, nil
	case "Replace":
		r, err := l.replace(raw, field)
		return r, err
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		var v struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		return stripNorm{v.Left, v.Right}, nil
	case "StripAccents":
		return stripAccentsNorm{}, nil
	case "":
		return nil, l.errf(field+".type", "missing")
	}
	return nil, l.unsupported(field+".type", "normalizer", ty.Type)
}

func (l *loader) replace(raw json.RawMessage, field string) (replaceNorm, error) {
	var v struct {
		Pattern patternJSON `json:"pattern"`
		Content string      `json:"content"`
	}
	if err := l.unmarshal(raw, field, &v); err != nil {
		return replaceNorm{}, err
	}
	m, lit, err := l.pattern(v.Pattern, field+".pattern")
	if err != nil {
		return replaceNorm{}, err
	}
	return replaceNorm{m: m, lit: lit, content: v.Content}, nil
}

// ---- pre-tokenizers ----

func (l *loader) preTokenizer(raw json.RawMessage, field string) (preTokenizer, error) {
	var ty typed
	if err := l.unmarshal(raw, field, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		var v struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		seq := preTokenizerSeq{}
		for i, r := range v.PreTokenizers {
			p, err := l.preTokenizer(r, fmt.Sprintf("%s.pretokenizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	case "Split":
		var v struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		m, _, err := l.pattern(v.Pattern, field+".pattern")
		if err != nil {
			return nil, err
		}
		b, ok := splitBehaviors[v.Behavior]
		if !ok {
			return nil, l.errf(field+".behavior", "unknown split behavior %q", v.Behavior)
		}
		return &splitPre{m: m, invert: v.Invert, behavior: b}, nil
	case "ByteLevel":
		v := struct {
			AddPrefixSpace bool `json:"add_prefix_space"`
			UseRegex       bool `json:"use_regex"`
		}{UseRegex: true}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		return &byteLevelPre{addPrefixSpace: v.AddPrefixSpace, useRegex: v.UseRegex}, nil
	case "Metaspace":
		repl, scheme, split, err := l.metaspace(raw, field)
		if err != nil {
			return nil, err
		}
		return &metaspacePre{replacement: repl, repl: string(repl), prepend: scheme, splitWords: split}, nil
	case "Digits":
		var v struct {
			Individual bool `json:"individual_digits"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		return &digitsPre{individual: v.Individual}, nil
	case "WhitespaceSplit":
		return whitespaceSplitPre{}, nil
	case "":
		return nil, l.errf(field+".type", "missing")
	}
	return nil, l.unsupported(field+".type", "pre-tokenizer", ty.Type)
}

// metaspace reads the fields shared by the Metaspace pre-tokenizer and
// decoder, old (add_prefix_space) and new (prepend_scheme, split) forms.
func (l *loader) metaspace(raw json.RawMessage, field string) (rune, prependScheme, bool, error) {
	var v struct {
		Replacement    string `json:"replacement"`
		PrependScheme  string `json:"prepend_scheme"`
		Split          *bool  `json:"split"`
		AddPrefixSpace *bool  `json:"add_prefix_space"`
	}
	if err := l.unmarshal(raw, field, &v); err != nil {
		return 0, 0, false, err
	}
	r, n := utf8.DecodeRuneInString(v.Replacement)
	if n == 0 || n != len(v.Replacement) {
		return 0, 0, false, l.errf(field+".replacement", "want one character, got %q", v.Replacement)
	}
	scheme := prependAlways
	switch v.PrependScheme {
	case "", "always":
	case "first":
		scheme = prependFirst
	case "never":
		scheme = prependNever
	default:
		return 0, 0, false, l.errf(field+".prepend_scheme", "unknown scheme %q", v.PrependScheme)
	}
	if v.AddPrefixSpace != nil && !*v.AddPrefixSpace {
		scheme = prependNever
	}
	split := v.Split == nil || *v.Split
	return r, scheme, split, nil
}

// ---- post-processors ----

func (l *loader) postProcessor(raw json.RawMessage, field string) (postProcessor, error) {
	var ty typed
	if err := l.unmarshal(raw, field, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		var v struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		seq := postProcessorSeq{}
		for i, r := range v.Processors {
			p, err := l.postProcessor(r, fmt.Sprintf("%s.processors[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	case "ByteLevel":
		return noopPost{}, nil
	case "TemplateProcessing":
		var v struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		tp := &templatePost{}
		for i, it := range v.Single {
			f := fmt.Sprintf("%s.single[%d]", field, i)
			switch {
			case it.Sequence != nil:
				if it.Sequence.ID != "A" {
					return nil, l.errf(f, "sequence %q in a single-sequence template", it.Sequence.ID)
				}
				tp.single = append(tp.single, templateItem{sequence: true})
			case it.SpecialToken != nil:
				st, ok := v.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, l.errf(f, "special token %q missing from special_tokens", it.SpecialToken.ID)
				}
				tp.single = append(tp.single, templateItem{ids: st.IDs})
			default:
				return nil, l.errf(f, "want SpecialToken or Sequence")
			}
		}
		return tp, nil
	case "BertProcessing", "RobertaProcessing":
		var v struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		var sep, cls int
		if len(v.Sep) != 2 || json.Unmarshal(v.Sep[1], &sep) != nil {
			return nil, l.errf(field+".sep", "want [token, id]")
		}
		if len(v.Cls) != 2 || json.Unmarshal(v.Cls[1], &cls) != nil {
			return nil, l.errf(field+".cls", "want [token, id]")
		}
		return bertPost{cls: cls, sep: sep}, nil
	case "":
		return nil, l.errf(field+".type", "missing")
	}
	return nil, l.unsupported(field+".type", "post-processor", ty.Type)
}

// ---- decoders ----

func (l *loader) decoder(raw json.RawMessage, field string) (decoder, error) {
	var ty typed
	if err := l.unmarshal(raw, field, &ty); err != nil {
		return nil, err
	}
	switch ty.Type {
	case "Sequence":
		var v struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		seq := decoderSeq{}
		for i, r := range v.Decoders {
			d, err := l.decoder(r, fmt.Sprintf("%s.decoders[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, d)
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "Replace":
		r, err := l.replace(raw, field)
		return replaceDec{r}, err
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		var v struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		r, n := utf8.DecodeRuneInString(v.Content)
		if n == 0 || n != len(v.Content) {
			return nil, l.errf(field+".content", "want one character, got %q", v.Content)
		}
		return stripDec{content: r, start: v.Start, stop: v.Stop}, nil
	case "Metaspace":
		repl, scheme, _, err := l.metaspace(raw, field)
		if err != nil {
			return nil, err
		}
		return metaspaceDec{replacement: repl, prepend: scheme}, nil
	case "BPEDecoder":
		v := struct {
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := l.unmarshal(raw, field, &v); err != nil {
			return nil, err
		}
		return bpeSuffixDec{suffix: v.Suffix}, nil
	case "":
		return nil, l.errf(field+".type", "missing")
	}
	return nil, l.unsupported(field+".type", "decoder", ty.Type)
}

// ---- tokenizer_config.json ----

// llamaClasses are the transformers tokenizer classes whose constructor
// rebuilds the post-processor from add_bos_token / add_eos_token.
var llamaClasses = map[string]bool{
	"LlamaTokenizer": true, "LlamaTokenizerFast": true,
	"CodeLlamaTokenizer": true, "CodeLlamaTokenizerFast": true,
	"GemmaTokenizer": true, "GemmaTokenizerFast": true,
}

func (t *Tokenizer) applyConfig(path string, data []byte) error {
	var c struct {
		BOS            json.RawMessage   `json:"bos_token"`
		EOS            json.RawMessage   `json:"eos_token"`
		AddBOS         *bool             `json:"add_bos_token"`
		AddEOS         *bool             `json:"add_eos_token"`
		TokenizerClass string            `json:"tokenizer_class"`
		Additional     []json.RawMessage `json:"additional_special_tokens"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	tokenField := func(raw json.RawMessage, field string) (int, error) {
		s, ok, err := configToken(raw)
		if err != nil {
			return -1, fmt.Errorf("%s: %s: %v", path, field, err)
		}
		if !ok {
			return -1, nil
		}
		// A token the vocabulary lacks is treated as absent, as transformers
		// tolerates such configs.
		id, found := t.TokenID(s)
		if !found {
			return -1, nil
		}
		return id, nil
	}
	var err error
	if t.bos, err = tokenField(c.BOS, "bos_token"); err != nil {
		return err
	}
	if t.eos, err = tokenField(c.EOS, "eos_token"); err != nil {
		return err
	}
	for i, raw := range c.Additional {
		id, err := tokenField(raw, fmt.Sprintf("additional_special_tokens[%d]", i))
		if err != nil {
			return err
		}
		if id >= 0 {
			t.skip[id] = true
		}
	}
	if llamaClasses[c.TokenizerClass] {
		addBOS := c.AddBOS == nil || *c.AddBOS
		addEOS := c.AddEOS != nil && *c.AddEOS
		tp := &templatePost{}
		if addBOS && t.bos >= 0 {
			tp.single = append(tp.single, templateItem{ids: []int{t.bos}})
		}
		tp.single = append(tp.single, templateItem{sequence: true})
		if addEOS && t.eos >= 0 {
			tp.single = append(tp.single, templateItem{ids: []int{t.eos}})
		}
		t.post = tp
	}
	return nil
}

// configToken reads a special token setting: null, a string, or an object
// with "content" (the serialised AddedToken form).
func configToken(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("want a string or {\"content\": ...}")
	}
	return *obj.Content, true, nil
}
