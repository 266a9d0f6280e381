"""Database fixtures for the node's stores: every DB test runs on SQLite and PostgreSQL.

PostgreSQL runs on every development machine and in CI, so an unreachable server is a
failure with a clear message, never a skip: a silently skipped backend is how
"works on SQLite" bugs reach production. Each test gets a fresh schema (selected through
the connection's ``search_path``) that is dropped afterwards, so parallel workers
(``pytest -n``) and reruns never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

POSTGRES_URL = os.environ.get(
    "PROVNET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose connections see only a fresh, private schema."""
    schema = f"provnet_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    problem = None
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        problem = str(exc.orig).strip()
    if problem is not None:  # failed outside the except block: one clean message
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem}). The node store tests "
            "need it: start the server (it runs on every dev machine and in CI) or point "
            "PROVNET_TEST_POSTGRES_URL at one.",
            pytrace=False,
        )
    url = (
        make_url(POSTGRES_URL)
        .update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
        .render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        with admin.begin() as conn:
            # A test that failed before closing its store may leave connections behind;
            # they would hold locks that block the DROP.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema},
            )
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, once per backend."""
    yield from database_url(str(request.param), tmp_path)
