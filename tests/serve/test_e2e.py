"""The service driven end to end by the official `openai` client only: files, a fine-tuning
job on a tiny model, events, checkpoints, the results CSV, chat (plain and streamed) with the
fine-tuned model and a checkpoint, model deletion."""

from __future__ import annotations

import csv
import io

import openai
import pytest

from tests.conftest import ASSETS
from tests.serve.conftest import wait_for

FINAL = {"succeeded", "failed", "cancelled"}


def test_fine_tune_and_chat_with_the_openai_client(server_factory, service_data):
    server = server_factory().start()
    client = server.client()
    train = client.files.create(file=open(service_data / "train.jsonl", "rb"),
                                purpose="fine-tune")
    val = client.files.create(file=open(service_data / "validation.jsonl", "rb"),
                              purpose="fine-tune")
    assert train.id.startswith("file-") and train.status == "processed"
    assert train.bytes == (service_data / "train.jsonl").stat().st_size
    assert {f.id for f in client.files.list()} >= {train.id, val.id}

    job = client.fine_tuning.jobs.create(
        model=str(server.model), training_file=train.id, validation_file=val.id,
        suffix="router", seed=7, method={"type": "supervised", "supervised": {
            "hyperparameters": {"n_epochs": 2, "batch_size": 2}}})
    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    job = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in FINAL and j)
    assert job.status == "succeeded", (job.error, server.log()[-2000:])
    assert job.fine_tuned_model == f"ft:{server.model}:alpha:router:{job.id[6:]}"
    assert job.trained_tokens > 0 and job.hyperparameters.n_epochs == 2
    assert job.finished_at >= job.created_at

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    messages = [e.message for e in events]
    assert events[0].message == "The job has successfully completed"  # newest first
    metrics = [e for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert len(metrics) == len({e.data["step"] for e in metrics}) > 0
    assert any(m.startswith("Checkpoint created at step") for m in messages)

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert len(checkpoints) == 2
    assert checkpoints[0].step_number > checkpoints[1].step_number
    assert all(c.fine_tuned_model_checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-")
               for c in checkpoints)
    assert "train_loss" in checkpoints[0].metrics.model_dump()

    content = client.files.content(job.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(content)))
    assert {"step", "train_loss", "valid_loss"} <= set(rows[0]) and len(rows) >= 2

    models = {m.id for m in client.models.list()}
    assert job.fine_tuned_model in models and str(server.model) in models

    for model in (job.fine_tuned_model, checkpoints[-1].fine_tuned_model_checkpoint):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "my bill doubled"}],
            max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
        choice = reply.choices[0]
        assert choice.finish_reason in ("stop", "length")
        assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens > 5
        assert len(choice.logprobs.content[0].top_logprobs) == 2
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "my bill doubled"}],
            max_tokens=5, temperature=0, stream=True, stream_options={"include_usage": True}))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == choice.message.content  # greedy: the same answer either way
        assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens

    assert client.models.delete(job.fine_tuned_model).deleted
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=job.fine_tuned_model, max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])


def test_invalid_training_file_fails_the_job_naming_it(server_factory, tmp_path):
    server = server_factory().start()
    client = server.client()
    bad = tmp_path / "bad.jsonl"
    lines = (ASSETS / "chat_tiny.jsonl").read_text().splitlines()
    lines[2] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    bad.write_text("\n".join(lines) + "\n")
    upload = client.files.create(file=open(bad, "rb"), purpose="fine-tune")
    assert "line 3" in upload.status_details
    job = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id)
    job = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in FINAL and j)
    assert job.status == "failed"
    assert job.error.param == "training_file" and "line 3" in job.error.message


def test_keys_projects_and_errors(server_factory, service_data):
    server = server_factory().start()
    alpha, beta = server.client("key-alpha"), server.client("key-beta")
    upload = alpha.files.create(file=open(service_data / "train.jsonl", "rb"),
                                purpose="fine-tune")
    job = alpha.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id)
    with pytest.raises(openai.NotFoundError):
        beta.files.retrieve(upload.id)
    with pytest.raises(openai.NotFoundError):
        beta.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.BadRequestError) as e:  # beta cannot train on alpha's file
        beta.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id)
    assert e.value.body["param"] == "training_file"
    assert upload.id not in {f.id for f in beta.files.list()}
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key").models.list()
    import httpx

    r = httpx.get(f"{server.url}/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.BadRequestError) as e:
        alpha.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                      hyperparameters={"n_epochs": 0})
    assert e.value.body["param"] == "hyperparameters.n_epochs"
    with pytest.raises(openai.BadRequestError) as e:
        alpha.chat.completions.create(model=str(server.model), messages=[], max_tokens=2)
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError):
        alpha.chat.completions.create(model="no-such-model", max_tokens=2,
                                      messages=[{"role": "user", "content": "hi"}])
    alpha.fine_tuning.jobs.cancel(job.id)
