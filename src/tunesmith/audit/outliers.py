"""Examples unlike the rest of their file: far longer or shorter, empty, or written in another
script or language than the file's majority.

Length uses the modified z-score of log word counts (Iglewicz and Hoaglin, 1993: 0.6745 (x -
median) / MAD, flagged beyond 3.5), so a few huge examples cannot hide themselves by inflating the
spread; and only texts at least twice or at most half the median length count. Script is each text's most frequent Unicode script among its letters; language is guessed
from function words for seven Latin-script languages, only for texts of 5 words or more.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tunesmith.audit.text import words

Z_LIMIT = 3.5
_FUNCTION_WORDS = {
    "en": "the and of to is in that it for you with was on are this not be have but what a an "
          "as at by from or i my me we they he she his her its who which there their do can",
    "es": "el la de que y en los se del las por un una con no es para lo como más pero",
    "fr": "le la les de des et est un une que qui dans pour pas sur au du ce il elle avec",
    "de": "der die das und ist nicht ein eine zu den mit von sich des auf für im dem auch es",
    "it": "il di che e la un una per non è del della sono con le si ma come questo anche",
    "pt": "o a de que e do da em um uma para com não os as se na no por mais é",
    "nl": "de het een en van is dat niet op te zijn met voor er ook maar als bij dan",
}
_LANGUAGE_WORDS = {lang: set(ws.split()) for lang, ws in _FUNCTION_WORDS.items()}


@dataclass
class Outlier:
    line: int
    kind: str
    """long, short, empty, script, language"""
    field: str
    """input or answer"""
    detail: str

    def to_dict(self) -> dict:
        return {"line": self.line, "kind": self.kind, "field": self.field, "detail": self.detail}


def script_of(text: str) -> str | None:
    """The most frequent Unicode script among the letters of `text` (LATIN, CYRILLIC, CJK, ...)."""
    scripts: Counter[str] = Counter()
    for c in text:
        if c.isalpha():
            name = unicodedata.name(c, "")
            scripts[name.split(" ")[0] if name else "UNKNOWN"] += 1
    return scripts.most_common(1)[0][0] if scripts else None


def language_of(text: str) -> str | None:
    ws = words(text)
    if len(ws) < 5:
        return None
    hits = {lang: sum(w in vocab for w in ws) for lang, vocab in _LANGUAGE_WORDS.items()}
    best = max(hits, key=lambda k: hits[k])
    ranked = sorted(hits.values(), reverse=True)
    if ranked[0] < 3 or ranked[0] < 2 * ranked[1]:
        return None
    return best


def find_outliers(texts: list[tuple[int, str]], field: str) -> list[Outlier]:
    """`texts`: (line, text) per example for one field (input or answer)."""
    found: list[Outlier] = []
    counts = [len(words(t)) for _, t in texts]
    for (line, text), n in zip(texts, counts):
        if not text.strip():
            found.append(Outlier(line, "empty", field, f"the {field} is empty"))
    logs = np.array([math.log1p(n) for n in counts])
    if len(logs) >= 10:
        median = float(np.median(logs))
        # 0.6745 (x - median) / MAD; where more than half the values are equal (MAD 0), the
        # mean absolute deviation scaled by 1.2533 stands in (Iglewicz and Hoaglin).
        mad = float(np.median(np.abs(logs - median))) / 0.6745
        if mad == 0:
            mad = 1.2533 * float(np.mean(np.abs(logs - median)))
        if mad > 0:
            typical = round(math.expm1(median))
            for (line, text), n, x in zip(texts, counts, logs):
                z = (x - median) / mad
                if abs(z) > Z_LIMIT and abs(x - median) >= math.log(2) and text.strip():
                    kind = "long" if z > 0 else "short"
                    plural = "" if n == 1 else "s"
                    found.append(Outlier(line, kind, field, f"{n:,} word{plural} where the "
                                         f"median is {typical:,} (modified z {z:+.1f})"))
    scripts = [script_of(t) for _, t in texts]
    majority = Counter(s for s in scripts if s).most_common(1)
    if majority and majority[0][1] >= 0.6 * len(texts):
        usual = majority[0][0]
        for (line, _), s in zip(texts, scripts):
            if s is not None and s != usual:
                found.append(Outlier(line, "script", field,
                                     f"written in {s} script; {majority[0][1]:,} of "
                                     f"{len(texts):,} are {usual}"))
    if not majority or majority[0][0] == "LATIN":
        languages = [language_of(t) for _, t in texts]
        known = Counter(lang for lang in languages if lang)
        if known and known.most_common(1)[0][1] >= 0.6 * sum(known.values()) \
                and sum(known.values()) >= 10:
            usual = known.most_common(1)[0][0]
            for (line, _), lang, s in zip(texts, languages, scripts):
                if lang is not None and lang != usual and s in (None, "LATIN"):
                    found.append(Outlier(line, "language", field,
                                         f"reads as {lang}; most of the file reads as {usual}"))
    found.sort(key=lambda o: o.line)
    return found
