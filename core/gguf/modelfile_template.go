package gguf

import (
	"fmt"
	"strings"
	"text/template"

	"distill/core/tokenizer/chat"
)

// Ollama formats a chat with the Modelfile's TEMPLATE (Go text/template
// over .Messages), not with the GGUF's Jinja chat template, which it only
// matches against a list of known ones: an unmatched model (Qwen3's
// template, with Ollama 0.17.4) would get "{{ .Prompt }}" and answer
// unformatted turns. So the export writes a TEMPLATE — the chat format
// among these that renders, on probe conversations of ordinary system,
// user and assistant turns, exactly what the model's own template renders
// — or, when none does, says so. Beyond the probes the two can part, as
// Ollama's own built-in templates do: Ollama merges consecutive turns of
// one role, Llama 3's template trims each turn and Qwen3's marks a final
// assistant turn with an empty <think> block, which these do not, and
// tool turns are not covered.
var ollamaTemplates = []struct{ name, tmpl string }{
	{"ChatML", "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"},
	{"Llama 3", "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"},
}

// probes are the conversations a TEMPLATE must render alike: with and
// without a system turn, and a second user turn after an answer.
var probes = [][]chat.Message{
	{{Role: "user", Content: "Hi there"}},
	{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "What is 2+2?"}},
	{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hello"}, {Role: "assistant", Content: "Hi! How can I help?"}, {Role: "user", Content: "Name a colour."}},
}

// ollamaTemplate returns the TEMPLATE for tmpl's chat format and its name,
// or "" when no known format renders as tmpl does. bosText is the BOS
// token's text when the GGUF says to add BOS: Ollama then adds it itself,
// so the TEMPLATE must not write it, and a template that does not begin
// with it either gets none (Ollama would prepend a BOS distill never
// feeds that model).
func ollamaTemplate(tmpl *chat.Template, bosText string) (string, string) {
	want := make([]string, len(probes))
	for i, p := range probes {
		s, err := tmpl.Render(p, true)
		if err != nil {
			return "", ""
		}
		if bosText != "" {
			rest, ok := strings.CutPrefix(s, bosText)
			if !ok {
				return "", ""
			}
			s = rest
		}
		want[i] = s
	}
	// A template that writes BOS as text on a tokenizer that does not add
	// it (distill then reads the text as the BOS token, and so does Ollama
	// from a TEMPLATE) keeps it as text.
	lead := ""
	if b := tmpl.BOSToken(); bosText == "" && b != "" && !strings.Contains(b, "{{") {
		lead = b
		for _, w := range want {
			if !strings.HasPrefix(w, b) {
				lead = ""
			}
		}
	}
	// A template that puts in a system turn of its own when there is none
	// (Qwen2.5's "You are Qwen, …") keeps it.
	defaultSystem := ""
	if rest, ok := strings.CutPrefix(strings.TrimPrefix(want[0], lead), "<|im_start|>system\n"); ok {
		if sys, _, ok := strings.Cut(rest, "<|im_end|>\n"); ok && !strings.Contains(sys, "{{") {
			defaultSystem = "{{- if or (not .Messages) (ne (index .Messages 0).Role \"system\") }}<|im_start|>system\n" + sys + "<|im_end|>\n{{ end }}"
		}
	}
	for _, c := range ollamaTemplates {
		for _, prefix := range []string{"", defaultSystem} {
			if prefix == "" && c.name == "ChatML" && defaultSystem != "" {
				continue
			}
			src := lead + prefix + c.tmpl
			if rendersAs(src, want) {
				return src, c.name
			}
		}
	}
	return "", ""
}

// rendersAs executes src as Ollama does (Go text/template over .Messages)
// on every probe and compares with want.
func rendersAs(src string, want []string) bool {
	t, err := template.New("ollama").Parse(src)
	if err != nil {
		return false
	}
	for i, p := range probes {
		msgs := make([]map[string]any, len(p))
		for j, m := range p {
			msgs[j] = map[string]any{"Role": m.Role, "Content": m.Content}
		}
		var b strings.Builder
		if err := t.Execute(&b, map[string]any{"Messages": msgs, "System": "", "Prompt": "", "Response": "", "Tools": nil}); err != nil {
			return false
		}
		if b.String() != want[i] {
			return false
		}
	}
	return true
}

// modelfileTemplate is the Modelfile's TEMPLATE block for the model in
// dir, or a comment saying why there is none.
func modelfileTemplate(dir, bosText string) string {
	tmpl, err := chat.Load(dir)
	if err != nil {
		return "# No chat template: Ollama will pass prompts as they are.\n"
	}
	src, name := ollamaTemplate(tmpl, bosText)
	if src == "" || strings.Contains(src, `"""`) {
		return "# No Ollama TEMPLATE renders this model's chat template exactly; write one\n# (https://github.com/ollama/ollama/blob/main/docs/template.md) before chatting.\n"
	}
	return fmt.Sprintf("# %s chat format: renders ordinary system/user/assistant turns as the model's own\n# chat template does (checked at export).\nTEMPLATE \"\"\"%s\"\"\"\n", name, src)
}
