"""The evaluation runner on a tiny random model: every task produces its metrics and costs."""

import pytest

from tests.conftest import ASSETS
from tunesmith.data import read_dataset
from tunesmith.data.splits import load_task_data
from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.backends import LocalBackend
from tunesmith.evaluation.runner import evaluate
from tunesmith.evaluation.scoring import LabelTree, SearchStats, answer_tokens
from tunesmith.modeling import build_tiny_model
from tunesmith.prompting.prompter import PromptConfig


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return build_tiny_model(len(tokenizer), seed=0).eval()


def test_classification_scoring_and_generation(tiny, tokenizer, tiny_data_dir):
    td = load_task_data(tiny_data_dir / "validation.jsonl")  # a single file: shots from train.jsonl
    assert td.spec.task == "classification" and len(td.train) == 9
    examples = td.test
    backend = LocalBackend(tiny, tokenizer)
    scored = evaluate(backend, examples, td.spec, prompt=PromptConfig(3), train=td.train)
    assert scored.name == "3-shot" and scored.n == len(examples) == len(scored.predictions)
    assert set(scored.predictions) <= set(td.spec.labels)  # scoring always names a label
    assert scored.invalid == 0 and 0 <= scored.metrics["macro_f1"] <= 1
    assert scored.prompt_tokens > 60 and scored.latency_s > 0
    # Priced at what ran: the label tree's tokens the search fed (the same as the stats count).
    stats = SearchStats()
    counted = evaluate(LocalBackend(tiny, tokenizer, stats=stats), examples, td.spec,
                       prompt=PromptConfig(3), train=td.train)
    assert counted.completion_tokens == pytest.approx(stats.nodes_run / stats.examples)
    exhaustive = LocalBackend(tiny, tokenizer).label_scores(
        [[{"role": "user", "content": "x"}]], td.spec.labels, exhaustive=True)
    tree = LabelTree.build([answer_tokens(tokenizer, label) for label in td.spec.labels])
    internal = sum(1 for kids in tree.children if kids)
    assert exhaustive.completion_tokens == [internal]  # an exhaustive search runs every node
    generated = evaluate(backend, examples, td.spec, mode="generate")
    assert generated.mode == "generate"
    assert generated.invalid == sum(p is None for p in generated.predictions)  # random model


def test_ner_counts_unparseable_output(tiny, tokenizer):
    data = read_dataset(ASSETS / "ner_tiny.jsonl")
    spec = TaskSpec("ner", ["corporation", "location", "person"], "Extract entities as JSON.")
    result = evaluate(LocalBackend(tiny, tokenizer), data.examples[:4], spec, max_new_tokens=8)
    assert result.invalid == 4  # a random model writes no JSON list
    assert result.metrics["f1"] == 0.0 and result.metrics["invalid_rate"] == 1.0
    assert result.gold[0] == [("Mike", "person"), ("Chapel Hill", "location")]


def test_chat_reports_loss_and_overlap(tiny, tokenizer):
    data = read_dataset(ASSETS / "completion_tiny.jsonl")
    spec = TaskSpec("chat", [], "")
    result = evaluate(LocalBackend(tiny, tokenizer), data.examples[:3], spec, max_new_tokens=4)
    assert result.metrics["loss"] > 5  # random weights over a 49k vocabulary: about ln(49152)
    assert result.metrics["perplexity"] > 100
    assert 0 <= result.metrics["token_f1"] <= 1
