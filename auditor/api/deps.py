"""The principal of a request, with every regulator request written to the query log.

``viewer`` is the dependency every signed-in route takes (``create_app`` also adds it
to the other helpers' routers): it resolves the principal with
``auditor.auth.fastapi.current_principal`` and, for a regulator, appends
``(principal, method, path?query)`` to ``ctx.query_log`` before the route answers.
The log is written before the answer on purpose: a regulator query that could not be
logged is not answered (the append's error becomes a 5xx). Each request is logged once
however many routers or routes ask for ``viewer`` (a flag on ``request.state``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auditor.api.reading import context_of
from auditor.auth.fastapi import current_principal
from auditor.auth.principal import Principal


def request_target(request: Request) -> str:
    """The path and query string as the client sent them."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def log_request(request: Request, principal: Principal) -> None:
    """Append a regulator's request to the query log, once per request (the pages call
    this for their cookie-signed-in views; API routes get it through ``viewer``)."""
    if principal.is_regulator and not getattr(request.state, "provnet_logged", False):
        context_of(request).query_log.append(principal, request.method, request_target(request))
        request.state.provnet_logged = True


def viewer(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """The signed-in principal, its request logged first when it is a regulator."""
    log_request(request, principal)
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
