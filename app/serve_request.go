package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"distill/core/task/codegen"
)

// inferRequest is the body of POST /infer/{adapter}.
type inferRequest struct {
	Task    string          `json:"task"`
	Input   json.RawMessage `json:"input"`
	Labels  []string        `json:"labels"`
	Schema  json.RawMessage `json:"schema"`
	Options inferOptions    `json:"options"`
}

// inferOptions are a task's knobs; each task reads the ones it knows.
type inferOptions struct {
	// generate, extract, codegen
	MaxTokens   *int     `json:"max_tokens"`
	Temperature *float64 `json:"temperature"`
	TopK        *int     `json:"top_k"`
	TopP        *float64 `json:"top_p"`
	MinP        *float64 `json:"min_p"`
	Seed        *int64   `json:"seed"` // none or negative: a random one
	Stop        []string `json:"stop"`
	Chat        bool     `json:"chat"`   // render the input through the chat template
	System      string   `json:"system"` // with chat
	// classify
	Calibrate       *bool              `json:"calibrate"` // default true
	NullInputs      []string           `json:"null_inputs"`
	LengthNormalize bool               `json:"length_normalize"`
	Template        string             `json:"template"` // with a {text} placeholder
	Bias            map[string]float64 `json:"bias"`
	// codegen
	Plan     bool   `json:"plan"`
	Language string `json:"language"`
	Check    bool   `json:"check"` // run the language's build and lint checks
}

// tasks are the values of inferRequest.Task.
var tasks = []string{"classify", "extract", "generate", "codegen"}

// readBody reads at most the server's body limit (413 beyond it).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, errInvalid, "", "reading the request body: %v", err)
	}
	return b, nil
}

// decodeJSON parses one JSON object into v. strict refuses unknown fields
// (the /infer API is ours; OpenAI clients send fields we ignore). Errors are
// 400s that name the field and the expected type.
func decodeJSON(b []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errorf(http.StatusBadRequest, errInvalid, "", "the request body is empty: send a JSON object (Content-Type: application/json)")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, errInvalid, "", "malformed JSON: data after the request object (send one JSON object)")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &syn):
		return errorf(http.StatusBadRequest, errInvalid, "", "malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		// An embedded struct's Go name leads the path ("completionParams.seed"):
		// the client knows only the JSON field.
		field := strings.TrimPrefix(typ.Field, "completionParams.")
		if field == "" {
			return errorf(http.StatusBadRequest, errInvalid, "", "the request must be a JSON object, got JSON %s", typ.Value)
		}
		return errorf(http.StatusBadRequest, errInvalid, field, "field %q: want %s, got JSON %s", field, jsonTypeName(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, errInvalid, "", "malformed JSON: the body ends before the object does")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errorf(http.StatusBadRequest, errInvalid, field, "unknown field %q (GET /openapi.json describes the request)", field)
	}
	return errorf(http.StatusBadRequest, errInvalid, "", "malformed JSON: %v", err)
}

// jsonTypeName names a Go type the way a JSON user thinks of it.
func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "app."), strings.HasPrefix(goType, "struct"):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	}
	return goType
}

// parseInferRequest decodes and checks an /infer body: malformed JSON and
// wrong types are 400, an unknown task 422.
func parseInferRequest(b []byte) (*inferRequest, string, error) {
	var req inferRequest
	if err := decodeJSON(b, &req, true); err != nil {
		return nil, "", err
	}
	if req.Task == "" {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "task", "missing field \"task\": one of %s", strings.Join(tasks, ", "))
	}
	if !slices.Contains(tasks, req.Task) {
		return nil, "", errorf(http.StatusUnprocessableEntity, errUnprocess, "task", "unknown task %q: want one of %s", req.Task, strings.Join(tasks, ", "))
	}
	var input string
	if len(req.Input) == 0 || string(req.Input) == "null" {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "input", "missing field \"input\": the text to %s", req.Task)
	}
	if err := json.Unmarshal(req.Input, &input); err != nil {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "input", "field \"input\": want a string, got %s", firstBytes(req.Input, 40))
	}
	o := &req.Options
	if o.MaxTokens != nil && *o.MaxTokens <= 0 {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.max_tokens", "options.max_tokens must be positive, got %d", *o.MaxTokens)
	}
	if o.Temperature != nil && (*o.Temperature < 0 || *o.Temperature > 100) {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.temperature", "options.temperature must be in [0, 100], got %g", *o.Temperature)
	}
	if o.TopP != nil && (*o.TopP < 0 || *o.TopP > 1) {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.top_p", "options.top_p must be in [0, 1], got %g", *o.TopP)
	}
	if o.TopK != nil && *o.TopK < 0 {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.top_k", "options.top_k must be 0 or more (0: off), got %d", *o.TopK)
	}
	if o.MinP != nil && (*o.MinP < 0 || *o.MinP > 1) {
		return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.min_p", "options.min_p must be in [0, 1], got %g", *o.MinP)
	}
	if err := checkStops(o.Stop, "options.stop"); err != nil {
		return nil, "", err
	}
	switch req.Task {
	case "classify":
		if len(req.Labels) < 2 {
			return nil, "", errorf(http.StatusBadRequest, errInvalid, "labels", "classify needs \"labels\": at least two, got %d", len(req.Labels))
		}
		// Each label and null input costs the model a pass: bound them, so
		// one request cannot hold the worker for minutes.
		if len(req.Labels) > maxLabels {
			return nil, "", errorf(http.StatusRequestEntityTooLarge, errTooLarge, "labels", "at most %d labels, got %d", maxLabels, len(req.Labels))
		}
		if len(o.NullInputs) > maxNullInputs {
			return nil, "", errorf(http.StatusRequestEntityTooLarge, errTooLarge, "options.null_inputs", "at most %d null inputs, got %d", maxNullInputs, len(o.NullInputs))
		}
		for _, x := range append(append([]string{o.Template}, req.Labels...), o.NullInputs...) {
			if strings.ContainsFunc(x, isControl) {
				return nil, "", errorf(http.StatusBadRequest, errInvalid, "labels", "labels, null inputs and the template must not hold control characters (%q)", x)
			}
		}
		seen := map[string]bool{}
		for _, l := range req.Labels {
			if strings.TrimSpace(l) == "" {
				return nil, "", errorf(http.StatusBadRequest, errInvalid, "labels", "labels must not be empty strings")
			}
			if strings.TrimSpace(l) != l {
				return nil, "", errorf(http.StatusBadRequest, errInvalid, "labels", "label %q has spaces around it: give the label alone (a space is put before it)", l)
			}
			if seen[l] {
				return nil, "", errorf(http.StatusBadRequest, errInvalid, "labels", "label %q is given twice", l)
			}
			seen[l] = true
		}
		for l := range o.Bias {
			if !seen[l] {
				return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.bias", "options.bias names %q, which is not one of the labels", l)
			}
		}
		if o.Template != "" && !strings.Contains(o.Template, "{text}") {
			return nil, "", errorf(http.StatusBadRequest, errInvalid, "options.template", "options.template has no {text} placeholder for the input")
		}
	case "extract":
		if len(req.Schema) == 0 || string(req.Schema) == "null" {
			return nil, "", errorf(http.StatusBadRequest, errInvalid, "schema", "extract needs \"schema\": a JSON Schema object the output must satisfy")
		}
	case "codegen":
		given := o.Language
		if o.Language = codegen.NormalizeLanguage(given); codegen.DefaultChecks(o.Language) == nil {
			return nil, "", errorf(http.StatusUnprocessableEntity, errUnprocess, "options.language", "options.language %q: want go or python (also golang, py, python3)", given)
		}
	}
	return &req, input, nil
}

func firstBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// checkMaxTokens bounds a request's token budget by the server's.
func (s *Server) checkMaxTokens(n *int, def int, param string) (int, error) {
	if n == nil {
		return min(def, s.cfg.MaxTokens), nil
	}
	if *n <= 0 {
		return 0, errorf(http.StatusBadRequest, errInvalid, param, "%s must be positive, got %d", param, *n)
	}
	if *n > s.cfg.MaxTokens {
		return 0, errorf(http.StatusBadRequest, errInvalid, param, "%s %d is over the server's limit of %d (--max-tokens)", param, *n, s.cfg.MaxTokens)
	}
	return *n, nil
}

// checkContext refuses a prompt that, with its token budget, does not fit
// the model's context (413).
func (s *Server) checkContext(promptTokens, maxTokens int, param string) error {
	if limit := s.contextLimit(); promptTokens >= limit {
		return errorf(http.StatusRequestEntityTooLarge, errTooLarge, param,
			"the input is %d tokens, the model's context %d: shorten the input", promptTokens, limit).withCode(codeContextLength)
	} else if promptTokens+maxTokens > limit {
		return errorf(http.StatusRequestEntityTooLarge, errTooLarge, param,
			"the input is %d tokens; with max_tokens %d that is over the model's context of %d tokens: shorten the input or ask for fewer tokens", promptTokens, maxTokens, limit).withCode(codeContextLength)
	}
	if promptTokens == 0 {
		return errorf(http.StatusBadRequest, errInvalid, param, "the input is empty: give text to condition on")
	}
	if b := s.sched.cacheBudget; b > 0 && s.cacheBytes(promptTokens+maxTokens) > b {
		return errorf(http.StatusRequestEntityTooLarge, errTooLarge, param,
			"the input is %d tokens; with max_tokens %d its KV cache needs %s, more than the %s this server gives all sequences' caches (--kv-memory): shorten the input or ask for fewer tokens",
			promptTokens, maxTokens, mb(s.cacheBytes(promptTokens+maxTokens)), mb(b)).withCode(codeContextLength)
	}
	return nil
}

// positionLimit is the most positions one sequence may take: the model's
// context, or fewer where --kv-memory holds less.
func (s *Server) positionLimit() int {
	n := s.contextLimit()
	if b := s.sched.cacheBudget; b > 0 {
		n = min(n, int(b/max(1, s.cacheBytes(1))))
	}
	return n
}

// The most stop strings a request may carry and the longest: each is
// searched for in the text after every token, on the model's one worker.
const (
	maxStops   = 16
	maxStopLen = 1024
)

// checkStops refuses more stop strings, or longer ones, than the limits.
func checkStops(stops []string, param string) error {
	if len(stops) > maxStops {
		return errorf(http.StatusBadRequest, errInvalid, param, "%s has %d strings; at most %d", param, len(stops), maxStops)
	}
	for i, s := range stops {
		if len(s) > maxStopLen {
			return errorf(http.StatusBadRequest, errInvalid, param, "%s[%d] is %d bytes; at most %d", param, i, len(s), maxStopLen)
		}
	}
	return nil
}

// The most labels and null inputs one classify request may carry.
const (
	maxLabels     = 256
	maxNullInputs = 16
)

// isControl reports a control character other than tab and newline.
func isControl(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' }
