"""`tunesmith data audit` against known answers, on the shared SST-2 and Banking77 training sets.

    python bench/audit_data.py [--sets sst2,banking77] [--noise 0.1] [--no-embeddings]

Label errors: 10% of the training labels flipped at random to another label (seeded), the file
audited, and the flags scored against the flips (precision, recall, F1), for the TF-IDF probe
alone and with the embedded model's hidden states; each with its wall time.

Near-duplicates: 40 copies of training examples with the case changed, punctuation moved and one
word replaced by a random training word, audited as a test file against the training file (all
should be found); 500 random pairs of different examples (test x train, none should be flagged);
and how many of the real test examples have a training near-copy at the default threshold.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from tunesmith.audit.duplicates import DEFAULT_SIMILARITY, Text, find_near_duplicates, similarity
from tunesmith.audit.report import audit_file
from tunesmith.audit.text import words

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rows(name: str, split: str) -> list[dict]:
    path = SHARED / name / "task" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def label_errors(name: str, noise: float, embeddings: bool, tmp: Path) -> None:
    rows = _rows(name, "train")
    labels = sorted({r["label"] for r in rows})
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(rows)), round(noise * len(rows))))
    noisy = [dict(r, label=rng.choice([k for k in labels if k != r["label"]]))
             if i in flipped else r for i, r in enumerate(rows)]
    path = _write(tmp / f"{name}-noisy.jsonl", noisy)
    for model in ([None, "smollm2-135m-instruct"] if embeddings else [None]):
        start = time.perf_counter()
        report = audit_file(path, model=model)
        took = time.perf_counter() - start
        found = {e.line - 1 for e in report.label_errors}
        tp = len(found & flipped)
        p = tp / len(found) if found else 0.0
        r = tp / len(flipped)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        m = report.methods["label_errors"]
        probe = "tf-idf + hidden states" if model else "tf-idf"
        print(f"{name:10} {len(rows):,} examples, {len(flipped)} flipped, {probe:22} "
              f"flagged {len(found):4}  precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}  "
              f"out-of-fold accuracy {m['out_of_fold_accuracy']:.3f}  {took:6.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in report.seconds.items())})", flush=True)


def near_duplicates(name: str) -> None:
    train, test = _rows(name, "train"), _rows(name, "test")
    rng = random.Random(1)
    vocab = [w for r in train for w in r["text"].split()]
    copies = []
    for i in rng.sample(range(len(train)), 40):
        ws = train[i]["text"].split()
        ws[rng.randrange(len(ws))] = rng.choice(vocab)
        text = " ".join(ws).replace(" ,", ",").replace(" '", "'").replace(" .", ".")
        text = (text.upper() if rng.random() < 0.5 else text.capitalize()) + "!"
        copies.append((i + 1, text))
    train_texts = [Text(i + 1, words(r["text"]), r["label"]) for i, r in enumerate(train)]
    found = find_near_duplicates([Text(k + 1, words(t), "") for k, (_, t) in enumerate(copies)],
                                 "copies", train_texts, "train")
    source = sum(d.other_line == copies[d.line - 1][0] for d in found)
    lowest = min(similarity("".join(words(t)), "".join(words(train[i - 1]["text"])))
                 for i, t in copies)
    pairs = [(rng.randrange(len(test)), rng.randrange(len(train))) for _ in range(500)]
    false = sum(similarity("".join(words(test[a]["text"])), "".join(words(train[b]["text"])))
                >= DEFAULT_SIMILARITY for a, b in pairs)
    leaks = find_near_duplicates([Text(i + 1, words(r["text"]), r["label"])
                                  for i, r in enumerate(test)], "test", train_texts, "train")
    print(f"{name:10} near-duplicates at {DEFAULT_SIMILARITY}: {len(found)}/40 altered copies found "
          f"({source} matched to their own source, the rest to an equally close training "
          f"example; lowest similarity to the source {lowest:.2f}), {false}/500 random pairs flagged; "
          f"{len(leaks)}/{len(test)} real test examples have a training near-copy "
          f"({sum(d.exact for d in leaks)} exact)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="sst2,banking77")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--no-embeddings", dest="embeddings", action="store_false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            label_errors(name, args.noise, args.embeddings, Path(tmp))
            near_duplicates(name)


if __name__ == "__main__":
    main()
