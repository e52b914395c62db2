package app

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"distill/core/data"
	"distill/core/task/classify"
	"distill/core/tokenizer"
)

func init() {
	register(command{name: "classify", usage: "--model DIR [--adapter DIR] --labels a,b,c [--template FILE] [--calibrate] --text TEXT --json", run: runClassify})
}

func runClassify(env *Env, args []string) error {
	fs := newFlags(env, "classify", "--model DIR [--adapter DIR] --labels a,b,c [--template FILE] [--calibrate] --text TEXT --json")
	dir := fs.String("model", "", "model folder")
	labels := fs.String("labels", "", "comma-separated labels")
	tmplPath := fs.String("template", "", "prompt template file with a {text} placeholder (default: \"{text}\\nLabel:\")")
	calibrate := fs.Bool("calibrate", false, "divide out the label distribution of content-free inputs (contextual calibration)")
	nulls := fs.String("null-inputs", strings.Join(classify.DefaultNullInputs, "|"), "content-free inputs for --calibrate, separated by |")
	lengthNorm := fs.Bool("length-normalize", false, "divide each label's log-likelihood by its token count")
	text := fs.String("text", "", "the input to classify")
	biasFlag := fs.String("bias", "", "per-label offsets in calibrated log space, e.g. a=0.3,b=-0.5 (from distill eval classify --fit-bias)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	eng := addEngineFlags(fs, env.Stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *labels == "" {
		return fmt.Errorf("--model and --labels are required")
	}
	bias, err := parseBias(*biasFlag)
	if err != nil {
		return err
	}
	ls := splitLabels(*labels)
	for l := range bias {
		if !slices.Contains(ls, l) {
			return fmt.Errorf("--bias names %q, which is not one of --labels (%s)", l, strings.Join(ls, ", "))
		}
	}
	c, _, err := newClassifier(eng, *dir, ls, *tmplPath, *calibrate, strings.Split(*nulls, "|"), *lengthNorm, bias)
	if err != nil {
		return err
	}
	defer c.close()
	r, err := c.Classify(*text)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, r)
	}
	fmt.Fprintf(env.Stdout, "%s  (confidence %.3f, margin %.3f)\n", r.Label, r.Confidence, r.Margin)
	return nil
}

// openClassifier is a classifier with the model it holds open.
type openClassifier struct {
	*classify.Classifier
	close func()
}

// newClassifier loads the model (with adapter and quantisation flags) and
// builds a classifier whose prompts come from a {text} template.
func newClassifier(eng engineFlags, dir string, labels []string, tmplPath string, calibrate bool, nulls []string, lengthNorm bool, bias map[string]float64) (*openClassifier, string, error) {
	tmpl := data.DefaultTextTemplate
	if tmplPath != "" {
		b, err := os.ReadFile(tmplPath)
		if err != nil {
			return nil, "", err
		}
		tmpl = string(b)
		if !strings.Contains(tmpl, "{text}") {
			return nil, "", fmt.Errorf("%s: the template has no {text} placeholder", tmplPath)
		}
	}
	if err := checkModelDir(dir); err != nil {
		return nil, "", err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, "", err
	}
	be, m, err := openModel(eng, dir)
	if err != nil {
		return nil, "", err
	}
	opt := classify.Options{Labels: labels, LengthNormalize: lengthNorm, Bias: bias, End: answerEnd(tok)}
	if calibrate {
		opt.NullInputs = nulls
	}
	c, err := classify.New(be, m, tok, func(s string) string { return strings.ReplaceAll(tmpl, "{text}", s) }, opt)
	if err != nil {
		m.Close()
		return nil, "", err
	}
	return &openClassifier{c, func() { m.Close() }}, tmpl, nil
}

// splitLabels reads a comma-separated --labels: "billing, technical" is
// the labels "billing" and "technical" (the verbaliser adds the space).
func splitLabels(s string) []string {
	labels := strings.Split(s, ",")
	for i := range labels {
		labels[i] = strings.TrimSpace(labels[i])
	}
	return labels
}

// answerEnd is what training appends after an answer (core/data): the
// tokenizer's EOS, which the classifier scores after labels whose tokens
// begin one another's.
func answerEnd(tok *tokenizer.Tokenizer) []int {
	if id, ok := tok.EOS(); ok {
		return []int{id}
	}
	return nil
}
