package model

// Llama 2, Llama 3.x (rope_scaling llama3), SmolLM/SmolLM2 and TinyLlama.
func init() { RegisterArch(Arch{Name: "LlamaForCausalLM", AttnBiasFromConfig: true}) }
