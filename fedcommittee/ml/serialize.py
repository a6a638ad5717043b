"""Weights on the wire: canonical safetensors bytes and a strict, defensive loader.

``dumps`` always produces the same bytes for the same tensors (sorted names, contiguous float data,
fixed metadata), so the sha256 recorded on the ledger is reproducible by anyone. ``loads`` treats its
input as hostile: size limit first, then the safetensors header is parsed and checked against the
registered architecture before any tensor is built; pickle is never involved.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping

import torch
from safetensors.torch import load as _st_load

from fedcommittee.ml.models import State, state_layout

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024  # our headers are a few KB; bounds JSON parsing work on hostile input
_METADATA = {"format": "pt", "producer": "fedcommittee"}
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}  # fmt: skip
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


class WeightsError(ValueError):
    """Serialized weights were rejected; the message says what was wrong."""


def dumps(state: State) -> bytes:
    """Canonical safetensors bytes of a state dict or delta.

    Written here rather than by ``safetensors.torch.save`` because that library keeps metadata in a
    hash map whose order changes from run to run (so the bytes, and their sha256, would too). Layout:
    little-endian u64 header length, a JSON header with sorted keys and no spaces, padded with spaces
    to a multiple of 8, then the tensors' little-endian bytes in sorted-name order. Any safetensors
    reader can read it."""
    return canonical_bytes(state, _METADATA)


def canonical_bytes(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    dtype_names: Mapping[torch.dtype, str] = _DTYPE_NAMES,
) -> bytes:
    """The layout ``dumps`` writes, with ``metadata`` as the ``__metadata__`` and ``dtype_names`` as
    the dtypes allowed (compress.py puts its scheme in the metadata and adds int8 and friends)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in dtype_names:
            raise WeightsError(f"{name}: unsupported dtype {t.dtype}")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": dtype_names[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_hash(state: State) -> str:
    """sha256 of the canonical bytes: the id that the ledger records for weights."""
    return sha256_hex(dumps(state))


def parse_header(data: bytes) -> dict:
    """The JSON header of a safetensors file, refusing anything else (pickle, zip, oversize, garbage)."""
    if len(data) < 8:
        raise WeightsError(f"not safetensors: only {len(data)} bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    fits = header_len > 0 and 8 + header_len <= len(data)
    # The magic bytes are only a better message for what is not safetensors: a real header length
    # can begin with them too (640 = 0x280 is cnn-medium's, whose first byte is pickle's 0x80).
    if not (fits and data[8:9] == b"{") and (data[:1] == b"\x80" or data[:2] in (b"PK", b"\x1f\x8b")):
        raise WeightsError("not safetensors: looks like a pickle / zip / gzip payload (refused)")
    if not fits:
        raise WeightsError(f"not safetensors: header length {header_len} does not fit in {len(data)} bytes")
    if header_len > MAX_HEADER_BYTES:
        raise WeightsError(f"header too large: {header_len} bytes > {MAX_HEADER_BYTES}")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise WeightsError(f"not safetensors: header is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise WeightsError("not safetensors: header is not a JSON object")
    return header


def loads(data: bytes, model_name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> State:
    """Parse and validate weights (or a delta) for ``model_name``; raise WeightsError on any mismatch."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WeightsError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise WeightsError(f"oversize: {len(data)} bytes > limit {max_bytes}")
    header = parse_header(data)
    header.pop("__metadata__", None)
    expected = state_layout(model_name)
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        raise WeightsError(f"tensor names do not match {model_name}: missing {missing}, unexpected {extra}")
    for name, (shape, dtype) in expected.items():
        info = header[name]
        if not isinstance(info, dict):
            raise WeightsError(f"{name}: malformed header entry")
        got_dtype = info.get("dtype")
        if not isinstance(got_dtype, str) or _DTYPES.get(got_dtype) != dtype:
            raise WeightsError(f"{name}: dtype {got_dtype!r} but {model_name} expects {dtype}")
        got_shape = info.get("shape")
        if not isinstance(got_shape, list) or tuple(got_shape) != shape:
            raise WeightsError(f"{name}: shape {got_shape!r} but {model_name} expects {shape}")
    try:
        tensors = _st_load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt payloads
        raise WeightsError(f"corrupt safetensors payload: {exc}") from None
    for name in sorted(tensors):
        t = tensors[name]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{name}: contains NaN or Inf")
    return {k: tensors[k].contiguous() for k in sorted(tensors)}
