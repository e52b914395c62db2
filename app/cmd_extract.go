package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"distill/core/data"
	"distill/core/eval"
	"distill/core/infer"
	"distill/core/model"
	"distill/core/task/idp"
	"distill/core/tensor"
	"distill/core/tokenizer"
	"distill/core/tokenizer/chat"
	"distill/store"
)

func init() {
	register(command{name: "extract", usage: "--model DIR [--adapter DIR] --schema FILE --document FILE [--max-tokens N] --json — JSON that always satisfies the schema", run: runExtract})
}

// extractor holds what schema-constrained extraction needs.
type extractor struct {
	be    tensor.Backend
	m     *model.Model
	tok   *tokenizer.Tokenizer
	tmpl  *chat.Template // nil: plain prompt
	g     *idp.Grammar
	ds    *data.Dataset // renders the IDP prompt template
	close func()
}

func newExtractor(eng engineFlags, dir, schemaPath string, useChat bool) (*extractor, error) {
	schema, err := os.ReadFile(schemaPath)
	if err != nil {
		return nil, err
	}
	tok, be, m, err := openForTask(eng, dir)
	if err != nil {
		return nil, err
	}
	g, err := idp.Compile(schema, tok)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", schemaPath, err)
	}
	x := &extractor{be: be, m: m, tok: tok, g: g, close: func() { m.Close() }}
	if useChat {
		if x.tmpl, err = chat.Load(dir); err != nil {
			m.Close()
			return nil, err
		}
	}
	return x, nil
}

// prompt renders the extraction prompt for a document the way the trainer
// renders IDP rows (data.DefaultIDPTemplate), optionally in the chat template.
func (x *extractor) prompt(promptText string) ([]int, error) {
	if x.tmpl == nil {
		return x.tok.Encode(promptText, true), nil
	}
	_, ids, err := x.tmpl.Encode(x.tok, []chat.Message{{Role: "user", Content: promptText}}, true)
	return ids, err
}

func (x *extractor) run(ctx context.Context, promptText string, maxTokens int) (idp.Result, error) {
	ids, err := x.prompt(promptText)
	if err != nil {
		return idp.Result{}, err
	}
	return idp.Generate(ctx, x.be, x.m, x.tok, x.g, ids, maxTokens, infer.Sampling{})
}

func runExtract(env *Env, args []string) error {
	fs := newFlags(env, "extract", "--model DIR [--adapter DIR] --schema FILE --document FILE [--max-tokens N] --json")
	dir := fs.String("model", "", "model folder")
	schemaPath := fs.String("schema", "", "JSON Schema file")
	docPath := fs.String("document", "", "document text file")
	maxTokens := fs.Int("max-tokens", 512, "most tokens of JSON (the output closes within it)")
	useChat := fs.Bool("chat", false, "send the prompt through the model's chat template")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	eng := addEngineFlags(fs, env.Stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *schemaPath == "" || *docPath == "" {
		return fmt.Errorf("--model, --schema and --document are required")
	}
	if *maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive, got %d", *maxTokens)
	}
	doc, err := os.ReadFile(*docPath)
	if err != nil {
		return err
	}
	x, err := newExtractor(eng, *dir, *schemaPath, *useChat)
	if err != nil {
		return err
	}
	defer x.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := x.run(ctx, idpPrompt(string(doc)), *maxTokens)
	if err != nil {
		return err
	}
	out := map[string]any{"json": res.JSON, "valid": res.Valid, "validation_error": res.ValidationError, "stop_reason": res.StopReason,
		"prompt_tokens": res.PromptTokens, "completion_tokens": res.CompletionTokens,
		"mask_ms_per_token": 1000 * res.MaskSeconds / float64(max(1, res.CompletionTokens))}
	if *asJSON {
		return writeJSON(env.Stdout, out)
	}
	var pretty any
	json.Unmarshal(res.JSON, &pretty)
	b, _ := json.MarshalIndent(pretty, "", "  ")
	fmt.Fprintf(env.Stdout, "%s\n(valid: %v)\n", b, res.Valid)
	return nil
}

// idpPrompt is data.DefaultIDPTemplate (the template the trainer uses for
// IDP rows) with the document in place.
func idpPrompt(doc string) string {
	return strings.ReplaceAll(data.DefaultIDPTemplate, "{document}", doc)
}

// evalIDP extracts every document of an IDP set and scores the outputs
// field by field against the targets.
func evalIDP(env *Env, args []string) error {
	fs := newFlags(env, "eval idp", "--model DIR [--adapter DIR] --data FILE --schema FILE [--run ID] --json")
	f := addEvalFlags(fs)
	f.eng = addEngineFlags(fs, env.Stderr)
	schemaPath := fs.String("schema", "", "JSON Schema of the targets")
	maxTokens := fs.Int("max-tokens", 512, "most tokens of JSON per document")
	useChat := fs.Bool("chat", false, "send the prompts through the model's chat template")
	limit := fs.Int("limit", 0, "evaluate at most this many documents (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.classesOnly("use --limit for documents"); err != nil {
		return err
	}
	if *f.data == "" || *schemaPath == "" {
		return fmt.Errorf("--data and --schema are required")
	}
	if *maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive, got %d", *maxTokens)
	}
	if *limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (every document) or more", *limit)
	}
	db, err := store.Open(*f.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := f.resolveRun(db); err != nil {
		return err
	}
	ds, err := data.Load(*f.data, data.Options{Format: data.FormatIDP, SchemaPath: *schemaPath})
	if err != nil {
		return err
	}
	warnSkipped(env.Stderr, ds)
	x, err := newExtractor(f.eng, *f.dir, *schemaPath, *useChat)
	if err != nil {
		return err
	}
	defer x.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var gold, pred []json.RawMessage
	var valid []bool
	for i, r := range ds.Rows {
		if *limit > 0 && i >= *limit {
			break
		}
		res, err := x.run(ctx, ds.IDPPrompt(r), *maxTokens)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", ds.Path, r.Line, err)
		}
		gold, pred, valid = append(gold, r.Target), append(pred, res.JSON), append(valid, res.Valid)
	}
	rep, err := eval.IDP(gold, pred, valid)
	if err != nil {
		return err
	}
	path, err := f.record(db, store.KindIDP, rep.Summary(), rep)
	if err != nil {
		return err
	}
	if *f.asJSON {
		return writeJSON(env.Stdout, map[string]any{"report": rep, "report_path": path})
	}
	rep.Table(env.Stdout)
	fmt.Fprintf(env.Stdout, "report: %s\n", path)
	return nil
}
