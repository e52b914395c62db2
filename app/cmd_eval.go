package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"distill/core/data"
	"distill/core/eval"
	"distill/core/task/classify"
	"distill/store"
)

func init() {
	register(command{name: "eval", usage: "classify|idp|codegen --model DIR [--adapter DIR] --data FILE [--schema FILE (idp)] [--labels a,b,c] [--balanced N|FRACTION (classify)] [--limit N (idp)] [--run ID] [--json]", run: runEval})
}

// evalFlags are shared by every eval kind.
type evalFlags struct {
	dir, data, runID, balanced, dbPath *string
	asJSON                             *bool
	seed                               *uint64
	eng                                engineFlags
	// settings are what else the figures depend on (codegen's --plan,
	// --chat…), written into the report: evaluations with other settings
	// are not peers.
	settings map[string]any
}

func addEvalFlags(fs interface {
	String(string, string, string) *string
	Bool(string, bool, string) *bool
	Uint64(string, uint64, string) *uint64
}) evalFlags {
	return evalFlags{
		dir:      fs.String("model", "", "model folder (default: the --run's base model)"),
		data:     fs.String("data", "", "evaluation data"),
		runID:    fs.String("run", "", "link the result to this run (its adapter is used unless --adapter is given)"),
		balanced: fs.String("balanced", "", "evaluate a balanced subset: N rows per class, or a FRACTION of each class"),
		dbPath:   fs.String("db", defaultDB, "run database"),
		asJSON:   fs.Bool("json", false, "print the report as JSON"),
		seed:     fs.Uint64("seed", 1, "seed of the balanced subset"),
	}
}

func runEval(env *Env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("eval: give classify, idp or codegen")
	}
	switch args[0] {
	case "classify":
		return evalClassify(env, args[1:])
	case "codegen":
		return evalCodegen(env, args[1:])
	case "idp":
		return evalIDP(env, args[1:])
	}
	return fmt.Errorf("eval: unknown kind %q (classify, idp or codegen)", args[0])
}

// resolveRun fills the model and adapter from a run when they are not given.
func (f evalFlags) resolveRun(db *store.DB) error {
	if *f.runID == "" {
		if *f.dir == "" {
			return fmt.Errorf("--model (or --run) is required")
		}
		return nil
	}
	r, err := db.GetRun(context.Background(), *f.runID)
	if err != nil {
		return fmt.Errorf("--run %s: %w", *f.runID, err)
	}
	if *f.eng.adapter != "" { // the run's base with the adapter given
		if *f.dir == "" {
			*f.dir = r.BaseModel
		}
		return nil
	}
	// What the run trained: its adapter, or a full fine-tune's model. Not
	// found (a folder moved, a relative path from another directory) is an
	// error: evaluating the base instead would record its figures as the
	// run's.
	adapter, full := filepath.Join(r.Dir, "adapter"), filepath.Join(r.Dir, "model")
	switch {
	case isDir(adapter):
		*f.eng.adapter = adapter
		if *f.dir == "" {
			*f.dir = r.BaseModel
		}
	case isDir(full) && *f.dir == "":
		*f.dir = full
	case isDir(full):
		return fmt.Errorf("--run %s trained every weight: its model is %s; drop --model", *f.runID, full)
	default:
		return fmt.Errorf("--run %s: neither %s nor %s is there (not finished, or its folder moved): evaluate with --model and --adapter", *f.runID, adapter, full)
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// record stores an evaluation in the database and as JSON under the run
// (or runs/eval/), and returns the file path.
func (f evalFlags) record(db *store.DB, kind string, summary map[string]float64, report any) (string, error) {
	metrics, _ := json.Marshal(summary)
	dir := filepath.Join("runs", "eval")
	if *f.runID != "" {
		if r, err := db.GetRun(context.Background(), *f.runID); err == nil {
			dir = filepath.Join(r.Dir, "eval")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.json", kind, time.Now().UTC().Format("20060102-150405.000")))
	id, err := db.AddEvaluation(context.Background(), store.Evaluation{RunID: *f.runID, Adapter: *f.eng.adapter, Kind: kind, Metrics: metrics, ReportPath: path})
	if err != nil {
		return "", err
	}
	if *f.runID != "" {
		if err := headline(db, *f.runID, kind, metrics, summary); err != nil {
			return "", err
		}
	}
	file := map[string]any{"id": id, "kind": kind, "model": *f.dir, "adapter": *f.eng.adapter, "data": *f.data, "report": report}
	if f.settings != nil {
		file["settings"] = f.settings
	}
	b, _ := json.MarshalIndent(file, "", "  ")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

// classesOnly refuses --balanced outside classification, which has no
// classes to balance (it was silently ignored).
func (f evalFlags) classesOnly(instead string) error {
	if *f.balanced != "" {
		return fmt.Errorf("--balanced samples rows per class: it applies to eval classify; %s", instead)
	}
	return nil
}

// warnSkipped says on w which rows of ds were left out as bad: the
// figures cover the rest only.
func warnSkipped(w io.Writer, ds *data.Dataset) {
	if len(ds.Skipped) > 0 {
		fmt.Fprintf(w, "%s (the evaluation covers the %d good rows)\n", ds.Summary(), len(ds.Rows))
	}
}

// subset applies --balanced to classification rows: up to N (or the
// fraction) of every class, none held back; a class with fewer rows gives
// all it has, and says so on w.
func (f evalFlags) subset(ds *data.Dataset, w io.Writer) ([]data.Row, error) {
	if *f.balanced == "" {
		return ds.Rows, nil
	}
	per := data.PerClass{}
	if n, err := strconv.Atoi(*f.balanced); err == nil && n >= 1 {
		per.Count = n
	} else if x, err := strconv.ParseFloat(*f.balanced, 64); err == nil && x > 0 && x <= 1 {
		per.Fraction = x
	} else {
		return nil, fmt.Errorf("--balanced %q: want a count >= 1 (rows per class) or a fraction in (0, 1]", *f.balanced)
	}
	rows, short, err := data.BalancedSample(ds.Rows, per, *f.seed)
	for _, s := range short {
		fmt.Fprintf(w, "--balanced: label %q has %d rows, fewer than the %d asked: all are evaluated\n", s.Label, s.Rows, s.Want)
	}
	return rows, err
}

func evalClassify(env *Env, args []string) error {
	fs := newFlags(env, "eval classify", "--model DIR [--adapter DIR] --data FILE [--labels a,b,c] [--balanced N|FRACTION] [--run ID] --json")
	f := addEvalFlags(fs)
	f.eng = addEngineFlags(fs, env.Stderr)
	labelsFlag := fs.String("labels", "", "labels in report order (default: those found in the data)")
	nulls := fs.String("null-inputs", strings.Join(classify.DefaultNullInputs, "|"), "content-free inputs for calibration, separated by |")
	fitBias := fs.Bool("fit-bias", false, "fit per-label offsets (calibrated log space) that maximise macro-F1 on this data, and report them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *f.data == "" {
		return fmt.Errorf("--data is required")
	}
	db, err := store.Open(*f.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := f.resolveRun(db); err != nil {
		return err
	}
	ds, err := data.Load(*f.data, data.Options{Format: data.FormatClassification})
	if err != nil {
		return err
	}
	warnSkipped(env.Stderr, ds)
	labels := ds.Labels()
	if *labelsFlag != "" {
		labels = splitLabels(*labelsFlag)
	}
	if err := checkGoldLabels(ds, labels, *labelsFlag != ""); err != nil {
		return err
	}
	rows, err := f.subset(ds, env.Stderr)
	if err != nil {
		return err
	}
	verb := map[string]string{}
	for _, l := range labels {
		verb[l] = ds.Verbalizer(l)
	}
	// Null inputs go through the dataset's own template: every field set to
	// the content-free word.
	var nullPrompts []string
	for _, n := range strings.Split(*nulls, "|") {
		nr := data.Row{Text: n, Features: map[string]string{}}
		for _, k := range ds.FeatureOrder {
			nr.Features[k] = n
		}
		nullPrompts = append(nullPrompts, ds.ClassificationPrompt(nr))
	}
	tok, be, m, err := openForTask(f.eng, *f.dir)
	if err != nil {
		return err
	}
	defer m.Close()
	c, err := classify.New(be, m, tok, func(s string) string { return s }, classify.Options{Labels: labels, Verbalizers: verb, NullInputs: nullPrompts, End: answerEnd(tok)})
	if err != nil {
		return err
	}
	var gold, raw, cal []string
	var margins []float64
	var scored []classify.Scored
	for _, r := range rows {
		sc, res, err := c.Score(ds.ClassificationPrompt(r), r.Label)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", ds.Path, r.Line, err)
		}
		scored = append(scored, sc)
		gold = append(gold, r.Label)
		cal = append(cal, res.Label)
		raw = append(raw, argmaxLabel(res.RawProbabilities, labels))
		margins = append(margins, res.Margin)
	}
	calRep, err := eval.Classification(labels, gold, cal, margins)
	if err != nil {
		return rowErr(ds.Path, rows, err)
	}
	rawRep, err := eval.Classification(labels, gold, raw, nil)
	if err != nil {
		return rowErr(ds.Path, rows, err)
	}
	summary := calRep.Summary()
	for k, v := range rawRep.Summary() {
		summary["raw_"+k] = v
	}
	var fitted map[string]float64
	if *fitBias {
		var f1 float64
		if fitted, f1, err = c.FitBias(scored); err != nil {
			return err
		}
		summary["fitted_bias_macro_f1"] = f1
	}
	report := map[string]any{"bias": fitted, "calibrated": calRep, "raw": rawRep, "null_distribution": c.NullDistribution(),
		"confusion_matrix": calRep.ConfusionMatrix, "labels": labels}
	path, err := f.record(db, store.KindClassification, summary, report)
	if err != nil {
		return err
	}
	if *f.asJSON {
		report["report_path"] = path
		return writeJSON(env.Stdout, report)
	}
	fmt.Fprintln(env.Stdout, "calibrated:")
	calRep.Table(env.Stdout)
	fmt.Fprintf(env.Stdout, "\nraw (uncalibrated): accuracy %.3f, macro-F1 %.3f\n", rawRep.Accuracy, rawRep.MacroF1)
	if fitted != nil {
		fmt.Fprintf(env.Stdout, "fitted bias %v: macro-F1 %.3f (use with distill classify --bias)\n", formatBias(fitted), summary["fitted_bias_macro_f1"])
	}
	fmt.Fprintf(env.Stdout, "report: %s\n", path)
	return nil
}

// checkGoldLabels refuses, before any row is scored, a data row whose
// label is not one of labels (given: from --labels), naming its file and
// line; and labels given twice.
func checkGoldLabels(ds *data.Dataset, labels []string, given bool) error {
	seen := map[string]bool{}
	for _, l := range labels {
		if l == "" {
			return fmt.Errorf("--labels %q: an empty label", strings.Join(labels, ","))
		}
		if seen[l] {
			return fmt.Errorf("--labels: label %q is given twice", l)
		}
		seen[l] = true
	}
	for _, r := range ds.Rows {
		if !seen[r.Label] {
			if given {
				return fmt.Errorf("%s:%d: gold label %q is not one of --labels (%s): add it to --labels, or leave --labels out to take the data's", ds.Path, r.Line, r.Label, strings.Join(labels, ", "))
			}
			return fmt.Errorf("%s:%d: gold label %q is not one of the data's labels (%s)", ds.Path, r.Line, r.Label, strings.Join(labels, ", "))
		}
	}
	return nil
}

// rowErr names the file and 1-based line of an eval.RowError, whose Row
// indexes rows.
func rowErr(path string, rows []data.Row, err error) error {
	var re *eval.RowError
	if errors.As(err, &re) && re.Row >= 0 && re.Row < len(rows) {
		return fmt.Errorf("%s:%d: %s", path, rows[re.Row].Line, re.Msg)
	}
	return err
}

func argmaxLabel(p map[string]float64, labels []string) string {
	best := labels[0]
	for _, l := range labels {
		if p[l] > p[best] {
			best = l
		}
	}
	return best
}

func formatBias(b map[string]float64) string {
	var parts []string
	for l, v := range b {
		parts = append(parts, fmt.Sprintf("%s=%.1f", l, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// parseBias reads --bias a=0.3,b=-1.
func parseBias(s string) (map[string]float64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err != nil || k == "" {
			return nil, fmt.Errorf("--bias: %q is not label=offset (e.g. a=0.3,b=-0.5)", kv)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("--bias: label %q: offset %s is not a finite number", k, strings.TrimSpace(v))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--bias: label %q is given twice", k)
		}
		out[k] = x
	}
	return out, nil
}

// headlineMetric is the number that sums up an evaluation of each kind, as
// the run's best metric.
var headlineMetric = map[string]string{
	store.KindClassification: "macro_f1",
	store.KindIDP:            "field_f1",
	store.KindCodegen:        "build_success_rate",
}

// headline records an evaluation of a run as its best metric and as the
// headline metrics of the adapters it registered.
func headline(db *store.DB, runID, kind string, metrics json.RawMessage, summary map[string]float64) error {
	ctx := context.Background()
	if name := headlineMetric[kind]; name != "" {
		if v, ok := summary[name]; ok {
			if err := db.SetBestMetric(ctx, runID, name, v); err != nil {
				return err
			}
		}
	}
	as, err := db.ListAdapters(ctx)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.RunID == runID {
			if err := db.SetAdapterMetrics(ctx, a.Name, metrics); err != nil {
				return err
			}
		}
	}
	return nil
}
