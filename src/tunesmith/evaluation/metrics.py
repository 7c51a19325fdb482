"""Task metrics as pure functions (no models, no I/O), and the paired bootstrap.

Classification: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix. An invalid
prediction (None: not one of the labels) counts as wrong for every class.
NER: entity-level precision/recall/F1 on exact (text, type) matches, micro over all entities,
and per type. Unparseable output predicts no entity (and is counted as invalid by the caller).
Chat: exact match and token F1 after SQuAD-style normalisation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

INVALID = "(invalid)"


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 from counts (0 where undefined)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def classification_metrics(gold: Sequence[str], pred: Sequence[str | None],
                           labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 (mean over `labels`), per-class P/R/F1 and the confusion matrix.

    Example:
        >>> m = classification_metrics(["a", "a", "b"], ["a", "b", None], ["a", "b"])
        >>> round(m["accuracy"], 3), m["invalid"], m["confusion"]["matrix"]
        (0.333, 1, [[1, 1, 0], [0, 0, 1]])
    """
    assert len(gold) == len(pred)
    per_class = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        per_class[label] = {**prf(tp, fp, fn), "support": sum(g == label for g in gold)}
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * (len(labels) + 1) for _ in labels]  # rows: gold, columns: predicted + invalid
    for g, p in zip(gold, pred):
        if g in index:
            matrix[index[g]][index.get(p, len(labels)) if p is not None else len(labels)] += 1
    n = len(gold)
    return {
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / n if n else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])) if per_class else 0.0,
        "per_class": per_class,
        "invalid": sum(p is None for p in pred),
        "confusion": {"labels": list(labels), "columns": [*labels, INVALID], "matrix": matrix},
    }


Entity = tuple[str, str]


def entity_metrics(gold: Sequence[Sequence[Entity]], pred: Sequence[Sequence[Entity]]) -> dict:
    """Entity-level micro P/R/F1 and per-type F1 on exact (text, type) matches.

    Each side is a multiset per example: predicting an entity twice when it occurs once gives one
    true positive and one false positive.

    Example:
        >>> m = entity_metrics([[("Paris", "loc"), ("Bob", "per")]], [[("Paris", "loc"), ("Bob", "org")]])
        >>> m["precision"], m["recall"], m["per_type"]["per"]["recall"]
        (0.5, 0.5, 0.0)
    """
    totals: Counter[str] = Counter()
    per_type: dict[str, Counter[str]] = {}
    for g, p in zip(gold, pred):
        gc, pc = Counter(g), Counter(p)
        for entity in gc | pc:
            kind = entity[1]
            tp = min(gc[entity], pc[entity])
            c = per_type.setdefault(kind, Counter())
            c["tp"] += tp
            c["fp"] += pc[entity] - tp
            c["fn"] += gc[entity] - tp
            totals["tp"] += tp
            totals["fp"] += pc[entity] - tp
            totals["fn"] += gc[entity] - tp
    return {**prf(totals["tp"], totals["fp"], totals["fn"]),
            "per_type": {k: {**prf(c["tp"], c["fp"], c["fn"]), "support": c["tp"] + c["fn"]}
                         for k, c in sorted(per_type.items())},
            "counts": dict(totals)}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Overlap F1 of normalised tokens (SQuAD's)."""
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def paired_bootstrap(
    metric: Callable[[np.ndarray], tuple[float, float]], n: int, resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """95% confidence interval of the difference `a - b` of a metric between two approaches
    scored on the same `n` examples, by resampling examples with replacement (paired: both
    approaches see the same resample).

    Args:
        metric: given an index array, returns (metric of a, metric of b) on those examples.
        n: number of test examples.

    Returns:
        {"diff": a - b on all examples, "low": 2.5th percentile, "high": 97.5th percentile}.
    """
    rng = np.random.default_rng(seed)
    a, b = metric(np.arange(n))
    diffs = np.empty(resamples)
    for i in range(resamples):
        ra, rb = metric(rng.integers(0, n, n))
        diffs[i] = ra - rb
    return {"diff": a - b, "low": float(np.percentile(diffs, 2.5)),
            "high": float(np.percentile(diffs, 97.5))}


# ---- the same metrics on resamples of the examples (vectorised, for the bootstrap) ----------


def macro_f1_sampler(gold: Sequence[str], pred: Sequence[str | None],
                     labels: Sequence[str]) -> Callable[[np.ndarray], float]:
    """Macro-F1 over `labels` on the examples an index array picks (equal to
    `classification_metrics(...)["macro_f1"]` on `np.arange(n)`; 2,000 resamples of a 77-label
    macro-F1 take well under a second)."""
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    g_all = np.array([index.get(g, k) for g in gold], dtype=int)
    p_all = np.array([index.get(p, k) if p is not None else k for p in pred], dtype=int)

    def macro_f1(idx: np.ndarray) -> float:
        g, p = g_all[idx], p_all[idx]
        tp = np.bincount(g[g == p], minlength=k + 1)[:k]
        fp = np.bincount(p, minlength=k + 1)[:k] - tp
        fn = np.bincount(g, minlength=k + 1)[:k] - tp
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
        return float(f1.mean()) if k else 0.0

    return macro_f1


def entity_f1_sampler(gold: Sequence[Sequence[Entity]],
                      pred: Sequence[Sequence[Entity]]) -> Callable[[np.ndarray], float]:
    """Micro entity F1 on the examples an index array picks (as `entity_metrics`)."""
    counts = []
    for g, p in zip(gold, pred):
        gc, pc = Counter(g), Counter(p)
        tp = sum((gc & pc).values())
        counts.append((tp, sum(pc.values()) - tp, sum(gc.values()) - tp))
    arr = np.array(counts, dtype=float).reshape(-1, 3)

    def entity_f1(idx: np.ndarray) -> float:
        tp, fp, fn = arr[idx].sum(0)
        return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0

    return entity_f1


def mean_sampler(values: Sequence[float]) -> Callable[[np.ndarray], float]:
    """The mean of per-example values (token F1) on the examples an index array picks."""
    arr = np.asarray(values, dtype=float)
    return lambda idx: float(arr[idx].mean()) if len(idx) else 0.0
