"""What the audit reads from an example: its input text, its answer, and their normal form."""

from __future__ import annotations

import unicodedata

from tunesmith.data.examples import Example


def input_text(example: Example) -> str:
    """The user side of an example (every non-system message before the last answer)."""
    return example.prompt_key.replace("\x1f", "\n")


def words(text: str) -> list[str]:
    """Case-folded NFKC words with punctuation removed: "Isn't it GREAT?!" -> [isnt, it, great].
    Punctuation is deleted rather than spaced, so "there's" and "there 's" differ by one word
    boundary only."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return kept.split()
