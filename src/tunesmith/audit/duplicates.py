"""Near-duplicate examples, within a file and between files (a test example that is a training
example with its case, punctuation or a word changed is a leak).

Candidates come from MinHash LSH over word shingles (datasketch); each candidate pair is then
measured exactly, so what is reported never rests on the sketch:

    similarity = 1 - (edit distance between the two normalised texts, in characters with word
                      boundaries and punctuation removed) / (length of the longer one)

One replaced word in a 10-word sentence leaves about 0.85; two unrelated texts of the same length
rarely pass 0.5. Texts that normalise to the same string (case, whitespace, punctuation) are exact
duplicates: each later copy is reported once, against the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rapidfuzz.distance import Levenshtein

if TYPE_CHECKING:
    from datasketch import MinHash

CANDIDATE_JACCARD = 0.3
"""The LSH threshold on word-set Jaccard for a pair to be measured at all: loose, because one
changed word in a 4-word text already brings the word-set Jaccard down to 0.6."""
NUM_PERM = 128
DEFAULT_SIMILARITY = 0.65
"""Measured (bench/audit_data.py): every one of 40 re-cased, re-punctuated copies with one word
replaced is flagged on SST-2 and on Banking77 (the lowest scores 0.72 and 0.65: "I need my card
there!" from "I need my card activated."), and none of 500 random test/train pairs."""


@dataclass
class NearDuplicate:
    line: int
    """1-based line in the audited file."""
    other_file: str
    other_line: int
    similarity: float
    exact: bool
    """The two texts are the same once case, whitespace and punctuation are ignored."""
    same_answer: bool
    """Both examples have the same answer/label (different answers: a conflict, as bad)."""

    def to_dict(self) -> dict:
        return {"line": self.line, "other_file": self.other_file, "other_line": self.other_line,
                "similarity": round(self.similarity, 4), "exact": self.exact,
                "same_answer": self.same_answer}


@dataclass
class Text:
    line: int
    words: list[str]
    answer: str

    @property
    def squashed(self) -> str:
        return "".join(self.words)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def similarity(a: str, b: str, cutoff: float = 0.0) -> float:
    """1 - Levenshtein(a, b) / max(len): 1.0 for equal strings; 0.0 below `cutoff` (faster)."""
    return Levenshtein.normalized_similarity(a, b, score_cutoff=max(0.0, cutoff - 1e-9))


def _minhash(words: list[str], seed: int) -> MinHash:
    from datasketch import MinHash  # 0.3 s to import: only when an audit runs

    m = MinHash(num_perm=NUM_PERM, seed=seed)
    m.update_batch([w.encode("utf-8") for w in set(words)] or [b""])
    return m


def find_near_duplicates(
    texts: list[Text], path: str, others: list[Text] | None = None, other_path: str = "",
    threshold: float = DEFAULT_SIMILARITY, seed: int = 0,
) -> list[NearDuplicate]:
    """Each text of `texts` similar (>= threshold) to an earlier text of the same file, or, with
    `others`, to a text of the other file; one entry per such text, naming its closest match.

    Within a file each later text points to an earlier one, so a pair is reported once and k
    copies of a text give k - 1 entries.
    """
    cross = others is not None
    pool = others if cross else texts
    found: list[NearDuplicate] = []
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=CANDIDATE_JACCARD, num_perm=NUM_PERM)
    exact_first: dict[str, int] = {}
    signatures = [_minhash(t.words, seed) for t in pool]
    for i, t in enumerate(pool):
        exact_first.setdefault(t.squashed, i)
        if t.words:
            lsh.insert(i, signatures[i])
    for i, t in enumerate(texts):
        if not t.words:
            continue  # empty texts are outliers, not duplicates of each other
        first = exact_first.get(t.squashed)
        if first is not None and (cross or first < i):
            other = pool[first]
            found.append(NearDuplicate(t.line, other_path or path, other.line, 1.0, True,
                                       other.answer == t.answer))
            continue
        if not cross and first is not None and first != i:
            continue
        signature = signatures[i] if not cross else _minhash(t.words, seed)
        best: tuple[float, int] | None = None
        for j in lsh.query(signature):
            if not cross and j >= i:
                continue
            other = pool[j]
            if not cross and exact_first.get(other.squashed) != j:
                continue  # compare with the first copy of each text only
            score = similarity(t.squashed, other.squashed, threshold)
            if score >= threshold - 1e-9 and (best is None or score > best[0]):
                best = (score, j)
        if best is not None:
            other = pool[best[1]]
            found.append(NearDuplicate(t.line, other_path or path, other.line, best[0], False,
                                       other.answer == t.answer))
    return found
