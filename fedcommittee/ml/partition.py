"""Seeded partitioners that give each simulated data provider its share of a data set.

Each returns a list (one entry per client) of sorted index arrays into the label vector, so a
partition is reproducible from (labels, parameters, seed) alone and can be logged or replotted.
Non-IID partitions matter because committee scoring must not punish honest but skewed providers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Partition = list[np.ndarray]


def _finish(parts: list[list[int]] | list[np.ndarray]) -> Partition:
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _n_classes(labels: np.ndarray, n_classes: int | None) -> int:
    return int(n_classes if n_classes is not None else labels.max() + 1)


def iid(labels: np.ndarray, n_clients: int, seed: int) -> Partition:
    """Shuffle and deal out equal-sized shards: the easy baseline."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    return _finish(np.array_split(perm, n_clients))


def dirichlet(
    labels: np.ndarray,
    n_clients: int,
    alpha: float,
    seed: int,
    n_classes: int | None = None,
    min_size: int = 10,
) -> Partition:
    """Per class, split its samples among clients with proportions ~ Dir(alpha) (small alpha = skewed).

    Re-draws (up to 100 times) until every client has at least ``min_size`` samples."""
    labels = np.asarray(labels)
    k = _n_classes(labels, n_classes)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in range(k):
            idx = np.flatnonzero(labels == c)
            rng.shuffle(idx)
            props = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for i, chunk in enumerate(np.split(idx, cuts)):
                parts[i].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            break
    return _finish(parts)


def dominant_class(
    labels: np.ndarray,
    n_clients: int,
    share: float = 0.8,
    seed: int = 0,
    n_classes: int | None = None,
    classes: list[int] | None = None,
) -> Partition:
    """Client i holds mostly class ``classes[i]`` (default ``i mod n_classes``; fraction ``share``); the
    rest is drawn from the other classes. Clients get (about) the same size, as large as the class
    pools allow. Clients that share a dominant class split its pool; a class that is one client's
    alone is (nearly) absent from everyone else's data, which is why a config may choose."""
    labels = np.asarray(labels)
    k = _n_classes(labels, n_classes)
    rng = np.random.default_rng(seed)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in range(k)}
    dominant = _dominant_classes(classes, n_clients, k)
    # Largest per-client size such that every class pool can serve the demand.
    demand = np.zeros(k)
    for d in dominant:
        demand[d] += share
        for c in range(k):
            if c != d:
                demand[c] += (1 - share) / (k - 1)
    size = int(0.98 * min(len(pools[c]) / demand[c] for c in range(k) if demand[c] > 0))
    n_dom = int(round(size * share))
    owed = np.bincount(dominant, minlength=k) * n_dom  # samples reserved for clients not served yet
    parts: list[list[int]] = []
    for d in dominant:
        owed[d] -= n_dom
        counts = np.zeros(k, dtype=int)
        counts[d] = n_dom
        # Draw the rest from the other classes in proportion to what they can still spare.
        spare = np.array([0 if c == d else max(len(pools[c]) - owed[c], 0) for c in range(k)], dtype=float)
        if spare.sum() > 0:
            counts += rng.multinomial(size - n_dom, spare / spare.sum())
        mine: list[int] = []
        for c in range(k):
            take = min(int(counts[c]), len(pools[c]))
            mine.extend(pools[c][:take])
            pools[c] = pools[c][take:]
        parts.append(mine)
    return _finish(parts)


def _dominant_classes(classes: list[int] | None, n_clients: int, k: int) -> list[int]:
    if classes is None:
        return [i % k for i in range(n_clients)]
    if len(classes) != n_clients:
        raise ValueError(f"dominant_class: 'classes' names {len(classes)} classes for {n_clients} clients")
    if bad := [c for c in classes if not 0 <= c < k]:
        raise ValueError(f"dominant_class: 'classes' has {bad}, outside the data's classes 0..{k - 1}")
    return list(classes)


def one_class_per_client(
    labels: np.ndarray, n_clients: int, seed: int, n_classes: int | None = None
) -> Partition:
    """Pathological split: client i holds only class ``i mod n_classes`` (shared evenly if n > k)."""
    labels = np.asarray(labels)
    k = _n_classes(labels, n_classes)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for c in range(k):
        owners = [i for i in range(n_clients) if i % k == c]
        if not owners:
            continue
        idx = rng.permutation(np.flatnonzero(labels == c))
        for owner, chunk in zip(owners, np.array_split(idx, len(owners)), strict=True):
            parts[owner].extend(chunk.tolist())
    return _finish(parts)


def quantity_skew(
    labels: np.ndarray, n_clients: int, alpha: float = 0.5, seed: int = 0, min_size: int = 10
) -> Partition:
    """IID class mix but client sizes ~ Dir(alpha) of the total (each at least ``min_size``)."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    props = rng.dirichlet(np.full(n_clients, alpha))
    sizes = np.maximum((props * (n - min_size * n_clients)).astype(int), 0) + min_size
    sizes[-1] = n - sizes[:-1].sum()
    perm = rng.permutation(n)
    return _finish(np.split(perm, np.cumsum(sizes)[:-1]))


PARTITIONERS = {
    "iid": iid,
    "dirichlet": dirichlet,
    "dominant_class": dominant_class,
    "one_class_per_client": one_class_per_client,
    "quantity_skew": quantity_skew,
}


def make_partition(name: str, labels: np.ndarray, n_clients: int, seed: int, **params: float) -> Partition:
    """Partition by name, e.g. ``make_partition('dirichlet', y, 10, seed=0, alpha=0.1)``."""
    if name not in PARTITIONERS:
        raise ValueError(f"unknown partitioner {name!r}; known: {sorted(PARTITIONERS)}")
    return PARTITIONERS[name](np.asarray(labels), n_clients, seed=seed, **params)


def summary(partition: Partition, labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Counts table: one row per client, one column per class."""
    labels = np.asarray(labels)
    k = _n_classes(labels, n_classes)
    return np.stack([np.bincount(labels[p], minlength=k) for p in partition])


def format_summary(partition: Partition, labels: np.ndarray, n_classes: int | None = None) -> str:
    """The summary table as aligned text (clients x classes, with row totals)."""
    table = summary(partition, labels, n_classes)
    head = "client " + " ".join(f"{c:>5}" for c in range(table.shape[1])) + "  total"
    rows = [
        f"{i:>6} " + " ".join(f"{v:>5}" for v in row) + f"  {row.sum():>5}" for i, row in enumerate(table)
    ]
    return "\n".join([head, *rows])


def plot_partition(partition: Partition, labels: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Save a stacked bar chart (samples per class for each client) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(partition, labels)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(partition) + 2), 3.5))
    bottom = np.zeros(len(partition))
    cmap = plt.get_cmap("tab10")
    for c in range(table.shape[1]):
        ax.bar(range(len(partition)), table[:, c], bottom=bottom, color=cmap(c % 10), label=str(c))
        bottom += table[:, c]
    ax.set_xlabel("client")
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(title="class", fontsize=6, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
