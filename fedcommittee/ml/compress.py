"""Communication-efficient updates: lossy, canonical, strictly validated encodings of a delta.

A provider may send its delta compressed. The wire format is always a **safetensors** file (never
pickle) whose tensors and ``__metadata__`` describe the encoding completely, written canonically
(sorted names, fixed JSON header, fixed padding) so the same delta and scheme give the same bytes and
the same sha256 in any process. The committee scores, and the aggregator averages, what was actually
sent: ``decompress(compress(delta, scheme), model)``.

Schemes (``get_scheme`` parses any of them; ``SCHEMES`` holds the usual ones by name)::

    float32               exactly ``serialize.dumps(delta)`` (today's format, lossless)
    float16               every float tensor cast to IEEE half
    int8                  per-tensor symmetric:  x ~= scale * q,               q int8 in [-127, 127]
    int8-affine           per-tensor affine:     x ~= scale * (q - zero_point), q uint8 in [0, 255]
    topk:F                per tensor keep the ceil(F * numel) largest-|x| entries (float32 values)
    float16+topk:F, int8+topk:F, int8-affine+topk:F
                          top-k first, then the kept values are quantized (scale from those values)

Layout of a compressed file (``encoding`` = ``fedcommittee-delta/1``), for each parameter ``p``:

    p/values      dense: the original shape; top-k: shape [k]; dtype F32 / F16 / I8 / U8 per scheme
    p/indices     top-k only: flat indices into p, strictly increasing, I32 (I64 if numel >= 2**31)
    p/scale       int8 schemes: F32 shape [1]
    p/zero_point  int8-affine: U8 shape [1]

``__metadata__``: ``encoding``, ``format`` (pt), ``producer``, ``scheme`` (canonical name), ``quant``,
``topk`` (fraction or ``none``) and ``tensors``: canonical JSON of every parameter's original shape
and dtype. Non-float parameters (none in today's models) are passed through unchanged as ``p/values``.

``decompress`` treats its input as hostile: size limit, pickle/zip/gzip magic, header parsed by hand,
metadata rebuilt from (scheme, architecture) and compared exactly, every tensor's name, dtype and shape
compared with what the scheme and ``models.state_layout`` imply, top-k counts and index ranges checked,
NaN/Inf rejected in sent floats, scales and decoded values, and finally the file is re-encoded and must
be byte-identical (only canonical files are accepted). Every failure raises ``serialize.WeightsError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import torch
from safetensors.torch import load as _st_load

from fedcommittee.ml import serialize
from fedcommittee.ml.models import State, state_layout
from fedcommittee.ml.schemes import QUANTS, SCHEMES, Scheme, get_scheme, list_schemes
from fedcommittee.ml.serialize import DEFAULT_MAX_BYTES, WeightsError, parse_header

# The scheme names live in ml.schemes (no torch); they are re-exported here for the encoders' users.
__all__ = [
    "ENCODING",
    "ErrorFeedback",
    "QUANTS",
    "SCHEMES",
    "Scheme",
    "compress",
    "compressed_size",
    "decompress",
    "encoded_size",
    "get_scheme",
    "list_schemes",
    "roundtrip",
    "scheme_of",
    "size_ratio",
]

ENCODING = "fedcommittee-delta/1"
_BASE_METADATA = {"format": "pt", "producer": "fedcommittee"}
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
           "U8": torch.uint8, "BOOL": torch.bool}  # fmt: skip
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_VALUE_DTYPE = {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8,
                "int8-affine": torch.uint8}  # fmt: skip
_INT32_LIMIT = 2**31 - 1
_F16_MAX = 65504.0


# ------------------------------------------------------------------------------ writer and metadata


def _write(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """Canonical safetensors bytes (``serialize``'s layout) with our metadata and quantized dtypes."""
    return serialize.canonical_bytes(tensors, metadata, _DTYPE_NAMES)


def _layout_json(layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> str:
    doc = {k: {"dtype": _DTYPE_NAMES[dt], "shape": list(shape)} for k, (shape, dt) in layout.items()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _metadata(scheme: Scheme, layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, str]:
    return {**_BASE_METADATA, "encoding": ENCODING, "scheme": scheme.name, "quant": scheme.quant,
            "topk": "none" if scheme.topk is None else repr(scheme.topk),
            "tensors": _layout_json(layout)}  # fmt: skip


def _index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel <= _INT32_LIMIT else torch.int64


def _expected_entries(
    scheme: Scheme, layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]]
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every tensor a file of this scheme must hold for this architecture: name -> (shape, dtype)."""
    out: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for name, (shape, dtype) in layout.items():
        if not dtype.is_floating_point:
            out[f"{name}/values"] = (shape, dtype)
            continue
        numel = math.prod(shape)
        if scheme.topk is not None:
            k = scheme.k(numel)
            out[f"{name}/indices"] = ((k,), _index_dtype(numel))
            out[f"{name}/values"] = ((k,), _VALUE_DTYPE[scheme.quant])
        else:
            out[f"{name}/values"] = (shape, _VALUE_DTYPE[scheme.quant])
        if scheme.quant in ("int8", "int8-affine"):
            out[f"{name}/scale"] = ((1,), torch.float32)
        if scheme.quant == "int8-affine":
            out[f"{name}/zero_point"] = ((1,), torch.uint8)
    return out


# ---------------------------------------------------------------------------------------------- encode


def _topk(flat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest-|x| entries; ties broken by lower index (stable sort), then sorted by index."""
    if k >= flat.numel():
        idx = torch.arange(flat.numel(), dtype=torch.int64)
    else:
        order = torch.sort(flat.abs(), descending=True, stable=True).indices
        idx = torch.sort(order[:k]).values
    return idx, flat[idx]


def _quantize(values: torch.Tensor, quant: str, name: str) -> dict[str, torch.Tensor]:
    """Encode float values (any shape) per ``quant``; the suffix -> tensor mapping of the file."""
    v64 = values.double()
    if quant == "float32":
        return {"values": values.to(torch.float32)}
    if quant == "float16":
        peak = float(v64.abs().max()) if v64.numel() else 0.0
        if peak > _F16_MAX:
            raise WeightsError(f"{name}: |value| {peak:.3g} does not fit in float16 (max {_F16_MAX})")
        return {"values": values.to(torch.float16)}
    if quant == "int8":
        peak = float(v64.abs().max()) if v64.numel() else 0.0
        scale = torch.tensor([peak / 127.0], dtype=torch.float32)
        s = float(scale)
        q = torch.zeros_like(v64) if s == 0.0 else torch.round(v64 / s).clamp_(-127, 127)
        return {"values": q.to(torch.int8), "scale": scale}
    if quant == "int8-affine":
        lo = min(float(v64.min()), 0.0) if v64.numel() else 0.0
        hi = max(float(v64.max()), 0.0) if v64.numel() else 0.0
        scale = torch.tensor([(hi - lo) / 255.0], dtype=torch.float32)
        s = float(scale)
        zp = 0 if s == 0.0 else int(min(255, max(0, round(-lo / s))))
        q = torch.full_like(v64, zp) if s == 0.0 else (torch.round(v64 / s) + zp).clamp_(0, 255)
        return {"values": q.to(torch.uint8), "scale": scale,
                "zero_point": torch.tensor([zp], dtype=torch.uint8)}  # fmt: skip
    raise ValueError(quant)


def compress(delta: State, scheme: str | Scheme) -> bytes:
    """Canonical safetensors bytes of ``delta`` under ``scheme`` (deterministic: stable sha256).

    Raises WeightsError for NaN/Inf input or values that the scheme cannot represent."""
    sch = get_scheme(scheme)
    if sch.lossless:
        return serialize.dumps(delta)
    layout = {k: (tuple(delta[k].shape), delta[k].dtype) for k in sorted(delta)}
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(delta):
        t = delta[name].detach().to("cpu")
        if not t.is_floating_point():
            tensors[f"{name}/values"] = t.contiguous()
            continue
        if t.dtype not in _DTYPE_NAMES:
            raise WeightsError(f"{name}: unsupported dtype {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{name}: contains NaN or Inf")
        flat = t.reshape(-1)
        if sch.topk is not None:
            idx, vals = _topk(flat, sch.k(flat.numel()))
            tensors[f"{name}/indices"] = idx.to(_index_dtype(flat.numel()))
        else:
            vals = t
        for suffix, enc in _quantize(vals, sch.quant, name).items():
            tensors[f"{name}/{suffix}"] = enc
    return _write(tensors, _metadata(sch, layout))


# ---------------------------------------------------------------------------------------------- decode


def scheme_of(data: bytes) -> Scheme:
    """The scheme a file declares (header only; nothing validated beyond parsing)."""
    meta = parse_header(bytes(data)).get("__metadata__")
    if not isinstance(meta, dict):
        raise WeightsError("no __metadata__: not a fedcommittee weights file")
    if "encoding" not in meta:
        if meta == _BASE_METADATA:
            return Scheme("float32")
        raise WeightsError(f"unknown weights metadata {sorted(meta)}")
    if meta.get("encoding") != ENCODING:
        raise WeightsError(f"unsupported encoding {meta.get('encoding')!r} (expected {ENCODING!r})")
    try:
        sch = get_scheme(meta.get("scheme", ""))
    except ValueError as exc:
        raise WeightsError(f"bad scheme in metadata: {exc}") from None
    if sch.name != meta.get("scheme"):
        raise WeightsError(f"scheme {meta.get('scheme')!r} is not canonical (expected {sch.name!r})")
    return sch


def _dequantize(parts: dict[str, torch.Tensor], quant: str, name: str) -> torch.Tensor:
    """float64 values from one parameter's sent tensors; checks scale / NaN / Inf."""
    vals = parts["values"]
    if quant in ("float32", "float16"):
        if not bool(torch.isfinite(vals).all()):
            raise WeightsError(f"{name}: contains NaN or Inf")
        return vals.double()
    s = float(parts["scale"][0])
    if not math.isfinite(s) or s < 0.0:
        raise WeightsError(f"{name}: scale {s} must be finite and >= 0")
    if quant == "int8":
        if bool((vals == -128).any()):
            raise WeightsError(f"{name}: symmetric int8 value -128 is outside [-127, 127]")
        return vals.double() * s
    zp = int(parts["zero_point"][0])
    return (vals.double() - zp) * s


def decompress(
    data: bytes,
    model_name: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    scheme: str | Scheme | None = None,
) -> State:
    """Validate a (possibly compressed) delta for ``model_name`` and return it as a dense state dict in
    the architecture's dtypes. With ``scheme`` set, the file must use exactly that scheme (e.g. the
    one recorded on the ledger for the round). Raises WeightsError naming the problem."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WeightsError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise WeightsError(f"oversize: {len(data)} bytes > limit {max_bytes}")
    sch = scheme_of(data)  # also refuses pickle / zip / gzip / garbage
    if scheme is not None:
        want = get_scheme(scheme)
        if want != sch:
            raise WeightsError(f"scheme {sch.name!r} but {want.name!r} is required")
    layout = state_layout(model_name)
    if sch.lossless:
        state = serialize.loads(data, model_name, max_bytes)
        if serialize.dumps(state) != data:
            raise WeightsError("not canonical: bytes differ from the canonical encoding of their tensors")
        return state
    meta = _check_header(data, sch, layout, model_name)
    try:
        tensors = _st_load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt payloads
        raise WeightsError(f"corrupt safetensors payload: {exc}") from None
    if _write(tensors, meta) != data:
        raise WeightsError("not canonical: bytes differ from the canonical encoding of their tensors")
    return {name: _dense(tensors, name, shape, dtype, sch) for name, (shape, dtype) in sorted(layout.items())}


def _check_header(data: bytes, sch: Scheme, layout, model_name: str) -> dict[str, str]:
    """The header of a compressed delta, checked against what ``sch`` writes for ``model_name``
    before any tensor is built; returns its ``__metadata__``."""
    header = parse_header(data)
    meta = header.pop("__metadata__")
    want_meta = _metadata(sch, layout)
    if not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError("__metadata__ values must be strings")
    if meta.get("tensors") != want_meta["tensors"]:
        raise WeightsError(f"declared tensors (names, shapes, dtypes) do not match {model_name}")
    if meta != want_meta:
        diff = sorted(k for k in set(meta) | set(want_meta) if meta.get(k) != want_meta.get(k))
        raise WeightsError(f"__metadata__ does not match scheme {sch.name!r}: fields {diff}")
    expected = _expected_entries(sch, layout)
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        raise WeightsError(f"tensor names do not match {model_name}/{sch.name}: missing {missing}, "
                           f"unexpected {extra}")  # fmt: skip
    for name, (shape, dtype) in expected.items():
        info = header[name]
        if not isinstance(info, dict):
            raise WeightsError(f"{name}: malformed header entry")
        if _DTYPES.get(info.get("dtype")) != dtype:
            raise WeightsError(
                f"{name}: dtype {info.get('dtype')} but {sch.name} expects {_DTYPE_NAMES[dtype]}"
            )
        if not isinstance(info.get("shape"), list) or tuple(info["shape"]) != shape:
            raise WeightsError(f"{name}: shape {info.get('shape')} but {sch.name} expects {list(shape)}")
    return meta


def _dense(
    tensors: dict[str, torch.Tensor], name: str, shape, dtype: torch.dtype, sch: Scheme
) -> torch.Tensor:
    """One tensor of the architecture from its compressed parts: dequantized, top-k scattered back."""
    if not dtype.is_floating_point:
        return tensors[f"{name}/values"].contiguous()
    parts = {s: tensors[f"{name}/{s}"] for s in ("values", "scale", "zero_point")
             if f"{name}/{s}" in tensors}  # fmt: skip
    vals = _dequantize(parts, sch.quant, name)
    numel = math.prod(shape)
    if sch.topk is not None:
        idx = tensors[f"{name}/indices"].to(torch.int64)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= numel):
            raise WeightsError(f"{name}: top-k index out of range [0, {numel})")
        if idx.numel() > 1 and not bool((idx[1:] > idx[:-1]).all()):
            raise WeightsError(f"{name}: top-k indices must be strictly increasing (no duplicates)")
        dense = torch.zeros(numel, dtype=torch.float64)
        dense[idx] = vals
        vals = dense
    result = vals.reshape(shape).to(dtype)
    if not bool(torch.isfinite(result).all()):
        raise WeightsError(f"{name}: decodes to NaN or Inf in {dtype}")
    return result.contiguous()


# ------------------------------------------------------------------------------------------- helpers


def roundtrip(delta: State, scheme: str | Scheme, model_name: str) -> State:
    """What the committee will see: ``decompress(compress(delta, scheme), model_name, scheme=...)``."""
    return decompress(compress(delta, scheme), model_name, max_bytes=1 << 62, scheme=scheme)


def compressed_size(delta: State, scheme: str | Scheme) -> int:
    """Bytes on the wire for this delta under ``scheme``."""
    return len(compress(delta, scheme))


def encoded_size(model_name: str, scheme: str | Scheme) -> int:
    """Exact size of any delta of ``model_name`` under ``scheme`` (it depends only on the layout):
    usable as the expected size, or to set ``max_bytes`` tightly."""
    zeros = {k: torch.zeros(shape, dtype=dt) for k, (shape, dt) in state_layout(model_name).items()}
    return compressed_size(zeros, scheme)


def size_ratio(model_name: str, scheme: str | Scheme) -> float:
    """encoded_size(scheme) / encoded_size(float32) for this architecture."""
    return encoded_size(model_name, scheme) / encoded_size(model_name, "float32")


class ErrorFeedback:
    """Provider-side error feedback (Seide et al. 2014; Karimireddy et al. 2019): what a lossy scheme
    dropped this round is added to next round's delta, so top-k / int8 errors do not accumulate as bias.
    Purely local state; the wire format and committee checks are unchanged."""

    def __init__(self, scheme: str | Scheme, model_name: str) -> None:
        self.scheme = get_scheme(scheme)
        self.model_name = model_name
        self.residual: State | None = None

    def compress(self, delta: State) -> bytes:
        corrected = delta if self.residual is None else {k: delta[k] + self.residual[k] for k in delta}
        blob = compress(corrected, self.scheme)
        sent = decompress(blob, self.model_name, max_bytes=1 << 62, scheme=self.scheme)
        self.residual = {k: (corrected[k] - sent[k]).contiguous() for k in sorted(corrected)}
        return blob
