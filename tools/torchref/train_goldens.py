#!/usr/bin/python3
"""Float64 gradient goldens for LoRA / rsLoRA / full fine-tuning and packing.

Run from anywhere (after make_goldens.py has written core/model/testdata):

    /usr/bin/python3 tools/torchref/train_goldens.py

For each F32 base fixture in core/model/testdata/ this writes
core/train/testdata/<fixture>/ (see core/train/testdata/README.md for the
schema and tools/torchref/README.md for the semantics). Everything is computed
in float64 from the values actually stored on disk (base f32 weights, f32
adapter weights), and the output is byte-for-byte deterministic.
"""

import json
import math
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_goldens as mg  # noqa: E402  (specs, make_ids, load_fixture; main() is not run)
import models  # noqa: E402
import safetensors_io as st  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(REPO, "core", "model", "testdata")
OUT = os.path.join(REPO, "core", "train", "testdata")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

DIGITS = 10                     # decimals kept for floats in JSON
FIXTURES = [f"{a}-f32" for a in mg.ARCH_ORDER]
ACTIVATIONS_FOR = "llama3-f32"
RSLORA_FOR = "qwen3-f32"

LORA_R, LORA_ALPHA = 4, 8
RSLORA_R, RSLORA_ALPHA = 8, 8
B_STD = 0.1                     # lora_B ~ N(0, 0.1^2): non-zero so dL/dA != 0

SEQ_LEN = 20
PROMPT_LEN = 6                  # batch: first 6 positions are "prompt" (mask 0)
MID_MASKED = (12, 15)           # batch: one extra masked position per sequence
PACK_LENS = (7, 9, 8)           # packed: three examples concatenated (24 ids)
PACK_PROMPT = (2, 3, 2)         # packed: per-example masked prefix (>= 1: segment start)

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
TARGETS = list(ATTN + MLP)
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_FLOOR = 1e-2                 # FD entries drawn among |grad| >= this (roundoff ~2e-9 abs)


# --------------------------------------------------------------------------
# LoRA parameter names and shapes (PEFT layout)
# --------------------------------------------------------------------------

def lora_modules(cfg):
    """[(hf_module_path, in_features, out_features)] in a fixed order."""
    qd, kvd = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    dims = {"q_proj": (cfg.hidden, qd), "k_proj": (cfg.hidden, kvd),
            "v_proj": (cfg.hidden, kvd), "o_proj": (qd, cfg.hidden),
            "gate_proj": (cfg.hidden, cfg.intermediate),
            "up_proj": (cfg.hidden, cfg.intermediate),
            "down_proj": (cfg.intermediate, cfg.hidden)}
    out = []
    for l in range(cfg.layers):
        for m in TARGETS:
            blk = "self_attn" if m in ATTN else "mlp"
            out.append((f"model.layers.{l}.{blk}.{m}",) + dims[m])
    return out


def peft_key(module, which):
    """'model.layers.0.self_attn.q_proj', 'A' -> PEFT's saved tensor name."""
    return f"base_model.model.{module}.lora_{which}.weight"


def make_adapter(cfg, seed, r):
    """float32 LoRA weights. A: PEFT's default kaiming_uniform(a=sqrt(5)),
    i.e. U(-1/sqrt(in), 1/sqrt(in)). B: N(0, B_STD^2) instead of PEFT's zeros,
    so that the LoRA path changes the loss and dL/dA is not identically 0."""
    g = torch.Generator().manual_seed(seed)
    T = {}
    for mod, fin, fout in lora_modules(cfg):
        bound = 1.0 / math.sqrt(fin)
        a = (torch.rand(r, fin, generator=g, dtype=torch.float64) * 2.0 - 1.0) * bound
        b = torch.randn(fout, r, generator=g, dtype=torch.float64) * B_STD
        T[peft_key(mod, "A")] = a.to(torch.float32)
        T[peft_key(mod, "B")] = b.to(torch.float32)
    return T


def adapter_config(name, r, alpha, rslora):
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": TARGETS,
        "bias": "none",
        "use_rslora": rslora,
        # relative to the adapter folder (core/train/testdata/<name>/adapter/)
        "base_model_name_or_path": f"../../../../model/testdata/{name}",
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": False,
        "layers_to_transform": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def lora_scaling(r, alpha, rslora):
    return alpha / math.sqrt(r) if rslora else alpha / r


# --------------------------------------------------------------------------
# batched forward with LoRA, segments and position ids
# --------------------------------------------------------------------------

def forward_batch(cfg, W, ids, *, lora=None, scaling=0.0, position_ids=None,
                  segments=None, rec=None):
    """Logits [B, T, vocab] (float64).

    ids: LongTensor [B, T]. position_ids: [B, T] (default 0..T-1) -- RoPE angle
    is position_ids[b, t] * inv_freq. segments: [B, T] (default all 0) --
    position t attends to position s iff s <= t and segments[b, s] ==
    segments[b, t]. lora: {peft_key: tensor}; every targeted linear computes
    y = x W^T (+ bias) + scaling * (x A^T) B^T. rec: dict to receive
    intermediates (only used for the activations dump)."""
    B, T = ids.shape
    H, KV, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    if position_ids is None:
        position_ids = torch.arange(T).expand(B, T)
    if segments is None:
        segments = torch.zeros(B, T, dtype=torch.long)
    inv = models.inv_freq_for(cfg)
    ang = position_ids.to(torch.float64)[..., None] * inv
    ang = torch.cat([ang, ang], dim=-1)                        # [B, T, d]
    cos, sin = torch.cos(ang)[:, :, None, :], torch.sin(ang)[:, :, None, :]

    def rope(x):                                               # [B, T, h, d]
        return x * cos + models.rotate_half(x) * sin

    t_idx = torch.arange(T)
    allowed = (t_idx[None, :, None] >= t_idx[None, None, :]) & \
              (segments[:, :, None] == segments[:, None, :])   # [B, T(query), S(key)]
    kv_of_head = torch.arange(H) // (H // KV)

    def linear(p, blk, name, inp):
        y = inp @ W[f"{p}{blk}.{name}.weight"].T
        bias = W.get(f"{p}{blk}.{name}.bias")
        if bias is not None:
            y = y + bias
        if lora is not None:
            mod = f"{p}{blk}.{name}"
            y = y + scaling * ((inp @ lora[peft_key(mod, "A")].T) @ lora[peft_key(mod, "B")].T)
        return y

    def keep(name, x):
        if rec is None:
            return
        if not x.requires_grad:
            x.requires_grad_(True)
        else:
            x.retain_grad()
        rec[name] = x

    x = W["model.embed_tokens.weight"][ids]
    if rec is not None:
        x = x.detach().clone()
    for l in range(cfg.layers):
        p = f"model.layers.{l}."
        keep(f"layer.{l}.attn_in", x)
        h = models.rms_norm(x, W[p + "input_layernorm.weight"], cfg.eps)
        q = linear(p, "self_attn", "q_proj", h).view(B, T, H, d)
        k = linear(p, "self_attn", "k_proj", h).view(B, T, KV, d)
        v = linear(p, "self_attn", "v_proj", h).view(B, T, KV, d)
        if cfg.qk_norm:
            q = models.rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps)
            k = models.rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps)
        q, k = rope(q), rope(k)
        k, v = k[:, :, kv_of_head, :], v[:, :, kv_of_head, :]
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(d)
        scores = scores.masked_fill(~allowed[:, None, :, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        att = torch.einsum("bhts,bshd->bthd", probs, v).reshape(B, T, H * d)
        o = linear(p, "self_attn", "o_proj", att)
        keep(f"layer.{l}.attn_out", o)
        x = x + o
        keep(f"layer.{l}.mlp_in", x)
        h = models.rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps)
        g = linear(p, "mlp", "gate_proj", h)
        u = linear(p, "mlp", "up_proj", h)
        m = linear(p, "mlp", "down_proj", models.silu(g) * u)
        keep(f"layer.{l}.mlp_out", m)
        x = x + m
    keep("final_in", x)
    xn = models.rms_norm(x, W["model.norm.weight"], cfg.eps)
    keep("final_norm", xn)
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    logits = xn @ head.T
    keep("logits", logits)
    return logits


def token_nll(logits, ids):
    """nll[b, t] = -log softmax(logits[b, t-1])[ids[b, t]] for t >= 1; nll[b, 0] = 0."""
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -lp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.cat([torch.zeros_like(nll[:, :1]), nll], dim=1)


def masked_mean(nll, mask):
    """Sum of nll over counted (b, t) / number of counted (b, t) in the whole batch."""
    m = mask.to(torch.float64)
    return (nll * m).sum() / m.sum()


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

def make_batch(spec):
    c, s = spec["config"], spec["seed"]
    ids = [mg.make_ids(c, s + 101 + b, SEQ_LEN) for b in range(2)]
    mask = []
    for b in range(2):
        m = [0 if t < PROMPT_LEN or t == MID_MASKED[b] else 1 for t in range(SEQ_LEN)]
        mask.append(m)
    exs = [mg.make_ids(c, s + 201 + i, n) for i, n in enumerate(PACK_LENS)]
    p_ids, p_seg, p_pos, p_mask = [], [], [], []
    for i, ex in enumerate(exs):
        p_ids += ex
        p_seg += [i] * len(ex)
        p_pos += list(range(len(ex)))
        p_mask += [0 if t < PACK_PROMPT[i] else 1 for t in range(len(ex))]
    assert len(p_ids) == sum(PACK_LENS) == 24
    return {"ids": ids, "loss_mask": mask,
            "packed": {"ids": p_ids, "segments": p_seg, "position_ids": p_pos,
                       "loss_mask": p_mask}}, exs


# --------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------

def leafs(d):
    return {k: v.detach().clone().requires_grad_(True) for k, v in d.items()}


def lora_loss_and_grads(cfg, W, lora, scaling, ids, mask, **kw):
    P = leafs(lora)
    logits = forward_batch(cfg, W, ids, lora=P, scaling=scaling, **kw)
    nll = token_nll(logits, ids)
    loss = masked_mean(nll, mask)
    loss.backward()
    return float(loss), {k: P[k].grad.detach() for k in sorted(P)}, nll.detach()


def full_loss_and_grads(cfg, W, ids, mask):
    P = leafs(W)
    logits = forward_batch(cfg, P, ids)
    nll = token_nll(logits, ids)
    loss = masked_mean(nll, mask)
    loss.backward()
    return float(loss), {k: P[k].grad.detach() for k in sorted(P)}, nll.detach()


def global_norm(grads):
    return math.sqrt(sum(float((g * g).sum()) for g in grads.values()))


def loss_only(cfg, W, ids, mask, lora=None, scaling=0.0, **kw):
    with torch.no_grad():
        logits = forward_batch(cfg, W, ids, lora=lora, scaling=scaling, **kw)
        return float(masked_mean(token_nll(logits, ids), mask))


def pick_entries(grads, g, floor):
    """One (key, flat index) per tensor: a random entry among those with
    |grad| >= floor, or the largest entry if there is none."""
    out = []
    for k in sorted(grads):
        flat = grads[k].reshape(-1)
        ok = (flat.abs() >= floor).nonzero().reshape(-1)
        if ok.numel() == 0:
            out.append((k, int(flat.abs().argmax())))
        else:
            out.append((k, int(ok[int(torch.randint(0, ok.numel(), (1,), generator=g))])))
    return out


def finite_diff_check(f, params, grads, entries, label):
    """Central differences (float64, eps FD_EPS) of f(params) against autograd."""
    worst = 0.0
    for k, i in entries:
        if grads[k].reshape(-1)[i] == 0:
            continue
        orig = params[k].reshape(-1)[i].item()
        vals = []
        for s in (1.0, -1.0):
            p2 = dict(params)
            t = params[k].clone()
            t.reshape(-1)[i] = orig + s * FD_EPS
            p2[k] = t
            vals.append(f(p2))
        fd = (vals[0] - vals[1]) / (2 * FD_EPS)
        ad = float(grads[k].reshape(-1)[i])
        rel = abs(fd - ad) / abs(ad)
        assert rel < FD_RTOL, f"{label}: finite difference {k}[{i}] fd {fd} autograd {ad} rel {rel:.2e}"
        worst = max(worst, rel)
    return worst


def rel_err(a, b):
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-300)


# --------------------------------------------------------------------------
# output helpers
# --------------------------------------------------------------------------

def r(x):
    return round(float(x), DIGITS)


def load_bytes_f64(raw):
    """Read serialized safetensors bytes back with the reference reader."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        with open(path, "wb") as f:
            f.write(raw)
        return st.load_file_f64(path)


def to_json(obj, indent=0):
    """JSON with lists of scalars kept on one line (small, diffable files)."""
    pad, pad2 = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad2}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad2 + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def jbytes(obj):
    return (to_json(obj) + "\n").encode("utf-8")


def nll_list(nll):
    return [[r(v) for v in row] for row in nll.tolist()]


# --------------------------------------------------------------------------
# one fixture
# --------------------------------------------------------------------------

def build_fixture(name):
    """Returns {relative path: bytes} for core/train/testdata/<name>/ and a summary."""
    arch = name.rsplit("-", 1)[0]
    spec = mg.SPECS[arch]
    cfg, W = mg.load_fixture(os.path.join(BASE, name))
    files = {}
    summary = {}

    batch, exs = make_batch(spec)
    batch_json = {"model": f"../../../model/testdata/{name}", **batch}
    files["batch.json"] = jbytes(batch_json)
    ids = torch.tensor(batch["ids"])
    mask = torch.tensor(batch["loss_mask"])
    pk = batch["packed"]
    p_ids = torch.tensor([pk["ids"]])
    p_mask = torch.tensor([pk["loss_mask"]])
    p_seg = torch.tensor([pk["segments"]])
    p_pos = torch.tensor([pk["position_ids"]])

    # ---- self-check: the batched forward equals models.forward per sequence
    with torch.no_grad():
        lg = forward_batch(cfg, W, ids)
        for b in range(ids.shape[0]):
            ref = models.forward(cfg, W, batch["ids"][b])
            assert rel_err(lg[b], ref) < 1e-12, f"{name}: forward_batch != models.forward"

    # ---- adapter (stored f32, recomputed from the bytes written)
    adapters = [("adapter", LORA_R, LORA_ALPHA, False, spec["seed"] + 31)]
    if name == RSLORA_FOR:
        adapters.append(("adapter_rslora", RSLORA_R, RSLORA_ALPHA, True, spec["seed"] + 37))
    loaded = {}
    for folder, rank, alpha, rs, seed in adapters:
        A = make_adapter(cfg, seed, rank)
        raw = st.serialize(A, "F32", {"format": "pt"})
        files[f"{folder}/adapter_model.safetensors"] = raw
        files[f"{folder}/adapter_config.json"] = jbytes(adapter_config(name, rank, alpha, rs))
        back = load_bytes_f64(raw)
        for k, t in A.items():
            assert torch.equal(back[k], t.to(torch.float64)), f"{name}: adapter round trip {k}"
        loaded[folder] = (back, lora_scaling(rank, alpha, rs), rank, alpha, rs)

    lora, scaling = loaded["adapter"][0], loaded["adapter"][1]

    # ---- LoRA on the batch
    loss, grads, nll = lora_loss_and_grads(cfg, W, lora, scaling, ids, mask)
    files["lora_grads.safetensors"] = st.serialize(grads, "F32")

    # self-check: LoRA == merged weights W + scaling * B A in models.forward
    merged = dict(W)
    for mod, _, _ in lora_modules(cfg):
        merged[mod + ".weight"] = W[mod + ".weight"] + scaling * (
            lora[peft_key(mod, "B")] @ lora[peft_key(mod, "A")])
    with torch.no_grad():
        lg = forward_batch(cfg, W, ids, lora=lora, scaling=scaling)
        for b in range(ids.shape[0]):
            ref = models.forward(cfg, merged, batch["ids"][b])
            assert rel_err(lg[b], ref) < 1e-11, f"{name}: LoRA forward != merged forward"

    # self-check: chain rule through the merged weight, G = dL/dW':
    #   dL/dA = scaling * B^T G,  dL/dB = scaling * G A^T
    _, gm, _ = full_loss_and_grads(cfg, merged, ids, mask)
    worst_chain = 0.0
    for mod, _, _ in lora_modules(cfg):
        G = gm[mod + ".weight"]
        a, b_ = lora[peft_key(mod, "A")], lora[peft_key(mod, "B")]
        worst_chain = max(worst_chain,
                          rel_err(grads[peft_key(mod, "A")], scaling * b_.T @ G),
                          rel_err(grads[peft_key(mod, "B")], scaling * G @ a.T))
    assert worst_chain < 1e-10, f"{name}: LoRA grads vs merged chain rule {worst_chain}"

    # self-check: finite differences on random LoRA entries
    gen = torch.Generator().manual_seed(spec["seed"] + 53)
    fd_lora = finite_diff_check(
        lambda P: loss_only(cfg, W, ids, mask, lora=P, scaling=scaling),
        lora, grads, pick_entries(grads, gen, FD_FLOOR), f"{name} lora")

    # ---- full fine-tuning (plain base model, every weight trainable)
    loss_full, fgrads, nll_full = full_loss_and_grads(cfg, W, ids, mask)
    assert set(fgrads) == set(W)
    files["full_grads.safetensors"] = st.serialize(fgrads, "F32")
    full_entries = pick_entries(fgrads, gen, FD_FLOOR)
    if cfg.tied:
        # an embedding row used both as an input token and as a target
        row = batch["ids"][0][PROMPT_LEN + 1]
        E = fgrads["model.embed_tokens.weight"]
        col = int(E[row].abs().argmax())
        full_entries.append(("model.embed_tokens.weight", row * cfg.hidden + col))
        # tied: the embedding gradient is the sum of its two uses. Untie into two
        # leaves (input lookup, output head) and check the sum.
        Wu = leafs(W)
        Wu["lm_head.weight"] = W["model.embed_tokens.weight"].clone().requires_grad_(True)
        cfg_u = models.Cfg(**{**cfg.__dict__, "tied": False})
        masked_mean(token_nll(forward_batch(cfg_u, Wu, ids), ids), mask).backward()
        tied_sum = Wu["model.embed_tokens.weight"].grad + Wu["lm_head.weight"].grad
        assert rel_err(fgrads["model.embed_tokens.weight"], tied_sum) < 1e-13, \
            f"{name}: tied embedding grad != input-use grad + head-use grad"
    fd_full = finite_diff_check(lambda P: loss_only(cfg, P, ids, mask),
                                W, fgrads, full_entries, f"{name} full")
    dnll = float(((nll - nll_full).abs() * mask).sum() / mask.sum())
    assert dnll > 0.05, f"{name}: adapter barely changes the per-token nll"

    # ---- packing
    loss_p, pgrads, nll_p = lora_loss_and_grads(cfg, W, lora, scaling, p_ids, p_mask,
                                                position_ids=p_pos, segments=p_seg)
    files["lora_grads_packed.safetensors"] = st.serialize(pgrads, "F32")
    # the same three examples as separate sequences (positions from 0, causal only)
    P = leafs(lora)
    tot, cnt, off = 0.0, 0, 0
    for ex in exs:
        e_ids = torch.tensor([ex])
        e_mask = p_mask[:, off:off + len(ex)]
        e_nll = token_nll(forward_batch(cfg, W, e_ids, lora=P, scaling=scaling), e_ids)
        tot = tot + (e_nll * e_mask).sum()
        cnt += int(e_mask.sum())
        off += len(ex)
    loss_sep = tot / cnt
    loss_sep.backward()
    assert abs(float(loss_sep) - loss_p) <= 1e-12 * abs(loss_p), \
        f"{name}: packed loss {loss_p} != separate {float(loss_sep)}"
    worst_pack = max(rel_err(P[k].grad, pgrads[k]) for k in pgrads)
    assert worst_pack < 1e-10, f"{name}: packed grads differ from separate ({worst_pack})"
    fd_pack = finite_diff_check(
        lambda Q: loss_only(cfg, W, p_ids, p_mask, lora=Q, scaling=scaling,
                            position_ids=p_pos, segments=p_seg),
        lora, pgrads, pick_entries(pgrads, gen, FD_FLOOR), f"{name} packed")
    # packing must matter: ignoring segments (plain causal over 24 ids) changes the loss
    loss_nopack = loss_only(cfg, W, p_ids, p_mask, lora=lora, scaling=scaling)
    assert abs(loss_nopack - loss_p) > 0.05, f"{name}: segments barely matter"

    golden = {
        "fixture": name,
        "reference": "tools/torchref/train_goldens.py float64",
        "lora": {"r": LORA_R, "lora_alpha": LORA_ALPHA, "use_rslora": False,
                 "scaling": scaling},
        "n_counted": int(mask.sum()),
        "loss": r(loss),
        "grad_norm": r(global_norm(grads)),
        "nll": nll_list(nll),
        "loss_full": r(loss_full),
        "grad_norm_full": r(global_norm(fgrads)),
        "nll_full": nll_list(nll_full),
        "n_counted_packed": int(p_mask.sum()),
        "loss_packed": r(loss_p),
        "loss_packed_separate": r(float(loss_sep)),
        "loss_packed_no_segments": r(loss_nopack),
        "grad_norm_packed": r(global_norm(pgrads)),
        # within-segment nll; 0 at every segment start (position_ids == 0)
        "nll_packed": nll_list(torch.where(p_pos == 0, torch.zeros_like(nll_p), nll_p))[0],
    }

    if "adapter_rslora" in loaded:
        lr, sr, rank, alpha, _ = loaded["adapter_rslora"]
        loss_r, rgrads, _ = lora_loss_and_grads(cfg, W, lr, sr, ids, mask)
        files["lora_grads_rslora.safetensors"] = st.serialize(rgrads, "F32")
        fd_rs = finite_diff_check(
            lambda Q: loss_only(cfg, W, ids, mask, lora=Q, scaling=sr),
            lr, rgrads, pick_entries(rgrads, gen, FD_FLOOR), f"{name} rslora")
        # the scaling must matter: alpha/r instead of alpha/sqrt(r) moves the loss
        wrong = loss_only(cfg, W, ids, mask, lora=lr, scaling=alpha / rank)
        assert abs(wrong - loss_r) > 0.01, f"{name}: rslora scaling barely matters"
        golden["rslora"] = {"r": rank, "lora_alpha": alpha, "use_rslora": True, "scaling": sr}
        golden["loss_rslora"] = r(loss_r)
        golden["grad_norm_rslora"] = r(global_norm(rgrads))
        golden["loss_rslora_if_scaled_alpha_over_r"] = r(wrong)
        summary["fd_rslora"] = fd_rs

    if name == ACTIVATIONS_FOR:
        files["activations.safetensors"] = activations(cfg, W, lora, scaling, ids, mask, loss)

    files["golden.json"] = jbytes(golden)
    summary.update(loss=loss, loss_full=loss_full, loss_packed=loss_p,
                   fd_lora=fd_lora, fd_full=fd_full, fd_packed=fd_pack,
                   chain=worst_chain, pack_vs_sep=worst_pack)
    return files, summary


def activations(cfg, W, lora, scaling, ids, mask, loss_ref):
    """Forward intermediates of sequence 0 (with the adapter) and the gradients
    of the batch loss w.r.t. the residual stream, sliced to sequence 0."""
    rec = {}
    P = leafs(lora)
    logits = forward_batch(cfg, W, ids, lora=P, scaling=scaling, rec=rec)
    loss = masked_mean(token_nll(logits, ids), mask)
    assert abs(float(loss) - loss_ref) < 1e-13
    loss.backward()
    out = {}
    for k, t in rec.items():
        out[k] = t.detach()[0]
    for l in range(cfg.layers):
        out[f"grad.layer.{l}.in"] = rec[f"layer.{l}.attn_in"].grad[0]
        out[f"grad.layer.{l}.mlp_in"] = rec[f"layer.{l}.mlp_in"].grad[0]
    out["grad.final_in"] = rec["final_in"].grad[0]
    out["grad.logits"] = rec["logits"].grad[0]
    return st.serialize(out, "F32")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def build_fixtures(build, names):
    """Runs build(name) -> (files, summary) for every fixture twice and
    checks the bytes agree (the output must be deterministic); returns the
    files by "<name>/<file>" and the summaries by name."""
    runs = []
    for _ in range(2):
        out, summaries = {}, {}
        for name in names:
            files, summaries[name] = build(name)
            for rel, b in files.items():
                out[f"{name}/{rel}"] = b
        runs.append((out, summaries))
    (first, summaries), (second, _) = runs
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first), \
        "output is not deterministic"
    return first, summaries


def write_files(root, files, clear):
    """Writes files (relative path -> bytes) under root after removing the
    folders in clear."""
    for d in clear:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    for rel in sorted(files):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(files[rel])


def main():
    first, summaries = build_fixtures(build_fixture, FIXTURES)
    write_files(OUT, first, FIXTURES)
    total = 0
    for name in FIXTURES:
        size = sum(len(b) for k, b in first.items() if k.startswith(name + "/"))
        total += size
        s = summaries[name]
        print(f"{name:12s} {size:8d} B  loss {s['loss']:.6f} full {s['loss_full']:.6f} "
              f"packed {s['loss_packed']:.6f}  fd-rel lora {s['fd_lora']:.1e} "
              f"full {s['fd_full']:.1e} packed {s['fd_packed']:.1e}"
              + (f" rslora {s['fd_rslora']:.1e}" if "fd_rslora" in s else "")
              + f"  chain {s['chain']:.1e} pack-vs-sep {s['pack_vs_sep']:.1e}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
