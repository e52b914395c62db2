package app

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// TestServeOpenAIClient drives the OpenAI-compatible API with the official
// Go client: chat completions, streaming, json_schema, completions, models
// and errors.
func TestServeOpenAIClient(t *testing.T) {
	s, ts := newTestServer(t, func(c *ServeConfig) { c.APIKey = "k" })
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	ctx := context.Background()

	// Plain chat completion.
	cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "base",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say hello")},
		MaxTokens: openai.Int(6),
		Seed:      openai.Int(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Role != "assistant" || cc.Usage.CompletionTokens < 1 || cc.Usage.CompletionTokens > 6 || cc.Usage.PromptTokens < 5 {
		t.Fatalf("chat completion: %+v", cc)
	}
	if cc.Model != "base" || !strings.HasPrefix(cc.ID, "chatcmpl-") || cc.Choices[0].FinishReason == "" {
		t.Fatalf("chat completion envelope: id %q model %q finish %q", cc.ID, cc.Model, cc.Choices[0].FinishReason)
	}

	// Streaming, on an adapter: several chunks, accumulated to the text.
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "sft",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story")},
		MaxTokens:     openai.Int(12),
		Temperature:   openai.Float(0),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks, pieces := 0, ""
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		chunks++
		if len(ch.Choices) > 0 {
			pieces += ch.Choices[0].Delta.Content
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 4 {
		t.Fatalf("stream gave %d chunks, want several", chunks)
	}
	if acc.Choices[0].Message.Content != pieces || acc.Choices[0].FinishReason == "" || acc.Usage.CompletionTokens != 12 && acc.Choices[0].FinishReason == "length" {
		t.Fatalf("accumulated %+v from %d chunks (%q)", acc.Choices[0], chunks, pieces)
	}

	// json_schema: the content parses and satisfies the schema.
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"name":   map[string]any{"type": "string", "maxLength": 10},
			"age":    map[string]any{"type": "integer", "minimum": 0, "maximum": 120},
			"colour": map[string]any{"enum": []string{"red", "green"}},
		},
		"required":             []string{"name", "age", "colour"},
		"additionalProperties": false,
	}
	for _, streamed := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{
			Model:     "dpo",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Extract: Ann, 31, likes red")},
			MaxTokens: openai.Int(60),
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: schema, Strict: openai.Bool(true)},
			}},
		}
		var content string
		if streamed {
			st := client.Chat.Completions.NewStreaming(ctx, params)
			n := 0
			for st.Next() {
				if c := st.Current(); len(c.Choices) > 0 {
					content += c.Choices[0].Delta.Content
				}
				n++
			}
			if err := st.Err(); err != nil || n < 3 {
				t.Fatalf("json_schema stream: %d chunks, %v", n, err)
			}
		} else {
			res, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			content = res.Choices[0].Message.Content
		}
		var v struct {
			Name   *string `json:"name"`
			Age    *int    `json:"age"`
			Colour *string `json:"colour"`
		}
		if err := json.Unmarshal([]byte(content), &v); err != nil || v.Name == nil || v.Age == nil || v.Colour == nil {
			t.Fatalf("json_schema content %q: %v", content, err)
		}
		g, err := s.grammars.get(schemaJSON(schema), "schema")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Validate([]byte(content)); err != nil {
			t.Fatalf("json_schema content %q does not validate: %v", content, err)
		}
	}

	// Plain completions.
	cmp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModel("base"),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("The capital of France is")},
		MaxTokens: openai.Int(4),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmp.Choices) != 1 || cmp.Usage.CompletionTokens > 4 || cmp.Object != "text_completion" {
		t.Fatalf("completion: %+v", cmp)
	}

	// Models: base, the aliases that resolve, every registered adapter.
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range page.Data {
		ids[m.ID] = true
	}
	for _, want := range []string{"base", "sft", "dpo", "sft-new", "sft-old", "dpo-1", "alien"} {
		if !ids[want] {
			t.Fatalf("models lack %s: %v", want, ids)
		}
	}

	// Errors reach the client as *openai.Error with the status and type.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "no-such", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Type != errNotFound || apiErr.Message == "" {
		t.Fatalf("unknown model: %v", err)
	}
	bad := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	if _, err := bad.Models.List(ctx); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}

func schemaJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
