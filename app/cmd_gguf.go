package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"distill/core/gguf"
	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

func init() {
	register(command{name: "gguf", usage: "--model DIR [--adapter DIR [--adapter-only]] --out FILE.gguf [--type auto|f32|f16|bf16|q8_0|q6_k|q4_k_m] — a GGUF file for llama.cpp and Ollama: the model with the adapter folded in, or the adapter alone", run: runGGUF})
}

func runGGUF(env *Env, args []string) error {
	fs := newFlags(env, "gguf", "--model DIR [--adapter DIR [--adapter-only]] --out FILE.gguf [--type auto|f32|f16|bf16|q8_0|q6_k|q4_k_m] [--modelfile]")
	dir := fs.String("model", "", "base model folder (HF: config.json, safetensors, tokenizer.json)")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder to fold in (optional)")
	out := fs.String("out", "", "GGUF file to write (must not exist)")
	typName := fs.String("type", "auto", "the file's type: auto (the base's own f32/f16/bf16), f32, f16, bf16, q8_0 (8.5 bits/weight), or llama-quantize's q6_k (6.6 bits/weight) and q4_k_m (its 4-bit mix: Q4_K, with Q6_K for the output and about half the attn_v and ffn_down)")
	name := fs.String("name", "", "general.name inside the file (default: the model folder's name, with the adapter's)")
	withModelfile := fs.Bool("modelfile", false, "also write an Ollama Modelfile beside --out (chat TEMPLATE, stop tokens, the checkpoint's sampling)")
	adapterOnly := fs.Bool("adapter-only", false, "write the adapter alone as a GGUF LoRA adapter (f32), for llama.cpp's --lora or Ollama's ADAPTER over the base's GGUF")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	if _, _, err := parseGGUFType(*typName); err != nil {
		return err // before the model is opened
	}
	if *adapterOnly && !strings.EqualFold(*typName, "auto") && !strings.EqualFold(*typName, "f32") {
		return fmt.Errorf("--adapter-only writes the adapter at f32 (llama.cpp applies it at any base type): drop --type %s", *typName)
	}
	// Ctrl-C stops the export at the next tensor and leaves no file.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	var a *lora.Adapter
	if *adapter != "" {
		if a, err = lora.Load(*adapter, m); err != nil {
			return err
		}
	}
	if *adapterOnly {
		if a == nil {
			return fmt.Errorf("--adapter-only needs --adapter")
		}
		if *withModelfile {
			return fmt.Errorf("--modelfile describes a model export; with --adapter-only write the base's GGUF with --modelfile and add ADAPTER ./%s to its Modelfile", filepath.Base(*out))
		}
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists already: remove it or choose another --out", *out)
		}
		if err := gguf.ExportAdapter(ctx, m, a, *out); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (LoRA adapter, rank %d)\n", *out, a.Config.R)
		return nil
	}
	opt, err := ggufOptions(m, *typName, *name, *adapter)
	if err != nil {
		return err
	}
	var modelfile, mfPath string
	if *withModelfile {
		// Made and checked before the export, so a refusal costs nothing.
		mfPath = filepath.Join(filepath.Dir(*out), "Modelfile")
		if _, err := os.Stat(mfPath); err == nil {
			return fmt.Errorf("%s exists already: remove it or write the GGUF elsewhere", mfPath)
		}
		if modelfile, err = ollamaModelfile(m, opt.Name, filepath.Base(*out), false); err != nil {
			return err
		}
	}
	if err := exportGGUF(ctx, m, a, *out, opt); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s (%s)\n", *out, opt.Type)
	if modelfile != "" {
		if err := os.WriteFile(mfPath, []byte(modelfile), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s (ollama create NAME -f %s)\n", mfPath, mfPath)
	}
	return nil
}

// ggufOptions resolves --type auto to the base's own storage type and names
// the file's model after its folders.
func ggufOptions(m *model.Model, typName, name, adapter string) (gguf.Options, error) {
	opt := gguf.Options{Name: name}
	if opt.Name == "" {
		opt.Name = filepath.Base(filepath.Clean(m.Dir))
		if adapter != "" {
			opt.Name += "+" + filepath.Base(filepath.Clean(adapter))
		}
	}
	t, auto, err := parseGGUFType(typName)
	if err != nil {
		return opt, err
	}
	if !auto {
		opt.Type = t
		return opt, nil
	}
	switch m.Embed.DType {
	case tensor.F32:
		opt.Type = gguf.AllF32
	case tensor.BF16:
		opt.Type = gguf.MostlyBF16
	default:
		opt.Type = gguf.MostlyF16
	}
	return opt, nil
}

// parseGGUFType reads --type: auto, or one of gguf's file types.
func parseGGUFType(s string) (t gguf.FileType, auto bool, err error) {
	if strings.EqualFold(s, "auto") {
		return 0, true, nil
	}
	if t, err = gguf.ParseFileType(s); err != nil {
		return 0, false, fmt.Errorf("--type: %v, or auto", err)
	}
	return t, false, nil
}

// exportGGUF folds a (nil: none) into m and writes one GGUF file at out,
// refusing to replace an existing file.
func exportGGUF(ctx context.Context, m *model.Model, a *lora.Adapter, out string, opt gguf.Options) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists already: remove it or choose another --out", out)
	}
	src, err := lora.OpenMerged(m, a)
	if err != nil {
		return err
	}
	defer src.Close()
	return gguf.Export(ctx, m, src, out, opt)
}
