package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
)

// apiError is an error with the HTTP status and OpenAI-style type it is
// reported with: {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Status     int
	Type       string
	Param      string
	Message    string
	Code       string // OpenAI's machine-readable code, where it has one (context_length_exceeded, model_not_found)
	RetryAfter int    // seconds; set on 429 and 503
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, typ, param, format string, args ...any) *apiError {
	return &apiError{Status: status, Type: typ, Param: param, Message: fmt.Sprintf(format, args...)}
}

// Error types, as OpenAI names them where it has a name.
const (
	errInvalid     = "invalid_request_error"
	errNotFound    = "not_found_error"
	errUnprocess   = "unprocessable_entity_error"
	errTooLarge    = "request_too_large"
	errAuth        = "authentication_error"
	errRateLimit   = "rate_limit_error"
	errUnavailable = "service_unavailable"
	errTimeout     = "timeout_error"
	errConflict    = "adapter_base_mismatch"
	errServer      = "server_error"
)

// Error codes, as OpenAI's clients test for them.
const (
	codeContextLength = "context_length_exceeded"
	codeModelNotFound = "model_not_found"
)

// withCode is e with OpenAI's code.
func (e *apiError) withCode(code string) *apiError {
	e.Code = code
	return e
}

// errQueueFull is returned by the scheduler when its queue holds as many
// requests as it may.
var errQueueFull = errors.New("the request queue is full")

// errShutdown is returned for work submitted while the server stops.
var errShutdown = errors.New("the server is shutting down")

// asAPIError maps any error to what the client sees.
func asAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, errQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Type: errRateLimit, RetryAfter: 1,
			Message: "the request queue is full: retry after the Retry-After seconds, or raise --queue"}
	case errors.Is(err, errShutdown):
		return &apiError{Status: http.StatusServiceUnavailable, Type: errUnavailable, RetryAfter: 5, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, errTimeout, "", "the request ran past the server's per-request timeout (--timeout): ask for fewer tokens or raise it")
	case errors.Is(err, context.Canceled):
		return errorf(499, "cancelled", "", "the request was cancelled")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, errTooLarge, "", "the request body is over the server's limit of %d bytes (--max-body)", mbe.Limit)
	}
	return errorf(http.StatusInternalServerError, errServer, "", "%s", oneLine(err.Error()))
}

// writeError writes err as the JSON error body with its status.
func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	body := map[string]any{"error": map[string]any{"message": ae.Message, "type": ae.Type, "param": nullable(ae.Param), "code": nullable(ae.Code)}}
	writeJSONStatus(w, ae.Status, body)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	// Encoded before the header goes out: a value that cannot be encoded
	// (a NaN, say) is a 500 that says so, never a 200 with an empty body.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		enc.Encode(map[string]any{"error": map[string]any{"message": "the answer could not be encoded as JSON: " + err.Error(),
			"type": errServer, "param": nil, "code": nil}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// recoverMiddleware turns a panic in a handler into a 500 JSON error and a
// log line with the stack, so one bad request never takes the server down.
func recoverMiddleware(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, errorf(http.StatusInternalServerError, errServer, "", "internal error: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
