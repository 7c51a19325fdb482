"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): a prompt leans toward some
labels whatever the input (the label listed first, the one its last shot shows, a frequent
word). Scoring the labels on content-free inputs ("N/A", "", "[MASK]") measures that lean, and
dividing it out corrects it:

    p_cf       = mean over content-free inputs of softmax over labels of their scores
    calibrated = log p(label | input) - log p_cf(label)

On a model that always prefers label A by a constant margin, this turns a constant answer into
the right one (tested). With per-input shots each input gets its own prior (one content-free
input, "N/A", with that input's shots).
"""

from __future__ import annotations

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.prompting.prompter import Prompter


def log_priors(scores: np.ndarray) -> np.ndarray:
    """Log of the mean label distribution of rows of label log-scores (labels a row never
    scored count as probability 0; a floor keeps the log finite)."""
    finite = np.where(np.isfinite(scores), scores, -1e4)
    shifted = finite - finite.max(-1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(-1, keepdims=True)
    return np.log(np.maximum(probs.mean(0), 1e-9))


def label_offsets(backend, prompter: Prompter, examples: list[Example],
                  labels: list[str]) -> np.ndarray:
    """The offsets to subtract from each example's label scores: (labels,) when every input
    shares its shots, else (examples, labels)."""
    if prompter.shared_shots:
        scored = backend.label_scores(prompter.content_free(), labels, exhaustive=True)
        return log_priors(scored.scores)
    conversations = [prompter.content_free(e)[0] for e in examples]
    scored = backend.label_scores(conversations, labels, exhaustive=True)
    return np.stack([log_priors(row[None]) for row in scored.scores])
