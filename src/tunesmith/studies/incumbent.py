"""The incumbent in a comparison: a fine-tuned model's recorded answers on the test inputs, as a
row beside the candidates (`compare --incumbent openai:ft:...|golden.jsonl`).

    openai:ft:...   recorded now (as `migrate record`) into REPORT_DIR/incumbent/; a rerun asks
                    nothing again (the cache), and after the shutdown the recording is all there is
    golden.jsonl    a recording made before (a file, or a folder holding test.jsonl or
                    golden.jsonl; answers.jsonl beside it gives the billed tokens)

Every test example must have a recorded answer, matched on its input messages.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tunesmith.atomic import atomic_open
from tunesmith.config import EndpointOptions
from tunesmith.data.examples import Example
from tunesmith.data.jsonline import INVALID, parse_line
from tunesmith.data.lines import read_lines
from tunesmith.data.taskfile import TaskSpec
from tunesmith.endpoints.spec import is_endpoint
from tunesmith.errors import UnusableInputError, UsageError
from tunesmith.evaluation.runner import EvalResult, shared_prompt_tokens
from tunesmith.evaluation.tasks import get_task
from tunesmith.shutdowns import base_of, load_shutdowns
from tunesmith.studies.record import RecordConfig, prepare_recording, record


@dataclass
class Recorded:
    """The incumbent's answer to each test example, in test order."""

    spec: str
    """What `--incumbent` named."""
    model: str
    """The model that answered (as the recording says)."""
    answers: list[str]
    prompt_tokens: list[int]
    completion_tokens: list[int]
    source: str
    """The golden file the answers come from."""


def prompt_key(messages: list) -> str:
    """An input's identity: its messages before the answer (role and text)."""
    pairs = [(m["role"], m.get("content") or "") if isinstance(m, dict) else
             (m.role, m.content) for m in messages]
    while pairs and pairs[-1][0] == "assistant":
        pairs.pop()
    return json.dumps(pairs, ensure_ascii=False)


def incumbent_answers(spec: str, test: list[Example], out: Path,
                      endpoint: EndpointOptions) -> Recorded:
    """The incumbent's answers to `test`, recorded now (an `openai:` model) or read from a
    recording.

    Raises:
        UnusableInputError: a recording with broken lines, rows without an answer, answers of
            another model mixed in, or no answer for some test inputs (each named).
        EndpointError: the incumbent cannot be asked (exit 2) or stopped answering (exit 1).
    """
    if is_endpoint(spec):
        golden = _record(spec, test, out / "incumbent", endpoint)
    else:
        golden = _golden_path(Path(spec))
    rows = read_golden(golden)
    by_key = {prompt_key(r["messages"]): r for r in rows}
    missing = [i for i, e in enumerate(test) if prompt_key(e.messages) not in by_key]
    if missing:
        raise UnusableInputError(golden, f"no recorded answer for {len(missing)} of the "
                                 f"{len(test)} test inputs (the first: test example "
                                 f"{missing[0] + 1}); record the test split itself: tunesmith "
                                 "migrate record --inputs DATA/test.jsonl ...")
    chosen = [by_key[prompt_key(e.messages)] for e in test]
    usage = _usage(golden.parent / "answers.jsonl")
    model = Counter(r.get("metadata", {}).get("recorded_from", spec) for r in rows).most_common(1)
    prompts = [usage.get(r.get("metadata", {}).get("line"), (0, 0)) for r in chosen]
    return Recorded(spec, model[0][0] if model else spec,
                    [r["messages"][-1].get("content") or "" for r in chosen],
                    [p for p, _ in prompts], [c for _, c in prompts], str(golden))


def incumbent_result(recorded: Recorded, test: list[Example], spec: TaskSpec) -> EvalResult:
    """The recorded answers scored like any row (gold: the test split's answers)."""
    task = get_task(spec.task)
    parsed = [task.parse(text, spec) for text in recorded.answers]
    pred = [p for p, _ in parsed]
    gold = [task.gold(e) for e in test]
    metrics = task.metrics(gold, pred, spec)
    n = len(test)
    invalid = sum(bad for _, bad in parsed)
    metrics["invalid_rate"] = invalid / n if n else 0.0
    mean = (lambda xs: sum(xs) / len(xs) if xs else 0.0)
    # The incumbent was asked with the test inputs as the team sends them (system + user).
    asked = [[{"role": m.role, "content": m.content}
              for m in e.messages[:max((i for i, m in enumerate(e.messages)
                                        if m.role == "assistant"), default=len(e.messages))]]
             for e in test]
    shared, _ = shared_prompt_tokens(None, asked, mean(recorded.prompt_tokens))
    return EvalResult(
        f"incumbent ({recorded.model})", "incumbent", 0, spec.task, recorded.model, "generate", n,
        metrics, invalid, 0.0, mean(recorded.prompt_tokens), mean(recorded.completion_tokens),
        pred, gold, [e.prompt_key for e in test], {},
        [f"recorded answers from {recorded.source}; latency not measured"], shared, False)


def days_left(model: str, shutdowns: str | None = None) -> dict:
    """The incumbent's shutdown (None: the table does not name its base)."""
    entry = load_shutdowns(shutdowns).lookup(base_of(model.removeprefix("openai:")))
    return {"shutdown": entry.date.isoformat() if entry else None,
            "days_left": entry.days_left() if entry else None,
            "source": entry.source if entry else None}


def read_golden(path: Path) -> list[dict]:
    """A recording's rows, every problem named by line.

    Raises:
        UnusableInputError: broken lines, rows without a recorded answer, answers of another
            model mixed in, or no rows at all.
    """
    lines, issues = read_lines(path)
    problems = [i.render(path.name) for i in issues if i.severity == "error"]
    rows: list[dict] = []
    for line in lines:
        if line.text is None or not line.text.strip():
            continue
        value, found = parse_line(line.text, line.number)
        problems += [i.render(path.name) for i in found if i.severity == "error"]
        if value is INVALID:
            continue
        messages = value.get("messages") if isinstance(value, dict) else None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                or messages[-1].get("role") != "assistant":
            problems.append(f"{path.name}:{line.number}: no recorded answer (the last message "
                            "must be the assistant's) [missing_answer]")
            continue
        value.setdefault("metadata", {}).setdefault("line", line.number)
        value["metadata"]["file_line"] = line.number
        rows.append(value)
    models = Counter(r["metadata"].get("recorded_from") for r in rows
                     if r["metadata"].get("recorded_from"))
    if len(models) > 1:
        main_model = models.most_common(1)[0][0]
        strays = [r["metadata"]["file_line"] for r in rows
                  if r["metadata"].get("recorded_from") not in (None, main_model)]
        problems.append(f"{path.name}: lines {', '.join(map(str, strays[:10]))} were recorded "
                        f"from another model than {main_model} [mixed_models]")
    if problems:
        raise UnusableInputError(path, f"{len(problems)} problems: " + "; ".join(problems[:8])
                                 + (" ..." if len(problems) > 8 else ""))
    if not rows:
        raise UnusableInputError(path, "no recorded answers (an empty recording).")
    return rows


def _golden_path(path: Path) -> Path:
    if path.is_dir():
        for name in ("test.jsonl", "golden.jsonl"):
            if (path / name).is_file():
                return path / name
        raise UnusableInputError(path, "no test.jsonl or golden.jsonl: give the file `tunesmith "
                                 "migrate record` wrote.")
    if not path.is_file():
        raise UsageError(f"--incumbent {path}: no such file; give openai:ft:... or a recording "
                         "(golden.jsonl).")
    return path


def _usage(answers: Path) -> dict[int, tuple[int, int]]:
    """Input line -> (prompt, completion) tokens the provider billed, from answers.jsonl."""
    out: dict[int, tuple[int, int]] = {}
    if not answers.is_file():
        return out
    for text in answers.read_text("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(text)
            usage = row["answer"]["usage"] or {}
            out[int(row["line"])] = (int(usage.get("prompt_tokens") or 0),
                                     int(usage.get("completion_tokens") or 0))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _record(spec: str, test: list[Example], folder: Path, endpoint: EndpointOptions) -> Path:
    """Record the incumbent on the test inputs (as `migrate record`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = folder / "inputs.jsonl"
    with atomic_open(inputs) as f:
        f.writelines(json.dumps(e.to_chat(), ensure_ascii=False) + "\n" for e in test)
    cfg = RecordConfig(model=spec, inputs=str(inputs), out=str(folder / "recording"),
                       **{k: getattr(endpoint, k) for k in EndpointOptions.ENDPOINT_FIELDS})
    rows, task, plan, when = prepare_recording(cfg)
    record(cfg, rows, task, plan, when)
    return folder / "recording" / "golden.jsonl"


def teacher_answers(spec: str, examples: list[Example], folder: Path,
                    endpoint: EndpointOptions) -> list[str]:
    """A model's answers to `examples`' inputs, recorded (and cached) into `folder`: what
    distillation trains on.

    Raises:
        UsageError: not an `openai:` model.
        EndpointError: the model cannot be asked, or stopped answering.
    """
    if not is_endpoint(spec):
        raise UsageError(f"--teacher {spec}: give a model behind an OpenAI-compatible endpoint "
                         "(openai:NAME); a recording already is training data (compare --data).")
    rows = read_golden(_record(spec, examples, folder, endpoint))
    by_key = {prompt_key(r["messages"]): r for r in rows}
    return [(by_key.get(prompt_key(e.messages), {}).get("messages") or [{}])[-1].get("content")
            or "" for e in examples]
