// Package data reads fine-tuning datasets (JSONL and CSV), checks every row,
// and turns rows into token ids with loss masks for the trainer
// (train.Example for SFT and KD, PreferencePair for DPO). It also holds the
// prompt templating the task pipelines share with training
// (ClassificationPrompt, Verbalizer, IDPPrompt) and the seeded train /
// validation splits.
//
// Formats, one JSON object per line (or a CSV with a header for
// classification):
//
//	prompt_completion  {"prompt": "...", "completion": "..."}
//	messages           {"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}
//	classification     {"text": "...", "label": ...} or {"f1": ..., "f2": ..., "label": ...}
//	idp                {"document": "...", "target": {...}}   (+ Options.SchemaPath)
//	preference         {"prompt": "..." or [messages], "chosen": "...", "rejected": "..."}
//
// Unless Options.Format names one, the format is detected from the keys of
// the first row that parses: each format's required keys are looked for
// (classification: the label column), and exactly one format must fit.
// Extra keys are ignored, except in classification rows, where every key
// other than the label is a feature.
//
// A row that is not valid JSON or lacks a required field is a bad row,
// reported as "file:line: what is wrong (field X)". With Options.Strict the
// load fails at the first; otherwise bad rows are skipped and kept in
// Dataset.Skipped, never dropped silently.
package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distill/core/tokenizer/chat"
)

// Dataset formats (Options.Format, Dataset.Format).
const (
	FormatPromptCompletion = "prompt_completion"
	FormatMessages         = "messages"
	FormatClassification   = "classification"
	FormatIDP              = "idp"
	FormatPreference       = "preference"
)

// Formats lists the formats in the order detection reports them.
var Formats = []string{FormatPromptCompletion, FormatMessages, FormatClassification, FormatIDP, FormatPreference}

// Errors callers may branch on; returned errors wrap them.
var (
	// ErrUnknownFormat: the first row's keys fit no format (or
	// Options.Format names none).
	ErrUnknownFormat = errors.New("unknown dataset format")
	// ErrAmbiguousFormat: the first row's keys fit more than one format.
	ErrAmbiguousFormat = errors.New("ambiguous dataset format")
	// ErrNoRows: the file holds no valid row.
	ErrNoRows = errors.New("no valid rows")
)

// Options control loading and encoding. Load reads Format, Strict,
// LabelColumn, SchemaPath, Template and Verbalizers; the Encoder reads
// Chat, MaxTokens, TruncateLeft and Strict. Passing the same Options to both
// is the normal use.
type Options struct {
	// Format is one of the Format* constants, or "" to detect it from the
	// first valid row.
	Format string
	// Strict makes the first bad row (or, when encoding, the first row that
	// cannot be encoded) an error instead of a skipped, reported row.
	Strict bool
	// Chat renders prompt_completion, classification, idp and string
	// preference prompts as a user turn and the completion as the
	// assistant turn with the model's chat template.
	Chat bool
	// LabelColumn is the label's key (JSONL) or column (CSV) of a
	// classification dataset; "" means "label".
	LabelColumn string
	// Template is the prompt template of classification and idp rows, in
	// the placeholder syntax of Dataset.ClassificationPrompt; "" uses the
	// default for the format.
	Template string
	// Verbalizers maps each classification label to the text the model
	// writes for it; nil uses " " + label. When set, every label in the
	// data must have one.
	Verbalizers map[string]string
	// SchemaPath is the JSON Schema of an idp dataset's targets: every
	// target is validated against it, and completions list object keys in
	// its property order.
	SchemaPath string
	// MaxTokens bounds an example's length (prompt plus completion; for a
	// preference pair, prompt plus the longer answer); 0 means no bound.
	// Longer rows are skipped, or with TruncateLeft their prompt is cut
	// from the left; either way they are counted in the Report.
	MaxTokens int
	// TruncateLeft cuts over-long examples from the left of the prompt
	// (keeping a leading BOS) instead of skipping them. Tokens the loss
	// counts are never cut: a row whose trained part alone is too long is
	// skipped.
	TruncateLeft bool
}

func (o Options) labelColumn() string {
	if o.LabelColumn == "" {
		return "label"
	}
	return o.LabelColumn
}

// Dataset is a loaded, checked file.
type Dataset struct {
	Path   string
	Format string
	Rows   []Row
	// Skipped lists the bad rows left out, in file order.
	Skipped []RowError

	// FeatureOrder is the order of a classification dataset's features
	// (the first row's key order, or the CSV header order), without the
	// label. Nil for text rows ({"text", "label"}).
	FeatureOrder []string
	// Schema is the JSON Schema of an idp dataset as read from
	// Options.SchemaPath (nil without one).
	Schema json.RawMessage

	opt      Options
	tmpl     *promptTemplate // classification and idp prompt template
	schema   *schemaInfo
	features []string // classification keys other than the label
	textRows bool     // classification rows are {"text", "label"}
}

// Row is one valid row. Which fields are set depends on the format.
type Row struct {
	// Line is the row's 1-based line in the file (for CSV, the line its
	// record starts on).
	Line int

	// prompt_completion; preference (a string prompt)
	Prompt, Completion string
	// Plan is a prompt/completion row's optional "plan": the steps the
	// completion follows, for plan-then-code generation's plan stage.
	Plan string
	// messages
	Messages []chat.Message
	// classification: Text for text rows, Features (keys in
	// Dataset.FeatureOrder) for feature rows. Feature values are the JSON
	// text of non-string values (numbers as written, true/false, "" for
	// null; objects and arrays as compact JSON).
	Text     string
	Features map[string]string
	Label    string
	// idp: Target is the target object compactly serialised, object keys
	// in the schema's property order where the schema gives one (then any
	// others in file order).
	Document string
	Target   json.RawMessage
	// preference
	Chosen, Rejected string
	PromptMessages   []chat.Message // a prompt given as a list of messages
}

// RowError is a bad row: "file:line: what is wrong (field X)".
type RowError struct {
	Path  string
	Line  int
	Field string // "" when the row as a whole is wrong
	Msg   string
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s (field %s)", e.Path, e.Line, e.Msg, e.Field)
}

// fieldErr is a row problem before the path and line are known.
type fieldErr struct{ field, msg string }

func (e *fieldErr) Error() string { return e.msg + " (field " + e.field + ")" }

func rowErr(field, format string, args ...any) *fieldErr {
	return &fieldErr{field, fmt.Sprintf(format, args...)}
}

// Load reads and checks a dataset file: .csv files as classification CSV,
// anything else as JSONL.
func Load(path string, opt Options) (*Dataset, error) {
	if opt.Format != "" && !slices.Contains(Formats, opt.Format) {
		return nil, fmt.Errorf("load dataset %s: %w %q: want one of %s", path, ErrUnknownFormat, opt.Format, strings.Join(Formats, ", "))
	}
	if opt.MaxTokens < 0 {
		return nil, fmt.Errorf("load dataset %s: MaxTokens %d is negative", path, opt.MaxTokens)
	}
	d := &Dataset{Path: path, Format: opt.Format, opt: opt}
	if opt.SchemaPath != "" {
		if opt.Format != "" && opt.Format != FormatIDP {
			return nil, fmt.Errorf("load dataset %s: a schema (%s) applies to idp datasets, not %s", path, opt.SchemaPath, opt.Format)
		}
		s, err := loadSchema(opt.SchemaPath)
		if err != nil {
			return nil, err
		}
		d.schema = s
		d.Schema = s.raw
	}
	var err error
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		err = d.readCSV()
	} else {
		err = d.readJSONL()
	}
	if err != nil {
		return nil, err
	}
	if len(d.Rows) == 0 {
		if len(d.Skipped) > 0 {
			return nil, fmt.Errorf("load dataset %s: %w: all %d rows are bad; the first: %v", path, ErrNoRows, len(d.Skipped), &d.Skipped[0])
		}
		return nil, fmt.Errorf("load dataset %s: %w: the file is empty", path, ErrNoRows)
	}
	if d.schema != nil && d.Format != FormatIDP {
		return nil, fmt.Errorf("load dataset %s: a schema (%s) applies to idp datasets, not %s", path, opt.SchemaPath, d.Format)
	}
	if err := d.setTemplate(); err != nil {
		return nil, fmt.Errorf("load dataset %s: %w", path, err)
	}
	return d, nil
}

// skip records a bad row, or returns it as the error in strict mode.
func (d *Dataset) skip(line int, err error) error {
	re := &RowError{Path: d.Path, Line: line, Msg: err.Error()}
	var fe *fieldErr
	if errors.As(err, &fe) {
		re.Field, re.Msg = fe.field, fe.msg
	}
	if d.opt.Strict {
		return re
	}
	d.Skipped = append(d.Skipped, *re)
	return nil
}

// Summary says how many rows were loaded and skipped, with the first
// skipped rows, for logs and the CLI.
func (d *Dataset) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %d rows", d.Path, d.Format, len(d.Rows))
	if len(d.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d bad rows skipped", len(d.Skipped))
		for i, e := range d.Skipped {
			if i == 5 {
				fmt.Fprintf(&b, "\n  ... and %d more", len(d.Skipped)-i)
				break
			}
			b.WriteString("\n  " + e.Error())
		}
	}
	return b.String()
}

// Labels returns the distinct labels of a classification dataset, sorted.
func (d *Dataset) Labels() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range d.Rows {
		if !seen[r.Label] {
			seen[r.Label] = true
			out = append(out, r.Label)
		}
	}
	slices.Sort(out)
	return out
}

// Subset is a dataset with the same format, options and metadata holding
// rows (e.g. one side of a Split) and no skipped rows.
func (d *Dataset) Subset(rows []Row) *Dataset {
	s := *d
	s.Rows = rows
	s.Skipped = nil
	return &s
}

// Options returns the options the dataset was loaded with.
func (d *Dataset) Options() Options { return d.opt }

// detect picks the format from the keys of the first valid row.
func detect(keys []string, labelCol string) []string {
	has := func(k string) bool { return slices.Contains(keys, k) }
	var fits []string
	if has("prompt") && has("completion") || has("instruction") && has("output") { // Alpaca's keys
		fits = append(fits, FormatPromptCompletion)
	}
	if has("messages") || has("conversations") { // ShareGPT's key
		fits = append(fits, FormatMessages)
	}
	if has(labelCol) {
		fits = append(fits, FormatClassification)
	}
	if has("document") && has("target") {
		fits = append(fits, FormatIDP)
	}
	if has("prompt") && has("chosen") && has("rejected") {
		fits = append(fits, FormatPreference)
	}
	return fits
}

// formatError explains why the first row's keys fit no format or several.
func formatError(path string, line int, keys []string, fits []string, labelCol string) error {
	sorted := slices.Sorted(slices.Values(keys))
	found := "{" + strings.Join(sorted, ", ") + "}"
	if len(fits) == 0 {
		return fmt.Errorf("%s:%d: %w: cannot tell the format from the keys %s; want {prompt, completion} (or Alpaca's {instruction, input, output}), {messages} (or ShareGPT's {conversations}), "+
			"{text or features..., %s} (classification), {document, target} (idp) or {prompt, chosen, rejected} (preference), "+
			"or set the format explicitly", path, line, ErrUnknownFormat, found, labelCol)
	}
	return fmt.Errorf("%s:%d: %w: the keys %s fit %s; set the format explicitly", path, line, ErrAmbiguousFormat, found, strings.Join(fits, " and "))
}

// readFile reads a whole file with an error naming it.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load dataset: %w", err)
	}
	return b, nil
}
