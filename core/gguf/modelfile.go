package gguf

import (
	"fmt"
	"strings"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tokenizer"
)

// ollamaName is name as Ollama accepts a model name: letters, digits and
// "._-" (an adapter's "base+adapter" would be refused).
func ollamaName(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return r
		}
		return '-'
	}, name)
}

// ModelfileOptions says what an Ollama Modelfile describes.
type ModelfileOptions struct {
	Name    string // the name for `ollama create`
	File    string // the GGUF file's name, beside the Modelfile
	Adapter bool   // an adapter.gguf lies beside it too
	// Sampling is the checkpoint's own decoding (generation_config.json's,
	// greedy when it does not sample).
	Sampling infer.Sampling
}

// Modelfile is the Ollama Modelfile for m exported as opt.File: FROM the
// file, a TEMPLATE for its chat format checked against the model's own
// chat template (modelfile_template.go), and, as PARAMETER lines, every
// id distill stops at and the decoding distill uses, since Ollama reads
// neither generation_config.json nor a second end-of-sequence id — its own
// defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1)
// would otherwise answer differently from `distill generate`.
func Modelfile(m *model.Model, opt ModelfileOptions) (string, error) {
	name, file, withAdapter, s := opt.Name, opt.File, opt.Adapter, opt.Sampling
	gen, err := model.LoadGenerationConfig(m.Dir)
	if err != nil {
		return "", err
	}
	tok, err := tokenizer.Load(m.Dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# ollama create %s -f Modelfile\n", ollamaName(name))
	if withAdapter {
		fmt.Fprintf(&b, "# adapter.gguf is the adapter alone, for llama.cpp's --lora or Ollama's\n")
		fmt.Fprintf(&b, "# ADAPTER over the base's own GGUF (distill gguf --model %s);\n", m.Dir)
		fmt.Fprintf(&b, "# Ollama's own engine (Qwen3's) refuses adapters: use %s there.\n", file)
	}
	fmt.Fprintf(&b, "FROM ./%s\n", file)
	bosText := ""
	if front, _ := tok.AddsSpecial(); front >= 0 {
		bosText = tok.Token(front)
	}
	b.WriteString(modelfileTemplate(m.Dir, bosText))

	// Every id distill stops at, by its text: Ollama stops on one EOS id
	// and the names it knows, so a second id (Qwen's <|endoftext|> after
	// <|im_end|>) is spelled out.
	ids := m.EOSIDs(gen)
	if id, ok := tok.EOS(); ok {
		ids = append(ids, id)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		text := tok.Token(id)
		if !tok.IsSpecial(id) || text == "" || seen[text] || strings.ContainsAny(text, "\"\n\\") {
			continue
		}
		seen[text] = true
		fmt.Fprintf(&b, "PARAMETER stop %q\n", text)
	}

	topP, rep := s.TopP, s.RepetitionPenalty
	if topP <= 0 {
		topP = 1
	}
	if rep <= 0 {
		rep = 1
	}
	fmt.Fprintf(&b, "PARAMETER temperature %g\n", s.Temperature)
	fmt.Fprintf(&b, "PARAMETER top_k %d\n", s.TopK)
	fmt.Fprintf(&b, "PARAMETER top_p %g\n", topP)
	fmt.Fprintf(&b, "PARAMETER min_p %g\n", s.MinP)
	fmt.Fprintf(&b, "PARAMETER repeat_penalty %g\n", rep)
	if rep != 1 {
		// distill, as transformers, penalises every token seen so far, not
		// Ollama's last 64.
		b.WriteString("PARAMETER repeat_last_n -1\n")
	}
	return b.String(), nil
}
