package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"distill/core/infer"
	"distill/core/task/idp"
	"distill/core/tokenizer/chat"
)

// The OpenAI-compatible API: /v1/chat/completions, /v1/completions and
// /v1/models, with SSE streaming and response_format json_schema served
// by the schema-constrained decoder. `model` names "base" (or the base
// folder's name), a method alias (sft, kd, dpo) or a registered adapter.

type chatMessage struct {
	Role    string         `json:"role"`
	Content messageContent `json:"content"`
}

// messageContent is a string or an array of parts, of which the text
// parts are joined.
type messageContent string

func (c *messageContent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = messageContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errorf(http.StatusBadRequest, errInvalid, "messages", "message content must be a string or an array of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return errorf(http.StatusBadRequest, errInvalid, "messages", "message content part of type %q: only text parts are supported", p.Type)
		}
		sb.WriteString(p.Text)
	}
	*c = messageContent(sb.String())
	return nil
}

// stopField is a string or an array of strings.
type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errorf(http.StatusBadRequest, errInvalid, "stop", "stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// promptField is a string or an array of one string.
type promptField string

func (p *promptField) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = promptField(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil || len(many) != 1 {
		return errorf(http.StatusBadRequest, errInvalid, "prompt", "prompt must be a string (or an array of exactly one string)")
	}
	*p = promptField(many[0])
	return nil
}

type responseFormat struct {
	Type       string `json:"type"` // text, json_object, json_schema
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
}

// completionParams are the fields chat and plain completions share.
type completionParams struct {
	Model               string    `json:"model"`
	MaxTokens           *int      `json:"max_tokens"`
	MaxCompletionTokens *int      `json:"max_completion_tokens"`
	Temperature         *float64  `json:"temperature"`
	TopP                *float64  `json:"top_p"`
	Seed                *int64    `json:"seed"` // none or negative: a random one
	Stop                stopField `json:"stop"`
	Stream              bool      `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N              *int            `json:"n"`
	Tools          json.RawMessage `json:"tools"`
	Functions      json.RawMessage `json:"functions"`
	ResponseFormat *responseFormat `json:"response_format"`
}

type chatRequest struct {
	completionParams
	Messages    []chatMessage `json:"messages"`
	Logprobs    *bool         `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
}

// completionRequest is the legacy completions API, whose logprobs is a
// count of alternatives.
type completionRequest struct {
	completionParams
	Prompt   *promptField `json:"prompt"`
	Logprobs *int         `json:"logprobs"`
	Echo     bool         `json:"echo"`
	Suffix   *string      `json:"suffix"`
	BestOf   *int         `json:"best_of"`
}

// errNoLogprobs refuses a request for token log-probabilities.
func errNoLogprobs(param string) error {
	return errorf(http.StatusBadRequest, errInvalid, param, "logprobs are not served yet: drop the field (classification log-likelihoods are in POST /infer/{adapter} with task classify)")
}

// unserved refuses the legacy completion fields this server does not
// implement, rather than answer as if they were honoured.
func (r *completionRequest) unserved() error {
	switch {
	case r.Logprobs != nil && *r.Logprobs > 0:
		return errNoLogprobs("logprobs")
	case r.Echo:
		return errorf(http.StatusBadRequest, errInvalid, "echo", "echo is not supported: the prompt is not returned with the completion")
	case r.Suffix != nil && *r.Suffix != "":
		return errorf(http.StatusBadRequest, errInvalid, "suffix", "suffix (insertion) is not supported")
	case r.BestOf != nil && *r.BestOf > 1:
		return errorf(http.StatusBadRequest, errInvalid, "best_of", "best_of=%d: this server samples one completion per request", *r.BestOf)
	}
	return nil
}

// completionJob is a parsed request, ready for the worker.
type completionJob struct {
	sa        *servedAdapter
	ids       []int
	maxTokens int
	grammar   *idp.Grammar // json_schema / json_object
	opt       infer.GenerateOptions
	chat      bool
	model     string
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// prepare checks the shared fields and resolves the model.
func (s *Server) prepare(ctx context.Context, p *completionParams, ids []int, param string) (*completionJob, error) {
	if p.N != nil && *p.N != 1 {
		return nil, errorf(http.StatusBadRequest, errInvalid, "n", "n=%d: this server returns one choice per request", *p.N)
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"tools", p.Tools}, {"functions", p.Functions}} {
		if len(f.v) > 0 && string(f.v) != "null" && string(f.v) != "[]" {
			return nil, errorf(http.StatusBadRequest, errInvalid, f.name, "%s (function calling) is not supported; for structured output use response_format json_schema", f.name)
		}
	}
	if p.Temperature != nil && (*p.Temperature < 0 || *p.Temperature > 2) {
		return nil, errorf(http.StatusBadRequest, errInvalid, "temperature", "temperature must be in [0, 2], got %g", *p.Temperature)
	}
	if p.TopP != nil && (*p.TopP < 0 || *p.TopP > 1) {
		return nil, errorf(http.StatusBadRequest, errInvalid, "top_p", "top_p must be in [0, 1], got %g", *p.TopP)
	}
	if err := checkStops(p.Stop, "stop"); err != nil {
		return nil, err
	}
	mt, param2 := p.MaxTokens, "max_tokens"
	if p.MaxCompletionTokens != nil {
		mt, param2 = p.MaxCompletionTokens, "max_completion_tokens"
	}
	// Without a budget a completion may run to the end of the context (as
	// OpenAI's do), within the server's --max-tokens.
	maxTokens, err := s.checkMaxTokens(mt, max(1, s.positionLimit()-len(ids)), param2)
	if err != nil {
		return nil, err
	}
	if err := s.checkContext(len(ids), maxTokens, param); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == codeContextLength {
			ae.Status, ae.Type = http.StatusBadRequest, errInvalid // OpenAI's, which its clients expect
		}
		return nil, err
	}
	sa, err := s.adapters.get(ctx, p.Model)
	if err != nil {
		return nil, err
	}
	cj := &completionJob{sa: sa, ids: ids, maxTokens: maxTokens, model: p.Model}
	if cj.model == "" {
		cj.model = baseName
	}
	if rf := p.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			if cj.grammar, err = s.grammars.get(json.RawMessage(`{"type":"object"}`), "response_format"); err != nil {
				return nil, err
			}
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
				return nil, errorf(http.StatusBadRequest, errInvalid, "response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
			}
			if cj.grammar, err = s.grammars.get(rf.JSONSchema.Schema, "response_format.json_schema.schema"); err != nil {
				return nil, err
			}
		default:
			return nil, errorf(http.StatusBadRequest, errInvalid, "response_format.type", "response_format type %q: want text, json_object or json_schema", rf.Type)
		}
		if cj.grammar != nil && cj.grammar.MinTokens() > maxTokens {
			return nil, errorf(http.StatusUnprocessableEntity, errUnprocess, param2, "the schema's shortest value needs %d tokens, more than %s %d", cj.grammar.MinTokens(), param2, maxTokens)
		}
	}
	cj.opt = infer.GenerateOptions{MaxTokens: maxTokens, EOS: s.eos, Stop: p.Stop,
		Sampling: s.sampling(p.Temperature, nil, p.TopP, nil, p.Seed)}
	return cj, nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req chatRequest
	if err := decodeJSON(body, &req, false); err != nil {
		writeError(w, err)
		return
	}
	if req.Logprobs != nil && *req.Logprobs {
		writeError(w, errNoLogprobs("logprobs"))
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, errorf(http.StatusBadRequest, errInvalid, "messages", "messages is empty: send at least one {role, content}"))
		return
	}
	msgs := make([]chat.Message, len(req.Messages))
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			writeError(w, errorf(http.StatusBadRequest, errInvalid, fmt.Sprintf("messages[%d].role", i), "role %q: want system, user or assistant", m.Role))
			return
		}
		if m.Role == "developer" {
			m.Role = "system"
		}
		msgs[i] = chat.Message{Role: m.Role, Content: string(m.Content)}
	}
	ids, err := s.encodeChat(msgs)
	if err != nil {
		writeError(w, err)
		return
	}
	cj, err := s.prepare(ctx, &req.completionParams, ids, "messages")
	if err != nil {
		writeError(w, err)
		return
	}
	cj.chat = true
	s.complete(ctx, w, cj, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req completionRequest
	if err := decodeJSON(body, &req, false); err != nil {
		writeError(w, err)
		return
	}
	if err := req.unserved(); err != nil {
		writeError(w, err)
		return
	}
	if req.Prompt == nil {
		writeError(w, errorf(http.StatusBadRequest, errInvalid, "prompt", "missing field \"prompt\": the text to continue"))
		return
	}
	cj, err := s.prepare(ctx, &req.completionParams, s.tok.Encode(string(*req.Prompt), true), "prompt")
	if err != nil {
		writeError(w, err)
		return
	}
	s.complete(ctx, w, cj, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
}

// completionResult is a finished completion, whichever decoder ran.
type completionResult struct {
	text               string
	finish             string
	prompt, completion int
}

// run runs cj on the worker; onText (may be nil) receives text as it is
// generated.
func (s *Server) run(ctx context.Context, cj *completionJob, onText func(string) bool) (completionResult, error) {
	if cj.grammar != nil {
		res, _, err := s.extract(ctx, cj.sa, cj.grammar, cj.ids, cj.maxTokens, cj.opt.Sampling, onText)
		if err != nil {
			return completionResult{}, err
		}
		// The decoder closes the value as its budget runs out: a value that
		// took every token was cut short by max_tokens, which clients (the
		// SDKs' parse) learn from "length".
		finish := "stop"
		if res.StopReason == "length" || res.CompletionTokens >= cj.maxTokens {
			finish = "length"
		}
		return completionResult{res.Text, finish, res.PromptTokens, res.CompletionTokens}, nil
	}
	opt := cj.opt
	if onText != nil {
		opt.OnText = onText
	}
	res, _, err := s.generate(ctx, cj.sa, cj.ids, opt)
	if err != nil {
		return completionResult{}, err
	}
	finish := "stop"
	if res.StopReason == "length" {
		finish = "length"
	}
	return completionResult{res.Text, finish, res.PromptTokens, res.CompletionTokens}, nil
}

func (s *Server) complete(ctx context.Context, w http.ResponseWriter, cj *completionJob, stream, includeUsage bool) {
	id, created := newID("cmpl-"), time.Now().Unix()
	object := "text_completion"
	if cj.chat {
		id, object = newID("chatcmpl-"), "chat.completion"
	}
	if !stream {
		res, err := s.run(ctx, cj, nil)
		if err != nil {
			writeError(w, err)
			return
		}
		u := usage{}
		u.add(res.prompt, res.completion)
		choice := map[string]any{"index": 0, "finish_reason": res.finish, "logprobs": nil}
		if cj.chat {
			choice["message"] = map[string]any{"role": "assistant", "content": res.text, "refusal": nil}
		} else {
			choice["text"] = res.text
		}
		writeJSONStatus(w, http.StatusOK, map[string]any{"id": id, "object": object, "created": created,
			"model": cj.model, "choices": []any{choice}, "usage": u})
		return
	}
	s.stream(ctx, w, cj, id, created, includeUsage)
}

// streamBuffer is how many pieces of text a streaming client may fall
// behind before its generation is cancelled.
const streamBuffer = 1024

var errStalledClient = errors.New("the client stopped reading the stream")

// stream answers with server-sent events: one chunk per piece of text,
// a last chunk with the finish reason, an optional usage chunk, then
// [DONE]. Headers are written with the first piece, so an error before any
// text (a full queue, a timeout) is still a plain JSON error with its
// status.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, cj *completionJob, id string, created int64, includeUsage bool) {
	object := "text_completion"
	if cj.chat {
		object = "chat.completion.chunk"
	}
	rc := http.NewResponseController(w)
	started := false
	send := func(v any) bool {
		if !started {
			started = true
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
		}
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(text string, first bool, finish any) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		if cj.chat {
			d := map[string]any{}
			if first {
				d["role"] = "assistant"
			}
			if text != "" || first {
				d["content"] = text
			}
			c["delta"] = d
		} else {
			c["text"] = text
		}
		return map[string]any{"id": id, "object": object, "created": created, "model": cj.model, "choices": []any{c}}
	}
	// Pieces cross from the worker to this goroutine over a channel. The
	// worker never waits on it: a client that falls streamBuffer pieces
	// behind (it stopped reading) has its generation cancelled, so it
	// cannot stall the other sequences of the batch.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pieces := make(chan string, streamBuffer)
	type outcome struct {
		res completionResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := s.run(ctx, cj, func(p string) bool {
			select {
			case pieces <- p:
				return true
			default:
				cancel(errStalledClient)
				return false
			}
		})
		done <- outcome{res, err}
	}()
	first := true
	for {
		select {
		case p := <-pieces:
			if !send(chunk(p, first, nil)) {
				return // the client went away: ctx is cancelled with the request
			}
			first = false
		case o := <-done:
			for more := true; more; {
				select {
				case p := <-pieces:
					send(chunk(p, first, nil))
					first = false
				default:
					more = false
				}
			}
			if o.err != nil {
				if !started {
					writeError(w, o.err)
					return
				}
				ae := asAPIError(o.err)
				send(map[string]any{"error": map[string]any{"message": ae.Message, "type": ae.Type, "param": nullable(ae.Param), "code": nil}})
				fmt.Fprint(w, "data: [DONE]\n\n")
				rc.Flush()
				return
			}
			if first && cj.chat {
				send(chunk("", true, nil))
			}
			send(chunk("", false, o.res.finish))
			if includeUsage {
				u := usage{}
				u.add(o.res.prompt, o.res.completion)
				send(map[string]any{"id": id, "object": object, "created": created, "model": cj.model, "choices": []any{}, "usage": u})
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			rc.Flush()
			return
		}
	}
}

// handleModels lists the base model, the method aliases that resolve, and
// every registered adapter.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	models, err := s.models(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSONStatus(w, http.StatusOK, map[string]any{"object": "list", "data": models})
}

// handleModel is GET /v1/models/{id}: one entry of the list, which the
// SDKs' models.retrieve reads to check a name before using it.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	models, err := s.models(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	for _, m := range models {
		if m["id"] == id {
			writeJSONStatus(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, errorf(http.StatusNotFound, errNotFound, "model", "model %q is not served (GET /v1/models lists the names)", id).withCode(codeModelNotFound))
}

// models lists the base model, the method aliases that resolve and every
// registered adapter.
func (s *Server) models(ctx context.Context) ([]map[string]any, error) {
	created := s.started.Unix()
	entry := func(id, ownedBy string, extra map[string]any) map[string]any {
		e := map[string]any{"id": id, "object": "model", "created": created, "owned_by": ownedBy}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	models := []map[string]any{entry(baseName, "distill", map[string]any{"root": filepath.Base(s.cfg.Model)})}
	if s.adapters.reg != nil {
		for _, m := range methodAliases {
			if a, err := s.adapters.lookup(ctx, m); err == nil {
				models = append(models, entry(m, "distill", map[string]any{"root": a.Name, "parent": baseName, "method": m}))
			}
		}
		as, err := s.adapters.reg.ListAdapters(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			models = append(models, entry(a.Name, "distill", map[string]any{"parent": baseName, "method": a.Method}))
		}
	}
	return models, nil
}
