"""`tunesmith data audit` end to end: the JSON document, the human output, the exit codes."""

import json
import random

from tests.audit.test_labels import _corpus
from tunesmith.audit.report import audit_file
from tunesmith.cli import main


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _files(tmp_path):
    texts, labels, flipped = _corpus()
    train = _write(tmp_path / "train.jsonl", [{"text": t, "label": k}
                                              for t, k in zip(texts, labels)])
    rng = random.Random(3)
    test_rows = [{"text": " ".join(rng.choices(["alpha", "beta", "gamma", "delta"], k=9)),
                  "label": "sport"} for _ in range(20)]
    test_rows[4] = {"text": texts[10].upper() + "!", "label": labels[10]}  # leak, line 5
    test_rows[7] = {"text": "", "label": "sport"}
    test = _write(tmp_path / "test.jsonl", test_rows)
    return train, test, flipped


def test_audit_json_document(tmp_path, capsys):
    train, test, flipped = _files(tmp_path)
    assert main(["data", "audit", str(train), "--no-embeddings", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"file", "examples", "label_errors", "near_duplicates", "outliers"} <= set(doc)
    assert doc["examples"] == 180 and doc["task"] == "classification"
    assert {e["line"] - 1 for e in doc["label_errors"]} <= set(flipped)
    assert set(doc["label_errors"][0]) >= {"line", "label", "suggested", "confidence"}
    assert main(["data", "audit", str(test), "--train", str(train), "--no-embeddings",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    leaks = [d for d in doc["near_duplicates"] if d["other_file"] == str(train)]
    assert [(d["line"], d["other_line"], d["exact"]) for d in leaks] == [(5, 11, True)]
    assert doc["skipped_rows"] == 1 and doc["outliers"] == []  # the empty text is a check error


def test_audit_human_output_and_exit_codes(tmp_path, capsys):
    train, test, _ = _files(tmp_path)
    assert main(["data", "audit", str(test), "--train", str(train), "--no-embeddings"]) == 0
    out = capsys.readouterr().out
    assert f"{test}:5" in out and f"{train}:11" in out and "leaks): 1" in out
    assert main(["data", "audit", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "bin.jsonl").write_bytes(b"\x00\x01\x02" * 10)
    assert main(["data", "audit", str(tmp_path / "bin.jsonl"), "--no-embeddings"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_hidden_state_probe_runs_on_a_model(tmp_path, tiny_model_dir):
    train, _, _ = _files(tmp_path)
    report = audit_file(train, model=str(tiny_model_dir))
    assert len(report.methods["label_errors"]["classifiers"]) == 2
    assert report.seconds["hidden_states"] > 0


def test_ner_file_gets_entity_conflicts(tmp_path):
    rows = [{"tokens": ["I", "love", "Paris", "."], "tags": ["O", "O", "B-location", "O"]}
            for _ in range(4)]
    rows.append({"tokens": ["Paris", "called", "."], "tags": ["B-person", "O", "O"]})
    report = audit_file(_write(tmp_path / "ner.jsonl", rows))
    assert [(c.line, c.type, c.usual_type) for c in report.entity_conflicts] == \
        [(5, "person", "location")]
    assert [(d.line, d.other_line) for d in report.near_duplicates] == [(2, 1), (3, 1), (4, 1)]
