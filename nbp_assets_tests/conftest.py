"""Shared fixtures for the nbp_assets tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from nbp_assets.core.postgres_server import resolve_postgres_url, stop_local_server

# The weekly partitions start at import (partitions.py): pinned to the default, so the
# first week a demo recorded in ./.nbp/first_week does not change what the tests see.
os.environ.setdefault("NBP_FIRST_WEEK", "2025-01-06")


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL for the session: NBP_TEST_POSTGRES_URL (a disposable database:
    tests drop schemas in it) or a local server started here and stopped at the end."""
    if os.environ.get("NBP_TEST_POSTGRES_URL"):
        yield os.environ["NBP_TEST_POSTGRES_URL"]
        return
    # Not under tmp_path_factory: as root the server runs as another OS user, and every
    # pytest session that starts resets /tmp/pytest-of-root to 0700, locking it out.
    data_dir = Path(tempfile.mkdtemp(prefix="nbp-test-pg-"))
    try:
        yield resolve_postgres_url(None, data_dir)
    finally:
        stop_local_server(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def clean_postgres(postgres_url):
    """postgres_url with no product_intelligence schema: each test starts before the first publish."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
    yield postgres_url
