package gguf

// VocabKVs lets the external tests read the tokenizer metadata an export
// writes without parsing the file back.
var VocabKVs = vocabKVs
