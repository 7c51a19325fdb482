"""`migrate record`: how a fine-tuned model answers the team's real inputs, kept for good.

    inputs      chat rows (their system/user/tool messages; a final assistant turn is kept as
                the reference), logged chat-completion request bodies (their `temperature`,
                `max_tokens`, `tools`, ... as sent in production), or a CSV/JSONL column of texts
                with --system; a `data prepare` folder: each of its splits
    before      the request count, a token estimate and its price at the table, the days left;
                --max-cost refuses a recording estimated to cost more, and stops one that would
    sending     bounded concurrency, 429s waited out (Retry-After), every answer cached as it
                arrives: a killed run continues where it stopped and sends nothing twice
    OUT/        golden.jsonl (or one file per split, with task.json): chat JSONL whose assistant
                turn is the recorded answer, which `data check`, `train` and `compare` take;
                answers.jsonl: every full answer (content, tool_calls, finish_reason, usage, the
                model id, the time; with --logprobs the first token's 20 top log-probabilities);
                record.json: model, settings, counts, tokens, cost. The API key is never written.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.atomic import atomic_open, write_text
from tunesmith.config import EndpointOptions
from tunesmith.data.jsonline import INVALID, parse_line
from tunesmith.data.lines import read_lines
from tunesmith.data.taskfile import TASK_FILE, read_task, write_task
from tunesmith.endpoints.cache import ResponseCache
from tunesmith.endpoints.client import EndpointClient, EndpointError
from tunesmith.endpoints.spec import resolve_endpoint
from tunesmith.errors import InvalidDataError, UnusableInputError, UsageError
from tunesmith.modeling import DEFAULT_MODEL, load_tokenizer
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.pricing import OpenAIPrice, load_prices
from tunesmith.shutdowns import base_of, load_shutdowns

SPLITS = ("train", "validation", "test")
REQUEST_KEYS = {"temperature", "top_p", "max_tokens", "max_completion_tokens", "tools",
                "tool_choice", "parallel_tool_calls", "seed", "stop", "response_format",
                "presence_penalty", "frequency_penalty", "logit_bias", "n"}
"""Chat-completion parameters a logged request body may carry; they are sent as logged."""
TOP_LOGPROBS = 20
"""OpenAI's most: the first answer token's 20 likeliest tokens (--logprobs)."""
RECORD_FILES = ("record.json", "answers.jsonl", "golden.jsonl",
                *(f"{s}.jsonl" for s in SPLITS), TASK_FILE)


@dataclass(kw_only=True)
class RecordConfig(EndpointOptions):
    """`tunesmith migrate record`: every flag is a field (its docstring is the help)."""

    model: str = field(default="", metadata={"metavar": "openai:ft:...", "required": True})
    """The fine-tuned model to record, as `openai:ID` (ID as the API names it)."""
    inputs: str = field(default="", metadata={"metavar": "FILE|DIR", "required": True})
    """Chat JSONL, logged request bodies (JSONL), a CSV/JSONL column of texts (--text-field,
    with --system), or a `data prepare` folder (each split is recorded)."""
    out: str = field(default="", metadata={"metavar": "DIR", "required": True})
    """Where the golden set, answers.jsonl and record.json go: new, empty, or a recording."""
    system: str | None = field(default=None, metadata={"metavar": "TEXT"})
    """The system message of inputs that are plain texts (a column of a CSV or JSONL)."""
    text_field: str = field(default="text", metadata={"metavar": "NAME"})
    """The column or key of plain-text inputs."""
    temperature: float = field(default=0.0, metadata={"low": 0, "high": 2})
    """For inputs that do not say (logged request bodies keep their own): 0 answers as the
    model most likely would, which is what a comparison needs."""
    max_tokens: int = field(default=1024, metadata={"metavar": "N", "low": 1})
    """For inputs that do not say: the most answer tokens a request may take (and what the cost
    estimate assumes)."""
    logprobs: bool = False
    """Also record the first answer token's 20 top log-probabilities (classification: the
    label distribution that soft distillation learns from)."""
    max_cost: float | None = field(default=None, metadata={"metavar": "USD", "low": 0})
    """Refuse a recording estimated to cost more, and stop one before it would."""
    prices: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Price table YAML (default: the shipped one)."""
    shutdowns: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Shutdown table YAML (default: the shipped one)."""
    estimate_model: str = DEFAULT_MODEL
    """Whose tokenizer estimates the tokens before sending (the provider's is not available
    offline; expect the billed count to differ by ~10-20%)."""


@dataclass
class Row:
    """One input: what is sent, and where it came from."""

    split: str
    line: int
    request: dict
    """The chat-completion body (no `model`: the client adds it)."""
    reference: dict | None = None
    """The input's own final assistant turn, if it had one (a gold answer)."""


@dataclass
class Plan:
    """What a recording will send and cost, computed before anything is sent."""

    requests: int
    prompt_tokens: int
    max_answer_tokens: int
    price: OpenAIPrice | None
    cached: int = 0
    """Requests already answered in the cache (a rerun): they cost nothing."""

    @property
    def cost_usd(self) -> float | None:
        """An upper bound at the fine-tuned model's prices (every answer at its max tokens)."""
        if self.price is None:
            return None
        share = (self.requests - self.cached) / max(self.requests, 1)
        return share * (self.prompt_tokens * self.price.ft_input
                        + self.max_answer_tokens * self.price.ft_output) / 1e6


def read_inputs(path: Path, cfg: RecordConfig) -> tuple[dict[str, list[Row]], object]:
    """The rows to send, by split (`golden` for a single file), and the folder's task.json.

    Raises:
        UnusableInputError, InvalidDataError: a file that cannot be read, or rows that cannot
            be sent (each named by file and line).
    """
    if path.is_dir():
        files = {s: path / f"{s}.jsonl" for s in SPLITS if (path / f"{s}.jsonl").is_file()}
        if not files:
            raise UnusableInputError(path, "no train.jsonl, validation.jsonl or test.jsonl: give "
                                     "a `tunesmith data prepare` folder or a file.")
        spec = read_task(path)
    else:
        files, spec = {"golden": path}, None
    return {split: _rows(split, file, cfg) for split, file in files.items()}, spec


def _rows(split: str, path: Path, cfg: RecordConfig) -> list[Row]:
    """Chat rows or logged request bodies (JSONL with `messages`), else a column of texts."""
    if path.suffix.lower() != ".jsonl" and path.suffix.lower() != ".json":
        return _text_rows(split, path, cfg)
    lines, issues = read_lines(path)
    parsed: list[tuple[int, object]] = []
    errors = [i.render(path.name) for i in issues if i.severity == "error"]
    for line in lines:
        if line.text is None or not line.text.strip():
            continue
        value, problems = parse_line(line.text, line.number)
        errors += [i.render(path.name) for i in problems if i.severity == "error"]
        if value is not INVALID:
            parsed.append((line.number, value))
    chat = any(isinstance(v, dict) and "messages" in v for _, v in parsed)
    if not chat:
        if errors:
            raise InvalidDataError(path, [], f"{len(errors)} lines cannot be read: "
                                   + "; ".join(errors[:5]))
        return _text_rows(split, path, cfg, parsed)
    rows = []
    for number, obj in parsed:
        row, problem = (_chat_row(split, number, obj, cfg) if isinstance(obj, dict)
                        else (None, "each line must be a JSON object"))
        if problem:
            errors.append(f"{path.name}:{number}: {problem}")
        else:
            rows.append(row)
    if errors:
        raise InvalidDataError(path, [], f"{len(errors)} rows cannot be sent: "
                               + "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""))
    return rows


def _chat_row(split: str, line: int, obj: dict, cfg: RecordConfig) -> tuple[Row | None, str]:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return None, "messages: expected a list of {role, content} objects"
    reference = None
    if messages[-1].get("role") == "assistant":
        reference, messages = messages[-1], messages[:-1]
    if not messages or messages[-1].get("role") not in ("user", "tool", "system", "developer"):
        return None, "messages: nothing to answer (the last turn is an assistant's)"
    request = {"messages": [{k: v for k, v in m.items() if k != "weight"} for m in messages]}
    for key in REQUEST_KEYS & set(obj):
        request[key] = obj[key]
    if "n" in request and request["n"] != 1:
        return None, "n: a recording takes one answer per input (n 1)"
    request.setdefault("temperature", cfg.temperature)
    if "max_tokens" not in request and "max_completion_tokens" not in request:
        request["max_tokens"] = cfg.max_tokens
    if cfg.logprobs:
        request["logprobs"], request["top_logprobs"] = True, TOP_LOGPROBS
    return Row(split, line, request, reference), ""


def _text_rows(split: str, path: Path, cfg: RecordConfig,
               parsed: list[tuple[int, object]] | None = None) -> list[Row]:
    """A column of texts (a CSV, or JSONL objects): each sent as the user message after
    --system. A `label` beside the text is kept as the reference answer."""
    field_name = cfg.text_field
    values: list[tuple[int, object, object]] = []  # (line, text, label)
    if parsed is not None:
        for line, obj in parsed:
            values.append((line, obj.get(field_name) if isinstance(obj, dict) else None,
                           obj.get("label") if isinstance(obj, dict) else None))
    else:
        lines, issues = read_lines(path)
        text = "\n".join(line.text or "" for line in lines)
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or field_name not in reader.fieldnames:
            raise UnusableInputError(path, f"no column '{field_name}' (the texts to send; name "
                                     "another with --text-field).", field=field_name)
        for number, row in enumerate(reader, start=2):
            values.append((number, row.get(field_name), row.get("label")))
    errors = [f"{path.name}:{line}: {field_name}: expected a non-empty string"
              for line, value, _ in values if not isinstance(value, str) or not value.strip()]
    if errors:
        raise InvalidDataError(path, [], f"{len(errors)} rows cannot be sent: "
                               + "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""))
    rows = []
    for line, value, label in values:
        messages = ([{"role": "system", "content": cfg.system}] if cfg.system else []) + [
            {"role": "user", "content": value}]
        request = {"messages": messages, "temperature": cfg.temperature,
                   "max_tokens": cfg.max_tokens}
        if cfg.logprobs:
            request["logprobs"], request["top_logprobs"] = True, TOP_LOGPROBS
        reference = ({"role": "assistant", "content": str(label)}
                     if label not in (None, "") else None)
        rows.append(Row(split, line, request, reference))
    return rows


def plan(rows: list[Row], price: OpenAIPrice | None, estimate_model: str,
         cached: int = 0) -> Plan:
    """Count what will be sent (tokens with `estimate_model`'s tokenizer)."""
    tokenizer = load_tokenizer(estimate_model)
    prompt = 0
    for row in rows:
        text = "".join(str(m.get("content") or "") for m in row.request["messages"])
        tools = json.dumps(row.request.get("tools")) if row.request.get("tools") else ""
        # ~4 tokens of chat framing a message, as OpenAI's cookbook counts them
        prompt += len(tokenizer(text + tools, add_special_tokens=False)["input_ids"]) \
            + 4 * len(row.request["messages"]) + 3
    answers = sum(int(row.request.get("max_completion_tokens") or row.request.get("max_tokens")
                      or 0) for row in rows)
    return Plan(len(rows), prompt, answers, price, cached)


@dataclass
class Recording:
    out: Path
    model: str
    plan: Plan
    answered: int
    from_cache: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    days_left: int | None
    shutdown: str | None
    seconds: float
    files: dict[str, str]
    stopped: str | None = None
    """Why the recording stopped before the end (--max-cost), else None."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        d["plan"] = {"requests": self.plan.requests, "prompt_tokens": self.plan.prompt_tokens,
                     "max_answer_tokens": self.plan.max_answer_tokens,
                     "already_cached": self.plan.cached, "cost_usd": self.plan.cost_usd}
        return d


def prepare_recording(cfg: RecordConfig) -> tuple[dict[str, list[Row]], object, Plan, dict]:
    """Everything known before a request is sent: the rows, the folder's task, the plan and the
    model's shutdown (`days_left`, `shutdown`, `base`).

    Raises:
        UsageError: not an `openai:` model, an output folder that is not a recording, a cost
            estimate over --max-cost, or --max-cost without a price for the model.
    """
    endpoint = resolve_endpoint(cfg.model, cfg.base_url, cfg.api_key_env)
    inputs = Path(cfg.inputs)
    if not inputs.exists():
        raise UnusableInputError(inputs, "no such file or folder.")
    out = Path(cfg.out)
    check_not_input([out / name for name in RECORD_FILES],
                    [inputs / f"{s}.jsonl" for s in SPLITS] + [inputs / TASK_FILE]
                    if inputs.is_dir() else [inputs])
    rows, spec = read_inputs(inputs, cfg)
    every = [r for split in rows.values() for r in split]
    if not every:
        raise UnusableInputError(inputs, "no inputs to record.")
    base = base_of(endpoint.model)
    prices = load_prices(cfg.prices)
    price = prices.openai_entry(base)
    cache = ResponseCache()
    cached = sum(cache.get(ResponseCache.key(endpoint.base_url, endpoint.model, r.request))
                 is not None for r in every)
    the_plan = plan(every, price, cfg.estimate_model, cached)
    if cfg.max_cost is not None:
        if the_plan.cost_usd is None:
            raise UsageError(f"--max-cost {cfg.max_cost:g}: the price table has no price for "
                             f"{base}; name it with --prices FILE (openai: {base}: ...).")
        if the_plan.cost_usd > cfg.max_cost:
            raise UsageError(f"the recording is estimated at up to ${the_plan.cost_usd:,.2f} "
                             f"({the_plan.requests - cached:,} requests, "
                             f"{the_plan.prompt_tokens:,} prompt tokens, up to "
                             f"{the_plan.max_answer_tokens:,} answer tokens), over --max-cost "
                             f"{cfg.max_cost:g}; lower --max-tokens, record fewer inputs, or raise "
                             "--max-cost.")
    entry = load_shutdowns(cfg.shutdowns).lookup(base)
    when = {"base": base, "shutdown": entry.date.isoformat() if entry else None,
            "days_left": entry.days_left() if entry else None}
    return rows, spec, the_plan, when


def record(cfg: RecordConfig, rows: dict[str, list[Row]], spec, the_plan: Plan, when: dict, *,
           progress: Callable[[], None] = lambda: None) -> Recording:
    """Send every row (answers already cached are not sent again) and write OUT.

    Raises:
        EndpointError: the endpoint refused (exit 2: key, model gone) or stopped answering
            (exit 1: rerun to continue; what arrived is cached).
    """
    out = claim_dir(cfg.out, owned=("record.json",))
    endpoint = resolve_endpoint(cfg.model, cfg.base_url, cfg.api_key_env)
    client = EndpointClient(endpoint, concurrency=cfg.concurrency, cache=ResponseCache(),
                            use_cache=cfg.use_cache, max_retries=cfg.max_retries)
    every = [r for split in rows.values() for r in split]
    started = time.perf_counter()
    answers: list[dict | None] = [None] * len(every)
    spent, stopped = 0.0, None
    chunk = max(1, cfg.concurrency * 4)
    price = the_plan.price
    for start in range(0, len(every), chunk):
        batch = every[start:start + chunk]
        if cfg.max_cost is not None and price is not None:
            ahead = sum(_upper_cost(r, price) for r in batch)
            if spent + ahead > cfg.max_cost:
                stopped = (f"stopped after {start:,} of {len(every):,} inputs: the next "
                           f"{len(batch)} could pass --max-cost {cfg.max_cost:g} "
                           f"(${spent:,.2f} spent)")
                break
        got = client.complete([r.request for r in batch], on_done=progress)
        for i, response in enumerate(got):
            answers[start + i] = response
            if price is not None:
                spent += _cost(response, price)
    files = _write(out, rows, every, answers, endpoint.model, spec)
    usage = [a.get("usage") or {} for a in answers if a]
    recording = Recording(
        out, cfg.model, the_plan, sum(a is not None for a in answers),
        client.cache.hits if client.cache else 0,
        sum(int(u.get("prompt_tokens") or 0) for u in usage),
        sum(int(u.get("completion_tokens") or 0) for u in usage),
        None if price is None else spent, when["days_left"], when["shutdown"],
        time.perf_counter() - started, files, stopped)
    doc = {**recording.to_dict(), "endpoint": endpoint.base_url, "base": when["base"],
           "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "inputs": str(cfg.inputs), "asked": client.received,
           "settings": {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens,
                        "logprobs": cfg.logprobs, "concurrency": cfg.concurrency},
           "price": None if price is None else {"input": price.ft_input,
                                                "output": price.ft_output,
                                                "per": "1M tokens, fine-tuned model"}}
    write_text(out / "record.json", json.dumps(doc, indent=2) + "\n")
    return recording


def _write(out: Path, rows: dict[str, list[Row]], every: list[Row], answers: list,
           model: str, spec) -> dict[str, str]:
    """The golden set(s) and answers.jsonl; rows without an answer (a stopped run) are left
    out of both."""
    by_row = {id(r): a for r, a in zip(every, answers)}
    files = {}
    for split, split_rows in rows.items():
        path = out / f"{split}.jsonl"
        with atomic_open(path) as f:
            for r in split_rows:
                answer = by_row[id(r)]
                if answer is not None:
                    f.write(json.dumps(golden_row(r, answer, model), ensure_ascii=False) + "\n")
        files[split] = str(path)
    if spec is not None:
        write_task(out, spec)
    with atomic_open(out / "answers.jsonl") as f:
        for r, answer in zip(every, answers):
            if answer is not None:
                f.write(json.dumps({"split": r.split, "line": r.line, "request": r.request,
                                    "reference": r.reference, "answer": answer_record(answer)},
                                   ensure_ascii=False) + "\n")
    files["answers"] = str(out / "answers.jsonl")
    return files


def golden_row(row: Row, answer: dict, model: str) -> dict:
    """The input with the recorded answer as its assistant turn (chat fine-tuning format)."""
    message = (answer.get("choices") or [{}])[0].get("message") or {}
    turn: dict = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        turn["tool_calls"] = [{"id": c.get("id"), "type": "function",
                               "function": c.get("function")} for c in message["tool_calls"]]
    out: dict = {"messages": row.request["messages"] + [turn]}
    if row.request.get("tools"):
        out["tools"] = row.request["tools"]
    out["metadata"] = {"recorded_from": answer.get("model") or model,
                       "finish_reason": (answer.get("choices") or [{}])[0].get("finish_reason"),
                       "line": row.line}
    return out


def answer_record(answer: dict) -> dict:
    """The full answer as kept in answers.jsonl."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    record = {"content": message.get("content"), "tool_calls": message.get("tool_calls"),
              "finish_reason": choice.get("finish_reason"), "usage": answer.get("usage"),
              "model": answer.get("model"), "created": answer.get("created"),
              "id": answer.get("id")}
    content = (choice.get("logprobs") or {}).get("content") or []
    if content:
        first = content[0]
        record["first_token_top_logprobs"] = [
            {"token": t.get("token"), "logprob": t.get("logprob")}
            for t in first.get("top_logprobs") or []]
    return record


def _cost(answer: dict, price: OpenAIPrice) -> float:
    usage = answer.get("usage") or {}
    return (int(usage.get("prompt_tokens") or 0) * price.ft_input
            + int(usage.get("completion_tokens") or 0) * price.ft_output) / 1e6


def _upper_cost(row: Row, price: OpenAIPrice) -> float:
    """A request's cost at most: its text at ~4 characters a token, its answer at its max."""
    chars = sum(len(str(m.get("content") or "")) for m in row.request["messages"])
    answer = int(row.request.get("max_completion_tokens") or row.request.get("max_tokens") or 0)
    return (math.ceil(chars / 4) * price.ft_input + answer * price.ft_output) / 1e6


__all__ = ["EndpointError", "Plan", "RecordConfig", "Recording", "prepare_recording", "record"]
