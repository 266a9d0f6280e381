"""The OpenAPI shapes of the answers (documentation and client generation only: the
routes build their JSON directly from ``auditor.query``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from auditor.api.errors import error_responses


class IndexBlock(BaseModel):
    """Up to which block this answer is complete, and how far the index is behind."""

    completeUpToBlock: int = Field(description="Every block up to this one is indexed.")
    completeUpToHash: str | None
    headSeen: int | None = Field(description="The chain head the indexer last saw.")
    lag: int | None = Field(description="headSeen - completeUpToBlock, in blocks.")
    confirmations: int | None = Field(description="Blocks the indexer stays behind the head.")
    reorgsSeen: int
    updatedAt: float


class PageInfo(BaseModel):
    total: int
    limit: int
    offset: int
    nextOffset: int | None = Field(description="The offset of the next page; null at the end.")


class ListAnswer(BaseModel):
    """Every list answer (``format=csv`` gives the items as CSV instead)."""

    items: list[dict[str, Any]]
    page: PageInfo
    index: IndexBlock | None


class TaskAnswer(BaseModel):
    task: dict[str, Any]
    index: IndexBlock | None


class StatusAnswer(BaseModel):
    service: str
    version: str
    chainId: int
    consortium: str
    index: IndexBlock | None


#: The error answers every signed-in read route may give.
READ_ERRORS = (400, 401, 413, 422, 500, 503)


def list_responses(*extra: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` of a list route: JSON or CSV, and the shared errors."""
    return {
        200: {
            "model": ListAnswer,
            "description": "A page of items (JSON), or all of that page as CSV.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(*sorted({*READ_ERRORS, *extra})),
    }
