"""Prompt strategies on tiny fixtures: nearest-neighbour shots, contextual calibration, the
instruction candidates and the validation search (a scripted backend stands in for a model)."""

from __future__ import annotations

import numpy as np

from tunesmith.data.examples import Example, Message
from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.backends import LabelScores
from tunesmith.evaluation.runner import evaluate
from tunesmith.generation import Generated
from tunesmith.prompting.calibration import label_offsets, log_priors
from tunesmith.prompting.prompter import PromptConfig, Prompter, instruction_text
from tunesmith.prompting.similar import NearestShots
from tunesmith.studies.prompt_search import search_prompt

SPEC = TaskSpec("classification", ["billing", "outage"], "Route the message.")


def ex(text: str, label: str, line: int = 0) -> Example:
    return Example(line, [Message("user", text), Message("assistant", label)], label=label)


TRAIN = [ex("my bill doubled this month", "billing", 1), ex("refund my payment please", "billing", 2),
         ex("power is out on my street", "outage", 3), ex("no electricity since noon", "outage", 4),
         ex("charged twice for one payment", "billing", 5), ex("the grid is down again", "outage", 6)]


def test_nearest_shots_are_the_most_similar_and_the_nearest_comes_last():
    knn = NearestShots(TRAIN)
    shots = knn.nearest(ex("I was charged twice for my payment", "billing"), 2)
    assert [s.line for s in shots] == [2, 5]  # 'payment' alone, then 'charged twice ... payment'
    assert knn.nearest(TRAIN[0], 1)[0].line != 1  # an example is never its own shot
    assert knn.nearest(ex("completely unrelated words", "x"), 3) == TRAIN[:3][::-1]


def test_similar_selection_gives_each_input_its_own_shots():
    prompter = Prompter(SPEC, TRAIN, PromptConfig(shots=1, selection="similar"))
    a = prompter.conversation(ex("power cut on the street", "outage"))
    b = prompter.conversation(ex("double charged on my bill", "billing"))
    assert a[1]["content"] == "power is out on my street"
    assert b[1]["content"] == "my bill doubled this month"
    assert not prompter.shared_shots


def test_instruction_candidates():
    assert instruction_text("own", SPEC) == "Route the message."
    assert "billing, outage" in instruction_text("labels", SPEC)
    assert instruction_text("none", SPEC) is None
    convo = Prompter(SPEC, TRAIN, PromptConfig(instruction="none")).conversation(TRAIN[0])
    assert [m["role"] for m in convo] == ["user"]


class Scripted:
    """A backend whose label scores are a fixed function of the conversation: `score(convo)`
    returns a row of log-scores per label."""

    name, context = "scripted", None

    def __init__(self, score):
        self.score, self.calls = score, 0

    def label_scores(self, conversations, labels, *, offsets=None, exhaustive=False):
        self.calls += len(conversations)
        scores = np.array([self.score(c) for c in conversations], dtype=float)
        if offsets is not None:
            scores = scores - offsets
        return LabelScores(scores, [10] * len(conversations), [1] * len(conversations))

    def generate(self, conversations, max_new_tokens):
        return [Generated("billing", 10, 2, "stop") for _ in conversations]

    def answer_room(self, labels):
        return 4

    def reference_loss(self, conversations, answers):
        return None


def _biased(conversation) -> list[float]:
    """Prefers `billing` by a constant 2 nats, plus 1 nat of real signal (none for an input
    without content)."""
    text = conversation[-1]["content"]
    signal = (1.0 if any(w in text for w in ("bill", "pay", "charge", "refund")) else
              -1.0 if any(w in text for w in ("power", "electric", "lights", "grid")) else 0.0)
    return [2.0 + signal, 0.0 - signal]


def test_calibration_turns_a_constant_bias_into_the_right_answer():
    test = [ex("power is out", "outage"), ex("no electricity", "outage"),
            ex("refund my bill", "billing"), ex("charged twice", "billing")]
    plain = evaluate(Scripted(_biased), test, SPEC, prompt=PromptConfig())
    assert plain.predictions == ["billing"] * 4  # the bias wins everywhere
    calibrated = evaluate(Scripted(_biased), test, SPEC, prompt=PromptConfig(calibrate=True))
    assert calibrated.predictions == ["outage", "outage", "billing", "billing"]
    assert calibrated.metrics["accuracy"] == 1.0


def test_log_priors_are_the_mean_label_distribution():
    priors = log_priors(np.log(np.array([[0.9, 0.1], [0.7, 0.3]])))
    assert np.allclose(np.exp(priors), [0.8, 0.2])
    assert np.isfinite(log_priors(np.array([[0.0, -np.inf]]))).all()


def test_per_input_shots_get_per_input_priors():
    prompter = Prompter(SPEC, TRAIN, PromptConfig(shots=1, selection="similar", calibrate=True))
    backend = Scripted(_biased)
    offsets = label_offsets(backend, prompter, TRAIN[:3], SPEC.labels)
    assert offsets.shape == (3, 2) and backend.calls == 3


def test_search_chooses_on_validation_and_never_on_test():
    validation = [ex("power is out", "outage"), ex("refund my bill", "billing"),
                  ex("lights off", "outage"), ex("charged twice", "billing")]
    result = search_prompt(Scripted(_biased), SPEC, TRAIN, validation, shot_counts=(0, 1, 3))
    assert result.best.calibrate and result.best_score == 1.0
    assert result.candidates[0].config == PromptConfig()  # own instruction, zero-shot first
    stages = {c.stage for c in result.candidates}
    assert stages == {"instruction", "shots", "calibration"}
    # later stages replace the best only when strictly better: no shots won (same scores)
    assert result.best.shots == 0
    assert len(result.candidates) == 3 + 4 + 1  # 3 instructions, 2 counts x 2 selections, 1
