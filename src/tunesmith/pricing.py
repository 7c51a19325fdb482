"""The price table (a dated YAML file shipped with the package, overridable with `--prices`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from tunesmith.errors import UnusableInputError

OPENAI_FIELDS = ("training", "base_input", "base_output", "ft_input", "ft_output")


@dataclass(frozen=True)
class OpenAIPrice:
    """US dollars per 1M tokens."""

    model: str
    training: float
    base_input: float
    base_output: float
    ft_input: float
    ft_output: float


@dataclass(frozen=True)
class ChatPrice:
    """What prompting a chat model through an endpoint costs, US dollars per 1M tokens."""

    model: str
    """The price table entry it came from."""
    input: float
    output: float


@dataclass(frozen=True)
class HardwarePrice:
    name: str
    hourly: float
    """US dollars per hour."""
    description: str = ""


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    """The file it was read from."""
    sources: dict[str, str]
    openai: dict[str, OpenAIPrice]
    self_hosted: dict[str, HardwarePrice]
    defaults: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, ChatPrice] = field(default_factory=dict)
    """Chat models prompted through an endpoint (`openai:NAME`), beyond OpenAI's own."""

    def chat_price(self, name: str) -> ChatPrice | None:
        """The per-token price of prompting `name`: an `endpoints:` entry, else an `openai:`
        entry of that name or its dated snapshot (`gpt-4.1-mini` -> `gpt-4.1-mini-2025-04-14`)
        at base-model prices. None when the table does not know it (never a guess)."""
        if name in self.endpoints:
            return self.endpoints[name]
        snapshots = [k for k in self.openai if k == name or
                     (k.startswith(name + "-") and k[len(name) + 1:][:4].isdigit())]
        if len(snapshots) != 1:
            return None
        row = self.openai[snapshots[0]]
        return ChatPrice(row.model, row.base_input, row.base_output)

    def openai_entry(self, name: str) -> OpenAIPrice | None:
        """The `openai:` entry of a model or of its dated snapshot (`gpt-4o-mini` ->
        `gpt-4o-mini-2024-07-18`); None unless exactly one matches."""
        if name in self.openai:
            return self.openai[name]
        snapshots = [k for k in self.openai
                     if k.startswith(name + "-") and k[len(name) + 1:][:4].isdigit()]
        return self.openai[snapshots[0]] if len(snapshots) == 1 else None

    def fine_tuned_price(self, base: str) -> ChatPrice | None:
        """What a model fine-tuned from `base` costs per token at OpenAI (its `ft_*` prices);
        None when the table does not name the base."""
        row = self.openai_entry(base)
        return None if row is None else ChatPrice(f"ft:{row.model}", row.ft_input, row.ft_output)

    @property
    def default_openai(self) -> OpenAIPrice:
        name = self.defaults.get("openai_model") or next(iter(self.openai))
        return self.openai[name]

    def hardware(self, gpu: bool) -> HardwarePrice:
        """The self-hosted hardware this machine is priced as (`defaults.cpu` / `defaults.gpu`).

        Raises:
            UnusableInputError: the table has no such `self_hosted` entry.
        """
        kind = "gpu" if gpu else "cpu"
        name = self.defaults.get(kind, "cpu-2vcpu" if kind == "cpu" else "")
        if name not in self.self_hosted:
            raise UnusableInputError(self.source, f"no self_hosted entry {name!r} to price this "
                                     f"machine with (set defaults.{kind} to one of: "
                                     f"{', '.join(self.self_hosted) or 'none'}).")
        return self.self_hosted[name]


def load_prices(path: str | Path | None = None) -> PriceTable:
    """Read a price table: `path`, or the one shipped with tunesmith.

    Raises:
        UnusableInputError: the file is missing, not YAML, or a price is missing or not a number;
            every problem is named at once.
    """
    if path is None:
        text = resources.files("tunesmith").joinpath("prices.yaml").read_text("utf-8")
        source = "tunesmith/prices.yaml"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UnusableInputError(path, f"cannot read the price table: {e}") from e
        source = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" (column {mark.column + 1})" if mark is not None else ""
        raise UnusableInputError(source, f"not valid YAML: {problem}{where}.",
                                 line=mark.line + 1 if mark is not None else None) from e
    if not isinstance(raw, dict):
        raise UnusableInputError(source, "a price table is a YAML mapping (see tunesmith/prices.yaml).")
    problems: list[str] = []

    def section(name: str) -> dict:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            problems.append(f"'{name}' must be a mapping")
            return {}
        return value

    openai: dict[str, OpenAIPrice] = {}
    for model, row in section("openai").items():
        row = row if isinstance(row, dict) else {}
        values = {k: row.get(k) for k in OPENAI_FIELDS}
        bad = [k for k, v in values.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e12]
        if bad:
            problems.append(f"openai.{model}: {', '.join(bad)} must be non-negative numbers")
            continue
        openai[str(model)] = OpenAIPrice(str(model), **{k: float(v) for k, v in values.items()})
    hardware: dict[str, HardwarePrice] = {}
    for name, row in section("self_hosted").items():
        row = row if isinstance(row, dict) else {}
        hourly = row.get("hourly")
        if isinstance(hourly, bool) or not isinstance(hourly, (int, float)) or not 0 <= hourly < 1e9:
            problems.append(f"self_hosted.{name}.hourly must be a non-negative number")
            continue
        hardware[str(name)] = HardwarePrice(str(name), float(hourly),
                                            str(row.get("description", "")))
    if not openai:
        problems.append("no OpenAI prices (an 'openai:' section with at least one model)")
    defaults = {str(k): str(v) for k, v in section("defaults").items()}
    if defaults.get("openai_model") and defaults["openai_model"] not in openai:
        problems.append(f"defaults.openai_model '{defaults['openai_model']}' is not in 'openai:'")
    endpoints: dict[str, ChatPrice] = {}
    for name, row in section("endpoints").items():
        row = row if isinstance(row, dict) else {}
        values = {k: row.get(k) for k in ("input", "output")}
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e12
               for v in values.values()):
            problems.append(f"endpoints.{name}: input and output must be non-negative numbers "
                            "(US dollars per 1M tokens)")
            continue
        endpoints[str(name)] = ChatPrice(str(name), float(values["input"]),
                                         float(values["output"]))
    sources = section("sources")
    if problems:
        raise UnusableInputError(source, "; ".join(problems) + ".")
    return PriceTable(str(raw.get("as_of", "undated")), source, dict(sources), openai, hardware,
                      defaults, endpoints)
