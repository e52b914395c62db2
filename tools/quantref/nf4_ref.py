#!/usr/bin/python3
"""Independent reference for package distill/core/quant: NF4 as bitsandbytes
quantises it (blocksize 64, absmax per block, optional double quantisation of
the absmaxes with the dynamic 8-bit map in blocks of 256) and Q8 (ggml's Q8_0
codes, f32 scales), written from the published algorithms in numpy, f32 arithmetic
where the originals use f32.

    /usr/bin/python3 tools/quantref/nf4_ref.py      # `make goldens` runs this

writes core/quant/testdata/quant_golden.safetensors (deterministic: inputs
come from a fixed splitmix64 stream, not numpy's generators). Needs Debian's
python3-numpy and python3-torch (torch builds the dynamic map the way
bitsandbytes does, as a cross-check of the numpy derivation).

Tensors in the file, per case C (C.w is the input, F32, F16 or BF16, shaped
as the matrix):
  C.nf4.codes   U8   packed codes, element e in byte e//2, high nibble if e even
  C.nf4.absmax  F32  one per 64-element block of the flattened tensor
  C.nf4.deq     F32  dequantised, shaped as C.w
  C.dq.qabsmax  U8   8-bit dynamic-map codes of absmax - offset
  C.dq.absmax2  F32  one per 256 absmaxes
  C.dq.offset   F32  [1] mean of the absmaxes
  C.dq.scales   F32  the absmaxes as dequantisation decodes them
  C.dq.deq      F32  dequantised with double quantisation (small cases only)
  C.q8.qs       I8   Q8 values
  C.q8.scales   F32  one per 32-element block
  C.q8.deq      F32  dequantised (small cases only)
and once: nf4.code (F32 16), nf4.mid (F32 15), dyn.map (F32 256), and dyn.x /
dyn.q: inputs of the 8-bit quantiser (midpoints of the map, their f32
neighbours, the map values, ±1, beyond, NaN) and their codes.
"""

import json
import math
import os
import struct
import sys
from fractions import Fraction

import numpy as np

f32 = np.float32
f64 = np.float64

# ---- NF4 -------------------------------------------------------------------


def decimal_to_f32(s):
    """Round a decimal string to the nearest f32 (ties to even) directly, as a
    C compiler does with a float literal. (Going through f64 first can land
    exactly on an f32 tie and round the other way.) Normal range only."""
    fr = Fraction(s)
    if fr == 0:
        return f32(0)
    sign, a = (-1 if fr < 0 else 1), abs(fr)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (e - 23)
    q = a / ulp
    m = q.numerator // q.denominator
    r = q - m
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and m % 2 == 1):
        m += 1
    return f32(sign * float(m * ulp))


# The 16 NF4 code values as published (QLoRA; bitsandbytes get_4bit_type),
# and the thresholds of bitsandbytes' quantiser, the f32 literals of its
# dQuantizeNF4 decision tree: the f64 midpoints between consecutive code
# values, printed, then compiled as floats.
NF4_PUBLISHED = [
    "-1.0", "-0.6961928009986877", "-0.5250730514526367", "-0.39491748809814453",
    "-0.28444138169288635", "-0.18477343022823334", "-0.09105003625154495", "0.0",
    "0.07958029955625534", "0.16093020141124725", "0.24611230194568634", "0.33791524171829224",
    "0.44070982933044434", "0.5626170039176941", "0.7229568362236023", "1.0",
]
NF4_TREE = [
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
]
for _i, _t in enumerate(NF4_TREE):  # each literal is the f64 midpoint
    assert float(_t) == (float(NF4_PUBLISHED[_i]) + float(NF4_PUBLISHED[_i + 1])) / 2, _t
NF4 = np.array([decimal_to_f32(s) for s in NF4_PUBLISHED], dtype=f32)
NF4_MID = np.array([decimal_to_f32(s) for s in NF4_TREE], dtype=f32)


def nf4_tree(x):
    """The published decision tree, one bit per level: bit 3 says x > mid[7];
    then bit 2 compares with mid[3] or mid[11], and so on down to the leaf.
    Strict '>': an x on a midpoint takes the lower code; NaN takes code 0."""
    b3 = (x > NF4_MID[7]).astype(np.int64)
    b2 = (x > NF4_MID[8 * b3 + 3]).astype(np.int64)
    b1 = (x > NF4_MID[8 * b3 + 4 * b2 + 1]).astype(np.int64)
    b0 = (x > NF4_MID[8 * b3 + 4 * b2 + 2 * b1]).astype(np.int64)
    return (8 * b3 + 4 * b2 + 2 * b1 + b0).astype(np.uint8)


def blocks_of(flat, size):
    nb = -(-flat.size // size)
    pad = np.zeros(nb * size, dtype=f32)
    pad[: flat.size] = flat
    return pad.reshape(nb, size)


def nf4_quantize(w):
    """w: flat f32. Returns (packed codes, absmax)."""
    n = w.size
    blk = blocks_of(w, 64)  # the tail is padded with zeros, as the kernel loads it
    absmax = np.abs(blk).max(axis=1).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = (f32(1) / absmax).astype(f32)  # reciprocal in f32, then multiply
        x = (blk * inv[:, None]).astype(f32)  # an all-zero block gives 0·inf = NaN
    codes = nf4_tree(x).reshape(-1)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    return packed[: (n + 1) // 2], absmax


def nf4_dequantize(packed, scales, n):
    codes = np.empty(2 * packed.size, dtype=np.uint8)
    codes[0::2] = packed >> 4
    codes[1::2] = packed & 15
    codes = codes[:n]
    s = np.repeat(scales, 64)[:n]
    return (NF4[codes] * s).astype(f32)


# ---- the dynamic 8-bit map --------------------------------------------------


def linspace_torch_cpu(start, end, n):
    """torch.linspace(start, end, n) in f32 as torch's CPU kernel computes it
    on x86-64 (the AVX2 build): step = (end-start)/(n-1); element i is
    fma(step, i, start) below n//2 and fma(-step, n-1-i, end) from there, but
    runs of 16 are written as two 8-lane vectors whose lane j is
    base + (j·step), rounded twice, from the fused base of lane 0."""
    s, e = f32(start), f32(end)
    if n == 1:
        return np.array([s], dtype=f32)
    step = f32((e - s) / f32(n - 1))
    half = n // 2

    def fma(a, b, c):  # exact product in f64, one rounding to f32 (as fmaf, bar double rounding)
        return f32(f64(a) * f64(b) + f64(c))

    def at(i):
        return fma(step, f32(i), s) if i < half else fma(-step, f32(n - 1 - i), e)

    out = np.empty(n, dtype=f32)
    i = 0
    while i + 16 <= n:
        for _ in range(2):
            base = at(i)
            for j in range(8):
                out[i + j] = f32(base + f32(f32(j) * step))
            i += 8
    while i < n:
        out[i] = at(i)
        i += 1
    return out


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        b = linspace_torch_cpu(0.1, 1.0, 2 ** i + 1)
        means = ((b[:-1] + b[1:]) / f32(2)).astype(f32)
        scale = f32(10.0 ** (i - 6))
        data += list((scale * means).astype(f32))
        data += list((-scale * means).astype(f32))
    data += [f32(0), f32(1)]
    assert len(data) == 256
    return np.array(sorted(data), dtype=f32)


def dynamic_map_torch():
    """The same map built with torch, the way bitsandbytes builds it."""
    import torch

    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0, 1.0]
    data.sort()
    return torch.tensor(data).numpy().astype(f32)


def dyn_quantize(x, m):
    """bitsandbytes' dQuantize (no stochastic rounding) as a closed form: its
    binary search compares x with the odd-indexed entries only and stops at
    the even index p = 2·#{odd j: m[j] < x}; then x goes to the neighbour on
    its side when it is beyond the f32 midpoint (m[p] + m[neighbour])·0.5,
    ties staying at p; below index 0 there is no neighbour."""
    x = np.asarray(x, dtype=f32)
    odd = m[1::2][:127]  # m[1], m[3], ..., m[253]
    p = 2 * (odd[None, :] < x[:, None]).sum(axis=1)
    val = m[p]
    up = m[np.minimum(p + 1, 255)]
    lo_idx = np.maximum(p - 1, 0)
    lo = m[lo_idx]
    mid_up = ((up + val) * f32(0.5)).astype(f32)
    mid_lo = ((lo + val) * f32(0.5)).astype(f32)
    q = np.where(x > val, np.where(x > mid_up, p + 1, p), np.where(x < mid_lo, lo_idx, p))
    return q.astype(np.uint8)


def double_quantize(absmax, m):
    """compress_statistics: offset = mean(absmax) (the correctly rounded sum
    over the count, to f32), the centred absmaxes quantised blockwise (256)
    with the dynamic map."""
    offset = f32(math.fsum(absmax.astype(f64).tolist()) / absmax.size)
    c = (absmax - offset).astype(f32)
    blk = blocks_of(c, 256)
    absmax2 = np.abs(blk).max(axis=1).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (f32(1) / absmax2).astype(f32)
        x = (blk * inv[:, None]).astype(f32)
    q = dyn_quantize(x.reshape(-1), m)[: absmax.size]
    scales = ((m[q] * np.repeat(absmax2, 256)[: absmax.size]).astype(f32) + offset).astype(f32)
    return q, absmax2, offset, scales


# ---- Q8 --------------------------------------------------------------------


def q8_quantize(w):
    """ggml quantize_row_q8_0_ref on blocks of 32 of the flattened tensor, the
    scale d kept in f32; where 1/d overflows (subnormal blocks) w/d instead."""
    n = w.size
    blk = blocks_of(w, 32)
    amax = np.abs(blk).max(axis=1).astype(f32)
    d = (amax / f32(127)).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        idv = np.where(d != 0, f32(1) / d, f32(0)).astype(f32)
        v = (blk * idv[:, None]).astype(f32)
        vd = (blk / d[:, None]).astype(f32)
    v = np.where(np.isinf(idv)[:, None], vd, v)
    q = np.sign(v) * np.floor(np.abs(v).astype(f64) + 0.5)  # roundf: half away from zero
    q = q.astype(np.int8).reshape(-1)[:n]
    return q, d


def q8_dequantize(q, scales, n):
    return (q.astype(f32) * np.repeat(scales, 32)[:n]).astype(f32)


# ---- deterministic inputs ----------------------------------------------------

M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def u64(self, n):
        g = np.uint64(0x9E3779B97F4A7C15)
        z = np.uint64(self.state) + g * np.arange(1, n + 1, dtype=np.uint64)
        self.state = (self.state + n * 0x9E3779B97F4A7C15) & M64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    def uniform(self, n):  # (0, 1)
        return ((self.u64(n) >> np.uint64(11)).astype(f64) + 0.5) * 2.0 ** -53

    def normal(self, n):  # Box-Muller
        u1, u2 = self.uniform(n), self.uniform(n)
        return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def to_bf16_bits(x):
    """f32 → bf16 bits, round to nearest even."""
    b = np.asarray(x, dtype=f32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_bits_to_f32(h):
    return (h.astype(np.uint32) << 16).view(f32)


def special_blocks(w):
    """Overwrite the first blocks of the flat f32 w (≥ 7 blocks of 64) with
    edge cases: an all-zero block, values exactly on the NF4 midpoints (absmax
    1 and 2, so x = w/absmax is exact) and their f32 neighbours, an outlier,
    a constant block, subnormals."""
    mids = NF4_MID
    up = np.nextafter(mids, f32(np.inf)).astype(f32)
    dn = np.nextafter(mids, f32(-np.inf)).astype(f32)
    w[0:64] = 0
    b = np.concatenate([[f32(1), f32(-1)], mids, up, dn, NF4[:15], [f32(-0.0)]]).astype(f32)
    w[64 : 64 + b.size] = b
    w[128:192] = 0
    b2 = (2 * np.concatenate([[f32(1)], mids, up, dn])).astype(f32)
    w[128 : 128 + b2.size] = b2
    w[192 + 17] = 50 * np.abs(w[192:256]).max()
    w[256:320] = f32(0.03125)
    w[320:384] = np.linspace(-1e-39, 1e-39, 64).astype(f32)  # subnormal absmax: 1/absmax = inf
    return w


def make_cases():
    r = SplitMix64(0x5EED_0F_D15711)
    cases = []  # (name, shape, dtype, f32 values, raw bytes)

    def add_f32(name, shape, v):
        v = np.asarray(v, dtype=f32).reshape(shape)
        cases.append((name, shape, "F32", v, v.tobytes()))

    w = (0.02 * r.normal(64 * 64)).astype(f32)
    add_f32("g64x64", (64, 64), special_blocks(w))

    # Heavy tails: a Student-t with 3 degrees of freedom.
    z = r.normal(96 * 200)
    chi = (r.normal(96 * 200) ** 2 + r.normal(96 * 200) ** 2 + r.normal(96 * 200) ** 2) / 3
    add_f32("t96x200", (96, 200), 0.03 * z / np.sqrt(chi))

    # A tail block of 41 and an odd count (a pad nibble); rows straddle blocks.
    w = (0.05 * r.normal(97 * 201)).astype(f32)
    w[r.u64(40).astype(np.int64) % w.size] = 0
    add_f32("tail97x201", (97, 201), w)

    # Real-shaped, with 0.1% outliers and exact zeros.
    w = (0.05 * r.normal(128 * 576)).astype(f32)
    idx = (r.u64(74) % np.uint64(w.size)).astype(np.int64)
    w[idx] *= 30
    w[(r.u64(200) % np.uint64(w.size)).astype(np.int64)] = 0
    add_f32("o128x576", (128, 576), w)

    # BF16 weights of SmolLM2-135M's k_proj shape.
    w = (0.04 * r.normal(192 * 576)).astype(f32)
    w[(r.u64(100) % np.uint64(w.size)).astype(np.int64)] *= 20
    h = to_bf16_bits(w)
    cases.append(("bf16_192x576", (192, 576), "BF16", bf16_bits_to_f32(h).reshape(192, 576), h.tobytes()))

    # F16 weights.
    h = (0.1 * r.normal(32 * 96)).astype(np.float16)
    cases.append(("f16_32x96", (32, 96), "F16", h.astype(f32).reshape(32, 96), h.tobytes()))

    # One block (double quantisation: every centred absmax is 0, so absmax2 is
    # 0 and the code is that of NaN), and a tensor smaller than a block.
    add_f32("one1x64", (1, 64), 0.1 * r.normal(64))
    add_f32("small3x5", (3, 5), r.normal(15))
    return cases


def dyn_inputs(m):
    mids = ((m[:-1] + m[1:]) * f32(0.5)).astype(f32)
    x = np.concatenate([
        mids,
        np.nextafter(mids, f32(np.inf)),
        np.nextafter(mids, f32(-np.inf)),
        m,
        np.array([1, -1, 1.0000001, -1.0000001, 2, -2, 0, -0.0, np.nan], dtype=f32),
    ]).astype(f32)
    return x


# ---- safetensors -----------------------------------------------------------

DTYPES = {np.dtype(f32): "F32", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8", np.dtype(np.float16): "F16"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype string, shape, bytes), written in order."""
    header, off = {}, 0
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in tensors:
            f.write(data)


def arr(name, a, shape=None):
    a = np.ascontiguousarray(a)
    return (name, DTYPES[a.dtype], shape if shape is not None else a.shape, a.tobytes())


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(root, "core", "quant", "testdata", "quant_golden.safetensors")

    m = dynamic_map()
    try:
        mt = dynamic_map_torch()
    except ImportError:
        sys.exit("nf4_ref.py: needs torch (Debian's python3-torch) to cross-check the dynamic map")
    if not np.array_equal(m.view(np.uint32), mt.view(np.uint32)):
        bad = np.nonzero(m != mt)[0]
        sys.exit(f"nf4_ref.py: numpy dynamic map differs from torch's at {bad.size} entries, first {bad[:5]}: "
                 "this torch build's linspace rounds differently")

    tensors = [arr("nf4.code", NF4), arr("nf4.mid", NF4_MID), arr("dyn.map", m)]
    x = dyn_inputs(m)
    tensors += [arr("dyn.x", x), arr("dyn.q", dyn_quantize(x, m))]

    small = 20000
    for name, shape, dt, v, raw in make_cases():
        flat = v.reshape(-1).astype(f32)
        n = flat.size
        tensors.append((name + ".w", dt, shape, raw))
        codes, absmax = nf4_quantize(flat)
        tensors += [arr(name + ".nf4.codes", codes), arr(name + ".nf4.absmax", absmax),
                    arr(name + ".nf4.deq", nf4_dequantize(codes, absmax, n), shape)]
        q, a2, off, scales = double_quantize(absmax, m)
        tensors += [arr(name + ".dq.qabsmax", q), arr(name + ".dq.absmax2", a2),
                    arr(name + ".dq.offset", np.array([off], dtype=f32)), arr(name + ".dq.scales", scales)]
        if n <= small:
            tensors.append(arr(name + ".dq.deq", nf4_dequantize(codes, scales, n), shape))
        qs, sc = q8_quantize(flat)
        tensors += [arr(name + ".q8.qs", qs), arr(name + ".q8.scales", sc)]
        if n <= small:
            tensors.append(arr(name + ".q8.deq", q8_dequantize(qs, sc, n), shape))

    write_safetensors(out, tensors, {"generator": "tools/quantref/nf4_ref.py", "format": "distill quant goldens v1"})
    print(f"wrote {os.path.relpath(out, root)}: {len(tensors)} tensors, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
