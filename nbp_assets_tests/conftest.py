"""Shared fixtures for the nbp_assets tests."""

from __future__ import annotations

import os
import shutil

import psycopg
import pytest

from nbp_assets.storage.postgres import resolve_postgres_url, stop_local_server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL for the session: NBP_TEST_POSTGRES_URL (a disposable database:
    tests drop schemas in it) or a local server started here and stopped at the end."""
    if os.environ.get("NBP_TEST_POSTGRES_URL"):
        yield os.environ["NBP_TEST_POSTGRES_URL"]
        return
    data_dir = tmp_path_factory.mktemp("pg")
    yield resolve_postgres_url(None, data_dir)
    stop_local_server(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def clean_postgres(postgres_url):
    """postgres_url with no product_intelligence schema: each test starts before the first publish."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
    yield postgres_url
