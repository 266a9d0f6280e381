"""Fixtures for the indexer tests: an index database per backend, a live anvil consortium.

Every store test runs on SQLite and on PostgreSQL (a private schema per test, dropped
afterwards, exactly as the node's store tests do). The anvil consortium is shared by a
module's tests: deploying it is the expensive part, and each test reads the chain as it
finds it, comparing the index with what the chain says at that moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger import transactions
from ledger.chain import Chain
from tests.anvil import running_anvil
from tests.conftest import Consortium, build_consortium
from tests.node.conftest import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once per backend."""
    yield from database_url(str(request.param), tmp_path)


@dataclass
class Live:
    url: str
    consortium: Consortium


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """A real anvil with the six contracts and three organisations, for the module."""
    transactions.reset_nonces()
    with running_anvil() as url:
        yield Live(url, build_consortium(Chain.connect(url)))
    transactions.reset_nonces()
