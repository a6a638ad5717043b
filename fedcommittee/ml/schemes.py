"""Names of the wire encodings of a delta (``ml.compress``), parsed without torch so that a config
can be checked by a process that never trains (fedcommittee.experiment)."""

from __future__ import annotations

import math
from dataclasses import dataclass

QUANTS = ("float32", "float16", "int8", "int8-affine")


@dataclass(frozen=True)
class Scheme:
    """A wire encoding: a value quantization and an optional top-k fraction (0 < topk <= 1)."""

    quant: str = "float32"
    topk: float | None = None

    def __post_init__(self) -> None:
        if self.quant not in QUANTS:
            raise ValueError(f"unknown quantization {self.quant!r}; known: {list(QUANTS)}")
        if self.topk is not None:
            if not isinstance(self.topk, float | int) or not math.isfinite(self.topk):
                raise ValueError(f"top-k fraction must be a finite number, got {self.topk!r}")
            if not 0.0 < float(self.topk) <= 1.0:
                raise ValueError(f"top-k fraction must be in (0, 1], got {self.topk}")
            object.__setattr__(self, "topk", float(self.topk))

    @property
    def name(self) -> str:
        if self.topk is None:
            return self.quant
        tk = f"topk:{self.topk!r}"
        return tk if self.quant == "float32" else f"{self.quant}+{tk}"

    @property
    def lossless(self) -> bool:
        return self.quant == "float32" and self.topk is None

    def k(self, numel: int) -> int:
        """Entries kept for a tensor of ``numel`` elements: ceil(topk * numel), at least 1."""
        if self.topk is None or numel == 0:
            return numel
        return max(1, min(numel, math.ceil(self.topk * numel - 1e-9)))

    def __str__(self) -> str:
        return self.name


def get_scheme(scheme: str | Scheme) -> Scheme:
    """Parse ``"int8+topk:0.1"`` (parts joined by ``+``, any order; at most one quantization and one
    ``topk:F``) into a Scheme. ``"float32+topk:0.1"`` is the same scheme as ``"topk:0.1"``."""
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, str) or not scheme.strip():
        raise ValueError(f"scheme must be a non-empty string, got {scheme!r}")
    quant: str | None = None
    topk: float | None = None
    for part in scheme.strip().lower().split("+"):
        part = part.strip()
        if part.startswith("topk:"):
            if topk is not None:
                raise ValueError(f"scheme {scheme!r}: more than one topk part")
            try:
                topk = float(part[5:])
            except ValueError:
                raise ValueError(f"scheme {scheme!r}: bad top-k fraction {part[5:]!r}") from None
            if not math.isfinite(topk):
                raise ValueError(f"scheme {scheme!r}: top-k fraction must be finite")
        elif part in QUANTS:
            if quant is not None:
                raise ValueError(f"scheme {scheme!r}: more than one quantization")
            quant = part
        else:
            raise ValueError(f"scheme {scheme!r}: unknown part {part!r}; use {list(QUANTS)} or topk:F")
    return Scheme(quant or "float32", topk)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("float32"), Scheme("float16"), Scheme("int8"), Scheme("int8-affine"),
        Scheme("float32", 0.1), Scheme("float32", 0.01), Scheme("float16", 0.1),
        Scheme("int8", 0.1), Scheme("int8", 0.01), Scheme("int8-affine", 0.1),
    )
}  # fmt: skip


def list_schemes() -> list[str]:
    return list(SCHEMES)
