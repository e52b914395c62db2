package app

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
)

func init() {
	register(command{name: "generate", usage: "--model DIR --prompt TEXT [--chat] [--max-tokens N] [--temperature T] [--seed S] [--json]", run: runGenerate})
}

func runGenerate(env *Env, args []string) error {
	fs := newFlags(env, "generate", "--model DIR --prompt TEXT [--chat] [--max-tokens N] [--temperature T] [--seed S] [--json]")
	dir := fs.String("model", "", "model folder")
	prompt := fs.String("prompt", "", "prompt text")
	useChat := fs.Bool("chat", false, "wrap the prompt as a user message in the model's chat template")
	system := fs.String("system", "", "system message (with --chat)")
	maxTokens := fs.Int("max-tokens", 128, "most tokens to generate")
	temp := fs.Float64("temperature", -1, "sampling temperature; 0 is greedy (default: generation_config.json, else greedy)")
	topK := fs.Int("top-k", -1, "keep the k most likely tokens; 0 off (default: generation_config.json)")
	topP := fs.Float64("top-p", -1, "nucleus sampling mass; 1 off (default: generation_config.json)")
	minP := fs.Float64("min-p", -1, "drop tokens below min-p × p(top); 0 off (default: generation_config.json)")
	rep := fs.Float64("repetition-penalty", -1, "penalty on tokens already seen; 1 off (default: generation_config.json)")
	seed := fs.Uint64("seed", 0, "random seed for sampling")
	var stops stringList
	fs.Var(&stops, "stop", "stop string (repeatable)")
	eng := addEngineFlags(fs, env.Stderr)
	asJSON := fs.Bool("json", false, "print the result as one JSON object instead of streaming text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--model is required")
	}
	if *prompt == "" {
		return fmt.Errorf("--prompt is empty: give the text to continue")
	}
	if *maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive, got %d", *maxTokens)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := checkSamplingFlags(given, *temp, *topK, *topP, *minP, *rep); err != nil {
		return err
	}
	if err := checkModelDir(*dir); err != nil {
		return err
	}
	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	var ids []int
	if *useChat {
		tmpl, err := chat.Load(*dir)
		if err != nil {
			return err
		}
		var msgs []chat.Message
		if *system != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: *system})
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: *prompt})
		if _, ids, err = tmpl.Encode(tok, msgs, true); err != nil { // the template holds BOS etc.; the contents are text
			return err
		}
	} else {
		ids = tok.Encode(*prompt, true)
	}
	be, m, err := openModel(eng, *dir)
	if err != nil {
		return err
	}
	defer m.Close()
	gc, err := model.LoadGenerationConfig(*dir)
	if err != nil {
		return err
	}
	p := *topP
	if given["top-p"] && p == 0 {
		p = math.SmallestNonzeroFloat64 // the top token only, as the HTTP API reads top_p 0 (infer's 0 is "off")
	}
	opt := infer.GenerateOptions{
		MaxTokens: *maxTokens,
		Sampling:  samplingFrom(gc, *temp, *topK, p, *minP, *rep, *seed),
		EOS:       m.EOSIDs(gc),
		Stop:      stops,
	}
	if id, ok := tok.EOS(); ok {
		opt.EOS = append(opt.EOS, id)
	}
	if !*asJSON {
		opt.OnText = func(piece string) bool {
			_, err := fmt.Fprint(env.Stdout, piece)
			return err == nil
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := infer.Generate(ctx, be, m, tok, ids, opt)
	if err != nil {
		return err
	}
	if *asJSON {
		gen := res.IDs
		if gen == nil {
			gen = []int{}
		}
		return writeJSON(env.Stdout, map[string]any{
			"text":              res.Text,
			"ids":               gen,
			"prompt_tokens":     res.PromptTokens,
			"completion_tokens": res.CompletionTokens,
			"tokens_per_second": res.TokensPerSecond,
			"stop_reason":       res.StopReason,
		})
	}
	if !strings.HasSuffix(res.Text, "\n") {
		fmt.Fprintln(env.Stdout)
	}
	fmt.Fprintf(env.Stderr, "[%d prompt tokens, %d generated, %.1f tokens/s, stop: %s]\n", res.PromptTokens, res.CompletionTokens, res.TokensPerSecond, res.StopReason)
	return nil
}

// maxTemperature is the highest sampling temperature the CLI and the
// HTTP API (options.temperature on /infer) accept.
const maxTemperature = 100

// checkSamplingFlags refuses sampling flags given out of range, by the
// rules the HTTP API applies to the same options (serve_request.go):
// temperature in [0, 100], top-p and min-p in [0, 1], top-k 0 or more, a
// positive repetition penalty. Flags not given (their -1 defaults: the
// checkpoint's generation_config.json decides) are not checked; NaN and
// ±Inf are refused wherever given.
func checkSamplingFlags(given map[string]bool, temp float64, topK int, topP, minP, rep float64) error {
	switch {
	case given["temperature"] && !(temp >= 0 && temp <= maxTemperature):
		return fmt.Errorf("--temperature %g: want a number in [0, %d] (0: greedy)", temp, maxTemperature)
	case given["top-k"] && topK < 0:
		return fmt.Errorf("--top-k %d: want 0 or more (0: off)", topK)
	case given["top-p"] && !(topP >= 0 && topP <= 1):
		return fmt.Errorf("--top-p %g: want a number in [0, 1] (1: off; 0: the top token only)", topP)
	case given["min-p"] && !(minP >= 0 && minP <= 1):
		return fmt.Errorf("--min-p %g: want a number in [0, 1] (0: off)", minP)
	case given["repetition-penalty"] && !(rep > 0 && !math.IsInf(rep, 1)):
		return fmt.Errorf("--repetition-penalty %g: want a positive number (1: off; above 1 discourages repeats)", rep)
	}
	return nil
}

// samplingFrom starts from the checkpoint's generation_config.json (when it
// asks to sample) and lets each flag given (>= 0) override it.
func samplingFrom(gc *model.GenerationConfig, temp float64, topK int, topP, minP, rep float64, seed uint64) infer.Sampling {
	s := infer.Sampling{Seed: seed}
	if gc.DoSample != nil && *gc.DoSample {
		s.Temperature = 1
		if gc.Temperature != nil {
			s.Temperature = *gc.Temperature
		}
		if gc.TopK != nil {
			s.TopK = *gc.TopK
		}
		if gc.TopP != nil {
			s.TopP = *gc.TopP
		}
		if gc.MinP != nil {
			s.MinP = *gc.MinP
		}
	}
	if gc.RepetitionPenalty != nil {
		s.RepetitionPenalty = *gc.RepetitionPenalty
	}
	if temp >= 0 {
		s.Temperature = temp
	}
	if topK >= 0 {
		s.TopK = topK
	}
	if topP >= 0 {
		s.TopP = topP
	}
	if minP >= 0 {
		s.MinP = minP
	}
	if rep >= 0 {
		s.RepetitionPenalty = rep
	}
	return s
}
