package app

import (
	"fmt"
	"strings"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

func init() {
	register(command{name: "merge", usage: "--model DIR --adapter DIR --out DIR [--dtype keep|bf16|f16|f32] — fold a LoRA adapter into the base", run: runMerge})
}

func runMerge(env *Env, args []string) error {
	fs := newFlags(env, "merge", "--model DIR --adapter DIR --out DIR [--dtype keep|bf16|f16|f32]")
	dir := fs.String("model", "", "base model folder")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder")
	out := fs.String("out", "", "folder to write the merged HF checkpoint to (must not exist or be empty)")
	dtName := fs.String("dtype", "keep", "stored dtype: keep (the base's own), bf16, f16 or f32")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *adapter == "" || *out == "" {
		return fmt.Errorf("--model, --adapter and --out are required")
	}
	dt := lora.KeepDType
	if *dtName != "keep" {
		var err error
		if dt, err = tensor.ParseDType(strings.ToUpper(*dtName)); err != nil {
			return fmt.Errorf("--dtype: %v", err)
		}
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	a, err := lora.Load(*adapter, m)
	if err != nil {
		return err
	}
	if err := lora.Merge(m, a, *out, dt); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n", *out)
	return nil
}
