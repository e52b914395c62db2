"""Minimal safetensors reader/writer and bf16 helpers (no safetensors package).

File layout (https://huggingface.co/docs/safetensors, written from the spec):

    [8 bytes]  N = header length, unsigned 64-bit little-endian
    [N bytes]  UTF-8 JSON object: {"__metadata__": {str: str}?,
                                   name: {"dtype": "F32"|"BF16"|...,
                                          "shape": [..],
                                          "data_offsets": [begin, end]}, ...}
               padded on the right with spaces so that 8 + N is a multiple of 8
    [rest]     raw little-endian tensor bytes; data_offsets are relative to the
               start of this byte buffer, contiguous and non-overlapping.

The writer is deterministic: tensors are laid out in sorted-name order, the
header JSON is compact, "__metadata__" comes first.
"""

import json
import struct

import numpy as np
import torch

DTYPE_SIZES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "U8": 1}


# --------------------------------------------------------------------------
# bf16 helpers
# --------------------------------------------------------------------------

def f32_to_bf16_bits_rne(x: np.ndarray) -> np.ndarray:
    """Round float32 -> bf16 bit patterns with round-to-nearest-even (numpy, no torch).

    Used only to check that torch's .to(torch.bfloat16) does RNE.
    NaN is not handled (never produced here)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> np.uint64(16)) & np.uint64(1)
    rounded = (bits + np.uint64(0x7FFF) + lsb) >> np.uint64(16)
    return (rounded & np.uint64(0xFFFF)).astype(np.uint16)


def bf16_bits_to_f64(bits: np.ndarray) -> np.ndarray:
    """Exact widening of bf16 bit patterns to float64 (via float32)."""
    u32 = bits.astype(np.uint32) << np.uint32(16)
    return u32.view(np.float32).astype(np.float64)


def tensor_bytes(t: torch.Tensor, dtype: str) -> bytes:
    """Little-endian raw bytes of t stored as dtype ("F32", "BF16", "F16" or "F64")."""
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "BF16":
        bits = t.to(torch.float32).to(torch.bfloat16).view(torch.int16).numpy()
        return bits.view(np.uint16).astype("<u2").tobytes()
    if dtype == "F64":
        return t.to(torch.float64).numpy().astype("<f8").tobytes()
    if dtype == "F16":
        return t.to(torch.float32).to(torch.float16).numpy().astype("<f2").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


# --------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------

def build_header(entries, metadata=None) -> bytes:
    """entries: list of (name, dtype, shape, begin, end) in data order.
    Returns the padded header bytes (without the 8-byte length prefix)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    for name, dtype, shape, begin, end in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    pad = (8 - (8 + len(raw)) % 8) % 8
    return raw + b" " * pad


def serialize(tensors: dict, dtype: str, metadata=None) -> bytes:
    """tensors: {name: torch.Tensor}; all stored as `dtype`."""
    entries, chunks, off = [], [], 0
    for name in sorted(tensors):
        b = tensor_bytes(tensors[name], dtype)
        entries.append((name, dtype, tuple(tensors[name].shape), off, off + len(b)))
        chunks.append(b)
        off += len(b)
    header = build_header(entries, metadata)
    return struct.pack("<Q", len(header)) + header + b"".join(chunks)


def save_file(path, tensors: dict, dtype: str, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, dtype, metadata))


# --------------------------------------------------------------------------
# reader (strict; used to recompute goldens from exactly the bytes written)
# --------------------------------------------------------------------------

def load_file_f64(path) -> dict:
    """Read a safetensors file; every tensor is widened exactly to torch.float64."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("header length beyond end of file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buf = data[8 + n:]
    out = {}
    expect = 0
    items = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                   key=lambda kv: kv[1]["data_offsets"][0])
    for name, info in items:
        dtype, shape = info["dtype"], info["shape"]
        b, e = info["data_offsets"]
        if b != expect:
            raise ValueError(f"{name}: non-contiguous offsets")
        count = 1
        for s in shape:
            count *= s
        if e - b != count * DTYPE_SIZES[dtype] or e > len(buf):
            raise ValueError(f"{name}: bad data_offsets")
        raw = buf[b:e]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "BF16":
            arr = bf16_bits_to_f64(np.frombuffer(raw, dtype="<u2"))
        elif dtype == "F64":
            arr = np.frombuffer(raw, dtype="<f8").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        else:
            raise ValueError(f"{name}: dtype {dtype} not handled by the reference")
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
        expect = e
    if expect != len(buf):
        raise ValueError("trailing bytes after last tensor")
    return out
