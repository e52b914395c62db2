package gguf

// VocabKVs lets the external tests read the tokenizer metadata an export
// writes without parsing the file back.
var VocabKVs = vocabKVs

// EncodeRows and RowBytes let the external tests quantise rows as an
// export does.
var EncodeRows = encodeRows

func RowBytes(t Type, n int) int {
	b, err := t.rowBytes(n)
	if err != nil {
		panic(err)
	}
	return b
}
