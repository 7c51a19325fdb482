"""Store fixtures: each store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from tunesmith.jobs.database import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """The URL of an empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tunesmith.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def open_db(database):
    """Opens stores over the one database: several stores stand for several processes."""
    stores = []

    def make():
        stores.append(open_store(database))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(open_db):
    return open_db()
