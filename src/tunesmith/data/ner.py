"""Named-entity rows: token/tag sequences in BIO, as JSONL or CoNLL, turned into entity lists.

    tokens: ["Mike", "vick", "in", "Chapel", "Hill"]
    tags:   ["B-person", "O", "O", "B-location", "I-location"]
      -> [Entity("Mike", "person"), Entity("Chapel Hill", "location")]
      -> user "Mike vick in Chapel Hill",
         assistant '[{"text": "Mike", "type": "person"}, {"text": "Chapel Hill", "type": "location"}]'
"""

from __future__ import annotations

import re

from tunesmith.data.examples import Entity, Example, Message, entities_json
from tunesmith.data.issues import Issue, describe_type, not_an_object, warning
from tunesmith.data.lines import Line

TAG = re.compile(r"^(O|[BI]-\S+)$")


def bio_to_entities(tokens: list[str], tags: list[str]) -> list[Entity]:
    """Spans of a BIO sequence. An `I-` tag that does not continue a span of its type starts a new
    one (the conlleval convention)."""
    entities: list[Entity] = []
    span: list[str] = []
    kind = ""
    for token, tag in zip(tokens, tags, strict=True):
        if tag.startswith("I-") and span and tag[2:] == kind:
            span.append(token)
            continue
        if span:
            entities.append(Entity(" ".join(span), kind))
            span = []
        if tag != "O":
            span, kind = [token], tag[2:]
    if span:
        entities.append(Entity(" ".join(span), kind))
    return entities


def orphan_inside_tags(tags: list[str]) -> list[int]:
    """Positions of `I-` tags that do not continue a span of their type (after `O`, at the
    start, or after another type). `bio_to_entities` reads each as the start of a new span."""
    return [i for i, tag in enumerate(tags)
            if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:])]


def _orphan_warning(tags: list[str], i: int, line: int, field: str) -> Issue:
    before = "at the start" if i == 0 else f"after {tags[i - 1]!r}"
    return warning("bio_inside_without_begin", f"tag {tags[i]!r} {before} continues no span; "
                   f"it is read as B-{tags[i][2:]} (IOB1 data? convert it to BIO).", line, field)


def make_example(tokens: list[str], tags: list[str], line: int) -> Example:
    entities = bio_to_entities(tokens, tags)
    messages = [Message("user", " ".join(tokens)), Message("assistant", entities_json(entities))]
    return Example(line, messages, entities=entities)


def parse_ner_row(
    obj: object, line: int, tokens_field: str = "tokens", tags_field: str = "tags"
) -> tuple[Example | None, list[Issue]]:
    """Check one JSONL row `{"tokens": [...], "tags": [...]}` (`ner_tags` is accepted too)."""
    if bad := not_an_object(obj, line):
        return None, bad
    if tags_field not in obj and "ner_tags" in obj:
        tags_field = "ner_tags"
    issues: list[Issue] = []
    values = {}
    for name in (tokens_field, tags_field):
        value = obj.get(name)
        if name not in obj:
            issues.append(Issue("missing_field", f"the row has no '{name}'.", line, name))
        elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            issues.append(Issue("invalid_type", f"'{name}' must be a list of strings, got "
                                f"{describe_type(value)}.", line, name))
        values[name] = value
    if issues:
        return None, issues
    tokens, tags = values[tokens_field], values[tags_field]
    if not tokens:
        return None, [Issue("empty_input", "the token list is empty.", line, tokens_field)]
    if len(tokens) != len(tags):
        return None, [Issue("tags_length_mismatch",
                            f"{len(tokens)} tokens but {len(tags)} tags.", line, tags_field)]
    bad = [f"{i}: {t!r}" for i, t in enumerate(tags) if not TAG.match(t)]
    if bad:
        return None, [Issue("invalid_tag", "tags must be O, B-TYPE or I-TYPE; bad at "
                            + ", ".join(bad[:5]) + ("..." if len(bad) > 5 else "") + ".",
                            line, tags_field)]
    orphans = [_orphan_warning(tags, i, line, f"{tags_field}[{i}]")
               for i in orphan_inside_tags(tags)[:3]]
    return make_example(tokens, tags, line), orphans


def read_conll(lines: list[Line]) -> tuple[list[Example], list[Issue], int]:
    """Parse CoNLL: one `token ... tag` line per token (token first, tag last, whitespace between),
    a blank line between sentences, `-DOCSTART-` lines skipped. Every token line must have the
    file's usual number of columns.

    Returns:
        (examples, issues, number of sentences).
    """
    counts: dict[int, int] = {}
    for line in lines:
        if line.text and line.text.strip() and not line.text.startswith("-DOCSTART-"):
            n = len(line.text.split())
            counts[n] = counts.get(n, 0) + 1
    columns = max(counts, key=lambda n: (counts[n], n)) if counts else 2
    columns = max(columns, 2)
    examples: list[Example] = []
    issues: list[Issue] = []
    sentences = 0
    tokens: list[str] = []
    tags: list[str] = []
    numbers: list[int] = []
    start = 0
    broken = False

    def flush() -> None:
        nonlocal tokens, tags, numbers, broken, sentences
        if tokens or broken:
            sentences += 1
            if not broken:
                examples.append(make_example(tokens, tags, start))
                issues.extend(_orphan_warning(tags, i, numbers[i], "tag")
                              for i in orphan_inside_tags(tags)[:3])
        tokens, tags, numbers, broken = [], [], [], False

    for line in lines:
        text = line.text
        if text is None:  # undecodable: already an issue; the sentence it belongs to is lost
            if not tokens and not broken:
                start = line.number
            broken = True
            continue
        if not text.strip() or text.startswith("-DOCSTART-"):
            flush()
            continue
        if not tokens and not broken:
            start = line.number
        cols = text.split()
        if len(cols) != columns:
            issues.append(Issue("wrong_column_count",
                                f"{len(cols)} columns, expected {columns} (token ... tag).",
                                line.number))
            broken = True
        elif not TAG.match(cols[-1]):
            issues.append(Issue("invalid_tag", f"tag {cols[-1]!r} is not O, B-TYPE or I-TYPE.",
                                line.number, "tag"))
            broken = True
        else:
            tokens.append(cols[0])
            tags.append(cols[-1])
            numbers.append(line.number)
    flush()
    return examples, issues, sentences
