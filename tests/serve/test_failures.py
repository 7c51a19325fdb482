"""The service under failure: cancel, SIGKILL mid-job then restart, oversized uploads."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest

from tests.serve.conftest import wait_for

FINAL = {"succeeded", "failed", "cancelled"}


def _status(client, job_id):
    return client.fine_tuning.jobs.retrieve(job_id).status


def _metric_steps(client, job_id) -> list[int]:
    events = list(client.fine_tuning.jobs.list_events(job_id, limit=100))  # pages via `after`
    return [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in e.data]


def _upload(client, path):
    with open(path, "rb") as f:
        return client.files.create(file=f, purpose="fine-tune")


def test_cancel_stops_a_running_job_and_the_next_one_runs(server_factory, service_data):
    server = server_factory().start()
    client = server.client()
    upload = _upload(client, service_data / "train.jsonl")
    long = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                          hyperparameters={"n_epochs": 50, "batch_size": 1})
    short = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                           hyperparameters={"n_epochs": 1})
    wait_for(lambda: _metric_steps(client, long.id))
    assert _status(client, short.id) in ("validating_files", "queued")  # one job at a time
    assert client.fine_tuning.jobs.cancel(long.id).status == "cancelled"
    wait_for(lambda: _status(client, short.id) in FINAL, timeout=120)
    assert _status(client, short.id) == "succeeded"
    steps = max(_metric_steps(client, long.id))
    assert steps < 50 * 40  # stopped long before the end
    time.sleep(1)
    assert max(_metric_steps(client, long.id)) == steps and _status(client, long.id) == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(short.id)  # finished jobs stay finished


def test_sigkill_mid_job_then_restart_finishes_it(server_factory, service_data):
    server = server_factory().start()
    client = server.client()
    upload = _upload(client, service_data / "train.jsonl")
    job = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                         hyperparameters={"n_epochs": 3, "batch_size": 1})
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, every=0.05)
    assert _status(client, job.id) == "running"
    server.kill()  # server and worker, mid-job
    server.start()
    client = server.client()
    done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in FINAL and j)
    assert done.status == "succeeded", done.error
    assert "resumed from" in (server.home / "worker.log").read_text()
    steps = _metric_steps(client, job.id)
    assert sorted(steps) == list(range(1, 3 * 40 + 1))  # every step once, none twice
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert sorted(c.step_number for c in checkpoints) == [40, 80, 120]
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    assert {f.id for f in client.files.list()} == {upload.id, done.result_files[0]}
    reply = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=3,
                                           messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content is not None


def test_oversized_uploads_are_refused_without_filling_the_disk(server_factory, tmp_path):
    server = server_factory(extra=["--max-upload-mb", "1"]).start()
    client = server.client()
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"x": 1}\n' * 400_000)  # 3.6 MB, sent with its Content-Length
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(file=open(big, "rb"), purpose="fine-tune")
    assert e.value.status_code == 413 and e.value.body["code"] == "file_too_large"

    # 2 GB announced by nobody (chunked transfer): the server reads past the cap, then stops.
    sent = _stream_upload(server.port, total=2 * 1024**3)
    assert sent < 256 * 1024**2
    assert not list((server.home / "tmp").glob("*")) and not list((server.home / "files").glob("*"))
    assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200


def _stream_upload(port: int, total: int) -> int:
    """Send a multipart upload of `total` bytes with chunked encoding until the server stops
    reading; return how many bytes went out."""
    boundary = "tunesmithboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
            f"fine-tune\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"huge.jsonl\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(30)
    sock.sendall((f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key-alpha\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode())
    chunk = b"0" * (1024 * 1024)
    sent = 0
    try:
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    try:
        reply = sock.recv(65536).decode("latin-1")
        if reply:
            assert reply.startswith("HTTP/1.1 413"), reply[:200]
            assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["code"] == "file_too_large"
    except (TimeoutError, ConnectionResetError, IndexError, json.JSONDecodeError):
        pass  # the server may reset the connection before the reply can be read
    sock.close()
    return sent
