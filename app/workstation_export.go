package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"distill/core/gguf"
	"distill/core/lora"
	"distill/core/model"
)

// exportRoot is where the workstation writes exports.
const exportRoot = "exports"

// ExportAdapter writes a registered adapter out for use elsewhere and
// returns the folder: "peft" copies the PEFT adapter (for vLLM, TGI or
// PEFT itself), "merged" folds it into its base and writes a full HF
// checkpoint (safetensors, for any trainer or server), "gguf" folds it in
// and writes model.gguf at the base's own precision with an Ollama
// Modelfile beside it, and the adapter alone as adapter.gguf (for
// llama.cpp and Ollama); "gguf-q4_k_m" the same with model.gguf at
// llama.cpp's usual 4-bit mix (what a llama.cpp or Ollama fleet serves). The folder is
// exports/<name>-<kind> and must not exist yet.
func (w *Workstation) ExportAdapter(name, kind string) (string, error) {
	a, err := w.db.Adapter(context.Background(), name)
	if err != nil {
		return "", err
	}
	out := filepath.Join(exportRoot, name+"-"+kind)
	if _, err := os.Stat(out); err == nil {
		return "", fmt.Errorf("%s exists already: move it away first", out)
	}
	if err := os.MkdirAll(exportRoot, 0o755); err != nil {
		return "", err
	}
	switch kind {
	case "peft":
		return out, copyFolder(a.Path, out)
	case "merged", "gguf", "gguf-q4_k_m":
		m, err := model.Load(a.BaseModel)
		if err != nil {
			return "", fmt.Errorf("the base model of %s: %w", name, err)
		}
		defer m.Close()
		ad, err := lora.Load(a.Path, m)
		if err != nil {
			return "", err
		}
		if kind == "merged" {
			return out, lora.Merge(m, ad, out, lora.KeepDType)
		}
		typ := map[string]string{"gguf": "auto", "gguf-q4_k_m": "q4_k_m"}[kind]
		w.exporting.Add(1) // Close cancels it and waits (a merge cannot be cancelled: it is not waited for)
		defer w.exporting.Done()
		return out, exportGGUFFolder(w.exportCtx, m, ad, name, out, typ)
	}
	return "", fmt.Errorf("export %s: unknown kind %q (peft, merged, gguf or gguf-q4_k_m)", name, kind)
}

// exportGGUFFolder writes out/model.gguf (the adapter folded in, at type
// typ as `distill gguf --type` reads it: auto keeps the base's precision),
// out/adapter.gguf (the adapter alone) and out/Modelfile, through a
// temporary folder renamed at the end.
func exportGGUFFolder(ctx context.Context, m *model.Model, a *lora.Adapter, name, out, typ string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opt, err := ggufOptions(m, typ, name, "")
	if err != nil {
		return err
	}
	if err := exportGGUF(ctx, m, a, filepath.Join(tmp, "model.gguf"), opt); err != nil {
		return err
	}
	if err := gguf.ExportAdapter(ctx, m, a, filepath.Join(tmp, "adapter.gguf")); err != nil {
		return err
	}
	modelfile, err := ollamaModelfile(m, name, "model.gguf", true)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "Modelfile"), []byte(modelfile), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// copyFolder copies the regular files of src into a new folder dst, through
// a temporary folder renamed at the end, so dst is whole or absent.
func copyFolder(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp's 0700 would keep the export from others
		return err
	}
	return os.Rename(tmp, dst)
}
