// Package chat renders the Jinja chat templates that Hugging Face model
// folders ship in tokenizer_config.json, byte for byte as transformers and
// @huggingface/jinja render them, so that fine-tuning data and prompts use
// exactly the layout the model was trained on. Where the two differ
// (@huggingface/jinja 0.5.11 ignores the argument of str.strip, lstrip and
// rstrip) this package follows transformers' Python jinja2.
//
// The engine is github.com/ardanlabs/jinja (pure Go, no dependencies), which
// applies HF's trim_blocks and lstrip_blocks settings. This package adds the
// variables and functions transformers passes to a template (bos_token,
// eos_token, raise_exception, strftime_now, date_string), a fixed clock so
// that renders are reproducible, and conversion of Go values to template
// values that keeps JSON key order (what tojson prints).
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// Message is one turn of a conversation. Its JSON form is what templates
// see: each JSON field becomes an attribute of the message
// (message.role, message['content']).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// DefaultDate is the date the default clock reports: 26 Jul 2024, the date
// Llama 3.1's template falls back to. A fixed date keeps rendered training
// data reproducible; set Template.Now to time.Now for live chat.
var DefaultDate = time.Date(2024, time.July, 26, 0, 0, 0, 0, time.UTC)

// ErrNoChatTemplate is returned by Load for a model folder whose
// tokenizer_config.json has no chat_template (base models, Llama 2).
var ErrNoChatTemplate = errors.New("no chat_template")

// RaiseError is the error a template raises with raise_exception(msg),
// typically on a conversation it cannot format (roles not alternating, an
// unknown role). Render wraps it; errors.As finds it.
type RaiseError struct {
	Message string
}

func (e *RaiseError) Error() string { return "raise_exception: " + e.Message }

// Template is a compiled chat template with the special tokens it is
// rendered with. It is safe for concurrent use once Now is set.
type Template struct {
	src      string
	bos, eos string
	compiled *jinja.Template

	// Now is the clock behind strftime_now() and date_string. Nil means
	// DefaultDate.
	Now func() time.Time
}

// Load reads the chat template and the bos/eos tokens of the model folder
// dir. The template is dir/chat_template.jinja when that file exists (newer
// transformers save it there), otherwise the chat_template field of
// dir/tokenizer_config.json: a string, or a list of {name, template} from
// which the one named "default" is taken. A folder without either gives an
// error wrapping ErrNoChatTemplate.
func Load(dir string) (*Template, error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load chat template: %w", err)
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOSToken     json.RawMessage `json:"bos_token"`
		EOSToken     json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("load chat template: %s: %w", path, err)
	}
	bos, err := specialToken(cfg.BOSToken)
	if err != nil {
		return nil, fmt.Errorf("load chat template: %s: bos_token: %w", path, err)
	}
	eos, err := specialToken(cfg.EOSToken)
	if err != nil {
		return nil, fmt.Errorf("load chat template: %s: eos_token: %w", path, err)
	}

	srcPath := filepath.Join(dir, "chat_template.jinja")
	var src string
	if b, err := os.ReadFile(srcPath); err == nil {
		src = string(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load chat template: %w", err)
	} else {
		srcPath = path
		src, err = configTemplate(cfg.ChatTemplate)
		if err != nil {
			return nil, fmt.Errorf("load chat template: %s: %w", path, err)
		}
	}
	t, err := Parse(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("load chat template: %s: %w", srcPath, err)
	}
	return t, nil
}

// configTemplate returns the template source held by tokenizer_config.json's
// chat_template field.
func configTemplate(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", fmt.Errorf("%w: the model has no chat format (a base model?); "+
			"use an instruct/chat model, or add a \"chat_template\" string to this file "+
			"or a chat_template.jinja beside it", ErrNoChatTemplate)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("chat_template: want a string or a list of {\"name\", \"template\"}, got %s", jsonKind(raw))
	}
	var names []string
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
		names = append(names, fmt.Sprintf("%q", n.Name))
	}
	return "", fmt.Errorf("%w named \"default\" among chat_template's [%s]; add one",
		ErrNoChatTemplate, strings.Join(names, ", "))
}

// specialToken reads a bos_token/eos_token field: null, a string, or an
// AddedToken object {"content": ...}.
func specialToken(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var tok struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Content == nil {
		return "", fmt.Errorf("want a string or {\"content\": string}, got %s", jsonKind(raw))
	}
	return *tok.Content, nil
}

// Parse compiles a chat template. bosToken and eosToken become the
// template's bos_token and eos_token; an empty one is left undefined, as
// transformers leaves out special tokens a tokenizer does not have.
func Parse(src string, bosToken, eosToken string) (*Template, error) {
	compiled, err := jinja.Compile(guardMacros(rerouteTojson(src)))
	if err != nil {
		return nil, fmt.Errorf("parse chat template: %w", err)
	}
	return &Template{src: src, bos: bosToken, eos: eosToken, compiled: compiled}, nil
}

// Source returns the template text.
func (t *Template) Source() string { return t.src }

// BOSToken returns the bos_token the template is rendered with ("" if none).
func (t *Template) BOSToken() string { return t.bos }

// EOSToken returns the eos_token the template is rendered with ("" if none).
func (t *Template) EOSToken() string { return t.eos }

// Render formats a conversation. With addGenerationPrompt the output ends
// with the header of an assistant turn, ready for generation.
func (t *Template) Render(messages []Message, addGenerationPrompt bool) (string, error) {
	return t.RenderWith(messages, addGenerationPrompt, nil)
}

// RenderWith is Render with extra template variables, such as Qwen3's
// enable_thinking or tools; they may also replace bos_token, eos_token,
// date_string or strftime_now. Values are converted through their JSON form
// (a struct keeps its field order; a map's keys are sorted). A
// json.RawMessage keeps the key order of its text, and a jinja.Value is
// passed as it is.
func (t *Template) RenderWith(messages []Message, addGenerationPrompt bool, vars map[string]any) (string, error) {
	now := DefaultDate
	if t.Now != nil {
		now = t.Now()
	}
	msgs, err := toValue(messages)
	if err != nil {
		return "", fmt.Errorf("render chat template: messages: %w", err)
	}
	enter, leave := depthGuard()
	data := map[string]jinja.Value{
		"messages":              msgs,
		"add_generation_prompt": jinja.NewBool(addGenerationPrompt),
		"date_string":           jinja.NewString(strftime(now, "%d %b %Y")),
		"strftime_now": jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			if len(args) != 1 || !args[0].IsString() {
				return jinja.Undefined(), errors.New("strftime_now: want one format string")
			}
			return jinja.NewString(strftime(now, args[0].AsString())), nil
		}),
		tojsonName: tojsonFilter,
		enterName:  enter,
		leaveName:  leave,
		"range":    boundedRange(),
		"raise_exception": jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			msg := ""
			if len(args) > 0 {
				msg = jinjaText(args[0])
			}
			return jinja.Undefined(), &RaiseError{Message: msg}
		}),
	}
	if t.bos != "" {
		data["bos_token"] = jinja.NewString(t.bos)
	}
	if t.eos != "" {
		data["eos_token"] = jinja.NewString(t.eos)
	}
	for k, v := range vars {
		if k == "messages" || k == "add_generation_prompt" {
			return "", fmt.Errorf("render chat template: vars[%q]: pass it as an argument instead", k)
		}
		val, err := toValue(v)
		if err != nil {
			return "", fmt.Errorf("render chat template: vars[%q]: %w", k, err)
		}
		data[k] = val
	}
	return t.render(data)
}

// render runs the compiled template, turning the template library's panics
// on some inputs (a negative repeat count, an indent of −3) into errors: a
// model's template is user input.
func (t *Template) render(data map[string]jinja.Value) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("render chat template: the template failed: %v (fix the model's chat template)", r)
		}
	}()
	out, err = t.compiled.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("render chat template: %w", err)
	}
	return out, nil
}

// jinjaText is how a value prints in a template: strings as they are,
// others in their template form.
func jinjaText(v jinja.Value) string {
	if v.IsString() {
		return v.AsString()
	}
	return v.String()
}
