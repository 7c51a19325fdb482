"""A run's inputs: its data files read, checked against the loss, and tokenized with the loss
mask (only answer tokens are learned, only messages whose weight is not 0)."""

from __future__ import annotations

import logging
from pathlib import Path

from tunesmith.config import TrainConfig
from tunesmith.data.examples import Example
from tunesmith.data.formats import read_dataset
from tunesmith.data.preference import PreferenceExample
from tunesmith.data.render import Tokenized, check_tools
from tunesmith.data.taskfile import read_task
from tunesmith.data.tokencache import tokenize_many
from tunesmith.errors import InvalidDataError, UsageError
from tunesmith.training.objectives import Objective

log = logging.getLogger(__name__)


def read_examples(path: str) -> list[Example]:
    data = read_dataset(path)
    if data.errors:
        raise InvalidDataError(path, data.errors, f"{len(data.errors)} errors; run `tunesmith data "
                               "check` on it for details.")
    spec = read_task(Path(path).parent)
    return [e.with_system(spec.system if spec else None) for e in data.examples]


def tokenize_items(objective, tokenizer, examples: list[Example], max_seq_len: int,
              name: str, model: str, source: str) -> list[Tokenized]:
    check_tools(tokenizer, examples, model, f"the {name} file")  # not silently dropped
    if isinstance(objective, Objective) and objective.head == "lm":
        # batched, and cached by the file's and the tokenizer's contents (a resume or a second
        # run of the same data reads the arrays back)
        spec = read_task(Path(source).parent)
        items = tokenize_many(tokenizer, examples, max_seq_len, source,
                              spec.system if spec else None)
    else:
        items = [objective.tokenize(tokenizer, e, max_seq_len) for e in examples]
    truncated = sum(x.truncated for x in items)
    kept = [x for x in items if x.n_loss_tokens > 0]
    if truncated:
        log.warning("%s: %d examples longer than --max-seq-len %d were truncated", name, truncated,
                    max_seq_len)
    if len(kept) < len(items):
        log.warning("%s: %d examples have no answer token left after truncation and are skipped",
                    name, len(items) - len(kept))
    if name == "train" and not kept:
        raise UsageError("no training example has an answer token to learn from.")
    return kept


def check_loss_fits_data(config: TrainConfig, examples: list[Example]) -> None:
    """DPO needs preference rows; supervised training is refused on them (which answer would
    it learn?)."""
    pairs = sum(isinstance(e, PreferenceExample) for e in examples)
    if config.loss == "dpo" and pairs < len(examples):
        raise UsageError(f"{config.train_file}: --method dpo needs preference rows "
                         '({"input": ..., "preferred_output": [...], "non_preferred_output": '
                         "[...]}); this file holds chat examples.")
    if config.loss == "sft" and pairs:
        raise UsageError(f"{config.train_file} holds preference rows (preferred and "
                         "non-preferred outputs): train them with --method dpo (LoRA) or "
                         "--method full-dpo.")
