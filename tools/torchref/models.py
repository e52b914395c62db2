"""Independent float64 reference of the decoder-only architectures distill supports.

Written from the published architecture descriptions (Llama 2/3, Mistral,
Qwen2, Qwen3) to match what Hugging Face transformers computes for
LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM.
Everything is float64; weights are whatever the checkpoint holds, widened
exactly to float64.

Conventions (these are what the Go engine must match):

* RMSNorm(x, w) = x * 1/sqrt(mean(x^2) + eps) * w, over the last axis.
* RoPE, HF "rotate_half" (a.k.a. NeoX) layout: for head dim d, frequency i in
  [0, d/2) rotates the pair (x[i], x[i + d/2]) by angle pos * inv_freq[i]:
      y[i]       = x[i]       * cos - x[i + d/2] * sin
      y[i + d/2] = x[i + d/2] * cos + x[i]       * sin
  inv_freq[i] = 1 / theta^(2i/d), positions 0, 1, 2, ... (no offset).
* llama3 rope scaling adjusts inv_freq once (see llama3_inv_freq).
* Qwen3: q_norm / k_norm (RMSNorm with weight of size head_dim, same eps) are
  applied per head to q and k after the projections and BEFORE RoPE.
* Qwen2: q/k/v projections have bias; o_proj has none.
* Llama and Qwen3 with attention_bias: q, k, v and o_proj all have bias.
* linear rope scaling divides every inv_freq by factor.
* transformers v5 configs carry rope_theta and the scaling in
  rope_parameters instead of the top-level keys.
* GQA: query head h uses key/value head h // (n_heads / n_kv_heads).
* scores = q.k / sqrt(head_dim), causal mask, softmax, weighted sum of v.
* MLP: down(silu(gate(x)) * up(x)), silu(z) = z * sigmoid(z).
* tie_word_embeddings: lm_head = embed_tokens.
"""

import math
from dataclasses import dataclass, field

import torch

SUPPORTED = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}


@dataclass
class Cfg:
    arch: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    theta: float
    vocab: int
    tied: bool
    qkv_bias: bool
    qk_norm: bool
    o_bias: bool = False
    rope_scaling: dict = field(default=None)


def parse_config(c: dict) -> Cfg:
    archs = c.get("architectures") or []
    if len(archs) != 1 or archs[0] not in SUPPORTED:
        raise ValueError(f"unsupported architectures {archs}")
    kind = SUPPORTED[archs[0]]
    heads = c["num_attention_heads"]
    hd = c.get("head_dim") or c["hidden_size"] // heads
    if kind == "qwen2":
        qkv_bias, o_bias = True, False  # HF Qwen2: q/k/v bias always, o never
    else:
        qkv_bias = o_bias = bool(c.get("attention_bias", False))
    rp = c.get("rope_parameters") or {}
    theta = c.get("rope_theta") or rp.get("rope_theta") or 10000.0
    scaling = c.get("rope_scaling")
    if scaling is None and rp.get("rope_type", "default") != "default":
        scaling = rp
    return Cfg(
        arch=kind,
        hidden=c["hidden_size"],
        intermediate=c["intermediate_size"],
        layers=c["num_hidden_layers"],
        heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=hd,
        eps=float(c["rms_norm_eps"]),
        theta=float(theta),
        vocab=c["vocab_size"],
        tied=bool(c.get("tie_word_embeddings", False)),
        qkv_bias=qkv_bias,
        qk_norm=(kind == "qwen3"),
        o_bias=o_bias,
        rope_scaling=scaling,
    )


# --------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------

def base_inv_freq(theta: float, d: int) -> torch.Tensor:
    i = torch.arange(0, d // 2, dtype=torch.float64)
    return 1.0 / (theta ** (2.0 * i / d))


def llama3_inv_freq(inv_freq: torch.Tensor, rs: dict) -> torch.Tensor:
    """Llama 3.1 frequency-dependent rescaling of the RoPE frequencies.

    With L = original_max_position_embeddings, wavelen_i = 2*pi / inv_freq_i:
      wavelen < L / high_freq_factor  -> unchanged (high frequencies)
      wavelen > L / low_freq_factor   -> inv_freq / factor (low frequencies)
      otherwise (band edges included) -> (1 - s) * inv_freq / factor + s * inv_freq
                 with s = (L / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    """
    factor = float(rs["factor"])
    lo = float(rs["low_freq_factor"])
    hi = float(rs["high_freq_factor"])
    L = float(rs["original_max_position_embeddings"])
    lo_wavelen = L / lo
    hi_wavelen = L / hi
    wavelen = 2.0 * math.pi / inv_freq
    s = (L / wavelen - lo) / (hi - lo)
    smooth = (1.0 - s) * inv_freq / factor + s * inv_freq
    out = torch.where(wavelen > lo_wavelen, inv_freq / factor, smooth)
    out = torch.where(wavelen < hi_wavelen, inv_freq, out)
    return out


def inv_freq_for(cfg: Cfg, use_scaling=True) -> torch.Tensor:
    inv = base_inv_freq(cfg.theta, cfg.head_dim)
    rs = cfg.rope_scaling
    if rs and use_scaling:
        rtype = rs.get("rope_type", rs.get("type"))
        if rtype == "llama3":
            inv = llama3_inv_freq(inv, rs)
        elif rtype == "linear":
            inv = inv / float(rs["factor"])
        elif rtype not in (None, "default"):
            raise ValueError(f"rope_type {rtype} not implemented in the reference")
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    """x: [T, H, d]; cos/sin: [T, d] (the d/2 angles repeated twice)."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def apply_rope_interleaved(x, cos, sin):
    """WRONG convention on purpose (GPT-J / Meta-original pairs (2i, 2i+1));
    used only to show that the fixtures detect the mistake."""
    d = x.shape[-1]
    c, s = cos[:, None, : d // 2], sin[:, None, : d // 2]
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = b * c + a * s
    return out


# --------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def silu(z):
    return z * torch.sigmoid(z)


def forward(cfg: Cfg, W: dict, ids, *, bug=None, bf16_inputs=False, pre_round=None) -> torch.Tensor:
    """Logits [T, vocab] (float64) for one sequence, positions 0..T-1.

    `bf16_inputs` rounds the activations entering every product with a
    weight (projections and LM head) to bfloat16 (nearest even), as the CPU
    engine's bf16 products (--cpu-bf16) do, and attention's operands — q and
    k after RoPE, v, and the softmax's normalised weights — as its bf16
    attention does; everything else stays float64.
    `pre_round`, with it, perturbs each value first (the golden's measure of
    how far ties rounded the other way move the result).

    `bug` injects a named mistake (for the fixture-sensitivity self-check only):
    'rope_interleaved', 'gqa_mod', 'no_qk_norm', 'qk_norm_after_rope',
    'no_bias', 'no_o_bias', 'no_rope_scaling', 'no_causal_mask'."""
    ids_t = torch.as_tensor(ids, dtype=torch.long)
    T = ids_t.numel()
    H, KV, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    rep = H // KV

    inv = inv_freq_for(cfg, use_scaling=(bug != "no_rope_scaling"))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = torch.cos(ang), torch.sin(ang)
    rope = apply_rope_interleaved if bug == "rope_interleaved" else apply_rope

    if bug == "gqa_mod":
        kv_of_head = torch.arange(H) % KV
    else:
        kv_of_head = torch.arange(H) // rep
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    if bug == "no_causal_mask":
        causal = torch.ones(T, T, dtype=torch.bool)

    def rd(t):
        if not bf16_inputs:
            return t
        if pre_round is not None:
            t = pre_round(t)
        return t.to(torch.bfloat16).to(torch.float64)

    x = W["model.embed_tokens.weight"][ids_t]
    for l in range(cfg.layers):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.eps)

        def proj(name):
            y = rd(h) @ W[p + f"self_attn.{name}.weight"].T
            if cfg.qkv_bias and bug != "no_bias":
                y = y + W[p + f"self_attn.{name}.bias"]
            return y

        q = proj("q_proj").view(T, H, d)
        k = proj("k_proj").view(T, KV, d)
        v = proj("v_proj").view(T, KV, d)
        if cfg.qk_norm and bug not in ("no_qk_norm", "qk_norm_after_rope"):
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cfg.qk_norm and bug == "qk_norm_after_rope":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps)

        q, k, v = rd(q), rd(k), rd(v)
        k = k[:, kv_of_head, :]  # [T, H, d]
        v = v[:, kv_of_head, :]
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(d)
        scores = scores.masked_fill(~causal, float("-inf"))
        probs = rd(torch.softmax(scores, dim=-1))
        att = torch.einsum("hts,shd->thd", probs, v).reshape(T, H * d)
        x = x + rd(att) @ W[p + "self_attn.o_proj.weight"].T
        if cfg.o_bias and bug != "no_o_bias":
            x = x + W[p + "self_attn.o_proj.bias"]

        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps)
        g = rd(h) @ W[p + "mlp.gate_proj.weight"].T
        u = rd(h) @ W[p + "mlp.up_proj.weight"].T
        x = x + rd(silu(g) * u) @ W[p + "mlp.down_proj.weight"].T

    x = rms_norm(x, W["model.norm.weight"], cfg.eps)
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    return rd(x) @ head.T


# --------------------------------------------------------------------------
# a second, loop-based formulation used only as a self-check
# --------------------------------------------------------------------------

def llama3_inv_freq_scalar(theta, d, rs):
    out = []
    for i in range(d // 2):
        f = 1.0 / (theta ** (2.0 * i / d))
        L = rs["original_max_position_embeddings"]
        wl = 2.0 * math.pi / f
        if wl < L / rs["high_freq_factor"]:
            out.append(f)
        elif wl > L / rs["low_freq_factor"]:
            out.append(f / rs["factor"])
        else:
            s = (L / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append((1 - s) * f / rs["factor"] + s * f)
    return out


def forward_slow(cfg: Cfg, W: dict, ids) -> torch.Tensor:
    """Same model, written position-by-position with explicit pair rotations
    and explicit per-head kv lookup. Slow; for cross-checking forward()."""
    T = len(ids)
    H, KV, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    rs = cfg.rope_scaling
    freqs = [1.0 / (cfg.theta ** (2.0 * i / d)) for i in range(d // 2)]
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        freqs = llama3_inv_freq_scalar(cfg.theta, d, rs)
    elif rs and rs.get("rope_type", rs.get("type")) == "linear":
        freqs = [f / rs["factor"] for f in freqs]

    def rot(vec, pos):
        out = vec.clone()
        for i in range(d // 2):
            c, s = math.cos(pos * freqs[i]), math.sin(pos * freqs[i])
            a, b = vec[i].item(), vec[i + d // 2].item()
            out[i] = a * c - b * s
            out[i + d // 2] = b * c + a * s
        return out

    def norm(vec, w):
        ms = sum(float(t) ** 2 for t in vec) / vec.numel()
        return vec / math.sqrt(ms + cfg.eps) * w

    xs = [W["model.embed_tokens.weight"][i].clone() for i in ids]
    for l in range(cfg.layers):
        p = f"model.layers.{l}."
        Q, K, V = [], [], []
        for t in range(T):
            h = norm(xs[t], W[p + "input_layernorm.weight"])
            qs, ks, vs = [], [], []
            for name, n, dst in (("q_proj", H, qs), ("k_proj", KV, ks), ("v_proj", KV, vs)):
                y = W[p + f"self_attn.{name}.weight"] @ h
                if cfg.qkv_bias:
                    y = y + W[p + f"self_attn.{name}.bias"]
                for j in range(n):
                    dst.append(y[j * d:(j + 1) * d])
            if cfg.qk_norm:
                qs = [norm(v_, W[p + "self_attn.q_norm.weight"]) for v_ in qs]
                ks = [norm(v_, W[p + "self_attn.k_norm.weight"]) for v_ in ks]
            Q.append([rot(v_, t) for v_ in qs])
            K.append([rot(v_, t) for v_ in ks])
            V.append(vs)
        new = []
        for t in range(T):
            heads_out = []
            for j in range(H):
                g = j // (H // KV)
                sc = [float(Q[t][j] @ K[s][g]) / math.sqrt(d) for s in range(t + 1)]
                m = max(sc)
                e = [math.exp(z - m) for z in sc]
                z = sum(e)
                o = sum((e[s] / z) * V[s][g] for s in range(t + 1))
                heads_out.append(o)
            a = torch.cat(heads_out)
            x = xs[t] + W[p + "self_attn.o_proj.weight"] @ a
            if cfg.o_bias:
                x = x + W[p + "self_attn.o_proj.bias"]
            h = norm(x, W[p + "post_attention_layernorm.weight"])
            gt = W[p + "mlp.gate_proj.weight"] @ h
            up = W[p + "mlp.up_proj.weight"] @ h
            act = torch.tensor([float(v_) / (1.0 + math.exp(-float(v_))) for v_ in gt],
                               dtype=torch.float64)
            new.append(x + W[p + "mlp.down_proj.weight"] @ (act * up))
        xs = new
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    return torch.stack([head @ norm(x, W["model.norm.weight"]) for x in xs])
