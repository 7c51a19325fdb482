"""A model as judge of open-ended answers, checked on the same data before its verdict counts.

    pairwise   each approach's answer against a baseline's (the reference by default) for the
               same input, judged in both orders (FastChat's MT-Bench practice): a verdict that
               flips with the order is a tie. The verdict is a token, A / B / tie, read from the
               judge's label scores (first-token log-probabilities on an endpoint that returns
               them, exact log-likelihoods on a model loaded here), else parsed from its text.
    score      each answer graded 1-10 alone (MT-Bench's single-answer grading), for teams
               without a reference answer.

Figures per approach: win / tie / loss rates, the win rate counting ties as half with a 95%
bootstrap interval over inputs (scipy), the length-controlled win rate (AlpacaEval 2.0's idea:
a logistic regression of the verdict on the tanh-squashed length difference, scikit-learn, read
at zero difference), and the order agreement (the share of pairs whose verdict does not flip).

The judge checks itself (`JudgeChecks`): order agreement; a discrimination probe (the reference
against degraded copies of itself: truncated to half, sentences shuffled, another input's
reference from the same inputs); and, where the answers are labels, agreement with gold when
exactly one answer is right. A judge that fails is reported as not trustworthy, and its
verdicts do not decide.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from tunesmith.evaluation.metrics import normalize_answer

JudgeMode = Literal["pairwise", "score"]
VERDICTS = ("A", "B", "tie")
GRADES = tuple(str(g) for g in range(1, 11))
MIN_ORDER_AGREEMENT = 0.5
"""Below this share of pairs keeping their verdict when the answers swap places, the verdicts
are mostly position, not content: the judge is not trusted."""
LENGTH_BIAS = 0.1
"""A raw win rate this far from the length-controlled one is reported as length bias."""

PAIRWISE_PROMPT = (
    "You are an impartial judge of an assistant's answers. Two answers to the same "
    "conversation follow. Decide which one better does what the task asks.{task}{criteria} "
    "Judge the content only: not the order of the answers, not their length. Reply with one "
    "word: A if the first answer is better, B if the second is, tie if they are equally good.")
SCORE_PROMPT = (
    "You are an impartial judge of an assistant's answers. Rate how well the answer below does "
    "what the task asks, from 1 (useless) to 10 (perfect).{task}{criteria} Judge the content, "
    "not the length. Reply with the number only.")


def judge_system(mode: JudgeMode, task_system: str | None, criteria: str | None) -> str:
    """The judge's system prompt: the task (the data set's system prompt) and the rubric."""
    task = f"\n\nThe task (the assistant's instructions): {task_system.strip()}" \
        if task_system and task_system.strip() else ""
    rubric = f"\n\nCriteria:\n{criteria.strip()}\n" if criteria and criteria.strip() else ""
    return (PAIRWISE_PROMPT if mode == "pairwise" else SCORE_PROMPT).format(task=task,
                                                                           criteria=rubric)


def pair_message(context: str, first: str, second: str) -> str:
    return (f"[Conversation]\n{context}\n\n[Answer A]\n{first}\n\n[Answer B]\n{second}\n\n"
            "Which answer is better: A, B or tie?")


def grade_message(context: str, answer: str) -> str:
    return f"[Conversation]\n{context}\n\n[Answer]\n{answer}\n\nRating (1-10):"


def parse_verdict(text: str) -> str | None:
    """`A`, `B` or `tie` from a judge's text (`[[A]]`, `Answer B`, `Tie.`); None otherwise."""
    t = (text or "").strip()
    m = re.match(r"^\W*(?:(?:answer|verdict)\s*[:\-]?\s*)?\[*\s*(A|B|tie|C)\b", t, re.IGNORECASE)
    if not m:
        return None
    word = m.group(1)
    if word.lower() in ("tie", "c"):
        return "tie"
    return word.upper()


def parse_grade(text: str) -> int | None:
    """The first whole number 1-10 in a judge's text (`[[7]]`, `Rating: 8/10`)."""
    m = re.search(r"\b(10|[1-9])\b", text or "")
    return int(m.group(1)) if m else None


@dataclass
class JudgeCalls:
    """What the judge was sent: calls and tokens (for its cost)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: float = 0.0
    invalid: int = 0
    """Answers that were no verdict (or no grade)."""


class Judge:
    """A judge over a backend (`EndpointBackend` for `openai:NAME`, `LocalBackend` here).

    Args:
        backend: anything with `label_scores` and `generate` (evaluation/backends.py).
        mode: `pairwise` or `score`.
        task_system: the data set's system prompt (the task the answers were for).
        criteria: a short rubric (`--criteria FILE`).
    """

    def __init__(self, backend, mode: JudgeMode = "pairwise", task_system: str | None = None,
                 criteria: str | None = None, name: str = "") -> None:
        self.backend, self.mode, self.name = backend, mode, name or getattr(backend, "name", "")
        self.system = judge_system(mode, task_system, criteria)
        self.calls = JudgeCalls()

    def _ask(self, messages: list[str], labels: Sequence[str], parse) -> list[str | None]:
        conversations = [[{"role": "system", "content": self.system},
                          {"role": "user", "content": m}] for m in messages]
        if not conversations:
            return []
        self.calls.calls += len(conversations)
        choose = getattr(self.backend, "choose", None)
        if choose is not None:  # an endpoint: one request each, logprobs where it gives them
            out: list[str | None] = []
            for c in choose(conversations, list(labels)):
                value = c.label if c.label is not None else parse(c.text)
                out.append(None if value is None else str(value))
                self.calls.prompt_tokens += c.prompt_tokens
                self.calls.completion_tokens += c.completion_tokens
            self.calls.invalid += sum(v is None for v in out)
            return out
        # a model loaded here: each verdict's exact log-likelihood
        scored = self.backend.label_scores(conversations, list(labels))
        out = [labels[int(j)] for j in scored.scores.argmax(-1)]
        self.calls.prompt_tokens += int(sum(scored.prompt_tokens))
        self.calls.completion_tokens += float(sum(scored.completion_tokens))
        if scored.undecided:
            rows = scored.undecided
            for r, o in zip(rows, self.backend.generate([conversations[r] for r in rows], 8)):
                value = parse(o.text)
                out[r] = None if value is None else str(value)
                self.calls.completion_tokens += o.completion_tokens
        self.calls.invalid += sum(v is None for v in out)
        return out

    def pairs(self, contexts: Sequence[str], firsts: Sequence[str],
              seconds: Sequence[str]) -> list[tuple[str | None, str | None]]:
        """Both orders of every pair: (verdict with `firsts` as A, verdict with them as B)."""
        n = len(contexts)
        messages = [pair_message(c, a, b) for c, a, b in zip(contexts, firsts, seconds)]
        messages += [pair_message(c, b, a) for c, a, b in zip(contexts, firsts, seconds)]
        verdicts = self._ask(messages, VERDICTS, parse_verdict)
        return list(zip(verdicts[:n], verdicts[n:]))

    def grades(self, contexts: Sequence[str], answers: Sequence[str]) -> list[int | None]:
        got = self._ask([grade_message(c, a) for c, a in zip(contexts, answers)], GRADES,
                        parse_grade)
        return [None if g is None else int(g) for g in got]


# ---- outcomes and figures --------------------------------------------------------------------


Outcome = Literal["win", "tie", "loss", "invalid"]
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0, "invalid": 0.5}


def outcome(first_as_a: str | None, first_as_b: str | None) -> tuple[Outcome, bool]:
    """The first answer's outcome over both orders, and whether the two verdicts agreed. A
    verdict that flips with the order (or a tie in one order only) is a tie; a missing
    verdict makes the pair invalid (scored as a tie, counted apart)."""
    if first_as_a is None or first_as_b is None:
        return "invalid", False
    one = {"A": "win", "B": "loss", "tie": "tie"}[first_as_a]
    two = {"B": "win", "A": "loss", "tie": "tie"}[first_as_b]
    return (one, True) if one == two else ("tie", False)


def win_interval(scores: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval (percentile, 2,000 resamples, scipy) of the mean score."""
    from scipy.stats import bootstrap

    arr = np.asarray(scores, dtype=float)
    if len(arr) < 2 or np.all(arr == arr[0]):
        value = float(arr.mean()) if len(arr) else float("nan")
        return value, value
    ci = bootstrap((arr,), np.mean, confidence_level=0.95, n_resamples=2000,
                   method="percentile", random_state=np.random.default_rng(seed))
    return float(ci.confidence_interval.low), float(ci.confidence_interval.high)


def length_controlled(scores: Sequence[float], first_lengths: Sequence[int],
                      second_lengths: Sequence[int]) -> float:
    """The win rate at zero length difference: a logistic regression (scikit-learn) of the
    outcome on tanh(length difference / its standard deviation), as AlpacaEval 2.0 controls
    for length; a tie is two half-weighted rows. The raw rate when one class is all there is."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(scores, dtype=float)
    diff = np.asarray(first_lengths, dtype=float) - np.asarray(second_lengths, dtype=float)
    if len(s) < 2 or np.all(s == 1) or np.all(s == 0):
        return float(s.mean()) if len(s) else float("nan")
    scale = diff.std() or 1.0
    x = np.tanh(diff / scale)[:, None]
    features = np.concatenate([x, x])
    targets = np.concatenate([np.ones(len(s)), np.zeros(len(s))])
    weights = np.concatenate([s, 1 - s])
    keep = weights > 0
    model = LogisticRegression(C=100.0).fit(features[keep], targets[keep],
                                            sample_weight=weights[keep])
    return float(model.predict_proba([[0.0]])[0, 1])


@dataclass
class Judged:
    """One approach judged against the baseline on the same inputs."""

    name: str
    n: int
    wins: int
    ties: int
    losses: int
    invalid: int
    win_rate: float
    """Wins plus half the ties (and the invalid pairs), over the pairs."""
    low: float
    high: float
    length_controlled: float
    order_agreement: float
    scores: list[float] = field(default_factory=list, repr=False)
    """Per input: 1 win, 0.5 tie, 0 loss (what the recommendation resamples)."""
    verdicts: list[tuple[str | None, str | None]] = field(default_factory=list, repr=False)

    @property
    def length_bias(self) -> bool:
        return abs(self.win_rate - self.length_controlled) >= LENGTH_BIAS

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("verdicts")
        d.pop("scores")
        d["length_bias"] = self.length_bias
        return d


def summarize(name: str, verdicts: list[tuple[str | None, str | None]],
              answers: Sequence[str], baseline: Sequence[str], seed: int = 0) -> Judged:
    """An approach's figures from its pairs' verdicts in both orders."""
    results = [outcome(a, b) for a, b in verdicts]
    kinds = [o for o, _ in results]
    scores = [SCORE[o] for o in kinds]
    n = len(kinds)
    low, high = win_interval(scores, seed)
    words = lambda texts: [len(t.split()) for t in texts]
    return Judged(name, n, kinds.count("win"), kinds.count("tie"), kinds.count("loss"),
                  kinds.count("invalid"), sum(scores) / n if n else float("nan"), low, high,
                  length_controlled(scores, words(answers), words(baseline)),
                  sum(agreed for _, agreed in results) / n if n else float("nan"),
                  scores, verdicts)


@dataclass
class Graded:
    """One approach graded alone (`--judge-mode score`)."""

    name: str
    n: int
    mean: float
    low: float
    high: float
    invalid: int
    grades: list[int | None] = field(default_factory=list, repr=False)

    @property
    def scores(self) -> list[float]:
        """Per input: the grade (a missing one counts as the scale's middle, 5.5)."""
        return [5.5 if g is None else float(g) for g in self.grades]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("grades")
        return d


def summarize_grades(name: str, grades: list[int | None], seed: int = 0) -> Graded:
    scores = [5.5 if g is None else float(g) for g in grades]
    low, high = win_interval(scores, seed)
    return Graded(name, len(grades), sum(scores) / len(scores) if scores else float("nan"), low,
                  high, sum(g is None for g in grades), grades)


# ---- the judge's own checks ------------------------------------------------------------------


PROBE_KINDS = ("truncated to half", "sentences shuffled", "another input's reference")


def degraded(references: Sequence[str], seed: int = 0) -> list[tuple[int, str, str]]:
    """(input, kind, degraded copy) probes of the references of the judged inputs: each cut to
    its first half of words, its sentences shuffled (where it has two or more), and the
    reference of the next input (where it differs). Built only from these inputs' own
    references, never from another split's."""
    rng = random.Random(seed)
    out = []
    for i, ref in enumerate(references):
        words = ref.split()
        if len(words) >= 4:
            out.append((i, PROBE_KINDS[0], " ".join(words[: len(words) // 2])))
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", ref.strip()) if s]
        if len(sentences) >= 2:
            shuffled = sentences[:]
            for _ in range(10):
                rng.shuffle(shuffled)
                if shuffled != sentences:
                    break
            if shuffled != sentences:
                out.append((i, PROBE_KINDS[1], " ".join(shuffled)))
        if len(references) > 1:
            other = references[(i + 1) % len(references)]
            if normalize_answer(other) != normalize_answer(ref):
                out.append((i, PROBE_KINDS[2], other))
    return out


def looks_labelled(references: Sequence[str]) -> bool:
    """Whether the reference answers are labels (a classification set rendered as chat): few
    distinct short answers, each used more than once on average."""
    distinct = {normalize_answer(r) for r in references}
    return (len(references) >= 4 and len(distinct) <= 20 and len(distinct) * 2 <= len(references)
            and all(len(r.split()) <= 4 for r in references))


@dataclass
class JudgeChecks:
    order_agreement: float
    """Over every approach's pairs (pairwise mode; NaN in score mode)."""
    probe_pass: float
    """Share of probes where the judge preferred (or graded higher) the reference."""
    probe_by_kind: dict[str, float]
    probes: int
    gold_agreement: float | None
    """Labelled data: share of pairs with exactly one right answer where the judge preferred
    the right one; None when the answers are not labels."""
    gold_pairs: int
    min_probe: float
    trusted: bool
    why: list[str]
    """Why it is not trusted (empty when it is), and any bias seen."""

    def to_dict(self) -> dict:
        return asdict(self)


def probe_outcomes(judge: Judge, contexts: Sequence[str], references: Sequence[str],
                   seed: int = 0) -> tuple[list[str], list[bool]]:
    """(kind, reference preferred?) for every probe."""
    probes = degraded(references, seed)
    if not probes:
        return [], []
    ctx = [contexts[i] for i, _, _ in probes]
    refs = [references[i] for i, _, _ in probes]
    copies = [c for _, _, c in probes]
    if judge.mode == "pairwise":
        won = [outcome(a, b)[0] == "win" for a, b in judge.pairs(ctx, refs, copies)]
    else:
        grades = judge.grades(ctx + ctx, refs + copies)
        n = len(probes)
        won = [g is not None and d is not None and g > d for g, d in zip(grades[:n], grades[n:])]
    return [k for _, k, _ in probes], won


def gold_agreement(judged: Sequence[Judged], answers: dict[str, Sequence[str]],
                   baseline: Sequence[str], gold: Sequence[str]) -> tuple[float | None, int]:
    """Labelled data: over pairs where exactly one answer equals gold, the share the judge's
    combined verdict prefers that one."""
    if not looks_labelled(gold):
        return None, 0
    agree = total = 0
    for j in judged:
        for (a, b), x, y, g in zip(j.verdicts, answers[j.name], baseline, gold):
            right_x, right_y = normalize_answer(x) == normalize_answer(g), \
                normalize_answer(y) == normalize_answer(g)
            if right_x == right_y:
                continue
            o, _ = outcome(a, b)
            total += 1
            agree += (o == "win") if right_x else (o == "loss")
    return (agree / total if total else None), total


def check(judged: Sequence[Judged], kinds: list[str], won: list[bool], min_probe: float,
          gold: tuple[float | None, int] = (None, 0), mode: JudgeMode = "pairwise") -> JudgeChecks:
    """The verdict on the judge: trusted when its probe pass rate reaches `min_probe` and (in
    pairwise mode) at least half its pairs keep their verdict when swapped."""
    pairs = sum(j.n for j in judged)
    order = (sum(j.order_agreement * j.n for j in judged) / pairs
             if pairs and mode == "pairwise" else float("nan"))
    passed = sum(won) / len(won) if won else float("nan")
    by_kind = {k: sum(w for kk, w in zip(kinds, won) if kk == k) / kinds.count(k)
               for k in PROBE_KINDS if kinds.count(k)}
    why = []
    if not won:
        why.append("no probe could be built (answers too short to degrade)")
    elif passed < min_probe:
        why.append(f"it preferred the reference over a degraded copy in {passed:.0%} of "
                   f"{len(won)} probes, under the {min_probe:.0%} required (--judge-min-probe)")
    if mode == "pairwise" and pairs and order < MIN_ORDER_AGREEMENT:
        why.append(f"its verdict kept when the answers swapped places in only {order:.0%} of "
                   f"{pairs} pairs (position, not content, decides)")
    trusted = not why
    for j in judged:
        if j.length_bias:
            why.append(f"length bias on {j.name}: win rate {j.win_rate:.2f}, "
                       f"{j.length_controlled:.2f} at equal length")
    return JudgeChecks(order, passed, by_kind, len(won), gold[0], gold[1], min_probe, trusted,
                       why)


def nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
