package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// TestServeOpenAIConformance: what OpenAI's clients rely on beyond the
// happy path — random sampling without a seed, no default cap below the
// context, "length" for a cut-short json_schema value, the legacy
// completion fields, models.retrieve, error codes and params.
func TestServeOpenAIConformance(t *testing.T) {
	s, ts := newTestServer(t, nil)
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithMaxRetries(0))
	ctx := context.Background()
	chatText := func(p openai.ChatCompletionNewParams) (string, string) {
		t.Helper()
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story")}
		res, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res.Choices[0].Message.Content, res.Choices[0].FinishReason
	}

	// Sampling without a seed differs between requests (a "regenerate"
	// must not return the same text); with one it repeats; -1 is random.
	seen := map[string]bool{}
	for range 3 {
		txt, _ := chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(2), MaxTokens: openai.Int(12)})
		seen[txt] = true
	}
	if len(seen) < 2 {
		t.Errorf("three unseeded sampled completions were all the same: %v", seen)
	}
	a, _ := chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(1), MaxTokens: openai.Int(12), Seed: openai.Int(7)})
	b, _ := chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(1), MaxTokens: openai.Int(12), Seed: openai.Int(7)})
	if a != b {
		t.Errorf("seed 7 gave %q then %q", a, b)
	}
	if _, _ = chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(1), MaxTokens: openai.Int(4), Seed: openai.Int(-1)}); t.Failed() {
		return
	}
	// top_p 0 keeps the top token: the greedy answer at any temperature.
	greedy, _ := chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(0), MaxTokens: openai.Int(12)})
	if got, _ := chatText(openai.ChatCompletionNewParams{Temperature: openai.Float(1.5), TopP: openai.Float(0), MaxTokens: openai.Int(12)}); got != greedy {
		t.Errorf("top_p 0 gave %q, greedy %q", got, greedy)
	}

	// No max_tokens: a prompt 100 tokens short of the context is served
	// (the budget is what is left), one that fills it is a 400 with
	// context_length_exceeded.
	limit := s.contextLimit()
	prompt := func(n int) string {
		p := strings.Repeat(" hello", n)
		for len(s.tok.Encode(p, true)) > n {
			p = p[:len(p)-len(" hello")]
		}
		return p
	}
	cmp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "base", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt(limit - 100))}, Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatalf("a prompt %d tokens short of the context without max_tokens: %v", 100, err)
	}
	if int(cmp.Usage.PromptTokens+cmp.Usage.CompletionTokens) > limit {
		t.Errorf("completion ran past the context: %+v", cmp.Usage)
	}
	status, _, body := post(t, ts.URL+"/v1/completions", map[string]any{"prompt": strings.Repeat(" hello", limit+10)})
	wantError(t, status, body, http.StatusBadRequest, errInvalid, "prompt")
	if code := body["error"].(map[string]any)["code"]; code != codeContextLength {
		t.Errorf("context error code %v", code)
	}

	// A json_schema value that took every token was cut short: "length".
	schema := map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}, "age": map[string]any{"type": "integer"}},
		"required": []string{"name", "age"}, "additionalProperties": false}
	for _, mt := range []int64{12, 20} {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Ann, 31")}, MaxTokens: openai.Int(mt),
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "p", Schema: schema}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Usage.CompletionTokens >= mt && res.Choices[0].FinishReason != "length" {
			t.Errorf("max_tokens %d: %d tokens, finish %q, want length", mt, res.Usage.CompletionTokens, res.Choices[0].FinishReason)
		}
	}

	// The legacy completion fields: logprobs is a count (0 is served), the
	// fields this server does not honour are refused, not ignored.
	status, _, body = post(t, ts.URL+"/v1/completions", `{"prompt":"Hi","max_tokens":2,"logprobs":0,"best_of":1,"echo":false}`)
	if status != http.StatusOK {
		t.Errorf("logprobs 0: %d %v", status, body)
	}
	for param, req := range map[string]string{
		"logprobs": `{"prompt":"Hi","logprobs":2}`, "echo": `{"prompt":"Hi","echo":true}`,
		"suffix": `{"prompt":"Hi","suffix":"end"}`, "best_of": `{"prompt":"Hi","best_of":3}`,
	} {
		status, _, body := post(t, ts.URL+"/v1/completions", req)
		wantError(t, status, body, http.StatusBadRequest, errInvalid, param)
	}
	// Errors name the JSON field, not the Go struct it is decoded into.
	status, _, body = post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":"abc"}`)
	wantError(t, status, body, http.StatusBadRequest, errInvalid, "max_tokens")
	if msg := body["error"].(map[string]any)["message"].(string); strings.Contains(msg, "completionParams") {
		t.Errorf("message names the Go struct: %s", msg)
	}
	// Stop strings are bounded.
	status, _, body = post(t, ts.URL+"/v1/completions", map[string]any{"prompt": "Hi", "stop": strings.Split(strings.Repeat("x,", maxStops+1), ",")})
	wantError(t, status, body, http.StatusBadRequest, errInvalid, "stop")

	// models.retrieve: a served name, and a 404 with model_not_found.
	m, err := client.Models.Get(ctx, "sft")
	if err != nil || m.ID != "sft" || m.Object != "model" {
		t.Fatalf("models.retrieve sft: %+v, %v", m, err)
	}
	var apiErr *openai.Error
	if _, err := client.Models.Get(ctx, "no-such"); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != codeModelNotFound {
		t.Fatalf("models.retrieve no-such: %v", err)
	}
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	if !errors.As(err, &apiErr) || apiErr.Code != codeModelNotFound {
		t.Fatalf("unknown model's code: %v", err)
	}
}

// TestServeCORS: with --cors-origin a browser's preflight is answered
// before the API key is asked for, and answers carry the origin; other
// origins, and servers without the flag, get no CORS headers.
func TestServeCORS(t *testing.T) {
	preflight := func(url, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, url+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	_, ts := newTestServer(t, func(c *ServeConfig) { c.APIKey, c.CORSOrigin = "k", "http://localhost:3000, https://app.example" })
	resp := preflight(ts.URL, "http://localhost:3000")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "x-stainless-os") || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/models", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Authorization", "Bearer k")
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.StatusCode != http.StatusOK || got.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("GET with an allowed origin: %d %v", got.StatusCode, got.Header)
	}
	if resp := preflight(ts.URL, "https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin was allowed: %v", resp.Header)
	}
	_, plain := newTestServer(t, nil)
	if resp := preflight(plain.URL, "http://localhost:3000"); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode == http.StatusNoContent {
		t.Fatalf("without --cors-origin: %d %v", resp.StatusCode, resp.Header)
	}
}
