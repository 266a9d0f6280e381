"""Signing in and out: the token form, the session cookie, the stylesheet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from auditor.api.reading import context_of
from auditor.auth.principal import Principal
from auditor.pages.render import STATIC
from auditor.pages.respond import (
    render,
    secure,
)
from auditor.pages.session import end_session, local_path, principal_of, same_origin, set_session

router = APIRouter()

# --- sign-in --------------------------------------------------------------------------


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    return RedirectResponse("/tasks", status_code=303)


@router.get("/assets/pages.css", response_model=None)
def stylesheet() -> Response:
    return FileResponse(
        STATIC / "pages.css",
        media_type="text/css",
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/signin", response_model=None)
def signin_page(request: Request, next: str | None = None) -> Response:
    principal = principal_of(request)
    return _signin(request, principal, next, None, 200)


def _signin(
    request: Request, principal: Principal | None, target: str | None, error: str | None, code: int
) -> HTMLResponse:
    base = f"{request.url.scheme}://{request.url.netloc}"
    ctx = context_of(request)
    return render(
        request,
        "signin.html",
        principal,
        status_code=code,
        title="Sign in",
        base_url=base,
        next=local_path(target),
        error=error,
        consortium=ctx.consortium_address,
        ttl_minutes=max(ctx.sessions.ttl // 60, 1),
    )


@router.post("/signin", response_model=None)
async def signin_submit(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token") or "").strip()
    target = local_path(str(form.get("next") or ""))
    # The rest reads the database: off the event loop, like every synchronous route.
    return await run_in_threadpool(_signin_with, request, token, target)


def _signin_with(request: Request, token: str, target: str) -> Response:
    if not same_origin(request):
        return _signin(request, None, target, "This form was sent from another site.", 403)
    if not token:
        return _signin(request, None, target, "Paste the token printed by the command.", 400)
    principal = context_of(request).sessions.principal(token)
    if principal is None:
        message = (
            "That token is unknown or expired, or its key is no longer registered. "
            "Run the command again for a fresh token."
        )
        return _signin(request, None, target, message, 401)
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, token, principal.expires_at)
    secure(response)
    return response


@router.post("/signout", response_model=None)
def signout(request: Request) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    if same_origin(request):
        end_session(request, response)
    secure(response)
    return response
