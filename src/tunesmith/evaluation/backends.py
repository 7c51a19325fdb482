"""What evaluation runs prompts on: a model loaded here, or a model behind an OpenAI-compatible
endpoint. Both answer the same three questions, so every task and prompt strategy works on both:

    generate(conversations, max_new_tokens)   the answers, with token counts
    label_scores(conversations, labels)       a log-score per label per conversation
    reference_loss(conversations, answers)    mean loss of given answers (None: not available)

A local model scores every label exactly (the label tree, `scoring.py`). An endpoint scores the
first answer token from its `top_logprobs`: a label whose first token no other label shares is
decided there; rows where the best first token starts several labels are left `undecided` (the
caller generates for them), and an endpoint that returns no log-probabilities leaves them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tunesmith.data.examples import Example, Message
from tunesmith.data.packing import micro_batches
from tunesmith.data.render import render, tokenize_example
from tunesmith.endpoints import EndpointClient, is_endpoint, resolve_endpoint
from tunesmith.endpoints.cache import ResponseCache
from tunesmith.evaluation.scoring import SearchStats, answer_tokens, score_labels, shared_prefix
from tunesmith.generation import Generated, generate
from tunesmith.heads import entities_from_tags, head_of, load_head_model, prompt_ids, word_ids
from tunesmith.modeling import load_for_inference, run_final_dir
from tunesmith.training.attention import kernel_for
from tunesmith.training.loss import CausalLMLoss


@dataclass
class LabelScores:
    scores: np.ndarray
    """(conversations, labels) log-scores; -inf where a label cannot win or was not seen."""
    prompt_tokens: list[int]
    completion_tokens: list[float]
    """Per conversation: answer tokens the scoring ran (the label tree's tokens fed to the
    model, on average; the one token asked of an endpoint)."""
    undecided: list[int] = field(default_factory=list)
    """Rows the scores cannot decide; the caller generates for these."""
    method: str = "label tree"


class Backend(Protocol):
    name: str
    """The model spec, for reports."""
    context: int | None
    """Context length in tokens, when known."""

    def generate(self, conversations: list[list[dict]], max_new_tokens: int) -> list[Generated]: ...

    def answer_room(self, labels: list[str]) -> int:
        """Tokens to let a model generate for a one-label answer."""
        ...

    def label_scores(self, conversations: list[list[dict]], labels: list[str], *,
                     offsets: np.ndarray | None = None, exhaustive: bool = False) -> LabelScores: ...

    def reference_loss(self, conversations: list[list[dict]],
                       answers: list[str]) -> float | None: ...


@dataclass
class Choice:
    """A short answer naming a label (`EndpointBackend.choose`)."""

    label: str | None
    """Decided by the first token's log-probabilities; None: parse `text`."""
    text: str
    prompt_tokens: int
    completion_tokens: int


class LocalBackend:
    """A model and tokenizer in this process."""

    def __init__(self, model, tokenizer, name: str = "", batch_size: int = 16,
                 stats=None) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size, self.stats = batch_size, stats
        config = getattr(model, "config", None)
        self.context = getattr(config, "max_position_embeddings", None)

    def _render(self, conversations: list[list[dict]]) -> list[str]:
        return render(self.tokenizer, conversations, add_generation_prompt=True)

    def prompt_lengths(self, conversations: list[list[dict]]) -> list[int]:
        return [len(self.tokenizer(p, add_special_tokens=False)["input_ids"])
                for p in self._render(conversations)]

    def shared_prompt_tokens(self, conversations: list[list[dict]]) -> int:
        """Tokens of the rendered prompt prefix every conversation shares."""
        return shared_prefix([self.tokenizer(p, add_special_tokens=False)["input_ids"]
                              for p in self._render(conversations)])

    def generate(self, conversations: list[list[dict]], max_new_tokens: int) -> list[Generated]:
        return generate(self.model, self.tokenizer, self._render(conversations), max_new_tokens,
                        self.batch_size)

    def answer_room(self, labels: list[str]) -> int:
        return max(len(answer_tokens(self.tokenizer, label)) for label in labels) + 4

    def label_scores(self, conversations: list[list[dict]], labels: list[str], *,
                     offsets: np.ndarray | None = None, exhaustive: bool = False) -> LabelScores:
        ran = SearchStats()
        scores = score_labels(self.model, self.tokenizer, self._render(conversations), labels,
                              self.batch_size, prune=not exhaustive, stats=ran,
                              offsets=offsets).numpy()
        if self.stats is not None:
            self.stats.add(ran)
        # What is priced is what ran: the label tree's tokens the search fed the model (on
        # average per example), not only the winning label's.
        tree_tokens = ran.nodes_run / max(ran.examples, 1)
        return LabelScores(scores, self.prompt_lengths(conversations),
                           [tree_tokens] * len(conversations))

    def reference_loss(self, conversations: list[list[dict]], answers: list[str]) -> float:
        """Mean loss per answer token of `answers` given the conversations (teacher forcing)."""
        import torch

        items = []
        for convo, answer in zip(conversations, answers):
            messages = [Message(m["role"], m["content"], 0 if m["role"] == "assistant" else None)
                        for m in convo] + [Message("assistant", answer)]
            items.append(tokenize_example(self.tokenizer, Example(0, messages), 4096))
        loss_fn = CausalLMLoss(self.model)
        total = count = 0.0
        pad = self.tokenizer.pad_token_id or 0
        device = next(self.model.parameters()).device
        share = kernel_for(device) == "segments"  # a shared system prompt runs once per row
        with torch.inference_mode():
            for batch in micro_batches(items, True, 4096 * 4, pad, share_prefix=share):
                loss, n, _ = loss_fn(batch.to(device))
                total, count = total + loss.item(), count + n.item()
        return total / max(count, 1)


class HeadBackend:
    """A model tunesmith fine-tuned with a task head (`train --head classifier|token`).

    Classifier: label scores are the head's log-probabilities at the prompt's last token, one
    forward pass per example (plain transformers' last-token pooling). Token head: the "answer"
    is the JSON entity list decoded from each word's predicted BIO tag, so the NER task scores
    it with the same metric code as generated answers. Neither generates a token.
    """

    def __init__(self, model, tokenizer, head: str, head_labels: list[str], name: str = "",
                 batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.head = model, tokenizer, head
        self.head_labels, self.name, self.batch_size = head_labels, name, batch_size
        self.context = getattr(model.config, "max_position_embeddings", None)

    def _logits(self, rows: list[list[int]]):
        """Head logits per row, (rows, classes) or (rows, tokens, classes), in batches."""
        import torch

        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        out = []
        for first in range(0, len(rows), self.batch_size):
            batch = rows[first:first + self.batch_size]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, row in enumerate(batch):  # right padding: last-token pooling skips it
                ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)
                                    ).logits.float().log_softmax(-1).cpu()
            out += list(logits)
        return out

    def label_scores(self, conversations: list[list[dict]], labels: list[str], *,
                     offsets: np.ndarray | None = None, exhaustive: bool = False) -> LabelScores:
        if self.head != "classifier":
            raise ValueError("label scores need a classifier head")
        rows = [prompt_ids(self.tokenizer, c) for c in conversations]
        scores = np.full((len(rows), len(labels)), -np.inf)
        index = {label: i for i, label in enumerate(self.head_labels)}
        for r, logits in enumerate(self._logits(rows)):
            for j, label in enumerate(labels):
                if label in index:
                    scores[r, j] = float(logits[index[label]])
        if offsets is not None:
            scores -= offsets
        return LabelScores(scores, list(map(len, rows)), [0] * len(rows), method="classifier head")

    def generate(self, conversations: list[list[dict]], max_new_tokens: int) -> list[Generated]:
        if self.head == "classifier":
            scored = self.label_scores(conversations, self.head_labels)
            return [Generated(self.head_labels[int(row.argmax())], n, 0, "stop")
                    for row, n in zip(scored.scores, scored.prompt_tokens)]
        out, rows, words_of, starts_of = [], [], [], []
        for convo in conversations:
            words = convo[-1]["content"].split(" ")
            ids, starts = word_ids(self.tokenizer, convo, words)
            rows.append(ids)
            words_of.append(words)
            starts_of.append(starts)
        for logits, words, starts, ids in zip(self._logits(rows), words_of, starts_of, rows):
            tags = [self.head_labels[int(logits[s].argmax())] for s in starts]
            out.append(Generated(entities_from_tags(words, tags), len(ids), 0, "stop"))
        return out

    def answer_room(self, labels: list[str]) -> int:
        return 0

    def shared_prompt_tokens(self, conversations: list[list[dict]]) -> int:
        return shared_prefix([prompt_ids(self.tokenizer, c) for c in conversations])

    def reference_loss(self, conversations: list[list[dict]], answers: list[str]) -> None:
        return None


class EndpointBackend:
    """A chat model behind an OpenAI-compatible endpoint (`openai:NAME`).

    Args:
        client: an `EndpointClient` (concurrency, cache, errors).
        seed: sent with every request, for servers that honour it.
    """

    TOP_LOGPROBS = 20
    """OpenAI's maximum."""

    def __init__(self, client, seed: int = 0) -> None:
        self.client, self.seed = client, seed
        self.name = client.endpoint.spec
        self.context = None

    def generate(self, conversations: list[list[dict]], max_new_tokens: int) -> list[Generated]:
        requests = [{"messages": c, "max_tokens": max_new_tokens, "temperature": 0,
                     "seed": self.seed} for c in conversations]
        out = []
        for response in self.client.complete(requests):
            choice = response["choices"][0]
            usage = response.get("usage") or {}
            text = (choice.get("message") or {}).get("content") or ""
            out.append(Generated(text, int(usage.get("prompt_tokens") or 0),
                                 int(usage.get("completion_tokens") or 0),
                                 "length" if choice.get("finish_reason") == "length" else "stop"))
        return out

    def answer_room(self, labels: list[str]) -> int:
        # The endpoint's tokenizer is unknown: about 2 characters a token is generous.
        return max(len(label) for label in labels) // 2 + 6

    def label_scores(self, conversations: list[list[dict]], labels: list[str], *,
                     offsets: np.ndarray | None = None, exhaustive: bool = False) -> LabelScores:
        requests = [{"messages": c, "max_tokens": 1, "temperature": 0, "seed": self.seed,
                     "logprobs": True, "top_logprobs": self.TOP_LOGPROBS} for c in conversations]
        scores = np.full((len(conversations), len(labels)), -np.inf)
        prompt_tokens, undecided = [], []
        for r, response in enumerate(self.client.complete(requests)):
            usage = response.get("usage") or {}
            prompt_tokens.append(int(usage.get("prompt_tokens") or 0))
            top = _top_logprobs(response)
            if not top:  # the server returns no log-probabilities
                undecided.append(r)
                continue
            scores[r], ambiguous = first_token_scores(top, labels)
            if offsets is not None:
                scores[r] -= offsets[r] if offsets.ndim == 2 else offsets
            if ambiguous or not np.isfinite(scores[r]).any():
                undecided.append(r)
        return LabelScores(scores, prompt_tokens, [1] * len(conversations), undecided,
                           "first-token logprobs")

    def reference_loss(self, conversations: list[list[dict]], answers: list[str]) -> None:
        return None  # chat endpoints do not score given answers

    def choose(self, conversations: list[list[dict]], labels: list[str],
               max_new_tokens: int = 8) -> list[Choice]:
        """One request per conversation for a short answer that names one of `labels` (a
        judge's verdict): the first token's log-probabilities decide where the endpoint
        returns them and they are unambiguous; otherwise the text is kept for parsing."""
        requests = [{"messages": c, "max_tokens": max_new_tokens, "temperature": 0,
                     "seed": self.seed, "logprobs": True, "top_logprobs": self.TOP_LOGPROBS}
                    for c in conversations]
        out = []
        for response in self.client.complete(requests):
            usage = response.get("usage") or {}
            choice = (response.get("choices") or [{}])[0]
            text = (choice.get("message") or {}).get("content") or ""
            top = _top_logprobs(response)
            label = None
            if top:
                scores, ambiguous = first_token_scores(top, labels)
                if not ambiguous and np.isfinite(scores).any():
                    label = labels[int(scores.argmax())]
            out.append(Choice(label, text, int(usage.get("prompt_tokens") or 0),
                              int(usage.get("completion_tokens") or 0)))
        return out


def _top_logprobs(response: dict) -> list[tuple[str, float]]:
    choice = (response.get("choices") or [{}])[0]
    content = ((choice.get("logprobs") or {}).get("content")) or []
    if not content:
        return []
    first = content[0]
    entries = first.get("top_logprobs") or []
    pairs = [(e.get("token") or "", float(e.get("logprob"))) for e in entries
             if e.get("logprob") is not None]
    if first.get("token") is not None and first.get("logprob") is not None:
        pairs.append((first["token"], float(first["logprob"])))
    return pairs


def first_token_scores(top: list[tuple[str, float]],
                       labels: list[str]) -> tuple[np.ndarray, bool]:
    """Each label's score from the first answer token's alternatives.

    A token counts for a label when the label starts with it (leading whitespace ignored); a
    label's score is the best of its tokens' log-probabilities, -inf when none is among them.

    Returns:
        (scores, ambiguous): ambiguous when the best token that starts any label starts more
        than one, so the first token cannot decide.

    Example:
        >>> s, amb = first_token_scores([("positive", -0.1), ("neg", -2.4)], ["negative", "positive"])
        >>> s.round(1).tolist(), amb
        ([-2.4, -0.1], False)
    """
    scores = np.full(len(labels), -np.inf)
    best, best_owners = -math.inf, 0
    for token, logprob in top:
        piece = token.lstrip()
        if not piece:
            continue
        owners = [j for j, label in enumerate(labels) if label.startswith(piece)]
        for j in owners:
            scores[j] = max(scores[j], logprob)
        if owners and logprob > best:
            best, best_owners = logprob, len(owners)
    return scores, best_owners > 1


def open_backend(spec: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, use_cache: bool = True, batch_size: int = 16,
                 seed: int = 0, max_retries: int = 4):
    """The backend for a model spec: `openai:NAME` -> an endpoint, anything else is loaded here
    (`load_for_inference`: a run folder means its final/, adapters merged)."""
    if is_endpoint(spec):
        endpoint = resolve_endpoint(spec, base_url, api_key_env)
        client = EndpointClient(endpoint, concurrency=concurrency, cache=ResponseCache(),
                                use_cache=use_cache, max_retries=max_retries)
        return EndpointBackend(client, seed=seed)

    head = head_of(run_final_dir(spec))
    if head is not None:
        model, tokenizer = load_head_model(run_final_dir(spec))
        return HeadBackend(model, tokenizer, head[0], head[1], spec, batch_size)
    model, tokenizer = load_for_inference(spec)
    return LocalBackend(model, tokenizer, spec, batch_size)
