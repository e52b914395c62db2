#!/usr/bin/python3
"""Float64 goldens for the DPO and logit-KD training objectives.

Run from anywhere, after train_goldens.py (it reads that script's adapters and
batches from core/train/testdata/<fixture>/):

    /usr/bin/python3 tools/torchref/objective_goldens.py

For each fixture in FIXTURES this writes core/train/testdata/objectives/<fixture>/
(schema in core/train/testdata/README.md, semantics in tools/torchref/README.md):
the DPO pairs, per-sequence log-probs, losses and metrics (golden.json) and
the LoRA gradients of every DPO and KD case (<case>.safetensors, F32, PEFT
names). Everything is computed in float64 from the values stored on disk (f32
base weights, f32 adapter); the output is byte-for-byte deterministic (built
twice, compared). The script deletes and rewrites only
core/train/testdata/objectives/.

The objectives are written from their definitions, not from the Go code:

DPO (Rafailov et al.; cDPO; IPO, Azar et al.), with the reference policy the
base model without the adapter:
    logp(y|x)   = sum over the answer's tokens of log softmax(logits)[token]
                  (summed over the answer for sigmoid; for IPO averaged, as
                  Azar et al. define it and TRL computes it)
    h           = logp_policy(y|x) - logp_reference(y|x)
    z           = beta * (h_chosen - h_rejected)
    sigmoid:      -(1 - eps) * log sigmoid(z) - eps * log sigmoid(-z)
    ipo:          (h_chosen - h_rejected - 1 / (2 beta))^2
    loss        = mean over the pairs of the batch
A batch is laid out as app/traindata.go packPairs does: for each pair, the
sequence prompt+chosen then prompt+rejected (the prompt repeated), each its
own segment (positions from 0, attention within the segment), the loss mask
on the answer tokens.

KD (Hinton; GKD's generalised JSD), on every counted position (the row
predicting a token whose loss_mask is 1), with student logits z (adapter on)
and teacher logits t (a base model without adapter), both softened by tau:
    p_s = softmax(z / tau), p_t = softmax(t / tau)
    forward_kl  = KL(p_t || p_s)
    reverse_kl  = KL(p_s || p_t)
    jsd(beta)   = beta KL(p_t || m) + (1 - beta) KL(p_s || m),  m = beta p_t + (1 - beta) p_s
    row loss    = alpha * CE(z, target) + (1 - alpha) * tau^2 * divergence   (CE at tau = 1)
    loss        = sum over counted rows / number of counted rows
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_goldens as mg  # noqa: E402
import safetensors_io as st  # noqa: E402
import train_goldens as tg  # noqa: E402  (forward_batch, token_nll, helpers; main() is not run)

BASE = tg.BASE
TRAIN = tg.OUT
OUT = os.path.join(TRAIN, "objectives")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# fixture -> KD teacher (an F32 base fixture with the same vocabulary, no adapter)
FIXTURES = {
    "qwen3-f32": "qwen3-f32",     # the student's own base model
    "llama3-f32": "qwen2-f32",    # another architecture, same 384-token vocabulary
}

PROMPT_LEN = tg.PROMPT_LEN      # 6: the batch's masked prefix, reused as the prompt
# DPO pairs cut from the fixture's batch.json ids (two sequences of 20):
#   pair p: prompt   = ids[p][:6]
#           chosen   = ids[p][6 : 6 + CHOSEN_LEN[p]]
#           rejected = ids[1 - p][20 - REJECTED_LEN[p] :]
# Different answer lengths, so that a per-token mean instead of the sum shows.
CHOSEN_LEN = (8, 5)
REJECTED_LEN = (5, 7)

DPO_CASES = [  # (case name, loss, beta, label smoothing)
    ("dpo_sigmoid", "sigmoid", 0.1, 0.0),
    ("dpo_sigmoid_ls", "sigmoid", 0.1, 0.1),
    ("dpo_ipo", "ipo", 0.1, 0.0),
]
KD_CASES = [  # (case name, divergence, temperature, alpha, jsd beta)
    ("kd_forward_kl", "forward_kl", 2.0, 0.5, None),
    ("kd_reverse_kl", "reverse_kl", 1.0, 0.0, None),
    ("kd_jsd", "jsd", 1.5, 0.3, 0.5),
    # JSD(0.5) is symmetric in (p_t, p_s): this one (pure divergence, no CE
    # term to dilute it) catches beta <-> 1 - beta.
    ("kd_jsd_beta02", "jsd", 1.0, 0.0, 0.2),
]

# Central differences in float64. The DPO losses difference two sequence
# log-probs of ~-50 nats (rounding ~1e-13 in the loss), so eps is 1e-5 rather
# than train_goldens.py's 1e-6, and entries are drawn among the larger ones of
# each tensor (|g| >= FD_FLOOR_REL * max |g|), where that rounding is < 1e-7
# relative.
FD_EPS = 1e-5
FD_RTOL = 1e-6
FD_FLOOR_REL = 0.1


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

def dpo_pairs(batch):
    ids = batch["ids"]
    assert len(ids) == 2 and all(len(s) == tg.SEQ_LEN for s in ids)
    pairs = []
    for p in range(2):
        pairs.append({
            "prompt": ids[p][:PROMPT_LEN],
            "chosen": ids[p][PROMPT_LEN:PROMPT_LEN + CHOSEN_LEN[p]],
            "rejected": ids[1 - p][tg.SEQ_LEN - REJECTED_LEN[p]:],
        })
    return pairs


def dpo_stream(pairs):
    """One packed sequence as packPairs lays it out: (chosen_0, rejected_0,
    chosen_1, rejected_1), each prompt + answer its own segment.
    Returns ([1, n] tensors) ids, segments, position_ids, loss_mask, and the
    per-sequence (ids, mask) lists."""
    ids, seg, pos, mask, seqs = [], [], [], [], []
    for p in pairs:
        for ans in (p["chosen"], p["rejected"]):
            s = p["prompt"] + ans
            m = [0] * len(p["prompt"]) + [1] * len(ans)
            seg += [len(seqs)] * len(s)
            pos += list(range(len(s)))
            ids += s
            mask += m
            seqs.append((s, m))
    t = lambda v: torch.tensor([v])  # noqa: E731
    return t(ids), t(seg), t(pos), t(mask), seqs


# --------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------

def seq_logps(cfg, W, lora, scaling, ids, seg, pos, mask, nseq):
    """Per-segment sum of log p(token) over the masked (answer) tokens."""
    logits = tg.forward_batch(cfg, W, ids, lora=lora, scaling=scaling,
                              position_ids=pos, segments=seg)
    lp = -tg.token_nll(logits, ids) * mask.to(torch.float64)      # [1, n]
    out = torch.zeros(nseq, dtype=torch.float64)
    return out.index_add(0, seg[0], lp[0])


def dpo_pair_losses(loss_type, beta, eps, h):
    """h: [2 * pairs] = policy - reference log-probs, (chosen, rejected) alternating."""
    hc, hr = h[0::2], h[1::2]
    if loss_type == "ipo":
        return (hc - hr - 1.0 / (2.0 * beta)) ** 2
    z = beta * (hc - hr)
    return -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


def dpo_pair_losses_alt(loss_type, beta, eps, pol, ref):
    """Second formulation (TRL's: policy log-ratio minus reference log-ratio;
    log sigmoid via softplus), for the self-check."""
    pi = pol[0::2] - pol[1::2]
    rf = ref[0::2] - ref[1::2]
    lg = pi - rf
    if loss_type == "ipo":
        return (lg - 1.0 / (2.0 * beta)) ** 2
    return (1.0 - eps) * F.softplus(-beta * lg) + eps * F.softplus(beta * lg)


# --------------------------------------------------------------------------
# KD
# --------------------------------------------------------------------------

def kd_rows(logits, ids, mask):
    """Counted rows: logits[b, t-1] predicts ids[b, t] where mask[b, t] = 1."""
    sel = mask[:, 1:].bool()
    return logits[:, :-1][sel], ids[:, 1:][sel]


def kd_row_losses(div, tau, alpha, beta, z, t, tgt):
    """Per-row alpha * CE + (1 - alpha) * tau^2 * divergence, and its parts."""
    ce = -torch.log_softmax(z, -1).gather(-1, tgt[:, None]).squeeze(-1)
    ls, lt = torch.log_softmax(z / tau, -1), torch.log_softmax(t / tau, -1)
    ps, pt = ls.exp(), lt.exp()
    if div == "forward_kl":
        d = (pt * (lt - ls)).sum(-1)
    elif div == "reverse_kl":
        d = (ps * (ls - lt)).sum(-1)
    elif div == "jsd":
        lm = torch.logsumexp(torch.stack([math.log(beta) + lt, math.log1p(-beta) + ls]), 0)
        d = beta * (pt * (lt - lm)).sum(-1) + (1.0 - beta) * (ps * (ls - lm)).sum(-1)
    else:
        raise ValueError(div)
    return alpha * ce + (1.0 - alpha) * tau * tau * d, ce, d


def kd_row_losses_alt(div, tau, alpha, beta, z, t, tgt):
    """Second formulation with torch's kl_div / cross_entropy (probability-space
    mixture for JSD), for the self-check."""
    ce = F.cross_entropy(z, tgt, reduction="none")
    ls, lt = F.log_softmax(z / tau, -1), F.log_softmax(t / tau, -1)
    if div == "forward_kl":      # kl_div(input, target) = sum target * (log target - input)
        d = F.kl_div(ls, lt, reduction="none", log_target=True).sum(-1)
    elif div == "reverse_kl":
        d = F.kl_div(lt, ls, reduction="none", log_target=True).sum(-1)
    else:
        lm = (beta * lt.exp() + (1.0 - beta) * ls.exp()).log()
        d = beta * F.kl_div(lm, lt, reduction="none", log_target=True).sum(-1) + \
            (1.0 - beta) * F.kl_div(lm, ls, reduction="none", log_target=True).sum(-1)
    return alpha * ce + (1.0 - alpha) * tau * tau * d


# Sensitivity: every "loss_if_..." value (a WRONG convention on purpose) must
# differ from the golden loss by more than this, relative -- 100x the Go
# test's loss tolerance, so a Go objective with that mistake fails.
SENS_REL = 1e-3


def sensitive(c, key, label):
    assert abs(c[key] - c["loss"]) > SENS_REL * abs(c["loss"]), \
        f"{label}: {key} {c[key]} too close to loss {c['loss']}"


# --------------------------------------------------------------------------
# finite differences
# --------------------------------------------------------------------------

def pick_entries(grads, g):
    """One (key, flat index) per tensor, drawn among |g| >= FD_FLOOR_REL * max |g|."""
    out = []
    for k in sorted(grads):
        flat = grads[k].reshape(-1)
        ok = (flat.abs() >= FD_FLOOR_REL * float(flat.abs().max())).nonzero().reshape(-1)
        out.append((k, int(ok[int(torch.randint(0, ok.numel(), (1,), generator=g))])))
    return out


def finite_diff_check(f, params, grads, entries, label):
    """Central differences (float64, eps FD_EPS) of f(params) against autograd;
    returns the worst relative error."""
    worst = 0.0
    for k, i in entries:
        ad = float(grads[k].reshape(-1)[i])
        assert ad != 0, f"{label}: zero gradient drawn for {k}"
        orig = params[k].reshape(-1)[i].item()
        vals = []
        for s in (1.0, -1.0):
            t = params[k].clone()
            t.reshape(-1)[i] = orig + s * FD_EPS
            vals.append(f({**params, k: t}))
        fd = (vals[0] - vals[1]) / (2 * FD_EPS)
        rel = abs(fd - ad) / abs(ad)
        assert rel < FD_RTOL, f"{label}: finite difference {k}[{i}] fd {fd} autograd {ad} rel {rel:.2e}"
        worst = max(worst, rel)
    return worst


# --------------------------------------------------------------------------
# one fixture
# --------------------------------------------------------------------------

def build_fixture(name, teacher_name):
    cfg, W = mg.load_fixture(os.path.join(BASE, name))
    tcfg, TW = mg.load_fixture(os.path.join(BASE, teacher_name))
    assert tcfg.vocab == cfg.vocab, f"{name}: teacher {teacher_name} has another vocabulary"
    fdir = os.path.join(TRAIN, name)
    with open(os.path.join(fdir, "batch.json")) as f:
        batch = json.load(f)
    with open(os.path.join(fdir, "adapter", "adapter_config.json")) as f:
        acfg = json.load(f)
    scaling = tg.lora_scaling(acfg["r"], acfg["lora_alpha"], acfg["use_rslora"])
    lora = st.load_file_f64(os.path.join(fdir, "adapter", "adapter_model.safetensors"))
    assert set(lora) == {tg.peft_key(m, w) for m, _, _ in tg.lora_modules(cfg) for w in "AB"}
    gen = torch.Generator().manual_seed(1234)
    files, summary = {}, {"fd": 0.0, "alt": 0.0}

    # ---------------- DPO
    pairs = dpo_pairs(batch)
    ids, seg, pos, mask, seqs = dpo_stream(pairs)
    nseq = len(seqs)
    with torch.no_grad():
        ref = seq_logps(cfg, W, None, 0.0, ids, seg, pos, mask, nseq)
        pol = seq_logps(cfg, W, lora, scaling, ids, seg, pos, mask, nseq)
        # self-check: the packed stream equals each sequence run on its own
        for i, (s, m) in enumerate(seqs):
            si, sm = torch.tensor([s]), torch.tensor([m]).to(torch.float64)
            for lo, sc, want in ((None, 0.0, ref[i]), (lora, scaling, pol[i])):
                lg = tg.forward_batch(cfg, W, si, lora=lo, scaling=sc)
                got = float((-tg.token_nll(lg, si) * sm).sum())
                assert abs(got - float(want)) <= 1e-12 * abs(float(want)), \
                    f"{name}: packed sequence {i} log-prob {float(want)} != alone {got}"
    h = pol - ref
    assert float(h.abs().min()) > 0.1, f"{name}: the adapter barely moves a sequence log-prob"

    dpo = {
        "pairs": pairs,
        "n_pairs": len(pairs),
        "n_answer_tokens": [len(s) - PROMPT_LEN for s, _ in seqs],
        "logp_policy": [tg.r(v) for v in pol.tolist()],
        "logp_reference": [tg.r(v) for v in ref.tolist()],
        "cases": {},
    }
    n_tok = torch.tensor(dpo["n_answer_tokens"], dtype=torch.float64)
    for case, loss_type, beta, eps in DPO_CASES:
        # IPO's log-probs are per-token means; sigmoid's are sums.
        n = n_tok if loss_type == "ipo" else torch.ones_like(n_tok)
        P = tg.leafs(lora)
        pl = seq_logps(cfg, W, P, scaling, ids, seg, pos, mask, nseq)
        pair = dpo_pair_losses(loss_type, beta, eps, (pl - ref) / n)
        loss = pair.mean()
        loss.backward()
        grads = {k: P[k].grad.detach() for k in sorted(P)}
        files[f"{case}.safetensors"] = st.serialize(grads, "F32")
        alt = dpo_pair_losses_alt(loss_type, beta, eps, pl.detach() / n, ref / n)
        a_err = float((alt - pair.detach()).abs().max()) / float(pair.detach().abs().max())
        assert a_err < 1e-13, f"{name} {case}: two formulations differ ({a_err})"
        summary["alt"] = max(summary["alt"], a_err)

        def loss_of(Q, lt=loss_type, b=beta, e=eps, n=n):
            with torch.no_grad():
                pq = seq_logps(cfg, W, Q, scaling, ids, seg, pos, mask, nseq)
                return float(dpo_pair_losses(lt, b, e, (pq - ref) / n).mean())
        summary["fd"] = max(summary["fd"], finite_diff_check(
            loss_of, lora, grads, pick_entries(grads, gen), f"{name} {case}"))

        hc, hr = (h / n)[0::2], (h / n)[1::2]
        c = {
            "loss_type": loss_type, "beta": beta, "label_smoothing": eps,
            "loss": tg.r(loss),
            "pair_loss": [tg.r(v) for v in pair.tolist()],
            "reward_chosen": [tg.r(beta * v) for v in hc.tolist()],     # beta * h_chosen
            "reward_rejected": [tg.r(beta * v) for v in hr.tolist()],
            "chosen_wins": [bool(a > b) for a, b in zip(hc.tolist(), hr.tolist())],
            "grad_norm": tg.r(tg.global_norm(grads)),
            "grads": f"{case}.safetensors",
        }
        # WRONG on purpose (sensitivity): what other conventions would give.
        if loss_type == "ipo":
            # IPO over summed log-probs (its target 1/(2 beta) is per token).
            c["loss_if_summed_logps"] = tg.r(dpo_pair_losses(loss_type, beta, eps, h).mean())
            sensitive(c, "loss_if_summed_logps", f"{name} {case}")
        else:
            c["loss_if_beta_1"] = tg.r(dpo_pair_losses(loss_type, 1.0, eps, h).mean())
            sensitive(c, "loss_if_beta_1", f"{name} {case}")
        dpo["cases"][case] = c
    ls_, s_ = dpo["cases"]["dpo_sigmoid_ls"]["loss"], dpo["cases"]["dpo_sigmoid"]["loss"]
    assert abs(ls_ - s_) > 1e-3, f"{name}: label smoothing barely matters"

    # ---------------- KD
    kids = torch.tensor(batch["ids"])
    kmask = torch.tensor(batch["loss_mask"])
    n_counted = int(kmask[:, 1:].sum())
    with torch.no_grad():
        t_logits = tg.forward_batch(tcfg, TW, kids)
        zt, tgt = kd_rows(t_logits, kids, kmask)
        z0, _ = kd_rows(tg.forward_batch(cfg, W, kids), kids, kmask)
        if teacher_name == name:
            # the teacher is the student's base: without the adapter every
            # divergence is 0 and the loss is alpha * CE
            for _, div, tau, alpha, beta in KD_CASES:
                _, _, d = kd_row_losses(div, tau, alpha, beta, z0, zt, tgt)
                assert float(d.abs().max()) < 1e-12, f"{name}: {div}(p, p) != 0"
    kd = {
        "teacher": f"../../../../model/testdata/{teacher_name}",
        "batch": f"../../{name}/batch.json",
        "n_counted": n_counted,
        "cases": {},
    }
    for case, div, tau, alpha, beta in KD_CASES:
        P = tg.leafs(lora)
        z, _ = kd_rows(tg.forward_batch(cfg, W, kids, lora=P, scaling=scaling), kids, kmask)
        assert z.shape[0] == n_counted
        rows, ce, d = kd_row_losses(div, tau, alpha, beta, z, zt, tgt)
        loss = rows.sum() / n_counted
        loss.backward()
        grads = {k: P[k].grad.detach() for k in sorted(P)}
        files[f"{case}.safetensors"] = st.serialize(grads, "F32")
        alt = kd_row_losses_alt(div, tau, alpha, beta, z.detach(), zt, tgt)
        a_err = float((alt - rows.detach()).abs().max()) / float(rows.detach().abs().max())
        assert a_err < 1e-12, f"{name} {case}: two formulations differ ({a_err})"
        summary["alt"] = max(summary["alt"], a_err)

        def loss_of(Q, dv=div, ta=tau, al=alpha, be=beta):
            with torch.no_grad():
                zq, _ = kd_rows(tg.forward_batch(cfg, W, kids, lora=Q, scaling=scaling), kids, kmask)
                return float(kd_row_losses(dv, ta, al, be, zq, zt, tgt)[0].sum() / n_counted)
        summary["fd"] = max(summary["fd"], finite_diff_check(
            loss_of, lora, grads, pick_entries(grads, gen), f"{name} {case}"))

        c = {
            "divergence": div, "temperature": tau, "alpha": alpha, "beta": beta,
            "loss": tg.r(loss),
            "ce": tg.r(ce.detach().mean()),               # mean CE over counted rows
            "divergence_mean": tg.r(d.detach().mean()),   # mean divergence (before tau^2)
            "grad_norm": tg.r(tg.global_norm(grads)),
            "grads": f"{case}.safetensors",
        }
        # WRONG on purpose (sensitivity)
        with torch.no_grad():
            if tau != 1.0:
                c["loss_if_no_tau2"] = tg.r((alpha * ce + (1 - alpha) * d).mean())
                sensitive(c, "loss_if_no_tau2", f"{name} {case}")
            if div == "jsd" and beta != 0.5:
                c["loss_if_beta_swapped"] = tg.r(
                    kd_row_losses(div, tau, alpha, 1 - beta, z, zt, tgt)[0].mean())
                sensitive(c, "loss_if_beta_swapped", f"{name} {case}")
            if div == "reverse_kl":
                c["loss_if_forward_kl"] = tg.r(
                    kd_row_losses("forward_kl", tau, alpha, beta, z, zt, tgt)[0].mean())
                sensitive(c, "loss_if_forward_kl", f"{name} {case}")
        kd["cases"][case] = c

    golden = {
        "fixture": name,
        "reference": "tools/torchref/objective_goldens.py float64",
        "model": f"../../../../model/testdata/{name}",
        "adapter": f"../../{name}/adapter",
        "lora": {"r": acfg["r"], "lora_alpha": acfg["lora_alpha"],
                 "use_rslora": acfg["use_rslora"], "scaling": scaling},
        "dpo": dpo,
        "kd": kd,
    }
    files["golden.json"] = tg.jbytes(golden)
    summary["dpo"] = {k: v["loss"] for k, v in dpo["cases"].items()}
    summary["kd"] = {k: v["loss"] for k, v in kd["cases"].items()}
    return files, summary


def main():
    first, summaries = tg.build_fixtures(lambda name: build_fixture(name, FIXTURES[name]), FIXTURES)
    tg.write_files(OUT, first, ["."])
    total = 0
    for name in FIXTURES:
        size = sum(len(b) for k, b in first.items() if k.startswith(name + "/"))
        total += size
        s = summaries[name]
        print(f"{name:12s} {size:8d} B  fd-rel {s['fd']:.1e}  alt-rel {s['alt']:.1e}")
        print("   dpo " + "  ".join(f"{k} {v:.6f}" for k, v in s["dpo"].items()))
        print("   kd  " + "  ".join(f"{k} {v:.6f}" for k, v in s["kd"].items()))
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
