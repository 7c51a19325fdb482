"""The account side of an OpenAI-compatible API: the fine-tuned models a key can see, its
fine-tuning jobs (every page), and the files they were trained on. What `migrate inventory`
reads; `tunesmith serve` answers the same calls, so it stands in for OpenAI in the tests."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.endpoints.client import explain
from tunesmith.endpoints.spec import Endpoint


@dataclass(frozen=True)
class RemoteModel:
    id: str
    created: int | None
    owned_by: str | None


class Account:
    """An API key's view of one endpoint. Every call raises `EndpointError` (exit 2 for a
    wrong address or key) rather than an `openai` exception."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = 60.0, max_retries: int = 4) -> None:
        from openai import OpenAI

        self.endpoint = endpoint
        self._client = OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key() or "none",
                              timeout=timeout, max_retries=max_retries)

    def models(self) -> list[RemoteModel]:
        """Every model the key may call."""
        try:
            return [RemoteModel(m.id, getattr(m, "created", None), getattr(m, "owned_by", None))
                    for m in self._client.models.list()]
        except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
            raise explain(e, self.endpoint) from e

    def jobs(self) -> list[dict]:
        """Every fine-tuning job the key can see, newest first (the pages followed to the end),
        as the API's JSON."""
        try:
            return [job.model_dump(mode="json")
                    for job in self._client.fine_tuning.jobs.list(limit=100)]
        except Exception as e:  # noqa: BLE001
            raise explain(e, self.endpoint) from e

    def file_content(self, file_id: str) -> bytes | None:
        """A file's bytes; None when the API no longer has it (404)."""
        import openai

        try:
            return self._client.files.content(file_id).read()
        except openai.NotFoundError:
            return None
        except Exception as e:  # noqa: BLE001
            raise explain(e, self.endpoint) from e
