#!/usr/bin/python3
"""Build tiny random HF checkpoints and float64 golden outputs for core/model tests.

Run from the repository root (or anywhere):

    /usr/bin/python3 tools/torchref/make_goldens.py

Writes core/model/testdata/<fixture>/ and core/model/testdata/bad/. The output
is byte-for-byte deterministic for a given torch version (fixed seeds, one
thread, sorted tensor layout, floats rounded to 10 decimals in JSON).
See tools/torchref/README.md.
"""

import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import models  # noqa: E402
import safetensors_io as st  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "core", "model", "testdata")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

DIGITS = 10          # decimals kept in golden.json floats
N_GREEDY = 8
TOPK = 5

# --------------------------------------------------------------------------
# architectures
# --------------------------------------------------------------------------
# Each spec: config.json content (minus torch_dtype, which depends on the
# fixture dtype) + generation_config + seeds. The bf16 and f32 fixtures of an
# arch share the same float32 master weights (bf16 = RNE rounding of them).

SPECS = {
    # Llama 2 shape: MHA, untied, theta 1e4, no head_dim key (default path).
    "llama2": dict(
        seed=1101,
        config={
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 160,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "vocab_size": 320,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
    ),
    # Llama 3.x shape: GQA, tied, theta 5e5, llama3 rope scaling with a small
    # original context so the scaling matters at short lengths. With head_dim
    # 16 and theta 5e5 the wavelengths are 6.3, 32.4, 167, ... so L=64,
    # high_freq_factor 4, low_freq_factor 1 gives one unchanged frequency
    # (wavelen < 16), one smoothly interpolated one (16 <= wavelen <= 64) and
    # six divided by `factor`.
    "llama3": dict(
        seed=1201,
        long=True,
        config={
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
                "rope_type": "llama3",
            },
            "vocab_size": 384,
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "bos_token_id": 376,
            "eos_token_id": [377, 379, 380],
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 376, "eos_token_id": [377, 379, 380],
                    "do_sample": True, "temperature": 0.6, "top_p": 0.9},
    ),
    # SmolLM / SmolLM2 shape (Llama architecture): tied, multi-query
    # attention (1 kv head for 3 query heads), 3 layers, theta 1e5.
    "smollm": dict(
        seed=1301,
        config={
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 48,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "num_key_value_heads": 1,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 100000.0,
            "rope_scaling": None,
            "vocab_size": 320,
            "max_position_embeddings": 2048,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2},
    ),
    # Qwen2 / Qwen2.5: q/k/v bias (always, no config key), GQA, untied here.
    "qwen2": dict(
        seed=1401,
        config={
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "vocab_size": 384,
            "max_position_embeddings": 32768,
            "max_window_layers": 2,
            "sliding_window": 32768,
            "use_sliding_window": False,
            "tie_word_embeddings": False,
            "attention_dropout": 0.0,
            "bos_token_id": 379,
            "eos_token_id": 381,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 379, "eos_token_id": [381, 379], "pad_token_id": 379,
                    "do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                    "repetition_penalty": 1.05},
    ),
    # Qwen3: no qkv bias, per-head q_norm/k_norm before RoPE, explicit
    # head_dim (32) != hidden/heads (16), tied.
    "qwen3": dict(
        seed=1501,
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "vocab_size": 384,
            "max_position_embeddings": 40960,
            "max_window_layers": 2,
            "sliding_window": None,
            "use_sliding_window": False,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 379,
            "eos_token_id": 381,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 379, "eos_token_id": [381, 379], "pad_token_id": 379,
                    "do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20},
    ),
    # Mistral: Llama-like, GQA, untied, theta 1e6, sliding_window null.
    "mistral": dict(
        seed=1601,
        config={
            "architectures": ["MistralForCausalLM"],
            "model_type": "mistral",
            "hidden_size": 64,
            "intermediate_size": 160,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "vocab_size": 320,
            "max_position_embeddings": 32768,
            "tie_word_embeddings": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 1, "eos_token_id": 2},
    ),
    # Llama with attention_bias (q/k/v/o biases), an explicit head_dim (32)
    # != hidden/heads (16) and linear rope scaling; f32 and F16 weights.
    "llama-bias": dict(
        seed=1701,
        dtypes=("f32", "f16"),
        config={
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 4.0},
            "vocab_size": 320,
            "max_position_embeddings": 2048,
            "tie_word_embeddings": False,
            "attention_bias": True,
            "mlp_bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 1, "eos_token_id": 2},
    ),
    # Qwen3 with attention_bias (q/k/v/o biases), its config.json as
    # transformers v5 writes it: rope_theta inside rope_parameters, "dtype"
    # for "torch_dtype".
    "qwen3-v5": dict(
        seed=1801,
        dtypes=("f32",),
        v5=True,
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
            "vocab_size": 384,
            "max_position_embeddings": 40960,
            "sliding_window": None,
            "use_sliding_window": False,
            "tie_word_embeddings": True,
            "attention_bias": True,
            "attention_dropout": 0.0,
            "bos_token_id": 379,
            "eos_token_id": 381,
            "initializer_range": 0.02,
            "use_cache": True,
        },
        generation={"bos_token_id": 379, "eos_token_id": [381, 379]},
    ),
}

ARCH_ORDER = ["llama2", "llama3", "smollm", "qwen2", "qwen3", "mistral", "llama-bias", "qwen3-v5"]
DTYPES = ("bf16", "f32")  # a spec's "dtypes" overrides
STORED = {"bf16": "BF16", "f32": "F32", "f16": "F16"}
TORCH_DTYPE = {"bf16": torch.bfloat16, "f32": torch.float32, "f16": torch.float16}
SHARDED = {"qwen2-f32-sharded": ("qwen2", "f32")}
TRANSFORMERS_VERSION = "4.51.0"
TRANSFORMERS_V5 = "5.0.0"


# --------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------

def make_weights(spec) -> dict:
    """float32 master weights with HF names.

    Scales are ~1/sqrt(fan_in) rather than HF's 0.02 init: with 0.02 a
    64-wide model has near-uniform attention and next-token distributions
    (logit std ~0.16), so RoPE/GQA/norm mistakes barely move the outputs.
    With these scales attention is peaked and logits have std ~3."""
    c = spec["config"]
    g = torch.Generator().manual_seed(spec["seed"])
    cfg = models.parse_config(c)
    Hd, I, V = cfg.hidden, cfg.intermediate, cfg.vocab
    qd, kvd = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim

    def randn(*shape, std=1.0, mean=0.0):
        return (mean + std * torch.randn(*shape, generator=g, dtype=torch.float64)).to(torch.float32)

    def lin(out, inp, gain=1.0):
        return randn(out, inp, std=gain / math.sqrt(inp))

    def normw(n):
        return randn(n, std=0.1, mean=1.0)

    W = {}
    W["model.embed_tokens.weight"] = randn(V, Hd, std=0.4)
    for l in range(cfg.layers):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = normw(Hd)
        W[p + "self_attn.q_proj.weight"] = lin(qd, Hd, 1.6)
        W[p + "self_attn.k_proj.weight"] = lin(kvd, Hd, 1.6)
        W[p + "self_attn.v_proj.weight"] = lin(kvd, Hd)
        W[p + "self_attn.o_proj.weight"] = lin(Hd, qd)
        if cfg.qkv_bias:
            W[p + "self_attn.q_proj.bias"] = randn(qd, std=0.5)
            W[p + "self_attn.k_proj.bias"] = randn(kvd, std=0.5)
            W[p + "self_attn.v_proj.bias"] = randn(kvd, std=0.5)
        if cfg.o_bias:
            W[p + "self_attn.o_proj.bias"] = randn(Hd, std=0.5)
        if cfg.qk_norm:
            # q_norm/k_norm see unit-RMS heads; a larger spread makes them matter.
            W[p + "self_attn.q_norm.weight"] = randn(cfg.head_dim, std=0.3, mean=1.2)
            W[p + "self_attn.k_norm.weight"] = randn(cfg.head_dim, std=0.3, mean=1.2)
        W[p + "post_attention_layernorm.weight"] = normw(Hd)
        W[p + "mlp.gate_proj.weight"] = lin(I, Hd)
        W[p + "mlp.up_proj.weight"] = lin(I, Hd)
        W[p + "mlp.down_proj.weight"] = lin(Hd, I)
    W["model.norm.weight"] = normw(Hd)
    if not cfg.tied:
        W["lm_head.weight"] = randn(V, Hd, std=0.4)
    return W


def check_bf16_rne(W):
    """torch's float32 -> bfloat16 cast must be round-to-nearest-even."""
    # crafted cases: exact ties (lower half == 0x8000) with even and odd kept
    # lsb, just-below/above ties, and a carry into the exponent.
    crafted = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,
                        0xBF808000, 0xBF818000, 0x3FFFFFFF, 0x3F7F8000,
                        0x00008000, 0x00018000], dtype=np.uint32).view(np.float32)
    want_crafted = np.array([0x3F80, 0x3F82, 0x3F80, 0x3F81, 0xBF80, 0xBF82,
                             0x4000, 0x3F80, 0x0000, 0x0002], dtype=np.uint16)
    assert (st.f32_to_bf16_bits_rne(crafted) == want_crafted).all(), "numpy RNE helper wrong"
    arrays = [crafted] + [w.numpy().ravel() for w in W.values()]
    for a in arrays:
        got = torch.from_numpy(a.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        want = st.f32_to_bf16_bits_rne(a)
        assert (got == want).all(), "torch bf16 cast is not round-to-nearest-even"


# --------------------------------------------------------------------------
# token ids
# --------------------------------------------------------------------------

def make_ids(cfg_json, seed, n):
    """bos + content ids with repeated spans (exercises attention to earlier
    copies). Content ids avoid bos/eos and the ids below 3."""
    g = torch.Generator().manual_seed(seed)
    V = cfg_json["vocab_size"]
    special = {cfg_json["bos_token_id"]}
    eos = cfg_json["eos_token_id"]
    special.update(eos if isinstance(eos, list) else [eos])
    pool = [i for i in range(3, V) if i not in special]

    def draw(k):
        idx = torch.randint(0, len(pool), (k,), generator=g)
        return [pool[i] for i in idx.tolist()]

    ids = [cfg_json["bos_token_id"]]
    while len(ids) < n:
        fresh = draw(7)
        ids += fresh
        if len(ids) > 4:
            start = int(torch.randint(1, len(ids) - 3, (1,), generator=g))
            ids += ids[start:start + 5]
    return ids[:n]


# --------------------------------------------------------------------------
# goldens
# --------------------------------------------------------------------------

def r(x):
    return round(float(x), DIGITS)


def golden_case(cfg, W, ids):
    logits = models.forward(cfg, W, ids)
    lp = torch.log_softmax(logits, dim=-1)
    logprobs = [r(lp[t - 1, ids[t]]) for t in range(1, len(ids))]
    top = torch.topk(lp[-1], TOPK)
    last_top = [{"id": int(i), "logprob": r(v), "logit": r(logits[-1, i])}
                for v, i in zip(top.values.tolist(), top.indices.tolist())]
    seq, greedy, gaps = list(ids), [], []
    for _ in range(N_GREEDY):
        # full recomputation each step (no KV cache)
        l = torch.log_softmax(models.forward(cfg, W, seq)[-1], dim=-1)
        t2 = torch.topk(l, 2)
        nxt = int(t2.indices[0])
        greedy.append(nxt)
        gaps.append(r(t2.values[0] - t2.values[1]))
        seq.append(nxt)
    return {"ids": list(ids), "logprobs": logprobs, "last_logits_top": last_top,
            "greedy": greedy, "greedy_gap": gaps}, logits


def bf16_products_case(cfg, W, case, logits):
    """The log-probs with every weight product's input and attention's
    operands rounded to bf16 (the engine's --cpu-bf16), and how far that
    moves them from the float64 ones."""
    ids = case["ids"]
    lp = torch.log_softmax(models.forward(cfg, W, ids, bf16_inputs=True), dim=-1)
    ref = torch.log_softmax(logits, dim=-1)
    idx, rows = torch.tensor(ids[1:]), torch.arange(len(ids) - 1)
    moved = float((lp[rows, idx] - ref[rows, idx]).abs().max())
    # An engine computing in f32 holds values some 1e-7 to 1e-6 (relative)
    # from these after a few layers' sums; an input that close to a bf16 tie
    # rounds the other way, a step of 2^-8 relative, and the step travels
    # to every later position through attention. How far such flips move
    # the log-probs bounds the engine's agreement: rerun with 1e-6 relative
    # noise before each rounding (eight seeded trials, the worst kept).
    gen = torch.Generator().manual_seed(len(ids))
    noisy = 0.0
    for _ in range(8):
        def jitter(t):
            return t * (1 + 1e-6 * torch.randn(t.shape, generator=gen, dtype=torch.float64))
        lpn = torch.log_softmax(models.forward(cfg, W, ids, bf16_inputs=True, pre_round=jitter), dim=-1)
        noisy = max(noisy, float((lpn[rows, idx] - lp[rows, idx]).abs().max()))
    return {"logprobs": [r(lp[t - 1, ids[t]]) for t in range(1, len(ids))],
            "max_abs_dlogp_from_f64": r(moved),
            "max_abs_dlogp_f32_noise": r(noisy)}


def check_prefix_consistency(cfg, W, ids, logits):
    """Causality / cache-free incremental consistency: the logits of ids[:t]
    must equal the full-sequence logits at position t-1."""
    worst = 0.0
    for t in range(1, len(ids) + 1):
        lt = models.forward(cfg, W, ids[:t])
        worst = max(worst, float((lt - logits[:t]).abs().max()))
    assert worst < 1e-10, f"prefix inconsistency {worst}"
    return worst


BUGS = {
    "rope_interleaved": lambda c: True,
    "gqa_mod": lambda c: c.kv_heads not in (1, c.heads),
    "no_qk_norm": lambda c: c.qk_norm,
    "qk_norm_after_rope": lambda c: c.qk_norm,
    "no_bias": lambda c: c.qkv_bias,
    "no_o_bias": lambda c: c.o_bias,
    "no_rope_scaling": lambda c: bool(c.rope_scaling),
    "no_causal_mask": lambda c: True,
}


def sensitivity(cfg, W, ids, ref_logits):
    """How far common implementation mistakes move the golden log-probs:
    max |delta log p| over the scored positions. Must be large."""
    ref = torch.log_softmax(ref_logits, -1)
    idx = torch.tensor(ids[1:])
    rows = torch.arange(len(ids) - 1)
    out = {}
    for bug, applies in BUGS.items():
        if not applies(cfg):
            continue
        lp = torch.log_softmax(models.forward(cfg, W, ids, bug=bug), -1)
        out[bug] = round(float((lp[rows, idx] - ref[rows, idx]).abs().max()), 4)
    return out


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def fixture_config(spec, dtype):
    c = dict(spec["config"])
    key = "dtype" if spec.get("v5") else "torch_dtype"
    c[key] = {"bf16": "bfloat16", "f32": "float32", "f16": "float16"}[dtype]
    c["transformers_version"] = TRANSFORMERS_V5 if spec.get("v5") else TRANSFORMERS_VERSION
    return c


def write_fixture(name, spec, master, dtype, shards=1):
    d = os.path.join(OUT, name)
    os.makedirs(d)
    sdt = STORED[dtype]
    dump_json(os.path.join(d, "config.json"), fixture_config(spec, dtype))
    gen = dict(spec["generation"])
    gen["transformers_version"] = TRANSFORMERS_V5 if spec.get("v5") else TRANSFORMERS_VERSION
    dump_json(os.path.join(d, "generation_config.json"), gen)
    meta = {"format": "pt"}
    if shards == 1:
        st.save_file(os.path.join(d, "model.safetensors"), master, sdt, meta)
        return d
    # split by layer: embeddings + first half of the layers, then the rest
    cfg = models.parse_config(spec["config"])
    cut = cfg.layers // 2

    def shard_of(n):
        if n.startswith("model.layers."):
            return 0 if int(n.split(".")[2]) < cut else 1
        return 0 if n == "model.embed_tokens.weight" else 1

    files = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    parts = [{}, {}]
    for n, t in master.items():
        parts[shard_of(n)][n] = t
    weight_map, total = {}, 0
    for i, part in enumerate(parts):
        st.save_file(os.path.join(d, files[i]), part, sdt, meta)
        for n, t in part.items():
            weight_map[n] = files[i]
            total += t.numel() * st.DTYPE_SIZES[sdt]
    dump_json(os.path.join(d, "model.safetensors.index.json"),
              {"metadata": {"total_size": total},
               "weight_map": {k: weight_map[k] for k in sorted(weight_map)}})
    return d


def load_fixture(d):
    """Read back config + weights exactly as stored (bf16/f32 -> float64)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = models.parse_config(json.load(f))
    idx = os.path.join(d, "model.safetensors.index.json")
    W = {}
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        for fn in sorted(set(wm.values())):
            W.update(st.load_file_f64(os.path.join(d, fn)))
        assert set(W) == set(wm), "index does not match shards"
    else:
        W = st.load_file_f64(os.path.join(d, "model.safetensors"))
    return cfg, W


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


# --------------------------------------------------------------------------
# broken fixtures
# --------------------------------------------------------------------------

BAD_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "vocab_size": 32,
    "max_position_embeddings": 128,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

BAD_CASES = {
    "truncated": "model.safetensors is cut short: the header's data_offsets run past the end of the file",
    "header-overflow": "the 8-byte header length is larger than the whole file",
    "bad-header-json": "the header is not valid JSON",
    "bad-offsets": "a tensor's data_offsets span does not equal numel * dtype size",
    "missing-tensor": "config.json says 2 layers, the file only has layer 0",
    "shape-mismatch": "model.layers.0.mlp.gate_proj.weight is stored [16, 32] instead of [32, 16]",
    "unknown-arch": "architectures is [\"GPT2LMHeadModel\"] (model_type gpt2); weights are otherwise valid",
    "missing-shard": "model.safetensors.index.json maps tensors to a shard file that does not exist",
}


def write_bad():
    base = os.path.join(OUT, "bad")
    os.makedirs(base)
    spec = {"seed": 9901, "config": BAD_CONFIG}
    W = make_weights(spec)

    def mk(name, config=BAD_CONFIG):
        d = os.path.join(base, name)
        os.makedirs(d)
        dump_json(os.path.join(d, "config.json"), config)
        return d

    good = st.serialize(W, "F32", {"format": "pt"})

    d = mk("truncated")
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(good[:-100])

    d = mk("header-overflow")
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(good) + 1000) + good[8:])

    d = mk("bad-header-json")
    hdr = b'{"model.embed_tokens.weight":{"dtype":"F32","shape":[32,16],"data_offsets":[0,2048]'
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + bytes(2048))

    d = mk("bad-offsets")
    entries, chunks, off = [], [], 0
    for n in sorted(W):
        b = st.tensor_bytes(W[n], "F32")
        shape = list(W[n].shape)
        if n == "model.embed_tokens.weight":
            shape = [32, 17]  # claims 544 floats, span holds 512
        entries.append((n, "F32", shape, off, off + len(b)))
        chunks.append(b)
        off += len(b)
    hdr = st.build_header(entries, {"format": "pt"})
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + b"".join(chunks))

    d = mk("missing-tensor")
    st.save_file(os.path.join(d, "model.safetensors"),
                 {n: t for n, t in W.items() if not n.startswith("model.layers.1.")},
                 "F32", {"format": "pt"})

    d = mk("shape-mismatch")
    W2 = dict(W)
    W2["model.layers.0.mlp.gate_proj.weight"] = W["model.layers.0.mlp.gate_proj.weight"].T.contiguous()
    st.save_file(os.path.join(d, "model.safetensors"), W2, "F32", {"format": "pt"})

    c = dict(BAD_CONFIG)
    c["architectures"] = ["GPT2LMHeadModel"]
    c["model_type"] = "gpt2"
    d = mk("unknown-arch", c)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(good)

    d = mk("missing-shard")
    part = {n: t for n, t in W.items() if not n.startswith("model.layers.1.") and n != "model.norm.weight"}
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    st.save_file(os.path.join(d, files[0]), part, "F32", {"format": "pt"})
    wm = {n: (files[0] if n in part else files[1]) for n in sorted(W)}
    dump_json(os.path.join(d, "model.safetensors.index.json"),
              {"metadata": {"total_size": sum(t.numel() * 4 for t in W.values())},
               "weight_map": wm})

    dump_json(os.path.join(base, "cases.json"), BAD_CASES)
    return {k: dir_size(os.path.join(base, k)) for k in BAD_CASES}


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main():
    os.makedirs(OUT, exist_ok=True)
    jobs = [(f"{a}-{dt}", a, dt, 1) for a in ARCH_ORDER for dt in SPECS[a].get("dtypes", DTYPES)]
    jobs += [(n, a, dt, 2) for n, (a, dt) in SHARDED.items()]
    names = [j[0] for j in jobs]
    # remove only what this script owns
    for n in names + ["bad"]:
        shutil.rmtree(os.path.join(OUT, n), ignore_errors=True)
    for f in ("manifest.json",):
        if os.path.exists(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))

    manifest = {"generator": "tools/torchref/make_goldens.py",
                "torch_version": torch.__version__, "fixtures": {}}
    masters = {}
    for arch in ARCH_ORDER:
        spec = SPECS[arch]
        masters[arch] = make_weights(spec)
        check_bf16_rne(masters[arch])

    for name, arch, dtype, shards in jobs:
        spec = SPECS[arch]
        d = write_fixture(name, spec, masters[arch], dtype, shards)
        cfg, W = load_fixture(d)  # compute from exactly the stored values
        # the stored weights are the master (f32) or its RNE bf16/f16 rounding
        for n, t in masters[arch].items():
            want = t.to(TORCH_DTYPE[dtype]).to(torch.float64)
            assert torch.equal(W[n], want), f"{name}: {n} round-trip mismatch"
        assert set(W) == set(masters[arch])

        ids = make_ids(spec["config"], spec["seed"] + 7, 24)
        golden, logits = golden_case(cfg, W, ids)
        worst_prefix = check_prefix_consistency(cfg, W, ids, logits)
        if dtype != "bf16" and shards == 1:
            slow = models.forward_slow(cfg, W, ids)
            diff = float((slow - logits).abs().max())
            assert diff < 1e-9, f"{name}: forward vs forward_slow differ by {diff}"
        sens = sensitivity(cfg, W, ids, logits)
        if spec.get("long"):
            lids = make_ids(spec["config"], spec["seed"] + 11, 100)
            long_case, long_logits = golden_case(cfg, W, lids)
            golden["long"] = long_case
            sens_long = sensitivity(cfg, W, lids, long_logits)
            sens["no_rope_scaling(long)"] = sens_long["no_rope_scaling"]
        for bug, v in sens.items():
            assert v > 0.05, f"{name}: fixture barely detects bug {bug} ({v})"
        if dtype == "bf16":
            golden["bf16_products"] = bf16_products_case(cfg, W, golden, logits)
            if "long" in golden:
                golden["long"]["bf16_products"] = bf16_products_case(cfg, W, golden["long"], long_logits)
        golden = {"fixture": name, "reference": "tools/torchref float64", **golden}
        dump_json(os.path.join(d, "golden.json"), golden)
        manifest["fixtures"][name] = {
            "architecture": spec["config"]["architectures"][0],
            "dtype": dtype,
            "tied": cfg.tied,
            "sharded": shards > 1,
            "hidden": cfg.hidden, "layers": cfg.layers, "heads": cfg.heads,
            "kv_heads": cfg.kv_heads, "head_dim": cfg.head_dim, "vocab": cfg.vocab,
            "has_long": "long" in golden,
            "min_greedy_gap": min(golden["greedy_gap"] + golden.get("long", {}).get("greedy_gap", [])),
            "bytes": dir_size(d),
            "bug_sensitivity_max_abs_dlogp": sens,
        }
        print(f"{name:20s} {dir_size(d):8d} B  prefix-err {worst_prefix:.1e}  "
              f"min-gap {manifest['fixtures'][name]['min_greedy_gap']:.3f}  {sens}")

    # sharded and unsharded qwen2-f32 must give identical goldens
    for n, (a, dt) in SHARDED.items():
        with open(os.path.join(OUT, n, "golden.json")) as f:
            g1 = json.load(f)
        with open(os.path.join(OUT, f"{a}-{dt}", "golden.json")) as f:
            g2 = json.load(f)
        g1.pop("fixture"), g2.pop("fixture")
        assert g1 == g2, "sharded golden differs from unsharded"

    manifest["bad"] = BAD_CASES
    bad_sizes = write_bad()
    dump_json(os.path.join(OUT, "manifest.json"), manifest)
    total = sum(v["bytes"] for v in manifest["fixtures"].values()) + sum(bad_sizes.values())
    print(f"bad fixtures: {bad_sizes}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
