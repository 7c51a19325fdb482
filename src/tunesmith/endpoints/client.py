"""Chat completions against an OpenAI-compatible endpoint: many at once, each cached, with clear
errors.

Requests run `concurrency` at a time on threads (the official `openai` client underneath, which
retries 429s, 5xx and dropped connections with backoff). A response is written to the cache as
soon as it arrives, so when the endpoint dies mid-run the answers so far are kept and a rerun
asks only for the rest. Errors name the endpoint and what to do, never the API key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from tunesmith.endpoints.cache import ResponseCache
from tunesmith.endpoints.spec import Endpoint
from tunesmith.errors import TunesmithError

_KEYLIKE = re.compile(r"(sk|key|tok)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)


class EndpointError(TunesmithError):
    """The endpoint could not be used (exit 2: its address, key or model name is wrong) or
    stopped answering (exit 1: rerun to resume from the cache)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EndpointClient:
    """Runs chat completion requests against one endpoint model.

    Args:
        endpoint: where and which model.
        concurrency: requests in flight at once.
        cache: where responses are kept; None keeps none.
        use_cache: False asks again even when a response is cached (and stores the new one).
        timeout: seconds per request (each retry included separately).
        max_retries: the `openai` client's retries of 429, 5xx and connection errors.
    """

    def __init__(self, endpoint: Endpoint, *, concurrency: int = 8,
                 cache: ResponseCache | None = None, use_cache: bool = True,
                 timeout: float = 120.0, max_retries: int = 4) -> None:
        from openai import OpenAI

        self.endpoint, self.concurrency = endpoint, max(1, concurrency)
        self.cache, self.use_cache = cache, use_cache
        self.received = 0
        """Responses that came from the endpoint (not the cache) in this client's life."""
        # Servers that need no key still need the client to send one.
        self._client = OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key() or "none",
                              timeout=timeout, max_retries=max_retries)

    def complete(self, requests: list[dict],
                 on_done: Callable[[], None] | None = None) -> list[dict]:
        """One chat completion per request body (`messages`, `max_tokens`, ...; `model` is
        added), returned in order as plain JSON dicts.

        Raises:
            EndpointError: the endpoint refused or stopped answering; every response received
                before is cached.
        """
        results: list[dict | None] = [None] * len(requests)
        todo = []
        for i, request in enumerate(requests):
            key = ResponseCache.key(self.endpoint.base_url, self.endpoint.model, request)
            cached = self.cache.get(key) if self.cache is not None and self.use_cache else None
            if cached is not None:
                results[i] = cached
                if on_done:
                    on_done()
            else:
                todo.append((i, key, request))
        if todo:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="endpoint") as pool:
                futures = {pool.submit(self._ask, key, request): i for i, key, request in todo}
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for future in pending:
                    future.cancel()
                for future in done:
                    error = future.exception()
                    if error is not None:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise self._explain(error) from error
                    results[futures[future]] = future.result()
                    if on_done:
                        on_done()
        return results  # type: ignore[return-value]

    def _ask(self, key: str, request: dict) -> dict:
        response = self._client.chat.completions.create(model=self.endpoint.model, **request)
        data = response.model_dump(mode="json")
        self.received += 1
        if self.cache is not None:
            self.cache.put(key, request, data)
        return data

    def _explain(self, e: BaseException) -> EndpointError:
        return explain(e, self.endpoint, self.received)


def explain(e: BaseException, endpoint: Endpoint, received: int = 0) -> EndpointError:
    """An `openai` client exception as a message that names the endpoint and the fix (and not
    the key): exit 2 for what the user must fix (address, key, model), 1 for an endpoint that
    stopped answering (`received` answers were cached: a rerun resumes)."""
    import openai

    where = endpoint.base_url
    model = endpoint.model
    resume = (f" {received} answers arrived and are cached: rerun to resume."
              if received else "")
    if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return EndpointError(f"{where} refused the API key ({e.status_code}): set "
                             f"{endpoint.api_key_env} to a valid key (or name another "
                             "variable with --api-key-env).")
    if isinstance(e, openai.NotFoundError):
        return EndpointError(f"{where}: model '{model}' not found (404). Check the name "
                             "(the server's /v1/models lists them; a retired model is gone for "
                             "good) and that the base URL ends with /v1.")
    if isinstance(e, openai.BadRequestError):
        return EndpointError(f"{where} rejected a request for '{model}' (400): "
                             f"{scrub(_message(e), endpoint)}")
    if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
        if received:
            return EndpointError(f"{where} stopped answering ({type(e).__name__})." + resume,
                                 exit_code=1)
        return EndpointError(f"cannot reach {where} ({scrub(str(e.__cause__ or e), endpoint)}); "
                             "check --base-url (or OPENAI_BASE_URL) and that the server "
                             "is running.")
    if isinstance(e, openai.APIStatusError):
        return EndpointError(f"{where} failed for '{model}' ({e.status_code}) after retries: "
                             f"{scrub(_message(e), endpoint)}." + resume, exit_code=1)
    return EndpointError(f"{where}: {type(e).__name__}: {scrub(str(e), endpoint)}" + resume,
                         exit_code=1)


def scrub(text: str, endpoint: Endpoint) -> str:
    """`text` without the API key or anything that looks like one (at most 500 characters)."""
    key = endpoint.api_key()
    if key:
        text = text.replace(key, "***")
    return _KEYLIKE.sub("***", text)[:500]


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(e, "message", e))
