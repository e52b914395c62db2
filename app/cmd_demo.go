package app

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"distill/core/model"
	"distill/core/tensor"
)

func init() {
	register(command{name: "demo-model", usage: "--out DIR --tokenizer DIR — a tiny random-weight model, the demo recipe's start", run: runDemoModel})
}

// runDemoModel writes a tiny Qwen3-shaped checkpoint with random weights and a
// real tokenizer: the starting point of the demo recipe
// (examples/recipes/demo-base.yaml), which trains it on the bundled data.
func runDemoModel(env *Env, args []string) error {
	fs := newFlags(env, "demo-model", "--out DIR --tokenizer DIR")
	out := fs.String("out", "models/demo", "folder to write")
	tokDir := fs.String("tokenizer", "", "folder with tokenizer.json and tokenizer_config.json to bundle")
	force := fs.Bool("force", false, "replace --out if it exists (a model trained there is lost)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *tokDir == "" {
		return fmt.Errorf("--tokenizer is required")
	}
	if st, err := os.Stat(*out); err == nil && !*force {
		if !st.IsDir() {
			return fmt.Errorf("--out %s is a file: give a new folder", *out)
		}
		if entries, _ := os.ReadDir(*out); len(entries) > 0 {
			return fmt.Errorf("--out %s exists: random weights would replace what it holds; give a new folder, or --force to replace it", *out)
		}
	}
	tmp := *out + ".tmp"
	os.RemoveAll(tmp)
	if err := model.WriteRandom(tmp, model.Shapes["demo"], tensor.BF16, 42); err != nil {
		return err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if err := copyFile(filepath.Join(*tokDir, f), filepath.Join(tmp, f)); err != nil {
			return err
		}
	}
	gen := `{"eos_token_id": [151645, 151643], "bos_token_id": 151643}` + "\n"
	if err := os.WriteFile(filepath.Join(tmp, "generation_config.json"), []byte(gen), 0o644); err != nil {
		return err
	}
	os.RemoveAll(*out)
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n", *out)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil { // whole on disk before a rename publishes it
		out.Close()
		return err
	}
	return out.Close()
}
