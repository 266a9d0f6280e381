"""The one shape of every error answer of the operator API, and its OpenAPI entries.

Every error, whoever answers it (a route, FastAPI's validation, Starlette's router for an
unknown path or method, `node.api_entry.EntryGuard`, or the catch-all for a bug), has
one shape:

    {"error": {"code": "INVALID_INPUT", "field": "maxUses", "message": "..."}}

`code` is a stable machine name (see `ErrorDetail`), `field` names what was wrong (a
request field, or `path`, `method`, `body`, `Authorization`, `chain`, `contract`,
`server` when no single input is at fault), `message` says why for a person. A contract
refusal adds `contractError` and `arguments`. Kept apart from the routes so the entry
middleware and the routes share it without importing each other.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger.error_shape import error_json as error_json  # the routes build errors from here

# The stable code of each status when nothing more specific applies.
STATUS_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "INVALID_INPUT",
    500: "INTERNAL",
    502: "CHAIN_UNAVAILABLE",
}


class ErrorDetail(BaseModel):
    """What went wrong: a stable code for programs, a field and a message for people."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(
        description=(
            "Stable machine name: BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, METHOD_NOT_ALLOWED, "
            "CONFLICT, CONTRACT_REVERT, PAYLOAD_TOO_LARGE, INVALID_INPUT, INTERNAL, "
            "CHAIN_UNAVAILABLE, TRANSACTION_FAILED, NO_GAS."
        )
    )
    field: str = Field(
        description=(
            "The request field at fault (dotted, list items as [i]), or the part of the "
            "exchange: path, method, body, Authorization, chain, contract, server."
        )
    )
    message: str = Field(description="Why, for a person; never a server path or traceback.")
    contractError: str | None = Field(
        default=None, description="CONTRACT_REVERT only: the contract's custom error name."
    )
    arguments: dict[str, Any] | None = Field(
        default=None, description="CONTRACT_REVERT only: the custom error's decoded arguments."
    )


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


_DESCRIPTIONS: Mapping[int, str] = {
    400: "BAD_REQUEST: the request is malformed below the level of its fields "
    "(a Content-Length that is not a number, a multipart body that does not parse).",
    401: "UNAUTHORIZED: missing or bad bearer token; the body was not read.",
    404: "NOT_FOUND: no such task, dataset or route.",
    409: "CONFLICT (the chain's state or an earlier request rules it out) or "
    "CONTRACT_REVERT (a contract refused; contractError and arguments say how).",
    413: "PAYLOAD_TOO_LARGE: the body passes this node's limit; nothing more was read.",
    422: "INVALID_INPUT: a field is missing, malformed or cannot be used; `field` names it.",
    500: "INTERNAL: a fault of this node (logged there); nothing is revealed.",
    502: "CHAIN_UNAVAILABLE, TRANSACTION_FAILED or NO_GAS: the chain did not take the "
    "request (node unreachable, a mined transaction failed, or this node's account "
    "cannot pay for gas).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these statuses, all with the shared error model."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}
