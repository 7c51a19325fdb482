"""Shots chosen per input: the training examples nearest to it (Liu et al. 2022, "What Makes Good
In-Context Examples for GPT-3?": kNN-chosen demonstrations beat random ones).

Similarity is TF-IDF cosine over word unigrams and bigrams (lower-cased), computed with an
inverted index, so finding the neighbours of one input costs time in the words it shares with
the training set, not in the size of the training set times the vocabulary:

    train   "refund my payment" / "app crashes on login" / "charged twice for my payment"
    input   "I was charged twice"
    nearest "charged twice for my payment" (shares `charged`, `twice`, `charged twice`), ...

The nearest example comes last in the prompt, right before the input.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict

from tunesmith.data.examples import Example

_WORD = re.compile(r"\w+", re.UNICODE)


def features(text: str) -> Counter[str]:
    """Unigram and bigram counts of the lower-cased words of `text`."""
    words = _WORD.findall(text.lower())
    return Counter(words + [f"{a} {b}" for a, b in itertools.pairwise(words)])


class NearestShots:
    """The k training examples most similar to an input, by TF-IDF cosine.

    Args:
        train: the candidate shots.
        text: how an example's input text is read (default: its user-side messages).
    """

    def __init__(self, train: list[Example], text=lambda e: e.prompt_key) -> None:
        self.train, self.text = train, text
        counts = [features(text(e)) for e in train]
        df: Counter[str] = Counter(term for c in counts for term in c)
        n = len(train)
        # Smoothed idf (as scikit-learn's default): rare terms weigh more, none weighs zero.
        self.idf = {term: math.log((1 + n) / (1 + k)) + 1 for term, k in df.items()}
        self.index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, c in enumerate(counts):
            for term, weight in self._vector(c).items():
                self.index[term].append((i, weight))

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        """L2-normalised tf-idf weights (sublinear tf); unknown terms are dropped."""
        v = {t: (1 + math.log(c)) * self.idf[t] for t, c in counts.items() if t in self.idf}
        norm = math.sqrt(sum(w * w for w in v.values())) or 1.0
        return {t: w / norm for t, w in v.items()}

    def similarities(self, text: str) -> dict[int, float]:
        """Cosine similarity of `text` to every training example sharing a term with it."""
        scores: dict[int, float] = defaultdict(float)
        for term, weight in self._vector(features(text)).items():
            for i, w in self.index[term]:
                scores[i] += weight * w
        return scores

    def nearest(self, example: Example, k: int) -> list[Example]:
        """The k most similar training examples, least similar first (the nearest sits next to
        the input). The example itself, if it is in the training set, is never chosen; ties
        and examples sharing no term keep the training order."""
        if k <= 0:
            return []
        query = self.text(example)
        scores = self.similarities(query)
        order = sorted(range(len(self.train)), key=lambda i: (-scores.get(i, 0.0), i))
        chosen = [i for i in order if self.text(self.train[i]) != query][:k]
        return [self.train[i] for i in reversed(chosen)]
