"""Pricing every evaluated approach in one place (used by `compare` and `cost`).

    prompting a model loaded here     self-hosted, from its tokens at the model's measured rates
    prompting an endpoint model       the endpoint's usage tokens at its price table entry
    a fine-tuned model                self-hosted like the first, plus the training time
    any of them, as a reference       the same tokens at OpenAI's list prices (default model)
"""

from __future__ import annotations

from dataclasses import replace

from tunesmith.cost import ApproachCost, Deployment, endpoint, openai, self_hosted_tokens
from tunesmith.endpoints.spec import is_endpoint
from tunesmith.evaluation.runner import EvalResult
from tunesmith.evaluation.throughput import Throughput
from tunesmith.pricing import HardwarePrice, PriceTable
from tunesmith.shutdowns import base_of


def price_approaches(results: list[EvalResult], prices: PriceTable, hardware: HardwarePrice,
                     throughput: dict[str, Throughput], *,
                     training: dict[str, tuple[float, int]] | None = None,
                     endpoints: dict[str, str] | None = None,
                     deployment: Deployment | None = None,
                     ) -> tuple[dict[str, ApproachCost], dict[str, ApproachCost]]:
    """(how each approach would run and cost, the same requests at OpenAI's list prices).

    Args:
        results: the evaluated approaches.
        throughput: measured rates per model spec (`EvalResult.model`) run here.
        training: fine-tuned row -> (measured training seconds, billed tokens = training
            tokens x epochs, for the OpenAI reference).
        endpoints: `openai:NAME` -> the endpoint's URL, for the "runs on" column.
        deployment: how self-hosted approaches are served (default: `Deployment()`, one
            dedicated machine at least, sized for the peak).
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
                                     prices.fine_tuned_price(base_of(r.model)))
        elif is_endpoint(r.model):
            name = r.model.split(":", 1)[1]
            costs[r.name] = endpoint(r.name, f"endpoint {endpoints.get(r.model, '')}".strip(),
                                     r.prompt_tokens, r.completion_tokens,
                                     prices.chat_price(name))
        else:
            costs[r.name] = self_hosted_tokens(
                r.name, r.kind, r.prompt_tokens, r.completion_tokens, throughput[r.model],
                hardware, scored=r.mode == "score", training_seconds=seconds if ft else 0,
                latency_s=r.latency_s)
        reference[r.name] = openai(r.name, r.kind, r.prompt_tokens, r.completion_tokens,
                                   default, billed if ft else 0)
    costs = {name: replace(c, deployment=deployment) if c.self_hosted else c
             for name, c in costs.items()}
    return costs, reference
