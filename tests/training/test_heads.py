"""Task heads on a tiny random model: word/sub-token alignment, BIO repair, a classifier head
that learns a separable fixture, a token head that recovers spans, and final/ loading with plain
transformers/PEFT."""

from __future__ import annotations

import json
import random

import pytest

from tunesmith.cli import main
from tunesmith.data.examples import Example, Message
from tunesmith.heads import bio_tags, entities_from_tags, head_of, word_ids
from tunesmith.training.objectives import Objective


def test_word_ids_mark_the_first_sub_token_of_each_word(tokenizer):
    words = ["Mike", "Vickovitchski", "visited", "Chapel", "Hill"]
    messages = [{"role": "system", "content": "Find entities."},
                {"role": "user", "content": " ".join(words)}]
    ids, starts = word_ids(tokenizer, messages, words, echo=False)
    assert len(starts) == len(words) and starts == sorted(starts)
    pieces = [tokenizer.decode(ids[a:b]) for a, b in zip(starts, starts[1:] + [len(ids)])]
    assert pieces[0] == "Mike" and pieces[1] == " Vickovitchski"
    assert starts[2] - starts[1] > 1  # a word split in several pieces: only its first is marked
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(ids) == rendered  # the same text as the template renders
    echoed, echo_starts = word_ids(tokenizer, messages, words, echo=True)
    sentence = " ".join(words)
    assert tokenizer.decode(echoed) == rendered.replace(sentence, sentence + "\n" + sentence)
    second = [tokenizer.decode(echoed[a:b]).strip()
              for a, b in zip(echo_starts, echo_starts[1:] + [echo_starts[-1] + 1])]
    assert second[:4] == words[:4]  # the marks sit on the second copy
    assert echo_starts[0] > starts[-1]


def test_bio_tags_and_the_repair_of_inside_without_begin():
    words = ["Bob", "flew", "to", "New", "York", "and", "New", "York"]
    entities = [{"text": "Bob", "type": "per"}, {"text": "New York", "type": "loc"},
                {"text": "New York", "type": "loc"}]
    assert bio_tags(words, entities) == ["B-per", "O", "O", "B-loc", "I-loc", "O", "B-loc",
                                         "I-loc"]
    decoded = json.loads(entities_from_tags(["Bob", "met", "Ann", "Lee"],
                                            ["I-per", "O", "I-per", "I-per"]))
    assert decoded == [{"text": "Bob", "type": "per"}, {"text": "Ann Lee", "type": "per"}]


def test_classifier_targets_sit_on_the_last_prompt_token(tokenizer):
    example = Example(1, [Message("system", "Route it."), Message("user", "refund pls"),
                          Message("assistant", "billing")], label="billing")
    item = Objective("classifier", ["app", "billing"]).tokenize(tokenizer, example, 512)
    assert item.labels[-1] == 1 and item.n_loss_tokens == 1
    assert tokenizer.decode(item.input_ids).endswith("<|im_start|>assistant\n")


def _separable(tmp_path):
    rng = random.Random(0)
    rows = []
    for i in range(120):
        label = "sunny" if i % 2 else "rainy"
        cue = rng.choice(["sun", "bright", "warm"] if label == "sunny" else
                         ["rain", "wet", "storm"])
        rows.append({"text": f"day {i} is {cue}", "label": label})
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "prepare", str(tmp_path / "raw.jsonl"), "--task", "classification",
                 "--out", str(tmp_path / "d"), "--val", "0.2", "--test", "0.2"]) == 0
    return tmp_path / "d"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_classifier_head_learns_a_separable_task(tmp_path, capsys, tiny_model_dir, method):
    data = _separable(tmp_path)
    run = tmp_path / "run"
    lr = "0.003" if method == "full" else "0.01"
    assert main(["train", "--data", str(data), "--model", str(tiny_model_dir), "--head",
                 "classifier", "--method", method, "--epochs", "6", "--lr", lr, "--out",
                 str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert head_of(run / "final") == ("classifier", ["rainy", "sunny"])
    assert main(["eval", "--model", str(run), "--data", str(data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "fine-tune" and doc["metrics"]["accuracy"] == 1.0
    assert doc["invalid"] == 0 and doc["completion_tokens"] == 0  # nothing is generated
    if method == "lora":  # plain PEFT, nothing else: labels, padding and the trained head
        import torch
        from peft import AutoPeftModelForSequenceClassification
        from transformers import AutoTokenizer

        model = AutoPeftModelForSequenceClassification.from_pretrained(run / "final").eval()
        tok = AutoTokenizer.from_pretrained(run / "final")
        assert model.config.id2label == {0: "rainy", 1: "sunny"}
        prompts = [tok.apply_chat_template([{"role": "system", "content": doc["prompt"] and
                                             json.loads((data / "task.json").read_text())
                                             ["system"]}, {"role": "user", "content": text}],
                                           tokenize=False, add_generation_prompt=True)
                   for text in ("day 999 is storm", "day 1000 is bright and warm")]
        batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            labels = model(**batch).logits.argmax(-1).tolist()
        assert [model.config.id2label[i] for i in labels] == ["rainy", "sunny"]


def test_token_head_recovers_spans(tmp_path, capsys, tiny_model_dir):
    rng = random.Random(1)
    people, places = ["Bob", "Alice", "Carol"], ["Paris", "Oslo", "Rome"]
    rows = []
    for i in range(100):
        p, q = rng.choice(people), rng.choice(places)
        filler = rng.choice(["went to", "flew to", "lives in"])
        tokens = [p, *filler.split(), q, "on", f"day{i}"]
        rows.append({"tokens": tokens, "tags": ["B-per"] + ["O"] * len(filler.split()) +
                     ["B-loc", "O", "O"]})
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "prepare", str(tmp_path / "raw.jsonl"), "--task", "ner", "--out",
                 str(tmp_path / "d"), "--val", "0.2", "--test", "0.2"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d"), "--model", str(tiny_model_dir),
                 "--head", "token", "--method", "full", "--epochs", "6", "--lr", "0.003",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert head_of(run / "final")[0] == "token"
    assert main(["eval", "--model", str(run), "--data", str(tmp_path / "d"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "ner" and doc["metrics"]["f1"] >= 0.9 and doc["invalid"] == 0


def test_heads_refuse_the_wrong_task_and_serve_refuses_heads(tmp_path, capsys, tiny_model_dir,
                                                              tiny_data_dir):
    code = main(["train", "--data", str(tiny_data_dir), "--model", str(tiny_model_dir),
                 "--head", "token", "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 2 and "--head token is for ner data" in capsys.readouterr().err
    data = _separable(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", str(tiny_model_dir), "--head",
                 "classifier", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    code = main(["serve", "--home", str(tmp_path / "h"), "--model", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "classifier head" in err and "serve does not offer it" in err


def test_tune_picks_the_best_learning_rate_on_validation(tmp_path, capsys, tiny_model_dir):
    """A base learning rate too small to learn the fixture in 3 epochs: a larger one wins on
    validation, every trial is written, and final/ holds the winner's best epoch."""
    data = _separable(tmp_path)
    run = tmp_path / "tuned"
    assert main(["train", "--data", str(data), "--model", str(tiny_model_dir), "--head",
                 "classifier", "--method", "full", "--lr", "0.0005", "--epochs", "3", "--tune",
                 "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((run / "tune.json").read_text())
    trials = {t["lr_factor"]: t for t in doc["trials"]}
    assert set(trials) == {1.0, 0.5, 2.0, 4.0} and doc["metric"] == "macro_f1"
    best = doc["best"]
    assert best["lr_factor"] > 1 and best["best_metric"] > trials[1.0]["best_metric"]
    assert best["best_metric"] == max(t["best_metric"] for t in doc["trials"])
    for factor, trial in trials.items():
        assert (run / "trials" / f"lr-x{factor:g}" / "config.yaml").is_file()
        assert trial["lr"] == pytest.approx(0.0005 * factor)
    assert "<- best" in out and "the auto rule" in doc["why"]
    assert main(["eval", "--model", str(run), "--data", str(data / "validation.jsonl"),
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"]["macro_f1"] == pytest.approx(best["best_metric"])


def test_tune_respects_its_budget(tmp_path, capsys, tiny_model_dir):
    data = _separable(tmp_path)
    run = tmp_path / "tuned"
    assert main(["train", "--data", str(data), "--model", str(tiny_model_dir), "--head",
                 "classifier", "--method", "full", "--epochs", "4", "--tune",
                 "--tune-budget-minutes", "0.001", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads((run / "tune.json").read_text())
    stopped = [t["stopped"] for t in doc["trials"]]
    assert stopped == ["budget", "not run", "not run", "not run"]
    assert len(doc["trials"][0]["epochs"]) == 1  # ended at the first epoch end past the budget
    assert (run / "final" / "model.safetensors").is_file()


@pytest.mark.slow  # an integration run: compare x heads x tune (make test-slow)
def test_compare_with_a_head_and_tune(tmp_path, capsys, tiny_model_dir):
    """compare --method lora,full-head --tune: one row per approach, each priced; the tuned
    settings and why they won are in the report."""
    data = _separable(tmp_path)
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["compare", "--data", str(data), "--model", str(tiny_model_dir), "--shots", "0",
                 "--method", "lora,full-head", "--epochs", "2", "--tune", "--out", str(out),
                 "--quiet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {a["name"]: a for a in doc["approaches"]}
    assert set(rows) == {"zero-shot", "fine-tuned (lora)", "fine-tuned (full-head)"}
    head = rows["fine-tuned (full-head)"]
    assert head["completion_tokens"] == 0 and head["cost"]["per_1k_requests_usd"] > 0
    assert head["cost"]["one_off_usd"] > 0  # every trial's training time is paid for
    for name in ("fine-tuned (lora)", "fine-tuned (full-head)"):
        tuned = doc["training"][name]["tune"]
        assert len(tuned["trials"]) == 4 and "had the best validation" in tuned["why"]
    md = (out / "report.md").read_text()
    assert md.count("## Settings chosen on the validation split") == 2
