"""The FastAPI side of sign-in: the ``current_principal`` dependency and its errors.

``current_principal`` takes the token from ``Authorization: Bearer TOKEN`` (API
clients, curl) or from the ``provnet_session`` cookie (the pages), asks the app's
``SessionStore`` who holds it, and refuses with 401 in the API's error shape otherwise.
It finds the store at ``app.state.sessions`` or, failing that, ``app.state.ctx.sessions``
(the ``ServiceContext``); ``install(app, sessions)`` sets the first and registers the
error handler, so an app needs one call.

``require_regulator`` is the same plus a 403 for members other than regulators, for the
routes only regulators may use at all (the query log). Routes that show members their
own tasks use ``current_principal`` and filter by ``principal.org_id``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from auditor.auth.errors import AuthError, unauthorized
from auditor.auth.principal import Principal
from auditor.auth.sessions import SessionStore

COOKIE_NAME = "provnet_session"


def sessions_of(request: Request) -> SessionStore:
    """The app's SessionStore (see the module docstring for where it is looked up)."""
    state = request.app.state
    store = getattr(state, "sessions", None)
    if store is None:
        ctx = getattr(state, "ctx", None)
        store = getattr(ctx, "sessions", None)
    if not isinstance(store, SessionStore):
        raise RuntimeError(
            "no SessionStore on the app: call auditor.auth.fastapi.install(app, sessions) "
            "or set app.state.ctx to a ServiceContext"
        )
    return store


def token_from(request: Request) -> str | None:
    """The bearer token, else the session cookie, else None."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None  # a malformed Authorization header is not silently replaced by a cookie
    cookie = request.cookies.get(COOKIE_NAME)
    return cookie or None


def current_principal(request: Request) -> Principal:
    """The signed-in member; 401 when there is no token or it is not (any longer) valid."""
    token = token_from(request)
    if token is None:
        raise unauthorized(
            "sign in first: send Authorization: Bearer TOKEN (from POST /v1/auth/token or "
            "`provnet auditor token`)"
        )
    principal = sessions_of(request).principal(token)
    if principal is None:
        raise unauthorized(
            "the token is unknown, expired, or its key is no longer registered; sign in again"
        )
    return principal


def require_regulator(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The signed-in member if its organisation is a regulator; 403 otherwise."""
    if not principal.is_regulator:
        raise AuthError(403, "Authorization", "only regulators may use this endpoint")
    return principal


def auth_error_response(_: Request, exc: Exception) -> JSONResponse:
    """Renders an ``AuthError`` as ``{"error": {"code", "field", "message"}}``."""
    assert isinstance(exc, AuthError)
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI, sessions: SessionStore | None = None) -> None:
    """Register the AuthError handler (and the SessionStore, when given) on ``app``."""
    if sessions is not None:
        app.state.sessions = sessions
    app.add_exception_handler(AuthError, auth_error_response)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Regulator = Annotated[Principal, Depends(require_regulator)]
