package model

// Qwen3: no q/k/v bias, per-head RMSNorm of q and k before RoPE, and a
// head_dim that need not be hidden_size / num_attention_heads.
func init() { RegisterArch(Arch{Name: "Qwen3ForCausalLM", QKNorm: true}) }
