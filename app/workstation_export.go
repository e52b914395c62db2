package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"distill/core/lora"
	"distill/core/model"
)

// exportRoot is where the workstation writes exports.
const exportRoot = "exports"

// ExportAdapter writes a registered adapter out for use elsewhere and
// returns the folder: "peft" copies the PEFT adapter (for vLLM, TGI or
// PEFT itself), "merged" folds it into its base and writes a full HF
// checkpoint (safetensors, for any trainer or server). The folder is
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
	case "merged":
		m, err := model.Load(a.BaseModel)
		if err != nil {
			return "", fmt.Errorf("the base model of %s: %w", name, err)
		}
		defer m.Close()
		ad, err := lora.Load(a.Path, m)
		if err != nil {
			return "", err
		}
		return out, lora.Merge(m, ad, out, lora.KeepDType)
	}
	return "", fmt.Errorf("export %s: unknown kind %q (peft or merged)", name, kind)
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
	return os.Rename(tmp, dst)
}
