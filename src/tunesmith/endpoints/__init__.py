"""Chat models behind any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp's server,
LM Studio, `tunesmith serve`), named `openai:NAME` wherever a model spec is taken."""

from tunesmith.endpoints.client import EndpointClient, EndpointError
from tunesmith.endpoints.spec import Endpoint, is_endpoint, resolve_endpoint

__all__ = ["Endpoint", "EndpointClient", "EndpointError", "is_endpoint", "resolve_endpoint"]
