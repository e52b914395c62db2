package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"

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
// teacher's own completion, written as JSONL that `distill train kd
// --traces` trains a student on (any tokenizer): {"prompt","completion"}
// for plain prompts, {"messages"} with the teacher's answer last for
// conversations (the student's own chat template renders them). A
// completion cut off at --max-tokens is left out, not trained on as if the
// teacher had finished it there.
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
	force := fs.Bool("force", false, "replace --out if it exists")
	eng := addEngineFlags(fs, env.Stderr)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *teacher == "" || *dataPath == "" || *out == "" {
		return fmt.Errorf("--teacher, --data and --out are required")
	}
	if *maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive, got %d", *maxTokens)
	}
	if err := checkSamplingFlags(map[string]bool{"temperature": true}, *temp, 0, 0, 0, 1); err != nil {
		return err
	}
	if err := checkModelDir(*teacher); err != nil {
		return fmt.Errorf("--teacher: %w", err)
	}
	if err := checkTracesOut(*out, *dataPath, *force); err != nil {
		return err
	}
	ds, err := data.Load(*dataPath, data.Options{})
	if err != nil {
		return err
	}
	switch ds.Format {
	case data.FormatPromptCompletion, data.FormatMessages, data.FormatPreference:
	default:
		return fmt.Errorf("%s: %s rows hold no prompt for the teacher to answer; kd traces reads prompt/completion, messages or preference rows", *dataPath, ds.Format)
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
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	written, cut, empty := 0, 0, 0
	for i, r := range ds.Rows {
		prompt, msgs := r.Prompt, r.Messages
		if len(r.PromptMessages) > 0 {
			msgs = r.PromptMessages
		}
		var ids []int
		switch {
		case len(msgs) > 0 || *useChat:
			if tmpl == nil {
				return fail(fmt.Errorf("%s has no chat template for the conversation on line %d", *teacher, r.Line))
			}
			if len(msgs) == 0 {
				msgs = []chat.Message{{Role: "user", Content: prompt}}
			} else if msgs[len(msgs)-1].Role == "assistant" {
				msgs = msgs[:len(msgs)-1] // the teacher writes the last answer
			}
			var err error
			if _, ids, err = tmpl.Encode(tok, msgs, true); err != nil {
				return fail(fmt.Errorf("line %d: %w", r.Line, err))
			}
		default:
			ids = tok.Encode(prompt, true)
		}
		res, err := infer.Generate(ctx, be, m, tok, ids, infer.GenerateOptions{MaxTokens: *maxTokens, EOS: eos,
			Sampling: infer.Sampling{Temperature: *temp, Seed: *seed + uint64(i)}})
		if err != nil {
			return fail(fmt.Errorf("line %d: %w", r.Line, err))
		}
		if ctx.Err() != nil {
			break
		}
		if res.StopReason == "length" {
			cut++
			continue
		}
		if strings.TrimSpace(res.Text) == "" { // the teacher stopped at once: nothing to learn from
			empty++
			continue
		}
		var trace any = map[string]string{"prompt": prompt, "completion": res.Text}
		if len(msgs) > 0 {
			trace = map[string]any{"messages": append(slices.Clone(msgs), chat.Message{Role: "assistant", Content: res.Text})}
		}
		if err := writeJSON(w, trace); err != nil {
			return fail(err)
		}
		written++
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		os.Remove(tmp)
		return fmt.Errorf("interrupted: %s not written", *out)
	}
	if cut > 0 {
		fmt.Fprintf(env.Stderr, "%d of %d completions ran past --max-tokens %d and were left out (a student would learn to stop mid-answer): raise --max-tokens to keep them\n", cut, len(ds.Rows), *maxTokens)
	}
	if empty > 0 {
		fmt.Fprintf(env.Stderr, "%d of %d completions were empty and were left out\n", empty, len(ds.Rows))
	}
	if written == 0 {
		os.Remove(tmp)
		return fmt.Errorf("no trace to write: every completion ran past --max-tokens %d or was empty", *maxTokens)
	}
	fmt.Fprintf(env.Stdout, "wrote %d traces to %s\n", written, *out)
	return os.Rename(tmp, *out)
}

// checkTracesOut refuses an --out that exists (unless force) or that is
// the data file itself, whatever force says.
func checkTracesOut(out, dataPath string, force bool) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("--out %s is a folder: give the JSONL file to write", out)
	}
	if ds, err := os.Stat(dataPath); err == nil && os.SameFile(st, ds) {
		return fmt.Errorf("--out %s is the --data file: the traces would replace the prompts they come from", out)
	}
	if !force {
		return fmt.Errorf("--out %s exists: give a new file, or --force to replace it", out)
	}
	return nil
}
