"""OpenAI fine-tuning parity, driven by the official `openai` client against a live server:
DPO jobs, pause and resume, continued fine-tuning of a fine-tuned model, and validation at
creation (a bad file fails its job while another job trains)."""

from __future__ import annotations

import json
import time

import torch
from safetensors.torch import load_file

from tests.serve.conftest import wait_for
from tunesmith.jobs.sqlite import SQLiteStore

FINAL = {"succeeded", "failed", "cancelled"}


def finished(client, job_id, timeout=300):
    return wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job_id)).status in FINAL and j,
                    timeout=timeout)


def events_of(client, job_id):
    return list(client.fine_tuning.jobs.list_events(job_id, limit=100))[::-1]  # oldest first


def adapter(server, job_id):
    job = SQLiteStore(server.home / "tunesmith.db").get_job(None, job_id)
    return load_file(server.home / job.workdir / "final" / "adapter_model.safetensors")


def test_dpo_job_metrics_and_chat(server_factory, tmp_path):
    server = server_factory().start()
    client = server.client()
    rows = [{"input": {"messages": [{"role": "user", "content": f"Greet {name} ({i})"}]},
             "preferred_output": [{"role": "assistant", "content": f"Hello {name}, welcome!"}],
             "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}
            for i, name in enumerate(["Ana", "Bo", "Cy", "Di", "Ed", "Flo"] * 2)]
    path = tmp_path / "pref.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    upload = client.files.create(file=open(path, "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(server.model), training_file=upload.id, validation_file=upload.id, seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2,
                                                           "batch_size": 4}}})
    assert job.method.type == "dpo"
    job = finished(client, job.id)
    assert job.status == "succeeded", (job.error, server.log()[-2000:])
    assert job.method.dpo.hyperparameters.beta == 0.2
    assert job.hyperparameters.n_epochs == 2
    metrics = [e.data for e in events_of(client, job.id) if e.type == "metrics"]
    steps = [m for m in metrics if "train_loss" in m]
    assert len(steps) == 6 and all("train_preference_accuracy" in m for m in steps)
    assert any("valid_reward_margin" in m for m in steps)
    full = [m for m in metrics if "full_valid_preference_accuracy" in m]
    assert full and full[-1]["full_valid_reward_margin"] > 0
    reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=4,
                                           messages=[{"role": "user", "content": "Greet Bo"}])
    assert reply.choices[0].message.content is not None and reply.usage.completion_tokens >= 1

    # A DPO job on a chat file (and the reverse) fails at validation, naming the need.
    chat = client.files.create(file=_chat_file(tmp_path), purpose="fine-tune")
    wrong = client.fine_tuning.jobs.create(model=str(server.model), training_file=chat.id,
                                           method={"type": "dpo"})
    wrong = finished(client, wrong.id, timeout=30)
    assert wrong.status == "failed" and "preference rows" in wrong.error.message


def _chat_file(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(10)]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return open(path, "rb")


def test_pause_resume_continue_and_validation_while_training(server_factory, service_data,
                                                             tmp_path):
    server = server_factory().start()
    client = server.client()
    train = client.files.create(file=open(service_data / "train.jsonl", "rb"),
                                purpose="fine-tune")
    hp = {"n_epochs": 3, "batch_size": 1}
    method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
    straight = client.fine_tuning.jobs.create(model=str(server.model), training_file=train.id,
                                              seed=11, method=method)
    straight = finished(client, straight.id)
    assert straight.status == "succeeded", (straight.error, server.log()[-2000:])

    job = client.fine_tuning.jobs.create(model=str(server.model), training_file=train.id,
                                         seed=11, method=method)
    wait_for(lambda: any(e.type == "metrics" for e in events_of(client, job.id)), every=0.05)

    # While it trains, a bad file's job fails within 10 s (validated at creation).
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]})
                           + "\n" for i in range(12)))
    upload = client.files.create(file=open(bad, "rb"), purpose="fine-tune")
    t0 = time.time()
    failing = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id)
    failing = finished(client, failing.id, timeout=10)
    assert failing.status == "failed" and time.time() - t0 < 10
    assert failing.error.param == "training_file" and "line 1" in failing.error.message

    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused", "the job finished before it could be paused"
    wait_for(lambda: any(e.message.startswith("Fine-tuning job paused at step")
                         for e in events_of(client, job.id)))
    steps_then = [e.data["step"] for e in events_of(client, job.id)
                  if e.type == "metrics" and "train_loss" in e.data]
    time.sleep(1.5)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert len([e for e in events_of(client, job.id) if e.type == "metrics"
                and "train_loss" in e.data]) == len(steps_then)  # no training while paused
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status in ("queued", "running")
    job = finished(client, job.id)
    assert job.status == "succeeded", (job.error, server.log()[-2000:])
    events = events_of(client, job.id)
    messages = [e.message for e in events]
    assert any(m.startswith("Job pause requested") for m in messages)
    assert "Fine-tuning job resumed" in messages
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert steps == sorted(set(steps)) and len(steps) == 120  # none lost, none twice
    assert max(steps_then) < 120
    a, b = adapter(server, straight.id), adapter(server, job.id)
    for k in a:  # the same weights as the job that was never paused
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)

    # Continued fine-tuning: the fine-tuned model is the next job's model.
    more = client.fine_tuning.jobs.create(model=straight.fine_tuned_model, training_file=train.id,
                                          seed=1, suffix="more", hyperparameters={"n_epochs": 1})
    more = finished(client, more.id)
    assert more.status == "succeeded", (more.error, server.log()[-2000:])
    assert more.fine_tuned_model.startswith(f"ft:{server.model}:alpha:more:")
    continued = adapter(server, more.id)
    assert set(continued) == set(a) and any(
        not torch.equal(continued[k], a[k]) for k in a)  # the same adapter, trained further
    reply = client.chat.completions.create(model=more.fine_tuned_model, max_tokens=3,
                                           messages=[{"role": "user", "content": "my bill"}])
    assert reply.usage.completion_tokens >= 1
