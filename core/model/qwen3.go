package model

// Qwen3: per-head RMSNorm of q and k before RoPE, a head_dim that need not
// be hidden_size / num_attention_heads, and q/k/v/o biases only under
// attention_bias (false in every released Qwen3).
func init() { RegisterArch(Arch{Name: "Qwen3ForCausalLM", QKNorm: true, AttnBiasFromConfig: true}) }
