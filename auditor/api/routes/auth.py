"""Sign-in routes: ``POST /v1/auth/challenge`` then ``POST /v1/auth/token``.

1. ``POST /v1/auth/challenge {"address"}``: the EIP-712 typed data for that key to sign
   (``eth_signTypedData_v4``); refused unless the key is registered (admin or active
   node of an active organisation, as indexed).
2. ``POST /v1/auth/token {"address", "nonce", "signature"}``: a bearer token valid for
   the store's ttl, and who it speaks for. The challenge is used up either way.

``GET /v1/auth/session`` says who a token belongs to and ``POST /v1/auth/logout`` ends it.
Nothing here takes an organisation or a role from the client: both come from the index.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from auditor.api.errors import ErrorBody
from auditor.auth.errors import AuthError
from auditor.auth.fastapi import CurrentPrincipal, sessions_of, token_from

router = APIRouter(prefix="/v1/auth", tags=["sign-in"])


def _error(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


_REFUSED = _error("UNAUTHORIZED: not registered, bad signature, or unknown/used/expired")
_INVALID = _error("INVALID_INPUT: a field is malformed; `field` names it")
_BUSY = _error("TOO_MANY_REQUESTS: too many sign-ins in progress")


class ChallengeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(max_length=64, description="The signing key's 0x address.")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(max_length=64, description="The signing key's 0x address.")
    nonce: str = Field(max_length=80, description="The challenge's nonce (0x + 64 hex).")
    signature: str = Field(max_length=200, description="65-byte signature, 0x + 130 hex.")


@router.post("/challenge", responses={401: _REFUSED, 422: _INVALID, 429: _BUSY})
def challenge(request: Request, body: ChallengeRequest) -> dict[str, Any]:
    """The typed data to sign; valid for 300 s, redeemable once."""
    data = sessions_of(request).challenge(body.address)
    message = data["message"]
    return {
        "typedData": data,
        "nonce": message["nonce"],
        "expiresAt": message["expiresAt"],
        "audience": message["audience"],
    }


@router.post("/token", responses={401: _REFUSED, 422: _INVALID, 429: _BUSY})
def token(request: Request, body: TokenRequest) -> dict[str, Any]:
    """A bearer token for a signed challenge (send as ``Authorization: Bearer``)."""
    issued, principal = sessions_of(request).redeem(body.address, body.nonce, body.signature)
    return {
        "token": issued,
        "tokenType": "Bearer",
        "expiresAt": principal.expires_at,
        "principal": principal.to_json(),
    }


@router.get("/session", responses={401: _REFUSED})
def session(principal: CurrentPrincipal) -> dict[str, Any]:
    """Who the token or session cookie belongs to, and until when."""
    return {"principal": principal.to_json()}


@router.post("/logout", responses={401: _REFUSED})
def logout(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """End the session: the token stops working now."""
    held = token_from(request)
    if held is None:  # current_principal already refused this; kept for the type checker
        raise AuthError(401, "Authorization", "no token")
    sessions_of(request).revoke(held)
    return {"signedOut": principal.address}
