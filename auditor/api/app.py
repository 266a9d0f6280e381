"""``create_app(ctx)``: the auditor's API (``/v1``), its OpenAPI document and the pages.

Layers, outermost first: ``CompleteUpTo`` (every answer, pages and errors included,
carries ``X-Provnet-Complete-Up-To-Block``), ``Entry`` (body limit; any unclaimed
exception becomes a 5xx in the error shape), then FastAPI with the error handlers of
``auditor.api.errors``. Every ``/v1`` route but ``/v1/status`` and ``/v1/auth/*`` needs
a signed-in principal, and every regulator request is written to the query log before
it is answered (``auditor.api.deps.viewer``).
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import Depends, FastAPI, Security
from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auditor.api.context import ServiceContext
from auditor.api.deps import viewer
from auditor.api.errors import Entry, error_responses, install_error_handlers
from auditor.api.reading import COMPLETE_HEADER
from auditor.api.routes import (
    anchors,
    auth,
    directory,
    grants,
    query_log,
    status,
    tasks,
    usage,
    verification,
)
from auditor.pages import routes as pages

#: Documents the bearer scheme in OpenAPI (the "Authorize" button of /docs); the token
#: itself is checked by ``auditor.auth.fastapi.current_principal``.
bearer = HTTPBearer(auto_error=False, description="The token from POST /v1/auth/token.")


class CompleteUpTo:
    """Adds ``X-Provnet-Complete-Up-To-Block`` to every answer that lacks it (the list
    routes set it from their own read snapshot; this covers pages, errors and the rest).
    ``-1`` means nothing is indexed yet, or the database did not say."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    def _block(self) -> str:
        try:
            return str(self.ctx.store.status().complete_up_to)
        except Exception:  # unbound index or database down: the answer itself says more
            return "-1"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = COMPLETE_HEADER.lower().encode()

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == name for k, _ in headers):
                    block = await anyio.to_thread.run_sync(self._block)
                    headers.append((name, block.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(ctx: ServiceContext) -> FastAPI:
    """The whole HTTP face of the auditor for one index."""
    app = FastAPI(
        title="provnet auditor API",
        version=ctx.version,
        description=(
            "Read-only answers over the auditor's index of the provnet chain: "
            "organisations, nodes, datasets, grants, tasks and their trails, usage, "
            "refusals and AnchorLog checkpoints. Sign in with POST /v1/auth/challenge and "
            "/v1/auth/token (an EIP-712 signature by a registered key), then send "
            "`Authorization: Bearer TOKEN`. Every list takes `limit`/`offset` and "
            "`format=csv`; every answer says up to which block it is complete (`index`, "
            f"and the `{COMPLETE_HEADER}` header). Every error answers "
            '`{"error": {"code", "field", "message"}}`.'
        ),
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.add_middleware(Entry)
    app.add_middleware(CompleteUpTo, ctx=ctx)  # added last: the outermost, so that even
    # Entry's own refusals (413, 500) carry the header
    documented: list[Any] = [Security(bearer)]
    # What any route may answer whoever wrote it: a body that does not parse, one too
    # large, a fault of ours, the database down (see auditor.api.errors).
    common = error_responses(400, 413, 500, 503)
    app.include_router(status.router, responses=common)
    for router in (directory.router, grants.router, tasks.router, usage.router, anchors.router):
        app.include_router(router, dependencies=documented, responses=common)
    # Sign-in must be reachable signed out; the pages answer a sign-in form themselves
    # and log their signed-in views with ``auditor.api.deps.log_request``.
    app.include_router(auth.router, responses=common)
    for router in (query_log.router, verification.router):
        app.include_router(router, dependencies=[*documented, Depends(viewer)], responses=common)
    app.include_router(pages.router, responses=common)
    return app
