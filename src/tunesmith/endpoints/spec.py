"""`openai:NAME`: which endpoint, which model, which API key; configured the way the `openai`
client is (`OPENAI_BASE_URL`, `OPENAI_API_KEY`), with flags that override both."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tunesmith.errors import UsageError

PREFIX = "openai:"
OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    model: str
    """The model's name at the endpoint (`gpt-4.1-mini`, `llama3.1:8b`, ...)."""
    base_url: str
    """Up to and including `/v1`."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable holding the key (the key itself is never stored here)."""

    @property
    def spec(self) -> str:
        return PREFIX + self.model

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def __str__(self) -> str:
        return f"{self.spec} at {self.base_url}"


def is_endpoint(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(PREFIX)


def resolve_endpoint(spec: str, base_url: str | None = None,
                     api_key_env: str | None = None) -> Endpoint:
    """`openai:NAME` -> an `Endpoint`.

    Args:
        spec: the model spec.
        base_url: overrides `$OPENAI_BASE_URL` (default OpenAI's own API).
        api_key_env: the variable holding the key (default `OPENAI_API_KEY`).

    Raises:
        UsageError: not an `openai:` spec, an empty name, a base URL that is not http(s), or
            OpenAI's own API without a key.
    """
    if not is_endpoint(spec):
        raise UsageError(f"model '{spec}' is not an endpoint model (openai:NAME).")
    model = spec[len(PREFIX):].strip()
    if not model:
        raise UsageError("openai: needs a model name, as in openai:gpt-4.1-mini.")
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {url!r}: expected http://HOST[:PORT]/v1 or https://...")
    endpoint = Endpoint(model, url, api_key_env or "OPENAI_API_KEY")
    if url == OPENAI_BASE_URL and endpoint.api_key() is None:
        raise UsageError(f"{spec} is OpenAI's API, which needs a key: set {endpoint.api_key_env} "
                         "(or name another variable with --api-key-env), or point --base-url "
                         "(or OPENAI_BASE_URL) at another OpenAI-compatible server.")
    return endpoint


def resolve_api(base_url: str | None = None, api_key_env: str | None = None) -> Endpoint:
    """The API itself (no model): `--base-url` or `$OPENAI_BASE_URL` (default OpenAI's), the key
    in `api_key_env` (default OPENAI_API_KEY).

    Raises:
        UsageError: a base URL that is not http(s), or OpenAI's own API without a key.
    """
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {url!r}: expected http://HOST[:PORT]/v1 or https://...")
    endpoint = Endpoint("", url, api_key_env or "OPENAI_API_KEY")
    if url == OPENAI_BASE_URL and endpoint.api_key() is None:
        raise UsageError(f"OpenAI's API needs a key: set {endpoint.api_key_env} (or name another "
                         "variable with --api-key-env), or point --base-url (or OPENAI_BASE_URL) "
                         "at another OpenAI-compatible server.")
    return endpoint
