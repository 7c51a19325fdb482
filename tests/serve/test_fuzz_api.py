"""API fuzzing with schemathesis, in-process (ASGI), from the app's own OpenAPI schema: no
request it can generate gets a 500, and every response matches the schema it documents.

The app under test is real: a store with a file, a finished job, events and a checkpoint to
find; a tiny model behind chat completions (64-token context, so generated requests stay
short). Each operation gets TUNESMITH_API_FUZZ_EXAMPLES cases (default 25 in `make test`;
`make test-slow` runs 300).
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tunesmith.jobs.models import Checkpoint, FileRecord, Job, ModelRecord, new_id, now
from tunesmith.jobs.sqlite import SQLiteStore
from tunesmith.serve.app import create_app
from tunesmith.serve.deps import ServeSettings
from tunesmith.serve.engine import Engine

MUST_NEGATE = {"POST /v1/chat/completions", "POST /v1/fine_tuning/jobs", "POST /v1/files",
               "GET /v1/files", "GET /v1/fine_tuning/jobs", "GET /v1/fine_tuning/jobs/{job_id}/events"}
"""Operations whose bodies or bounded parameters the negative phase must have broken."""
EXAMPLES = int(os.environ.get("TUNESMITH_API_FUZZ_EXAMPLES", "25"))
KEY = "fuzz-key"


@pytest.fixture(scope="module")
def short_model(tokenizer, tmp_path_factory):
    from tunesmith.modeling import build_tiny_model

    folder = tmp_path_factory.mktemp("short-context")
    build_tiny_model(len(tokenizer), max_positions=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, short_model):
    home = tmp_path_factory.mktemp("fuzz-home")
    store = SQLiteStore(home / "tunesmith.db")
    (home / "files").mkdir()
    rows = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": "ab"[i % 2]}]})
                   + "\n" for i in range(12))
    (home / "files" / "train.jsonl").write_text(rows)
    store.add_file(FileRecord("file-fuzz", "p", "train.jsonl", "fine-tune", len(rows), now(),
                              "files/train.jsonl"))
    job = Job("ftjob-fuzz", "p", str(short_model), "file-fuzz", None,
              {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0}, 7,
              status="succeeded", fine_tuned_model="ft:m:p::fuzz", workdir="runs/x")
    store.add_job(job)
    store.add_event(job.id, "created", "Created fine-tuning job")
    store.add_event(job.id, "step:1", "Step 1/1", type="metrics", data={"step": 1})
    store.add_checkpoint(Checkpoint(new_id("checkpoint"), job.id, now(), 1, "ft:m:p::fuzz:ckpt",
                                    {"step": 1}))
    store.add_model(ModelRecord("ft:m:p::fuzz", "p", "fine-tuned", str(short_model)))
    settings_ = ServeSettings(home, {KEY: "p"}, 64 * 1024, [str(short_model)],
                              default_max_tokens=8, request_timeout_s=5)
    return create_app(settings_, store, Engine(max_batch=16))


def _operations(app):
    schema = schemathesis.openapi.from_dict(app.openapi())
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_500_and_responses_match_the_schema(fuzz_app, mode):
    """Positive cases follow the schema; negative ones break it on purpose (wrong types,
    missing fields, out-of-range values): both must get a documented answer, never a 500."""
    checked = []
    for operation in _operations(fuzz_app):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize="CI" in os.environ,
                  suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            if case.method == "DELETE" and case.path == "/v1/models/{model_id}":
                case.path_parameters = {"model_id": "ft:none"}  # keep the fixture's model
            response = case.call(app=fuzz_app, headers={"Authorization": f"Bearer {KEY}"})
            assert response.status_code < 500, (case.method, case.path, case.body,
                                                response.text[:500])
            case.validate_response(response, checks=[
                status_code_conformance, content_type_conformance, response_schema_conformance])

        name = f"{operation.method.upper()} {operation.path}"
        try:
            run()
            checked.append(name)
        except Unsatisfiable:  # inputs that cannot be invalid: none, or any string goes
            assert mode == GenerationMode.NEGATIVE, name
    if mode == GenerationMode.POSITIVE:
        assert len(checked) == 17, checked  # every operation of the API was fuzzed
    else:
        assert MUST_NEGATE <= set(checked), checked
