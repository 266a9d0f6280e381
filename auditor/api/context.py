"""What every route of the auditor's app shares: the index, sign-in, the query log."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.auth.sessions import SessionStore
from auditor.index.store import IndexStore
from auditor.querylog.log import QueryLog
from auditor.service.verification import TaskVerifier


@dataclass
class ServiceContext:
    """Built once by the service (``provnet auditor run``) or a test, read by the routes
    through ``request.app.state.ctx``."""

    store: IndexStore
    sessions: SessionStore
    query_log: QueryLog
    verifier: TaskVerifier | None
    chain_id: int
    consortium_address: str
    version: str
