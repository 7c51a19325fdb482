"""The price table (a dated YAML file shipped with the package, overridable with `--prices`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from tunesmith.errors import UnusableInputError, UsageError

OPENAI_FIELDS = ("training", "base_input", "base_output", "ft_input", "ft_output")
OPENAI_CACHED = ("base_cached_input", "ft_cached_input")


@dataclass(frozen=True)
class PromptCaching:
    """How an endpoint bills a prompt prefix it has cached (OpenAI: automatic for prompts of at
    least 1,024 tokens, the cached part in 128-token steps, kept for minutes of inactivity)."""

    min_tokens: int = 0
    """Prompts shorter than this are never cached."""
    increment: int = 1
    """The cached prefix is counted in steps of this many tokens beyond `min_tokens`."""
    ttl_seconds: float | None = None
    """How long an unused prefix stays cached; None: always (a request finds it warm)."""
    source: str = ""

    def cached_tokens(self, prompt_tokens: float, shared_tokens: float) -> float:
        """Tokens of a request billed at the cached price, when the shared prefix is warm."""
        if prompt_tokens < self.min_tokens or shared_tokens < max(self.min_tokens, 1):
            return 0.0
        steps = (shared_tokens - self.min_tokens) // self.increment
        return float(self.min_tokens + steps * self.increment)

    def hit_rate(self, requests_per_second: float) -> float:
        """Share of requests that find the prefix warm: Poisson arrivals, a prefix kept
        `ttl_seconds` after its last use."""
        if self.ttl_seconds is None:
            return 1.0
        return 1.0 - math.exp(-requests_per_second * self.ttl_seconds)


@dataclass(frozen=True)
class OpenAIPrice:
    """US dollars per 1M tokens."""

    model: str
    training: float
    base_input: float
    base_output: float
    ft_input: float
    ft_output: float
    base_cached_input: float | None = None
    """Input tokens read from the prompt cache (None: the table names no cached price)."""
    ft_cached_input: float | None = None


@dataclass(frozen=True)
class ChatPrice:
    """What prompting a chat model through an endpoint costs, US dollars per 1M tokens."""

    model: str
    """The price table entry it came from."""
    input: float
    output: float
    cached_input: float | None = None
    """Input tokens the endpoint read from its prompt cache; None: no cached price."""
    caching: PromptCaching | None = None
    """When a prefix counts as cached (None with no cached price)."""


@dataclass(frozen=True)
class Machine:
    """The machine a measurement ran on: `cpu` with its cores, or a CUDA device's name."""

    kind: str
    """`cpu` or `gpu`."""
    name: str
    """`cpu` or the device name (`NVIDIA H200`)."""
    cores: int = 0

    def describe(self) -> str:
        return f"{self.cores} CPU cores" if self.kind == "cpu" else self.name


@dataclass(frozen=True)
class HardwarePrice:
    name: str
    hourly: float
    """US dollars per hour."""
    description: str = ""
    device: str = ""
    """What it is, to tell whether a measurement here was made on it: `cpu`, or a GPU's name as
    CUDA reports it (`NVIDIA L4`; matched as a substring)."""
    vcpus: int | None = None
    """CPU entries: its vCPUs (a measurement on as many cores counts as made on it)."""

    def matches(self, here: Machine) -> bool:
        if here.kind == "cpu":
            return self.device == "cpu" and self.vcpus == here.cores
        return bool(self.device) and self.device != "cpu" and \
            self.device.lower() in here.name.lower()


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
    openai_caching: PromptCaching | None = None
    """How OpenAI bills cached prompt prefixes (`prompt_caching.openai`)."""

    def chat_price(self, name: str) -> ChatPrice | None:
        """The per-token price of prompting `name`: an `endpoints:` entry, else an `openai:`
        entry of that name or its dated snapshot (`gpt-4.1-mini` -> `gpt-4.1-mini-2025-04-14`)
        at base-model prices. None when the table does not know it (never a guess)."""
        if name in self.endpoints:
            return self.endpoints[name]
        row = self.openai_entry(name)
        if row is None:
            return None
        return self._chat_price(row.model, row.base_input, row.base_output,
                                row.base_cached_input)

    def _chat_price(self, model: str, input_: float, output: float,
                    cached: float | None) -> ChatPrice:
        """A per-token price, with OpenAI's caching rule where the entry has a cached price."""
        return ChatPrice(model, input_, output, cached,
                         self.openai_caching if cached is not None else None)

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
        if row is None:
            return None
        return self._chat_price(f"ft:{row.model}", row.ft_input, row.ft_output,
                                row.ft_cached_input)

    @property
    def default_openai(self) -> OpenAIPrice:
        name = self.defaults.get("openai_model") or next(iter(self.openai))
        return self.openai[name]

    def machine(self, name: str | None, here: Machine) -> HardwarePrice:
        """The self-hosted machine type priced: `name` (`--machine`), else the table's entry
        for the machine measured on (`defaults.cpu` / `defaults.gpu` where it matches, else the
        first entry that does).

        Raises:
            UsageError: `--machine` names no entry, or no entry describes this machine (a GPU
                is never silently priced as another one).
        """
        if name is not None:
            if name not in self.self_hosted:
                raise UsageError(f"--machine {name}: the price table ({self.source}) has no "
                                 f"self_hosted entry of that name; it has: "
                                 f"{', '.join(self.self_hosted) or 'none'}.")
            return self.self_hosted[name]
        preferred = self.self_hosted.get(
            self.defaults.get(here.kind, "cpu-2vcpu" if here.kind == "cpu" else ""))
        if preferred is not None and (preferred.matches(here) or not preferred.device):
            return preferred  # an entry without a device is whatever the table's author says
        for entry in self.self_hosted.values():
            if entry.matches(here):
                return entry
        raise UsageError(f"no self_hosted entry in the price table ({self.source}) describes "
                         f"this machine ({here.describe()}), so its measured speed has no "
                         f"price: name one with --machine (then its capacity is not measured "
                         f"unless --capacity FILE gives it), or add an entry with "
                         f"'device: {here.name if here.kind == 'gpu' else 'cpu'}'"
                         + (f" and 'vcpus: {here.cores}'" if here.kind == "cpu" else "")
                         + " to a table passed with --prices.")


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

    openai = _openai_section(section("openai"), problems)
    caching = _caching(section("prompt_caching").get("openai"), "prompt_caching.openai",
                       problems)
    hardware = _hardware_section(section("self_hosted"), problems)
    if not openai:
        problems.append("no OpenAI prices (an 'openai:' section with at least one model)")
    defaults = {str(k): str(v) for k, v in section("defaults").items()}
    if defaults.get("openai_model") and defaults["openai_model"] not in openai:
        problems.append(f"defaults.openai_model '{defaults['openai_model']}' is not in 'openai:'")
    endpoints = _endpoints_section(section("endpoints"), problems)
    sources = section("sources")
    if problems:
        raise UnusableInputError(source, "; ".join(problems) + ".")
    return PriceTable(str(raw.get("as_of", "undated")), source, dict(sources), openai, hardware,
                      defaults, endpoints, caching)


def _openai_section(rows: dict, problems: list[str]) -> dict[str, OpenAIPrice]:
    openai: dict[str, OpenAIPrice] = {}
    for model, row in rows.items():
        row = row if isinstance(row, dict) else {}
        values = {k: row.get(k) for k in OPENAI_FIELDS}
        bad = [k for k, v in values.items() if not _price(v)]
        if bad:
            problems.append(f"openai.{model}: {', '.join(bad)} must be non-negative numbers")
            continue
        cached = {k: row.get(k) for k in OPENAI_CACHED if row.get(k) is not None}
        if any(not _price(v) for v in cached.values()):
            problems.append(f"openai.{model}: {', '.join(cached)} must be non-negative numbers")
            continue
        openai[str(model)] = OpenAIPrice(str(model), **{k: float(v) for k, v in values.items()},
                                         **{k: float(v) for k, v in cached.items()})
    return openai


def _hardware_section(rows: dict, problems: list[str]) -> dict[str, HardwarePrice]:
    hardware: dict[str, HardwarePrice] = {}
    for name, row in rows.items():
        row = row if isinstance(row, dict) else {}
        hourly = row.get("hourly")
        if not (_price(hourly) and hourly < 1e9):
            problems.append(f"self_hosted.{name}.hourly must be a non-negative number")
            continue
        vcpus = row.get("vcpus")
        if vcpus is not None and (isinstance(vcpus, bool) or not isinstance(vcpus, int)
                                  or vcpus < 1):
            problems.append(f"self_hosted.{name}.vcpus must be a positive whole number")
            continue
        hardware[str(name)] = HardwarePrice(str(name), float(hourly),
                                            str(row.get("description", "")),
                                            str(row.get("device", "")), vcpus)
    return hardware


def _endpoints_section(rows: dict, problems: list[str]) -> dict[str, ChatPrice]:
    endpoints: dict[str, ChatPrice] = {}
    for name, row in rows.items():
        row = row if isinstance(row, dict) else {}
        values = {k: row.get(k) for k in ("input", "output")}
        cached_input = row.get("cached_input")
        if not all(map(_price, values.values())) or \
                (cached_input is not None and not _price(cached_input)):
            problems.append(f"endpoints.{name}: input, output and cached_input must be "
                            "non-negative numbers (US dollars per 1M tokens)")
            continue
        caching = None
        if cached_input is not None:
            caching = _caching(row.get("caching") or {}, f"endpoints.{name}.caching",
                               problems) or PromptCaching()
        endpoints[str(name)] = ChatPrice(str(name), float(values["input"]),
                                         float(values["output"]),
                                         None if cached_input is None else float(cached_input),
                                         caching)
    return endpoints


def _price(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < 1e12


def _caching(raw, where: str, problems: list[str]) -> PromptCaching | None:
    """A `prompt_caching` mapping (min_tokens, increment, ttl_seconds, source)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping (min_tokens, increment, ttl_seconds, source)")
        return None
    minimum, step, ttl = raw.get("min_tokens", 0), raw.get("increment", 1), raw.get("ttl_seconds")
    if not (isinstance(minimum, int) and minimum >= 0 and isinstance(step, int) and step >= 1
            and (ttl is None or (_price(ttl) and ttl > 0))):
        problems.append(f"{where}: min_tokens >= 0 and increment >= 1 are whole numbers, "
                        "ttl_seconds a positive number")
        return None
    return PromptCaching(minimum, step, None if ttl is None else float(ttl),
                         str(raw.get("source", "")))
