package data

import (
	"fmt"

	"distill/core/jsonv"
	"distill/core/tokenizer/chat"
)

// Row shapes of other fine-tuning tools, read into distill's own formats
// as LLaMA-Factory reads them (its "alpaca" and "sharegpt" layouts).

// parseAlpaca reads {"instruction", "input"?, "output"} as a prompt and a
// completion: the prompt is the instruction, then a newline and the input
// when there is one. Alpaca's system and history columns are refused
// rather than dropped: such rows belong in messages form.
func parseAlpaca(obj *jsonv.Value) (Row, error) {
	for _, k := range []string{"system", "history"} {
		if obj.Get(k) != nil {
			return Row{}, rowErr(k, "not supported in Alpaca rows: write the conversation as {\"messages\": [...]}")
		}
	}
	instruction, err := stringField(obj, "instruction", false)
	if err != nil {
		return Row{}, err
	}
	input := ""
	if obj.Get("input") != nil {
		if input, err = stringField(obj, "input", true); err != nil {
			return Row{}, err
		}
	}
	output, err := stringField(obj, "output", false)
	if err != nil {
		return Row{}, err
	}
	prompt := instruction
	if input != "" {
		prompt += "\n" + input
	}
	return Row{Prompt: prompt, Completion: output}, nil
}

// shareGPTRoles maps ShareGPT's "from" values onto chat roles.
var shareGPTRoles = map[string]string{"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}

// parseShareGPT reads {"conversations": [{"from", "value"}...], "system"?}
// as messages (human → user, gpt → assistant). Tool turns (function_call,
// observation) are refused: distill trains no tool calls.
func parseShareGPT(obj *jsonv.Value) ([]chat.Message, error) {
	v := obj.Get("conversations")
	if v.Kind != jsonv.Array {
		return nil, rowErr("conversations", "want a list of turns, got %s", v.KindName())
	}
	if len(v.Vals) == 0 {
		return nil, rowErr("conversations", "the list is empty")
	}
	var msgs []chat.Message
	if s := obj.Get("system"); s != nil {
		system, err := stringField(obj, "system", true)
		if err != nil {
			return nil, err
		}
		if system != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: system})
		}
	}
	for i, t := range v.Vals {
		at := fmt.Sprintf("conversations[%d]", i)
		if t.Kind != jsonv.Object {
			return nil, rowErr(at, "want an object {\"from\", \"value\"}, got %s", t.KindName())
		}
		from, err := stringField(t, "from", false)
		if err != nil {
			return nil, rowErr(at+".from", "%s", err.(*fieldErr).msg)
		}
		role, ok := shareGPTRoles[from]
		if !ok {
			return nil, rowErr(at+".from", "%q turns are not supported: want human, gpt or system", from)
		}
		value, err := stringField(t, "value", role != "assistant")
		if err != nil {
			return nil, rowErr(at+".value", "%s", err.(*fieldErr).msg)
		}
		msgs = append(msgs, chat.Message{Role: role, Content: value})
	}
	return msgs, nil
}
