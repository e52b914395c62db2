package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ardanlabs/jinja"
)

// toValue converts a Go value to a template value through its JSON form, so
// that what a template sees is what the value's JSON says, in the same key
// order. jinja.Value passes through; json.RawMessage is decoded as it is.
func toValue(v any) (jinja.Value, error) {
	switch v := v.(type) {
	case jinja.Value:
		return v, nil
	case nil:
		return jinja.None(), nil
	case float64:
		// Through JSON 1.0 would come back an integer.
		return jinja.NewFloat(v), nil
	case float32:
		return jinja.NewFloat(float64(v)), nil
	case json.RawMessage:
		return decodeJSON(v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return jinja.Undefined(), err
	}
	return decodeJSON(data)
}

// decodeJSON decodes one JSON value, keeping object key order; integers
// stay integers.
func decodeJSON(data []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeNext(dec)
	if err != nil {
		return jinja.Undefined(), fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Undefined(), fmt.Errorf("decode JSON: data after the value")
	}
	return v, nil
}

func decodeNext(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '[':
			var items []jinja.Value
			for dec.More() {
				item, err := decodeNext(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, item)
			}
			if _, err := dec.Token(); err != nil { // ]
				return jinja.Undefined(), err
			}
			return jinja.NewList(items), nil
		case '{':
			obj := jinja.NewDict()
			d := obj.AsDict()
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				val, err := decodeNext(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.Set(key.(string), val)
			}
			if _, err := dec.Token(); err != nil { // }
				return jinja.Undefined(), err
			}
			return obj, nil
		}
		return jinja.Undefined(), fmt.Errorf("unexpected %v", tok)
	case string:
		return jinja.NewString(tok), nil
	case json.Number:
		return jinja.FromGoValue(tok), nil
	case bool:
		return jinja.NewBool(tok), nil
	case nil:
		return jinja.None(), nil
	}
	return jinja.Undefined(), fmt.Errorf("unexpected JSON token %v", tok)
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// jsonKind names the kind of a JSON value for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
