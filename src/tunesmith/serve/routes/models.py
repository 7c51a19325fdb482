"""`/v1/models`: the base models and the project's fine-tuned ones."""

from __future__ import annotations

from fastapi import APIRouter

from tunesmith.serve import objects
from tunesmith.serve.deps import ProjectDep, StoreDep
from tunesmith.serve.errors import APIError, not_found, ok

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", responses=ok(objects.ModelList))
def list_models(store: StoreDep, project: ProjectDep) -> dict:
    return {"object": "list",
            "data": [objects.Model.of(m).api() for m in store.list_models(project)]}


@router.get("/{model_id:path}", responses=ok(objects.Model))
def retrieve_model(model_id: str, store: StoreDep, project: ProjectDep) -> dict:
    model = store.get_model(project, model_id)
    if model is None:
        raise not_found("model", model_id, "model")
    return objects.Model.of(model).api()


@router.delete("/{model_id:path}", responses=ok(objects.Deleted))
def delete_model(model_id: str, store: StoreDep, project: ProjectDep) -> dict:
    model = store.get_model(project, model_id)
    if model is None:
        raise not_found("model", model_id, "model")
    if model.project is None:
        raise APIError(403, f"{model_id} is a base model; only fine-tuned models can be deleted.",
                       param="model", code="insufficient_permissions")
    store.delete_model(model_id)
    return {"id": model_id, "object": "model", "deleted": True}
