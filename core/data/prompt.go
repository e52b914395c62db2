package data

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Prompt templates (Options.Template) are plain text with {name}
// placeholders; "{{" and "}}" stand for literal braces. Names:
//
//	classification, text rows     {text}
//	classification, feature rows  {<feature name>} for any feature, and
//	                              {features}: one "name: value" line per feature, in FeatureOrder
//	idp                           {document}, and {schema} (the schema as compact JSON) when
//	                              the dataset has one
//
// A template naming anything else fails Load with the names it may use.
// This syntax is used rather than Go's text/template so that templates
// stay one line of a config file, with nothing to escape but braces.
const (
	DefaultTextTemplate    = "{text}\nLabel:"
	DefaultFeatureTemplate = "{features}\nLabel:"
	DefaultIDPTemplate     = "Extract the information in the document below as JSON.\n\nDocument:\n{document}\n\nJSON:\n"
	// DefaultIDPSchemaTemplate is the idp default when the dataset has a
	// schema.
	DefaultIDPSchemaTemplate = "Extract the information in the document below as JSON matching this JSON Schema:\n{schema}\n\nDocument:\n{document}\n\nJSON:\n"
)

// promptTemplate is a parsed template: literal text and placeholders in
// turn.
type promptTemplate struct {
	parts []tmplPart
}

type tmplPart struct {
	lit  string
	name string // placeholder name; "" for literal text
}

func parsePromptTemplate(src string) (*promptTemplate, error) {
	t := &promptTemplate{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, tmplPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '{' && strings.HasPrefix(src[i:], "{{"):
			lit.WriteByte('{')
			i++
		case c == '}' && strings.HasPrefix(src[i:], "}}"):
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexAny(src[i+1:], "{}")
			if end < 0 || src[i+1+end] != '}' {
				return nil, fmt.Errorf("template %q: unclosed \"{\" at byte %d (write \"{{\" for a literal brace)", src, i)
			}
			name := src[i+1 : i+1+end]
			if strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("template %q: empty placeholder \"{}\" at byte %d", src, i)
			}
			flush()
			t.parts = append(t.parts, tmplPart{name: name})
			i += end + 1
		case c == '}':
			return nil, fmt.Errorf("template %q: stray \"}\" at byte %d (write \"}}\" for a literal brace)", src, i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// check fails on a placeholder not in names.
func (t *promptTemplate) check(names []string) error {
	for _, p := range t.parts {
		if p.name != "" && !slices.Contains(names, p.name) {
			quoted := make([]string, len(names))
			for i, n := range names {
				quoted[i] = "{" + n + "}"
			}
			return fmt.Errorf("template: unknown placeholder {%s}; this dataset has %s", p.name, strings.Join(quoted, ", "))
		}
	}
	return nil
}

func (t *promptTemplate) expand(value func(name string) string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(value(p.name))
		}
	}
	return b.String()
}

// setTemplate parses and checks the prompt template and verbalisers once
// the dataset's fields are known.
func (d *Dataset) setTemplate() error {
	src := d.opt.Template
	var names []string
	switch d.Format {
	case FormatClassification:
		if d.textRows {
			names = []string{"text"}
			if src == "" {
				src = DefaultTextTemplate
			}
		} else {
			names = append(slices.Clone(d.features), "features")
			if src == "" {
				src = DefaultFeatureTemplate
			}
		}
		if err := checkVerbalizers(d.opt.Verbalizers); err != nil {
			return err
		}
	case FormatIDP:
		names = []string{"document"}
		if d.schema != nil {
			names = append(names, "schema")
		}
		if src == "" {
			src = DefaultIDPTemplate
			if d.schema != nil {
				src = DefaultIDPSchemaTemplate
			}
		}
	default:
		if src != "" {
			return fmt.Errorf("a prompt template applies to classification and idp datasets, not %s", d.Format)
		}
	}
	if d.Format != FormatClassification && d.opt.Verbalizers != nil {
		return fmt.Errorf("verbalisers apply to classification datasets, not %s", d.Format)
	}
	if src == "" {
		return nil
	}
	t, err := parsePromptTemplate(src)
	if err != nil {
		return err
	}
	if err := t.check(names); err != nil {
		return err
	}
	d.tmpl = t
	return nil
}

// checkVerbalizers rejects empty verbalisers and two labels sharing one
// (the classifier could not tell them apart).
func checkVerbalizers(v map[string]string) error {
	by := map[string]string{}
	for _, label := range slices.Sorted(maps.Keys(v)) {
		text := v[label]
		if text == "" {
			return fmt.Errorf("verbaliser of label %q is empty", label)
		}
		if other, ok := by[text]; ok {
			return fmt.Errorf("labels %q and %q have the same verbaliser %q", other, label, text)
		}
		by[text] = label
	}
	return nil
}

// ClassificationPrompt is the prompt of a classification row: the template
// (Options.Template, or DefaultTextTemplate / DefaultFeatureTemplate)
// expanded with the row's text or features. The task pipeline scores each
// label's Verbalizer as a continuation of it. d must come from Load (or be
// a Subset of such a dataset); r may be any row of its kind, e.g. a new
// input built as Row{Text: ...}.
func (d *Dataset) ClassificationPrompt(r Row) string {
	if d.Format != FormatClassification || d.tmpl == nil {
		panic("data: ClassificationPrompt needs a classification dataset from Load, not " + d.Format)
	}
	return d.tmpl.expand(func(name string) string {
		switch {
		case d.textRows:
			return r.Text
		case name == "features" && !slices.Contains(d.features, "features"):
			lines := make([]string, len(d.features))
			for i, f := range d.features {
				lines[i] = f + ": " + r.Features[f]
			}
			return strings.Join(lines, "\n")
		}
		return r.Features[name]
	})
}

// Verbalizer is the text the model writes for label: Options.Verbalizers'
// entry, or " " + label.
func (d *Dataset) Verbalizer(label string) string {
	if v, ok := d.opt.Verbalizers[label]; ok {
		return v
	}
	return " " + label
}

// IDPPrompt is the prompt of an idp row: the template (Options.Template, or
// DefaultIDPSchemaTemplate / DefaultIDPTemplate) with the document and the
// schema.
func (d *Dataset) IDPPrompt(r Row) string {
	if d.Format != FormatIDP || d.tmpl == nil {
		panic("data: IDPPrompt needs an idp dataset from Load, not " + d.Format)
	}
	return d.tmpl.expand(func(name string) string {
		if name == "schema" {
			return d.schema.compact
		}
		return r.Document
	})
}

// IDPCompletion is the completion of an idp row: its target as compact
// JSON, keys in the schema's property order (Row.Target).
func (d *Dataset) IDPCompletion(r Row) string { return string(r.Target) }
