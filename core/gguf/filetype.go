package gguf

import (
	"fmt"
	"strings"
)

// FileType is what a file is mostly stored at: llama.h's enum llama_ftype,
// written as general.file_type. It is what `distill gguf --type` names;
// Export picks each tensor's Type from it (tensorType).
type FileType uint32

// The file types Export writes, with llama.h's values.
const (
	AllF32       FileType = 0  // LLAMA_FTYPE_ALL_F32
	MostlyF16    FileType = 1  // LLAMA_FTYPE_MOSTLY_F16
	MostlyQ8_0   FileType = 7  // LLAMA_FTYPE_MOSTLY_Q8_0
	MostlyQ4_K_M FileType = 15 // LLAMA_FTYPE_MOSTLY_Q4_K_M: llama-quantize's 4-bit mix (quantmix.go)
	MostlyQ6_K   FileType = 18 // LLAMA_FTYPE_MOSTLY_Q6_K
	MostlyBF16   FileType = 32 // LLAMA_FTYPE_MOSTLY_BF16
)

// fileTypes in the order the CLI lists them, by the names llama-quantize
// takes (lowercased).
var fileTypes = []struct {
	ft   FileType
	name string
}{
	{AllF32, "f32"}, {MostlyF16, "f16"}, {MostlyBF16, "bf16"}, {MostlyQ8_0, "q8_0"},
	{MostlyQ6_K, "q6_k"}, {MostlyQ4_K_M, "q4_k_m"},
}

func (f FileType) String() string {
	for _, e := range fileTypes {
		if e.ft == f {
			return e.name
		}
	}
	return fmt.Sprintf("llama_ftype %d", uint32(f))
}

func (f FileType) valid() bool {
	for _, e := range fileTypes {
		if e.ft == f {
			return true
		}
	}
	return false
}

// FileTypeNames lists the names ParseFileType accepts.
func FileTypeNames() []string {
	names := make([]string, len(fileTypes))
	for i, e := range fileTypes {
		names[i] = e.name
	}
	return names
}

// ParseFileType accepts llama-quantize's names, in either case (Q4_K_M,
// q4_k_m).
func ParseFileType(s string) (FileType, error) {
	for _, e := range fileTypes {
		if strings.EqualFold(s, e.name) {
			return e.ft, nil
		}
	}
	return 0, fmt.Errorf("unknown GGUF type %q (%s)", s, strings.Join(FileTypeNames(), ", "))
}

// quantized says whether the file holds quantised blocks, which
// general.quantization_version (ggml's GGML_QNT_VERSION, 2) describes.
func (f FileType) quantized() bool {
	return f == MostlyQ8_0 || f == MostlyQ4_K_M || f == MostlyQ6_K
}
