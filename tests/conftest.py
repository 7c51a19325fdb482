"""Shared fixtures. Nothing here downloads anything.

The embedded model's tokenizer is converted once into `.cache/test-home` (kept between runs, so
only the first run of a fresh clone pays the ~20 s conversion). Tiny models are built from a
config with random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ASSETS = Path(__file__).parent / "assets"

# Set before tunesmith is imported anywhere, so subprocesses started by tests inherit it too.
os.environ.setdefault("TUNESMITH_HOME", str(REPO / ".cache" / "test-home"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("TUNESMITH_DATABASE_URL", None)  # tests choose their database explicitly


@pytest.fixture(scope="session")
def tokenizer():
    """SmolLM2-135M-Instruct's tokenizer (49,152 tokens, ChatML template)."""
    from tunesmith.modeling import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data set not present: {path}")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer, tmp_path_factory):
    """A 2-layer Llama with random weights and the real tokenizer, saved as a local model folder."""
    from tunesmith.modeling import build_tiny_model

    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(len(tokenizer), arch="llama", seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_tools_model_dir(tiny_model_dir, tmp_path_factory):
    """`tiny_model_dir` with a chat template that renders tools (assets/hermes_tools.jinja);
    the default SmolLM2 template cannot."""
    import shutil

    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny-tools") / "model"
    shutil.copytree(tiny_model_dir, path)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = (ASSETS / "hermes_tools.jinja").read_text(encoding="utf-8")
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """The tiny chat asset prepared into train/validation splits."""
    from tunesmith.data.prepare import prepare

    path = tmp_path_factory.mktemp("tiny-data")
    prepare(ASSETS / "chat_tiny.jsonl", "classification", path, val=0.25, test=0.0)
    return path


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server (tests/jobs/postgres.py); skipped where it cannot run."""
    from tests.jobs.postgres import Postgres, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a fresh, empty database on that server."""
    return postgres.new_database()
