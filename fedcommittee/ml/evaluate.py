"""Model quality on a labelled set: loss, accuracy, per-class accuracy, macro F1.

Used by the committee (scores on its shard), by the benchmark and by the final report. Evaluation
is deterministic (eval mode, fixed batch order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fedcommittee.ml.data import Dataset
from fedcommittee.ml.models import State, as_input, loaded


@dataclass(frozen=True)
class EvalResult:
    loss: float
    accuracy: float
    macro_f1: float
    per_class_accuracy: tuple[float, ...]
    n: int

    def as_dict(self) -> dict[str, float | list[float]]:
        return {"loss": self.loss, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class_accuracy": list(self.per_class_accuracy), "n": self.n}  # fmt: skip


def predict_logits(model_name: str, state: State, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model = loaded(model_name, state)
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(as_input(x[i : i + batch_size])) for i in range(0, x.shape[0], batch_size)])


def metrics_from_logits(logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> EvalResult:
    loss = float(F.cross_entropy(logits.double(), y, reduction="mean"))
    pred = logits.argmax(dim=1).numpy()
    true = y.numpy()
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    per_class = tuple(float(tp[c] / support[c]) if support[c] else float("nan") for c in range(n_classes))
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    present = support > 0
    macro_f1 = float(f1[present].mean()) if present.any() else 0.0
    return EvalResult(loss, float(tp.sum() / max(len(true), 1)), macro_f1, per_class, int(len(true)))


def per_sample_loss(model_name: str, state: State, dataset: Dataset, batch_size: int = 256) -> torch.Tensor:
    """Cross-entropy of every sample (float64, in dataset order): paired comparisons of two models."""
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    logits = predict_logits(model_name, state, dataset.x, batch_size)
    return F.cross_entropy(logits.double(), dataset.y, reduction="none")


def evaluate(model_name: str, state: State, dataset: Dataset, batch_size: int = 256) -> EvalResult:
    """Evaluate weights ``state`` of architecture ``model_name`` on ``dataset``."""
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    logits = predict_logits(model_name, state, dataset.x, batch_size)
    return metrics_from_logits(logits, dataset.y, dataset.n_classes)
