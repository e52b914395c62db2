"""llama-quantize's answers for distill's quantised GGUF exports.

Reads the cases that `go test ./core/gguf -run TestLlamaCppReadsExport -args
-prepare DIR` wrote and, with llama.cpp's own library (the libllama and
libggml-base of node-llama-cpp's prebuilt CPU build, loaded with ctypes:
no build, no other package), writes core/gguf/testdata/llama_quantize.json:

  - cases: for each quantised case, llama_model_quantize (what the
    llama-quantize tool runs) on distill's f32 export of the same model, at
    the case's llama_ftype, without an importance matrix; then each tensor
    of the file it wrote: ggml's type name and the sha256 of its bytes;
  - rows: ggml_quantize_chunk on the rows in quant-rows.f32, for each type
    listed, and ggml's dequantize_row_<type> of the result: the sha256 of
    the bytes and of the floats.

usage: python3 tools/llamacpp/llama_quantize.py CASES_DIR OUT.json
"""
import ctypes
import hashlib
import json
import os
import struct
import sys
import tempfile

BINS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
PKG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules/node-llama-cpp")


class QuantizeParams(ctypes.Structure):
    """llama.h's llama_model_quantize_params at the pinned release."""
    _fields_ = [
        ("nthread", ctypes.c_int32), ("ftype", ctypes.c_int),
        ("output_tensor_type", ctypes.c_int), ("token_embedding_type", ctypes.c_int),
        ("allow_requantize", ctypes.c_bool), ("quantize_output_tensor", ctypes.c_bool),
        ("only_copy", ctypes.c_bool), ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool), ("dry_run", ctypes.c_bool),
        ("imatrix", ctypes.c_void_p), ("kv_overrides", ctypes.c_void_p),
        ("tt_overrides", ctypes.c_void_p), ("prune_layers", ctypes.c_void_p),
        ("max_buf_size", ctypes.c_size_t),
    ]


def load():
    base = ctypes.CDLL(os.path.join(BINS, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    ctypes.CDLL(os.path.join(BINS, "libggml.v0.5.0.so"), mode=ctypes.RTLD_GLOBAL)
    llama = ctypes.CDLL(os.path.join(BINS, "libllama.v0.5.0.so"))
    llama.llama_model_quantize_default_params.restype = QuantizeParams
    llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(QuantizeParams)]
    llama.llama_model_quantize.restype = ctypes.c_uint32
    base.ggml_type_name.restype = ctypes.c_char_p
    base.ggml_type_name.argtypes = [ctypes.c_int]
    base.ggml_row_size.restype = ctypes.c_size_t
    base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    llama.llama_backend_init()
    return base, llama


def sha(b):
    return hashlib.sha256(b).hexdigest()


def read_tensors(base, path):
    """The tensors of a GGUF v3 file: name -> (ggml type name, bytes)."""
    with open(path, "rb") as f:
        b = f.read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, b, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("Q")
        s = b[off:off + n].decode()
        off += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert b[:4] == b"GGUF" and struct.unpack_from("<I", b, 4)[0] == 3, path
    off = 8
    n_tensors, n_kv = take("Q"), take("Q")
    align = 32
    for _ in range(n_kv):
        key = string()
        v = value(take("I"))
        if key == "general.alignment":
            align = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        infos.append((name, dims, take("I"), take("Q")))
    start = (off + align - 1) // align * align
    out = {}
    for name, dims, typ, offset in infos:
        size = base.ggml_row_size(typ, dims[0])
        for d in dims[1:]:
            size *= d
        out[name] = (base.ggml_type_name(typ).decode(), b[start + offset:start + offset + size])
    return out


def quantize_case(base, llama, src, ftype):
    params = llama.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "quantized.gguf")
        if llama.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
            raise SystemExit(f"llama_model_quantize failed on {src}")
        return read_tensors(base, dst)


def quantize_rows(base, spec, data):
    rows, cols = spec["rows"], spec["cols"]
    # ggml.h's enum ggml_type, checked against ggml's own names.
    ids = {"q5_0": 6, "q8_0": 8, "q4_K": 12, "q5_K": 13, "q6_K": 14}
    src = (ctypes.c_float * (rows * cols)).from_buffer_copy(data)
    out = {}
    for name in spec["types"]:
        t = ids[name]
        assert base.ggml_type_name(t).decode() == name, name
        q = ctypes.create_string_buffer(base.ggml_row_size(t, cols) * rows)
        n = base.ggml_quantize_chunk(t, src, q, 0, rows, cols, None)
        deq = getattr(base, "dequantize_row_" + name)
        deq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        y = (ctypes.c_float * (rows * cols))()
        deq(q, y, rows * cols)
        out[name] = {"quantized": sha(q.raw[:n]), "dequantized": sha(bytes(y))}
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: python3 llama_quantize.py CASES_DIR OUT.json")
    cases_dir, out_path = sys.argv[1:]
    base, llama = load()
    with open(os.path.join(cases_dir, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(cases_dir, "quant-rows.json")) as f:
        spec = json.load(f)
    with open(os.path.join(cases_dir, spec["file"]), "rb") as f:
        data = f.read()
    assert sha(data) == spec["sha256"], "quant-rows.f32 does not match its manifest"
    result = {
        "generator": "tools/llamacpp/llama_quantize.py",
        "reference": "",
        "rows": {"sha256": spec["sha256"], "rows": spec["rows"], "cols": spec["cols"],
                 "types": quantize_rows(base, spec, data)},
        "cases": {},
    }
    for c in manifest:
        lq = c.get("llama_quantize")
        if not lq:
            continue
        src = os.path.join(cases_dir, lq["file"])
        with open(src, "rb") as f:
            src_sha = sha(f.read())
        tensors = quantize_case(base, llama, src, lq["ftype"])
        result["cases"][c["name"]] = {
            "source_sha256": src_sha,
            "tensors": {name: {"type": t, "sha256": sha(data)} for name, (t, data) in sorted(tensors.items())},
        }
        print(c["name"], len(tensors), "tensors quantised by llama-quantize")
    with open(os.path.join(PKG, "package.json")) as f:
        version = json.load(f)["version"]
    with open(os.path.join(PKG, "llama/llama.cpp.info.json")) as f:
        tag = json.load(f)["tag"]
    result["reference"] = f"llama.cpp {tag} (llama_model_quantize, ggml_quantize_chunk) via node-llama-cpp {version}'s prebuilt CPU libraries"
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
