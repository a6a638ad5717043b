"""Local training at a data provider: start from the global weights, train, return the delta.

Deterministic given ``cfg.seed``: shuffling uses a private generator and the global torch RNG
(dropout) is seeded inside a forked RNG scope, so a provider can reproduce its own update exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fedcommittee.ml import state as st
from fedcommittee.ml.data import Dataset
from fedcommittee.ml.models import State, as_input, dense_state, loaded


@dataclass(frozen=True)
class TrainConfig:
    """Local work: ``steps`` (fixed number of minibatches) wins over ``epochs`` when set."""

    epochs: int = 1
    steps: int | None = None
    batch_size: int = 32
    optimizer: str = "sgd"  # "sgd" or "adam"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    prox_mu: float = 0.0  # FedProx proximal term (mu/2)*||w - w_global||^2; 0 disables it
    # Logit adjustment by the local label prior (tau * log p_local(y) added to the logits inside the
    # loss only; 0 disables it): a skewed provider then learns what tells classes apart rather than
    # how common its own class is locally (Menon et al., "Long-tail learning via logit adjustment",
    # ICLR 2021). The model it returns predicts from the raw logits as any other.
    logit_adjust: float = 0.0
    seed: int = 0
    progress: bool = False


@dataclass
class Update:
    """What a provider submits: the weight delta, how many samples it trained on, and metrics."""

    delta: State
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)


class Sgd:
    """Stochastic gradient descent with momentum and weight decay: ``torch.optim.SGD``'s update rule
    (no dampening, no Nesterov), step for step the same bits (tests/unit/ml/test_train.py).

    Not ``torch.optim.SGD`` because the first optimizer a process builds imports ``torch._dynamo``
    (``Optimizer.__init__`` is wrapped to disable it): about a second of CPU in every agent process
    that trains (each provider, and each member for its reference), all of them in a run's first
    round on the same cores.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float, momentum: float, weight_decay: float):
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-self.lr)


def _optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> Sgd | torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return Sgd(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'sgd' or 'adam'")


def label_log_prior(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """log of the label frequencies, add-one smoothed so a class the data lacks gets a finite offset."""
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float32) + 1.0
    return torch.log(counts / counts.sum())


def local_train(model_name: str, global_state: State, dataset: Dataset, cfg: TrainConfig) -> Update:
    """Train ``model_name`` from ``global_state`` on ``dataset``; return delta = local - global."""
    if len(dataset) == 0:
        raise ValueError("cannot train on an empty dataset")
    model = loaded(model_name, global_state)
    model.train()
    params = list(model.parameters())
    anchors = [p.detach().clone() for p in params] if cfg.prox_mu > 0 else []
    opt = _optimizer(params, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(dataset)
    bs = min(cfg.batch_size, n)
    total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * ((n + bs - 1) // bs)
    seen = 0
    loss_sum = 0.0
    offsets = cfg.logit_adjust * label_log_prior(dataset.y, dataset.n_classes) if cfg.logit_adjust else None
    t0 = time.perf_counter()
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, desc="local train", leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        perm = torch.randperm(n, generator=gen)
        pos = 0
        for _ in range(total_steps):
            if pos + bs > n:  # next epoch: reshuffle, drop the ragged tail for equal batch sizes
                perm = torch.randperm(n, generator=gen)
                pos = 0
            idx = perm[pos : pos + bs]
            pos += bs
            logits = model(as_input(dataset.x[idx]))
            if offsets is not None:
                logits = logits + offsets
            loss = F.cross_entropy(logits, dataset.y[idx])
            if cfg.prox_mu > 0:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))
                loss = loss + 0.5 * cfg.prox_mu * prox
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    local = dense_state(model)
    delta = st.subtract(local, global_state)
    metrics = {
        "train_loss": loss_sum / max(seen, 1),
        "steps": float(total_steps),
        "samples_processed": float(seen),
        "seconds": elapsed,
        "samples_per_s": seen / elapsed if elapsed > 0 else 0.0,
    }
    return Update(delta=delta, num_samples=n, metrics=metrics)
