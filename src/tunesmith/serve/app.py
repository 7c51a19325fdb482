"""The FastAPI application: `create_app(settings, store, engine)` with no module-level globals,
so tests build apps with their own home, store and a fake engine."""

from __future__ import annotations

from fastapi import FastAPI

from tunesmith import __version__
from tunesmith.jobs.models import ModelRecord
from tunesmith.jobs.store import JobStore
from tunesmith.serve import errors
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine
from tunesmith.serve.limits import BodyLimit
from tunesmith.serve.objects import ERRORS
from tunesmith.serve.routes import chat, files, fine_tuning, models, web


def create_app(settings: ServeSettings, store: JobStore, engine: Engine | None = None) -> FastAPI:
    docs = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="tunesmith", version=__version__,
                  description="OpenAI-compatible fine-tuning and chat endpoints.",
                  responses=ERRORS, **docs)
    app.state.settings, app.state.store = settings, store
    app.state.engine = engine or Engine()
    for spec in settings.base_models:
        store.add_model(ModelRecord(spec, None, "base", spec))
    errors.install(app)
    for module in (files, fine_tuning, models, chat, web):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    return app
