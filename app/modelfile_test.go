package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distill/core/model"
)

// A checkpoint that samples (Qwen2.5-Instruct's generation_config.json)
// gets its own settings in the Modelfile, not Ollama's defaults.
func TestOllamaModelfileSampling(t *testing.T) {
	dir := tinyModel(t)
	gen := `{"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": true,
	 "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}`
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mf, err := ollamaModelfile(m, "tickets+sft", "model.gguf", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ollama create tickets-sft -f", "adapter.gguf is the adapter alone", "\nFROM ./model.gguf\n", "PARAMETER stop \"<|im_end|>\"\nPARAMETER stop \"<|endoftext|>\"\n",
		"PARAMETER temperature 0.7\n", "PARAMETER top_k 20\n", "PARAMETER top_p 0.8\n", "PARAMETER min_p 0\n",
		"PARAMETER repeat_penalty 1.05\n", "PARAMETER repeat_last_n -1\n",
		"# ChatML chat format", "TEMPLATE \"\"\"{{- range .Messages }}<|im_start|>{{ .Role }}\n"} {
		if !strings.Contains(mf, want) {
			t.Errorf("Modelfile lacks %q:\n%s", want, mf)
		}
	}
	if strings.Count(mf, "PARAMETER stop") != 2 {
		t.Errorf("stop tokens repeated:\n%s", mf)
	}
}

// distill gguf --modelfile writes the Modelfile beside the file it names.
func TestGGUFModelfileFlag(t *testing.T) {
	dir := tinyModel(t)
	out := filepath.Join(t.TempDir(), "tickets.gguf")
	if code, _, stderr := run("gguf", "--model", dir, "--out", out, "--type", "q8_0", "--modelfile"); code != 0 {
		t.Fatal(stderr)
	}
	mf, err := os.ReadFile(filepath.Join(filepath.Dir(out), "Modelfile"))
	if err != nil || !strings.Contains(string(mf), "\nFROM ./tickets.gguf\n") || !strings.Contains(string(mf), "TEMPLATE") {
		t.Errorf("Modelfile: %q, %v", mf, err)
	}
	// A second export beside it refuses before writing anything.
	if code, _, stderr := run("gguf", "--model", dir, "--out", filepath.Join(filepath.Dir(out), "b.gguf"), "--modelfile"); code != 1 || !strings.Contains(stderr, "Modelfile exists") {
		t.Errorf("second --modelfile: %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "b.gguf")); err == nil {
		t.Error("the refused export wrote its GGUF")
	}
}
