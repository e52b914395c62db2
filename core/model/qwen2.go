package model

// Qwen2 and Qwen2.5: Llama with biases on the q, k and v projections.
func init() { RegisterArch(Arch{Name: "Qwen2ForCausalLM", QKVBias: true}) }
