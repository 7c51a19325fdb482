"""Report figures: confusion matrix (classification), per-type F1 (NER) and the learning curve."""

from __future__ import annotations

from pathlib import Path

from tunesmith.atomic import atomic_open


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=110)


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def plot_confusion(confusion: dict, path: Path, title: str) -> None:
    """Rows: true label; columns: predicted label (+ invalid). Large label sets drop the tick text."""
    import numpy as np

    matrix = np.array(confusion["matrix"], dtype=float)
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    k = len(confusion["labels"])
    size = min(9, 3 + 0.35 * k)
    plt, fig, ax = _figure(size + 1, size)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    if k <= 25:
        ax.set_xticks(range(k + 1), confusion["columns"], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(k), confusion["labels"], fontsize=7)
        if k <= 12:
            for i in range(k):
                for j in range(k + 1):
                    if matrix[i, j]:
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true label's examples")
    _save(plt, fig, path)


def plot_per_type(per_type: dict[str, dict[str, dict]], path: Path) -> None:
    """Grouped bars: F1 per entity type for each approach."""
    import numpy as np

    types = sorted({t for m in per_type.values() for t in m})
    plt, fig, ax = _figure(7, 3.8)
    width = 0.8 / max(len(per_type), 1)
    for i, (name, metrics) in enumerate(per_type.items()):
        ax.bar(np.arange(len(types)) + i * width, [metrics.get(t, {}).get("f1", 0) for t in types],
               width, label=name)
    ax.set_xticks(np.arange(len(types)) + width * (len(per_type) - 1) / 2, types, rotation=30,
                  ha="right")
    ax.set_ylabel("entity F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(plt, fig, path)


def plot_curve(doc: dict, path: Path, fitted: tuple | None = None) -> None:
    """curve.png: the measured points with their 95% intervals, the fitted curve `fitted`
    ((sizes, metric values), drawn as given), prompting rows as bands, the target as a line."""
    import numpy as np

    plt, fig, ax = _figure(7, 4.2)
    points = doc["points"]
    if points:
        n = np.array([p["n"] for p in points], dtype=float)
        m = np.array([p["metric"] for p in points])
        below = np.clip(m - [p["low"] for p in points], 0, None)
        above = np.clip([p["high"] for p in points] - m, 0, None)
        ax.errorbar(n, m, yerr=[below, above],
                    fmt="o", color="C0", capsize=3, label=f"fine-tuned ({doc['method']}), 95% CI")
        if fitted is not None and doc["fit"]:
            ax.plot(*fitted, "-", color="C0", alpha=0.6, label=f"fit: {doc['fit']['form']}")
    for i, band in enumerate(doc["prompting"]):
        ax.axhspan(band["low"], band["high"], color=f"C{i + 1}", alpha=0.15)
        ax.axhline(band["metric"], color=f"C{i + 1}", lw=1, label=f"{band['name']} (prompt)")
    if doc.get("target") is not None:
        ax.axhline(doc["target"], color="grey", ls=":", lw=1, label=f"target {doc['target']:g}")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(doc["metric"])
    ax.set_title("Learning curve on the test split")
    ax.legend(fontsize=7, loc="lower right")
    _save(plt, fig, path)
