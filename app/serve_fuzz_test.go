package app

import (
	"net/http"
	"slices"
	"testing"
)

// FuzzParseInferRequest: any body either parses into a request whose task
// is known and whose input is present, or is refused with a 400 or 422
// apiError; nothing panics.
func FuzzParseInferRequest(f *testing.F) {
	for _, seed := range []string{
		`{"task":"classify","input":"x","labels":["a","b"]}`,
		`{"task":"extract","input":"x","schema":{"type":"object"},"options":{"max_tokens":5}}`,
		`{"task":"generate","input":"x","options":{"temperature":0.5,"top_p":0.9,"stop":["\n"],"seed":3}}`,
		`{"task":"codegen","input":"x","options":{"language":"python","plan":true}}`,
		`{"task":"classify","input":"x","labels":["a","a"]}`,
		`{"task":"classify","input":"x","labels":["a","b"],"options":{"bias":{"c":1},"template":"no placeholder"}}`,
		`{"task":"generate","input":{"a":[1,2]}}`,
		`{"task":7}`, `[]`, `null`, `{`, `{"task":"generate","input":"x"} trailing`, ``, `"str"`,
		`{"task":"generate","input":"x","options":{"max_tokens":-1}}`,
		`{"task":"generate","input":"x","options":{"max_tokens":1e400}}`,
		"{\"task\":\"generate\",\"input\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, input, err := parseInferRequest(body)
		if err != nil {
			ae, ok := err.(*apiError)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if ae.Status != http.StatusBadRequest && ae.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d for a malformed request: %v", ae.Status, ae)
			}
			if ae.Message == "" || ae.Type == "" {
				t.Fatalf("error without message or type: %+v", ae)
			}
			writeError(discardWriter{}, err) // the error body encodes
			return
		}
		if !slices.Contains(tasks, req.Task) {
			t.Fatalf("accepted unknown task %q", req.Task)
		}
		if req.Task == "classify" && len(req.Labels) < 2 {
			t.Fatalf("accepted classify with %d labels", len(req.Labels))
		}
		if req.Options.MaxTokens != nil && *req.Options.MaxTokens <= 0 {
			t.Fatalf("accepted max_tokens %d", *req.Options.MaxTokens)
		}
		_ = input
	})
}

// FuzzDecodeChatRequest: the OpenAI request decoder refuses with 400s, and
// never panics, on any body.
func FuzzDecodeChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"base","messages":[{"role":"user","content":"hi"}],"stream":true,"stop":"x"}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}`,
		`{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}}`,
		`{"messages":"x","stop":[1]}`, `{"prompt":["a","b"]}`, `{"prompt":7}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var chat chatRequest
		if err := decodeJSON(body, &chat, false); err != nil {
			if ae := asAPIError(err); ae.Status != http.StatusBadRequest {
				t.Fatalf("status %d: %v", ae.Status, ae)
			}
		}
		var cmp completionRequest
		if err := decodeJSON(body, &cmp, false); err != nil {
			if ae := asAPIError(err); ae.Status != http.StatusBadRequest {
				t.Fatalf("status %d: %v", ae.Status, ae)
			}
		}
	})
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
