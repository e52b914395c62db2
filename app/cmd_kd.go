package app

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"

	"distill/core/data"
	"distill/core/infer"
	"distill/core/model"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

func init() {
	register(command{name: "kd", usage: "traces --teacher DIR --data FILE --out FILE — teacher outputs for sequence-level distillation", run: runKD})
}

// runKD generates teacher traces: for every prompt of a dataset, the
// teacher's own completion, written as {"prompt","completion"} JSONL that
// `distill train kd --traces` trains a student on (any tokenizer).
func runKD(env *Env, args []string) error {
	if len(args) == 0 || args[0] != "traces" {
		return fmt.Errorf("kd: the subcommand is traces (distill kd traces --teacher DIR --data FILE --out FILE)")
	}
	fs := newFlags(env, "kd traces", "--teacher DIR --data FILE --out FILE [--max-tokens N] [--temperature T]")
	teacher := fs.String("teacher", "", "teacher model folder")
	dataPath := fs.String("data", "", "prompts: prompt_completion, messages or preference JSONL")
	out := fs.String("out", "", "JSONL file to write")
	maxTokens := fs.Int("max-tokens", 128, "most tokens per completion")
	temp := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	useChat := fs.Bool("chat", false, "wrap plain prompts in the teacher's chat template")
	eng := addEngineFlags(fs, env.Stderr)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *teacher == "" || *dataPath == "" || *out == "" {
		return fmt.Errorf("--teacher, --data and --out are required")
	}
	ds, err := data.Load(*dataPath, data.Options{})
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(*teacher)
	if err != nil {
		return err
	}
	tmpl, _ := chat.Load(*teacher)
	be, m, err := openModel(eng, *teacher)
	if err != nil {
		return err
	}
	defer m.Close()
	gc, err := model.LoadGenerationConfig(*teacher)
	if err != nil {
		return err
	}
	eos := m.EOSIDs(gc)
	if id, ok := tok.EOS(); ok {
		eos = append(eos, id)
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for i, r := range ds.Rows {
		prompt, msgs := r.Prompt, r.Messages
		if len(r.PromptMessages) > 0 {
			msgs = r.PromptMessages
		}
		var ids []int
		switch {
		case len(msgs) > 0 || *useChat:
			if tmpl == nil {
				f.Close()
				os.Remove(tmp)
				return fmt.Errorf("%s has no chat template for the conversation on line %d", *teacher, r.Line)
			}
			if len(msgs) == 0 {
				msgs = []chat.Message{{Role: "user", Content: prompt}}
			} else if msgs[len(msgs)-1].Role == "assistant" {
				msgs = msgs[:len(msgs)-1] // the teacher writes the last answer
			}
			text, err := tmpl.Render(msgs, true)
			if err != nil {
				f.Close()
				os.Remove(tmp)
				return fmt.Errorf("line %d: %w", r.Line, err)
			}
			ids = tok.Encode(text, false)
			prompt = text
		default:
			ids = tok.Encode(prompt, true)
		}
		res, err := infer.Generate(ctx, be, m, tok, ids, infer.GenerateOptions{MaxTokens: *maxTokens, EOS: eos,
			Sampling: infer.Sampling{Temperature: *temp, Seed: *seed + uint64(i)}})
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("line %d: %w", r.Line, err)
		}
		if err := writeJSON(w, map[string]string{"prompt": prompt, "completion": res.Text}); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		os.Remove(tmp)
		return fmt.Errorf("interrupted: %s not written", *out)
	}
	fmt.Fprintf(env.Stdout, "wrote %d traces to %s\n", len(ds.Rows), *out)
	return os.Rename(tmp, *out)
}
