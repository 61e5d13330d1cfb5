#!/usr/bin/python3
"""safetensors_interop.py — PyTorch's side of the safetensors interop test.

The `safetensors` package is not needed: the format is read and written here
with json + struct, independently of fastc's C code, so the two sides check
each other.

  safetensors_interop.py write PATH   writes the tensors below (every dtype,
                                      bfloat16 through its raw int16 bits)
  safetensors_interop.py read PATH [--aligned]
                                      checks the layout the way Hugging Face's
                                      reader does (--aligned: and that every
                                      tensor is aligned to its element size,
                                      as fastc writes them), then prints one
                                      line per tensor and per metadata entry:
      tensor<TAB>name<TAB>DTYPE<TAB>2,3<TAB>v1,v2,...
      meta<TAB>key<TAB>value
  (floats print as Python's repr: shortest exact; inf, -inf, nan spelled so)
"""
import json
import struct
import sys

import numpy as np
import torch

# safetensors code -> (numpy dtype of the raw bytes, torch dtype)
DTYPES = {
    "F32": ("<f4", torch.float32),
    "F64": ("<f8", torch.float64),
    "F16": ("<f2", torch.float16),
    "BF16": ("<i2", torch.bfloat16),  # raw bits; viewed as bfloat16 below
    "I64": ("<i8", torch.int64),
    "I32": ("<i4", torch.int32),
    "U8": ("u1", torch.uint8),
    "BOOL": ("?", torch.bool),
}
CODES = {torch_dtype: code for code, (_, torch_dtype) in DTYPES.items()}


def expected_tensors():
    """What `write` stores; io_spec.lua holds the same values."""
    return {
        "f32": torch.tensor([[1.5, -2.0, 3.0], [0.25, 1024.0, float("inf")]], dtype=torch.float32),
        "f64": torch.tensor([0.1, -1e300, 3.141592653589793], dtype=torch.float64),
        "f16": torch.tensor([65504.0, -0.5], dtype=torch.float16),
        "bf16": torch.tensor([[1.5, -3.0], [256.0, 0.0078125]], dtype=torch.bfloat16),
        "i64": torch.tensor([9007199254740993, -5, 0], dtype=torch.int64),
        "i32": torch.tensor([[-2147483648, 2147483647], [0, 7]], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "transposed": torch.arange(6, dtype=torch.float64).reshape(2, 3).t(),
    }


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write(path):
    tensors = expected_tensors()
    header = {"__metadata__": {"format": "pt", "source": "torch " + torch.__version__}}
    chunks, offset = [], 0
    for name, t in tensors.items():
        data = raw_bytes(t)
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    # json.dumps' default ", " / ": " separators, unlike fastc's compact header
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(b"".join(chunks))


def fail(msg):
    sys.stderr.write("safetensors_interop: " + msg + "\n")
    sys.exit(1)


def read(path, aligned):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail("header length %d past the end of the file" % n)
    if (8 + n) % 8:
        fail("data does not start 8-byte aligned (header length %d)" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    # Hugging Face's reader: offsets sorted must tile the buffer exactly
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for begin, end, name in spans:
        if begin != pos or end < begin:
            fail("tensor %s: data_offsets [%d,%d], expected to start at %d" % (name, begin, end, pos))
        pos = end
    if pos != len(data):
        fail("tensors cover %d bytes of a %d-byte data buffer" % (pos, len(data)))
    for name, info in header.items():
        np_dtype, torch_dtype = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = info["shape"]
        item = np.dtype(np_dtype).itemsize
        if aligned and begin % item:
            fail("tensor %s: offset %d not aligned to its %d-byte elements" % (name, begin, item))
        arr = np.frombuffer(data[begin:end], dtype=np_dtype).copy()
        t = torch.from_numpy(arr)
        if torch_dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        t = t.reshape(shape)
        if t.is_floating_point():
            values = [repr(float(v)) for v in t.double().flatten().tolist()]
        else:
            values = [str(int(v)) for v in t.flatten().tolist()]
        print("tensor\t%s\t%s\t%s\t%s" % (name, info["dtype"], ",".join(map(str, shape)),
                                        ",".join(values)))
    for key, value in meta.items():
        if not isinstance(value, str):
            fail("metadata value for %s is not a string" % key)
        print("meta\t%s\t%s" % (key, value))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["write"] and len(args) == 2:
        write(args[1])
    elif args[:1] == ["read"] and len(args) in (2, 3) and args[2:] in ([], ["--aligned"]):
        read(args[1], aligned=len(args) == 3)
    else:
        fail("usage: safetensors_interop.py write PATH | read PATH [--aligned]")
