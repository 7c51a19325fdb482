"""Pricing every evaluated approach in one place (used by `compare` and `cost`).

    prompting a model loaded here     self-hosted, from its tokens at the model's measured rates
    prompting an endpoint model       the endpoint's usage tokens at its price table entry
    a fine-tuned model                self-hosted like the first, plus the training time
    any of them, as a reference       the same tokens at OpenAI's list prices (default model)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tunesmith.cost import ApproachCost, Deployment, endpoint, openai, self_hosted_tokens
from tunesmith.endpoints.spec import is_endpoint
from tunesmith.evaluation.runner import EvalResult
from tunesmith.evaluation.throughput import Throughput, load_capacity
from tunesmith.pricing import HardwarePrice, Machine, PriceTable
from tunesmith.shutdowns import base_of


@dataclass(frozen=True)
class MachinePricing:
    """The machine type self-hosted rows are priced on, and whose measurement prices them."""

    hardware: HardwarePrice
    rates: Throughput | None
    """Rates from a capacity file measured on `hardware` (they replace this machine's)."""
    measured: bool
    """Whether the rates used were measured on this machine type (here, or in the file)."""
    note: str
    """In words, for the report: where the capacity was measured."""


def machine_pricing(prices: PriceTable, deployment: Deployment, model: str,
                    here: Machine) -> MachinePricing:
    """Which machine type prices the self-hosted rows (`--machine`, else the entry for this
    machine) and with which rates (`--capacity FILE`, else those measured here where this
    machine is of that type; otherwise none: "capacity not measured").

    Raises:
        UsageError: an unknown --machine, or no entry describes this machine.
        UnusableInputError: a capacity file for another machine or model.
    """
    hardware = prices.machine(deployment.machine, here)
    if deployment.capacity:
        rates = load_capacity(deployment.capacity, hardware.name, model)
        return MachinePricing(hardware, rates, True,
                              f"capacity measured on {hardware.name} ({deployment.capacity})")
    if hardware.matches(here) or not hardware.device:
        return MachinePricing(hardware, None, True,
                              f"capacity measured here ({here.describe()})")
    return MachinePricing(hardware, None, False,
                          f"capacity not measured on {hardware.name} (measured here: "
                          f"{here.describe()}); run bench/capacity.py on that machine and pass "
                          "--capacity FILE")


def price_approaches(results: list[EvalResult], prices: PriceTable, hardware: HardwarePrice,
                     throughput: dict[str, Throughput], *,
                     training: dict[str, tuple[float, int]] | None = None,
                     endpoints: dict[str, str] | None = None,
                     deployment: Deployment | None = None,
                     machine: MachinePricing | None = None,
                     ) -> tuple[dict[str, ApproachCost], dict[str, ApproachCost]]:
    """(how each approach would run and cost, the same requests at OpenAI's list prices).

    Args:
        results: the evaluated approaches.
        throughput: measured rates per model spec (`EvalResult.model`) run here.
        training: fine-tuned row -> (measured training seconds, billed tokens = training
            tokens x epochs, for the OpenAI reference).
        endpoints: `openai:NAME` -> the endpoint's URL, for the "runs on" column.
        deployment: how self-hosted approaches are served (default: `Deployment()`, one
            dedicated machine at least, sized for the peak) and when traffic arrives (an
            endpoint's prompt-cache hit rate).
        machine: whose rates price self-hosted rows (default: measured here, on `hardware`);
            a machine type not measured leaves them unknown (NaN), never this machine's.
    """
    deployment = deployment or Deployment()
    endpoints, training = endpoints or {}, training or {}
    costs, reference = {}, {}
    default = prices.default_openai
    for r in results:
        ft = r.kind == "fine-tune"
        seconds, billed = training.get(r.name, (0.0, 0))
        if r.kind == "incumbent":  # a hosted fine-tune: its own per-token prices
            costs[r.name] = endpoint(r.name, f"hosted fine-tune {base_of(r.model)}",
                                     r.prompt_tokens, r.completion_tokens,
                                     prices.fine_tuned_price(base_of(r.model)),
                                     r.shared_prompt_tokens)
        elif is_endpoint(r.model):
            name = r.model.split(":", 1)[1]
            costs[r.name] = endpoint(r.name, f"endpoint {endpoints.get(r.model, '')}".strip(),
                                     r.prompt_tokens, r.completion_tokens,
                                     prices.chat_price(name), r.shared_prompt_tokens)
        else:
            costs[r.name] = _self_hosted(r, throughput[r.model], hardware, deployment, machine,
                                         seconds if ft else 0.0)
        reference[r.name] = openai(r.name, r.kind, r.prompt_tokens, r.completion_tokens,
                                   default, billed if ft else 0)
    costs = {name: replace(c, deployment=deployment) for name, c in costs.items()}
    return costs, reference


def _self_hosted(r: EvalResult, measured: Throughput, hardware: HardwarePrice,
                 deployment: Deployment, machine: MachinePricing | None,
                 training_seconds: float) -> ApproachCost:
    """A row run on rented machines: its tokens at the rates of the machine type priced (a
    prefix-caching engine runs the shared prompt prefix once)."""
    rates = machine.rates if machine is not None and machine.rates is not None else measured
    prompt = r.prompt_tokens
    if deployment.caches_prefixes:
        prompt -= r.shared_prompt_tokens
    cost = self_hosted_tokens(r.name, r.kind, prompt, r.completion_tokens, rates, hardware,
                              scored=r.mode == "score", training_seconds=training_seconds,
                              latency_s=r.latency_s if machine is None or machine.rates is None
                              else None)
    engine = (f"; served by {deployment.engine}: "
              + (f"the {r.shared_prompt_tokens:.0f} shared prompt tokens run once (prefix cache)"
                 if deployment.caches_prefixes else "every prompt runs whole (no prefix cache)"))
    if machine is not None and not machine.measured:
        nan = float("nan")
        return replace(cost, one_off_usd=nan, per_1k_requests_usd=nan, known=False,
                       basis=machine.note)
    if machine is not None and machine.rates is not None:
        engine += f"; {machine.note}"
    return replace(cost, basis=cost.basis + engine)
