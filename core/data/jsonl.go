package data

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"distill/core/jsonv"
	"distill/core/tokenizer/chat"
)

// readJSONL reads one JSON object per line; blank lines are allowed.
func (d *Dataset) readJSONL() error {
	data, err := readFile(d.Path)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		return fmt.Errorf("%s: the file is one JSON array; distill reads JSONL, one object per line (convert it with: jq -c '.[]' %s > rows.jsonl)", d.Path, d.Path)
	}
	for line := 1; len(data) > 0; line++ {
		text := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		text = bytes.TrimSuffix(text, []byte("\r"))
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if err := d.jsonlRow(line, text); err != nil {
			return err
		}
	}
	return nil
}

// jsonlRow parses one line. It returns an error only when the load must stop
// (strict mode, or a first row whose format cannot be told).
func (d *Dataset) jsonlRow(line int, text []byte) error {
	if bad := firstBadByte(string(text)); bad >= 0 { // JSON's decoders would put U+FFFD in its place, silently
		return d.skip(line, fmt.Errorf("not UTF-8 at byte %d (re-save the file as UTF-8)", bad+1))
	}
	obj, err := jsonv.Parse(text)
	if err == nil && obj.Kind != jsonv.Object {
		err = fmt.Errorf("want a JSON object, got %s", obj.KindName())
	}
	if err != nil {
		if de, ok := err.(*jsonv.DuplicateKeyError); ok {
			return d.skip(line, rowErr(de.Key, "the key appears twice"))
		}
		return d.skip(line, err)
	}
	if d.Format == "" {
		fits := detect(obj.Keys, d.opt.labelColumn())
		if len(fits) != 1 {
			return formatError(d.Path, line, obj.Keys, fits, d.opt.labelColumn())
		}
		d.Format = fits[0]
	}
	if d.Format == FormatClassification && d.features == nil {
		d.setFeatures(obj.Keys)
		if len(d.features) == 0 {
			return fmt.Errorf("%s:%d: a classification row needs a \"text\" or feature keys besides %q, and this first row has only the label", d.Path, line, d.opt.labelColumn())
		}
	}
	row, err := d.parseRow(obj)
	if err != nil {
		return d.skip(line, err)
	}
	row.Line = line
	d.Rows = append(d.Rows, row)
	return nil
}

// setFeatures fixes a classification dataset's features from its first
// row's keys (or the CSV header).
func (d *Dataset) setFeatures(keys []string) {
	label := d.opt.labelColumn()
	d.features = []string{}
	for _, k := range keys {
		if k != label {
			d.features = append(d.features, k)
		}
	}
	d.textRows = len(d.features) == 1 && d.features[0] == "text"
	if !d.textRows {
		d.FeatureOrder = d.features
	}
}

func (d *Dataset) parseRow(obj *jsonv.Value) (Row, error) {
	switch d.Format {
	case FormatPromptCompletion:
		return parsePromptCompletion(obj)
	case FormatMessages:
		return parseMessagesRow(obj)
	case FormatClassification:
		return d.parseClassification(obj)
	case FormatIDP:
		return d.parseIDP(obj)
	case FormatPreference:
		return parsePreference(obj)
	}
	panic("data: unknown format " + d.Format)
}

// stringField reads a required string field.
func stringField(obj *jsonv.Value, key string, allowEmpty bool) (string, error) {
	v := obj.Get(key)
	if v == nil {
		return "", rowErr(key, "required field is missing")
	}
	if v.Kind != jsonv.String {
		return "", rowErr(key, "want a string, got %s", v.KindName())
	}
	if !allowEmpty && strings.TrimSpace(v.Text) == "" {
		return "", rowErr(key, "empty")
	}
	return v.Text, nil
}

func parsePromptCompletion(obj *jsonv.Value) (Row, error) {
	if obj.Get("prompt") == nil && obj.Get("instruction") != nil {
		return parseAlpaca(obj)
	}
	var r Row
	var err error
	if r.Prompt, err = stringField(obj, "prompt", true); err != nil {
		return r, err
	}
	if r.Completion, err = stringField(obj, "completion", false); err != nil {
		return r, err
	}
	if obj.Get("plan") != nil {
		if r.Plan, err = stringField(obj, "plan", true); err != nil {
			return r, err
		}
	}
	return r, nil
}

// roles are the message roles a row may use.
var roles = []string{"system", "user", "assistant"}

// parseMessages reads a list of {"role", "content"} messages; field names
// the list's key for error messages.
func parseMessages(v *jsonv.Value, field string) ([]chat.Message, error) {
	if v.Kind != jsonv.Array {
		return nil, rowErr(field, "want a list of messages, got %s", v.KindName())
	}
	if len(v.Vals) == 0 {
		return nil, rowErr(field, "the list is empty")
	}
	msgs := make([]chat.Message, len(v.Vals))
	for i, m := range v.Vals {
		at := fmt.Sprintf("%s[%d]", field, i)
		if m.Kind != jsonv.Object {
			return nil, rowErr(at, "want an object {\"role\", \"content\"}, got %s", m.KindName())
		}
		for _, k := range m.Keys {
			if k != "role" && k != "content" {
				return nil, rowErr(at+"."+k, "not supported: a message has only \"role\" and \"content\"")
			}
		}
		role, err := stringField(m, "role", false)
		if err != nil {
			return nil, rowErr(at+".role", "%s", err.(*fieldErr).msg)
		}
		if !slices.Contains(roles, role) {
			return nil, rowErr(at+".role", "unknown role %q: want system, user or assistant", role)
		}
		content, err := stringField(m, "content", role != "assistant")
		if err != nil {
			return nil, rowErr(at+".content", "%s", err.(*fieldErr).msg)
		}
		msgs[i] = chat.Message{Role: role, Content: content}
	}
	return msgs, nil
}

func parseMessagesRow(obj *jsonv.Value) (Row, error) {
	v := obj.Get("messages")
	var msgs []chat.Message
	var err error
	switch {
	case v != nil:
		msgs, err = parseMessages(v, "messages")
	case obj.Get("conversations") != nil:
		msgs, err = parseShareGPT(obj)
	default:
		return Row{}, rowErr("messages", "required field is missing")
	}
	if err != nil {
		return Row{}, err
	}
	if !slices.ContainsFunc(msgs, func(m chat.Message) bool { return m.Role == "assistant" }) {
		return Row{}, rowErr("messages", "no assistant message, so nothing to train on")
	}
	return Row{Messages: msgs}, nil
}

func (d *Dataset) parseClassification(obj *jsonv.Value) (Row, error) {
	label := d.opt.labelColumn()
	var r Row
	lv := obj.Get(label)
	if lv == nil {
		return r, rowErr(label, "required field is missing")
	}
	switch lv.Kind {
	case jsonv.String, jsonv.Number, jsonv.Bool:
		r.Label = lv.Text
	default:
		return r, rowErr(label, "want a string, number or boolean label, got %s", lv.KindName())
	}
	if strings.TrimSpace(r.Label) == "" {
		return r, rowErr(label, "empty")
	}
	if err := d.checkLabel(r.Label, label); err != nil {
		return r, err
	}
	for _, k := range obj.Keys {
		if k != label && !slices.Contains(d.features, k) {
			return r, rowErr(k, "unexpected key: the first row's features are [%s]", strings.Join(d.features, ", "))
		}
	}
	if d.textRows {
		var err error
		r.Text, err = stringField(obj, "text", true)
		return r, err
	}
	r.Features = make(map[string]string, len(d.features))
	for _, k := range d.features {
		v := obj.Get(k)
		if v == nil {
			return r, rowErr(k, "missing, but the first row has this feature")
		}
		r.Features[k] = scalarText(v)
	}
	return r, nil
}

// scalarText is the text of a feature value: a string as it is, numbers as
// written, true/false, "" for null, and compact JSON for objects and arrays.
func scalarText(v *jsonv.Value) string {
	switch v.Kind {
	case jsonv.String, jsonv.Number, jsonv.Bool:
		return v.Text
	case jsonv.Null:
		return ""
	}
	return string(v.AppendCompact(nil))
}

// checkLabel checks that a label has a verbaliser when they are given.
func (d *Dataset) checkLabel(label, field string) error {
	if d.opt.Verbalizers == nil {
		return nil
	}
	if _, ok := d.opt.Verbalizers[label]; !ok {
		return rowErr(field, "label %q has no verbaliser (have: %s)", label, strings.Join(slices.Sorted(maps.Keys(d.opt.Verbalizers)), ", "))
	}
	return nil
}

func (d *Dataset) parseIDP(obj *jsonv.Value) (Row, error) {
	var r Row
	var err error
	if r.Document, err = stringField(obj, "document", false); err != nil {
		return r, err
	}
	t := obj.Get("target")
	if t == nil {
		return r, rowErr("target", "required field is missing")
	}
	if t.Kind != jsonv.Object {
		return r, rowErr("target", "want a JSON object, got %s", t.KindName())
	}
	if d.schema != nil {
		if err := d.schema.validate(t); err != nil {
			return r, rowErr("target", "does not match the schema %s: %v", d.opt.SchemaPath, err)
		}
		r.Target = d.schema.ordered(t)
	} else {
		r.Target = t.AppendCompact(nil)
	}
	return r, nil
}

func parsePreference(obj *jsonv.Value) (Row, error) {
	var r Row
	p := obj.Get("prompt")
	switch {
	case p == nil:
		return r, rowErr("prompt", "required field is missing")
	case p.Kind == jsonv.String:
		r.Prompt = p.Text
	case p.Kind == jsonv.Array:
		msgs, err := parseMessages(p, "prompt")
		if err != nil {
			return r, err
		}
		r.PromptMessages = msgs
	default:
		return r, rowErr("prompt", "want a string or a list of messages, got %s", p.KindName())
	}
	var err error
	if r.Chosen, err = stringField(obj, "chosen", false); err != nil {
		return r, err
	}
	if r.Rejected, err = stringField(obj, "rejected", false); err != nil {
		return r, err
	}
	if r.Chosen == r.Rejected {
		return r, rowErr("rejected", "the same as chosen, so the pair teaches nothing")
	}
	return r, nil
}
