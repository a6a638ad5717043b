"""The data side of the protocol, computed the same way by every role: validation shards on the wire
(.npz, no pickle), the kind of data an architecture consumes, the publisher's declared profile and a
provider's data registration.
"""

from __future__ import annotations

import io

from fedcommittee.experiment import Experiment

__all__ = [
    "data_kind",
    "data_registration",
    "decode_dataset",
    "declared_profile",
    "encode_dataset",
]


def encode_dataset(ds) -> bytes:
    """A Dataset as an .npz (x float32, y int64): no pickle."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=ds.x.numpy().astype(np.float32), y=ds.y.numpy().astype(np.int64))
    return buf.getvalue()


def decode_dataset(data: bytes, n_classes: int):
    import numpy as np
    import torch

    from fedcommittee.ml.data import Dataset

    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    if x.dtype != np.float32 or y.dtype != np.int64 or x.ndim != 4 or len(x) != len(y):
        raise ValueError("validation shard: expected x float32 NCHW and y int64 of equal length")
    if not np.isfinite(x).all() or (y < 0).any() or (y >= n_classes).any():
        raise ValueError("validation shard: non-finite inputs or labels out of range")
    return Dataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), n_classes)


def data_kind(model_name: str) -> tuple[str, str]:
    """(dataType, format) of the data an architecture consumes, as declared and registered on chain."""
    from fedcommittee import ml

    c, h, w = ml.get_spec(model_name).input_shape
    return "image", f"float32-{c}x{h}x{w}"


def declared_profile(exp: Experiment) -> dict:
    """The publisher's declaration (``profile`` in PublishModel) that the committee approves against."""
    from fedcommittee.experiment import data_split
    from fedcommittee.ml.models import num_parameters

    data_type, fmt = data_kind(exp.model)
    # By default the least data a round can close with: the min_accepted smallest providers' data.
    # Declaring everyone's would make one slow-starting provider block the model's approval.
    sizes = sorted(len(p) for p in data_split(exp).partition)
    samples = exp.profile.training_samples or sum(sizes[: exp.min_accepted])
    purpose = exp.profile.purpose or f"{exp.name}: {exp.model} trained on {exp.data.source}"
    return {
        "purpose": purpose,
        "dataType": data_type,
        "dataFormat": fmt,
        "trainingSamples": int(samples),
        "parameters": int(num_parameters(exp.model)),
    }


def data_registration(exp: Experiment, labels, n_classes: int) -> dict:
    """A provider's RegisterData document: counts and kind only; the label histogram only with consent."""
    import numpy as np

    data_type, fmt = data_kind(exp.model)
    doc = {"numSamples": int(len(labels)), "dataType": data_type, "format": fmt,
           "shareHistogram": exp.data.share_histogram}  # fmt: skip
    if exp.data.share_histogram:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
        doc["labelHistogram"] = {str(i): int(c) for i, c in enumerate(counts) if c}
    return doc
