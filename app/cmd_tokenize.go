package app

import (
	"fmt"

	"distill/core/tokenizer"
)

func init() {
	register(command{name: "tokenize", usage: "--model DIR --text TEXT [--add-special] [--json]", run: runTokenize})
}

func runTokenize(env *Env, args []string) error {
	fs := newFlags(env, "tokenize", "--model DIR --text TEXT [--add-special] [--json]")
	dir := fs.String("model", "", "model folder with tokenizer.json")
	text := fs.String("text", "", "text to tokenize (empty gives no ids)")
	special := fs.Bool("add-special", false, "add the post-processor's special tokens (e.g. BOS)")
	asJSON := fs.Bool("json", false, "print {\"ids\",\"decoded\"} as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
	}
	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	ids := tok.Encode(*text, *special)
	if ids == nil {
		ids = []int{}
	}
	decoded := tok.Decode(ids, false)
	if *asJSON {
		return writeJSON(env.Stdout, map[string]any{"ids": ids, "decoded": decoded})
	}
	for i, id := range ids {
		fmt.Fprintf(env.Stdout, "%6d  %q\n", id, tok.Token(ids[i]))
	}
	return nil
}
