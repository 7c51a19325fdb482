"""`/v1/chat/completions` for base, fine-tuned and checkpoint models, plain or streamed (SSE).
The work is the chat service's (`tunesmith.serve.chat`); this route hands the request over and
shapes the HTTP response."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tunesmith.serve import objects
from tunesmith.serve.chat import Busy, start_chat
from tunesmith.serve.deps import EngineDep, ProjectDep, SettingsDep, StoreDep
from tunesmith.serve.schemas import ChatCompletionCreate
from tunesmith.serve.vllm import relay_chat

router = APIRouter(prefix="/v1/chat", tags=["chat"])


@router.post("/completions", responses={200: {"model": objects.ChatCompletion, "content": {
    "text/event-stream": {"schema": {"type": "string"}}}}})
async def chat_completions(body: ChatCompletionCreate, request: Request, settings: SettingsDep,
                           store: StoreDep, engine: EngineDep, project: ProjectDep):
    vllm = getattr(request.app.state, "vllm", None)
    if vllm is not None:  # serve --engine vllm: vLLM answers, tunesmith checks and maps
        answer = await relay_chat(body, settings, store, vllm, project)
        if body.stream:
            return StreamingResponse(answer, media_type="text/event-stream")
        return answer
    try:
        call = await start_chat(body, settings, store, engine, project)
    except Busy as busy:
        return busy.response(engine)
    if body.stream:
        return StreamingResponse(call.stream(), media_type="text/event-stream")
    answer = await call.answer(request)
    if answer is None:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it
    return answer
