"""``GET /v1/status``: is the auditor up, which chain, how complete (no sign-in)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auditor.api.errors import error_responses
from auditor.api.models import StatusAnswer
from auditor.api.reading import context_of, json_answer, snapshot

router = APIRouter(tags=["status"])


@router.get(
    "/v1/status",
    response_model=StatusAnswer,
    responses=error_responses(400, 413, 500, 503),
)
def status(request: Request) -> JSONResponse:
    """The service's version, chain id, Consortium address and index completeness."""
    ctx = context_of(request)
    with snapshot(ctx) as snap:
        return json_answer(
            snap,
            {
                "service": "provnet auditor",
                "version": ctx.version,
                "chainId": ctx.chain_id,
                "consortium": ctx.consortium_address,
            },
        )
