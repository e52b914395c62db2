package app

import (
	"net/http"
)

// handleOpenAPI serves an OpenAPI 3.1 description of every endpoint.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSONStatus(w, http.StatusOK, openAPISpec())
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonBody(schema any) map[string]any {
	return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
}

func jsonResponse(desc string, schema any) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
}

// errorResponses are the error statuses an endpoint may answer with.
func errorResponses(codes ...string) map[string]any {
	desc := map[string]string{
		"400": "Malformed JSON, a field of the wrong type, or an invalid value",
		"401": "Missing or wrong API key (when the server has one)",
		"404": "Unknown adapter or model name",
		"409": "The adapter was trained on another base model",
		"413": "Body over --max-body, or input over the model's context",
		"422": "Unknown task, or a JSON Schema the constrained decoder cannot compile",
		"429": "Queue full; see Retry-After",
		"503": "Model loading or server stopping; see Retry-After",
		"504": "Per-request timeout (--timeout) reached",
	}
	out := map[string]any{}
	for _, c := range codes {
		out[c] = jsonResponse(desc[c], ref("Error"))
	}
	return out
}

func withErrors(ok map[string]any, codes ...string) map[string]any {
	out := errorResponses(codes...)
	out["200"] = ok
	return out
}

func openAPISpec() map[string]any {
	obj := func(props map[string]any, required ...string) map[string]any {
		o := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	str := map[string]any{"type": "string"}
	integer := map[string]any{"type": "integer"}
	number := map[string]any{"type": "number"}
	boolean := map[string]any{"type": "boolean"}
	strs := map[string]any{"type": "array", "items": str}
	apiErrs := []string{"400", "401", "404", "409", "413", "422", "429", "503", "504"}
	infer := func(summary string) map[string]any {
		return map[string]any{"post": map[string]any{
			"summary":     summary,
			"requestBody": jsonBody(ref("InferRequest")),
			"responses":   withErrors(jsonResponse("The task's output", ref("InferResponse")), apiErrs...),
		}}
	}
	inferNamed := infer("Run a task on a registered adapter, by name (or base, sft, kd, dpo)")
	inferNamed["post"].(map[string]any)["parameters"] = []any{map[string]any{"name": "adapter", "in": "path", "required": true, "schema": str}}
	schemas := map[string]any{
		"Error": obj(map[string]any{"error": obj(map[string]any{
			"message": str, "type": str, "param": map[string]any{"type": []string{"string", "null"}}, "code": map[string]any{"type": []string{"string", "null"}},
		}, "message", "type", "param")}, "error"),
		"InferRequest": obj(map[string]any{
			"task":   map[string]any{"type": "string", "enum": tasks},
			"input":  map[string]any{"type": "string", "description": "the text to classify, extract from, continue, or the codegen task"},
			"labels": map[string]any{"type": "array", "items": str, "minItems": 2, "description": "classify: the labels"},
			"schema": map[string]any{"type": "object", "description": "extract: the JSON Schema the output satisfies"},
			"options": obj(map[string]any{
				"max_tokens": integer, "temperature": number, "top_k": integer, "top_p": number, "min_p": number, "seed": integer,
				"stop": strs, "chat": boolean, "system": str,
				"calibrate": map[string]any{"type": "boolean", "default": true}, "null_inputs": strs, "length_normalize": boolean,
				"template": map[string]any{"type": "string", "description": "classify prompt with a {text} placeholder"},
				"bias":     map[string]any{"type": "object", "additionalProperties": number},
				"plan":     boolean, "language": map[string]any{"type": "string", "enum": []string{"go", "python"}},
				"check": map[string]any{"type": "boolean", "description": "codegen: run build and lint checks"},
			}),
		}, "task", "input"),
		"InferResponse": obj(map[string]any{
			"task": str, "model": str, "adapter": str, "adapter_method": str,
			"output": map[string]any{"description": "classify: label, probabilities (calibrated), raw_probabilities, confidence, margin, log_likelihoods; extract: json, valid, stop_reason; generate: text, stop_reason; codegen: code, plan, checks"},
			"usage":  ref("Usage"), "latency_ms": number, "queue_ms": number, "batch_size": integer,
		}, "task", "adapter", "output", "usage", "latency_ms"),
		"Usage": obj(map[string]any{"prompt_tokens": integer, "completion_tokens": integer, "total_tokens": integer}),
		"ChatCompletionRequest": obj(map[string]any{
			"model":      str,
			"messages":   map[string]any{"type": "array", "items": obj(map[string]any{"role": str, "content": map[string]any{"type": []string{"string", "array"}}}, "role", "content")},
			"max_tokens": integer, "max_completion_tokens": integer, "temperature": number, "top_p": number, "seed": integer,
			"stop": map[string]any{"type": []string{"string", "array"}}, "stream": boolean,
			"stream_options":  obj(map[string]any{"include_usage": boolean}),
			"response_format": obj(map[string]any{"type": map[string]any{"enum": []string{"text", "json_object", "json_schema"}}, "json_schema": obj(map[string]any{"name": str, "schema": map[string]any{"type": "object"}, "strict": boolean})}),
		}, "messages"),
		"CompletionRequest": obj(map[string]any{
			"model": str, "prompt": map[string]any{"type": []string{"string", "array"}}, "max_tokens": integer, "temperature": number,
			"logprobs": map[string]any{"type": []string{"integer", "null"}, "description": "0 or null only: log-probabilities are not served"},
			"echo":     map[string]any{"type": "boolean", "description": "false only"}, "suffix": map[string]any{"type": []string{"string", "null"}, "description": "empty only"},
			"best_of": map[string]any{"type": []string{"integer", "null"}, "description": "1 only"},
			"top_p":   number, "seed": integer, "stop": map[string]any{"type": []string{"string", "array"}}, "stream": boolean,
			"response_format": map[string]any{"type": "object"},
		}, "prompt"),
		"Completion": obj(map[string]any{"id": str, "object": str, "created": integer, "model": str,
			"choices": map[string]any{"type": "array"}, "usage": ref("Usage")}),
		"Model":     obj(map[string]any{"id": str, "object": str, "created": integer, "owned_by": str}, "id", "object", "created", "owned_by"),
		"ModelList": obj(map[string]any{"object": str, "data": map[string]any{"type": "array", "items": ref("Model")}}),
	}
	sse := map[string]any{"description": "The completion; with stream=true, server-sent events of chunks ending in data: [DONE]",
		"content": map[string]any{"application/json": map[string]any{"schema": ref("Completion")}, "text/event-stream": map[string]any{"schema": str}}}
	paths := map[string]any{
		"/infer/base":      infer("Run a task on the base model"),
		"/infer/sft":       infer("Run a task on the pinned (--sft) or latest SFT adapter"),
		"/infer/kd":        infer("Run a task on the pinned (--kd) or latest KD adapter"),
		"/infer/dpo":       infer("Run a task on the pinned (--dpo) or latest DPO adapter"),
		"/infer/{adapter}": inferNamed,
		"/v1/chat/completions": map[string]any{"post": map[string]any{"summary": "OpenAI-compatible chat completion (SSE streaming; response_format json_schema is constrained decoding)",
			"requestBody": jsonBody(ref("ChatCompletionRequest")), "responses": withErrors(sse, apiErrs...)}},
		"/v1/completions": map[string]any{"post": map[string]any{"summary": "OpenAI-compatible text completion",
			"requestBody": jsonBody(ref("CompletionRequest")), "responses": withErrors(sse, apiErrs...)}},
		"/v1/models": map[string]any{"get": map[string]any{"summary": "The base model, the method aliases that resolve, and every registered adapter",
			"responses": withErrors(jsonResponse("Models", ref("ModelList")), "401", "503")}},
		"/v1/models/{id}": map[string]any{"get": map[string]any{"summary": "One model of the list (404 model_not_found if it is not served)",
			"parameters": []any{map[string]any{"name": "id", "in": "path", "required": true, "schema": str}},
			"responses":  withErrors(jsonResponse("Model", ref("Model")), "401", "404", "503")}},
		"/healthz": map[string]any{"get": map[string]any{"summary": "Liveness: the process serves HTTP",
			"responses": map[string]any{"200": jsonResponse("Alive", obj(map[string]any{"status": str}))}}},
		"/readyz": map[string]any{"get": map[string]any{"summary": "Readiness: the model is loaded",
			"responses": withErrors(jsonResponse("Ready", obj(map[string]any{"status": str, "model": str})), "503")}},
		"/metrics": map[string]any{"get": map[string]any{"summary": "Prometheus metrics: requests, latency histograms, tokens, tokens/s, queue depth, batch sizes, adapters, process memory",
			"responses": map[string]any{"200": map[string]any{"description": "Prometheus text format", "content": map[string]any{"text/plain": map[string]any{"schema": str}}}}}},
		"/openapi.json": map[string]any{"get": map[string]any{"summary": "This document",
			"responses": map[string]any{"200": jsonResponse("OpenAPI 3.1", map[string]any{"type": "object"})}}},
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "distill serve", "version": "1",
			"description": "Inference over one base model and its LoRA adapters. Every error is {\"error\": {\"message\", \"type\", \"param\", \"code\"}}."},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
		"security":   []any{map[string]any{"bearer": []any{}}},
	}
}
