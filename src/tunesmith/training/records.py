"""What a run writes as it goes: metrics.jsonl (every record), results.csv (OpenAI's columns)
and loss.png (learning curves)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from tunesmith.atomic import atomic_open, write_text
from tunesmith.errors import UnusableInputError

log = logging.getLogger(__name__)

RESULTS_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
"""The columns of the results file OpenAI's fine-tuning jobs produce."""
PREFERENCE_COLUMNS = ("step", "train_loss", "train_preference_accuracy", "train_reward_margin",
                      "valid_loss", "valid_preference_accuracy", "valid_reward_margin")
"""A DPO run's columns: the DPO loss, the share of pairs ranked right, the mean reward margin."""


class MetricsLog:
    """Append-only `metrics.jsonl`. On resume, records after the checkpoint's step are dropped
    (they are about to be produced again)."""

    def __init__(self, path: Path, keep_until_step: int | None = None) -> None:
        self.path = path
        self.records: list[dict] = []
        if keep_until_step is not None and path.is_file():
            self.records = [r for r in read_metrics(path) if r.get("step", 0) <= keep_until_step]
        with atomic_open(path) as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)

    def write(self, record: dict) -> None:
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def columns(records: list[dict]) -> tuple[str, ...]:
    preference = any("train_preference_accuracy" in r for r in records)
    return PREFERENCE_COLUMNS if preference else RESULTS_COLUMNS


def results_rows(records: list[dict]) -> list[dict]:
    """One row per training step in OpenAI's results.csv shape (validation columns empty where
    that step had no evaluation)."""
    names = columns(records)
    source = {"train_accuracy": "train_mean_token_accuracy"}  # OpenAI's column name
    rows: dict[int, dict] = {}
    for r in records:
        step = r.get("step")
        if step is None or step == 0 or "full_valid_loss" in r:
            continue
        row = rows.setdefault(step, {c: "" for c in names} | {"step": step})
        for column in names[1:]:
            key = source.get(column, column)
            if key in r:
                row[column] = round(r[key], 6)
    return [rows[k] for k in sorted(rows)]


def write_results_csv(path: Path, records: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(records), lineterminator="\n")
    writer.writeheader()
    writer.writerows(results_rows(records))
    write_text(path, buf.getvalue())


def plot_loss(path: Path, records: list[dict], title: str = "") -> None:
    """Training loss per step, validation loss (small batch) and full validation loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    series = (("train_loss", "train", "-", None), ("valid_loss", "valid (batch)", "--", "o"),
              ("full_valid_loss", "valid (full, epoch end)", "none", "s"))
    for key, label, style, marker in series:
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, linestyle=style, marker=marker, markersize=5, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per answer token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def named(sums: list[float], prefix: str, stat_names: tuple[str, ...]) -> dict[str, float]:
    """(loss sum, count, statistic sums...) -> {prefix_loss: mean, prefix_<stat>: mean, ...}."""
    n = max(sums[1], 1)
    return {f"{prefix}_loss": sums[0] / n,
            **{f"{prefix}_{name}": value / n for name, value in zip(stat_names, sums[2:])}}


def read_metrics(path: Path) -> list[dict]:
    """The records of a `metrics.jsonl`. A last line cut short (the run was killed while writing
    it) is dropped with a warning; a broken line before the last is an error.

    Raises:
        UnusableInputError: a line other than the last is not a JSON object.
    """
    lines = path.read_text("utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            if number == len(lines):
                log.warning("%s: line %d is cut short (a kill while it was written); dropped",
                            path, number)
                break
            raise UnusableInputError(path, f"not a metrics record: {e}", line=number) from e
        if not isinstance(record, dict):
            raise UnusableInputError(path, "not a metrics record (a JSON object)", line=number)
        records.append(record)
    return records


def training_time(records: list[dict]) -> tuple[float, int]:
    """(seconds the optimizer steps took, tokens trained) from a run's step records, each with
    its measured `tokens` and `tokens_per_s` (validation passes not counted)."""
    steps = [r for r in records if r.get("tokens_per_s")]
    return (sum(r["tokens"] / r["tokens_per_s"] for r in steps),
            sum(int(r["tokens"]) for r in steps))


def describe(measured: dict[str, float]) -> str:
    """`loss 0.4213, mean_token_accuracy 0.8120` for a log line."""
    return ", ".join(f"{k.split('_', 2)[-1] if k.startswith('full_valid') else k} {v:.4f}"
                     for k, v in measured.items())


def latest_metrics(records: list[dict]) -> dict:
    """The newest value of every metric (OpenAI's checkpoint `metrics`)."""
    out: dict = {}
    for r in records:
        out.update({k: v for k, v in r.items() if k not in ("epoch", "tokens", "tokens_per_s")})
    return out
