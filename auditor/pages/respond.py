"""What every page does besides reading its rows: who is signed in (and the query log
entry for a regulator), the page frame with the index state, security headers, paging
links, and the filters several pages share.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from auditor.api.context import ServiceContext
from auditor.api.deps import log_request
from auditor.api.reading import COMPLETE_HEADER, context_of, snapshot
from auditor.auth.principal import Principal
from auditor.pages import forms
from auditor.pages.render import environment
from auditor.pages.session import principal_of
from auditor.query import orgs
from auditor.query.paging import Page

_env = environment()
PAGE_SIZE = 50
#: Pages are documents: no script runs, nothing is framed, forms post only here.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
NAV = (
    ("/tasks", "Tasks"),
    ("/usage", "Usage"),
    ("/refusals", "Refusals & failures"),
    ("/orgs", "Organisations"),
    ("/datasets", "Datasets"),
)


def index_of(ctx: ServiceContext) -> dict[str, Any] | None:
    """The index state for pages that read nothing else (sign-in, errors)."""
    with snapshot(ctx) as snap:
        return snap.index


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    index: dict[str, Any] | None = None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page, with the index state read in the same snapshot as its rows (``index``;
    read here for pages without rows)."""
    ctx = context_of(request)
    if index is None:
        index = index_of(ctx)
    body = _env.get_template(template).render(
        principal=principal,
        index=index,
        nav=NAV,
        path=request.url.path,
        version=ctx.version,
        chain_id=ctx.chain_id,
        **values,
    )
    response = HTMLResponse(body, status_code=status_code)
    secure(response)
    if index is not None:
        response.headers[COMPLETE_HEADER] = str(index["completeUpToBlock"])
    return response


def secure(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Not "no-referrer": that makes browsers send ``Origin: null`` on our own forms.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"


def to_signin(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
    secure(response)
    return response


def signed_in(request: Request) -> Principal | None:
    """The member behind the session cookie. A regulator's page view is appended to the
    query log like an API query (reading the trail leaves a trail), once per request, as
    ``auditor.api.deps.viewer`` does."""
    principal = principal_of(request)
    if principal is not None:
        log_request(request, principal)
    return principal


def not_found(request: Request, principal: Principal, what: str) -> HTMLResponse:
    return render(
        request, "error.html", principal, status_code=404, title="Not found", message=what
    )


def pager(request: Request, page: Page) -> dict[str, Any]:
    """Previous/next links that keep every other query parameter."""

    def url(offset: int) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        if offset:
            params.append(("offset", str(offset)))
        return request.url.path + ("?" + urlencode(params) if params else "")

    previous = None if page.offset == 0 else url(max(page.offset - page.limit, 0))
    after = page.next_offset
    return {
        "first": page.offset + 1 if page.items else 0,
        "last": page.offset + len(page.items),
        "total": page.total,
        "previous": previous,
        "next": None if after is None else url(after),
    }


def visible_to(principal: Principal) -> bytes | None:
    return None if principal.is_regulator else principal.org_id


def org_options(conn: Connection) -> list[dict[str, Any]]:
    return orgs.list_orgs(conn, role=None, status=None, limit=1000, offset=0).items


def date_range(request: Request) -> tuple[int | None, int | None]:
    q = request.query_params
    since = forms.day(q.get("since"), "since")
    until = forms.day(q.get("until"), "until", end=True)
    return since, None if until is None else until + 1


def org_scope(request: Request, principal: Principal) -> bytes | None:
    """Regulators choose any organisation (or all); a member sees only its own."""
    if not principal.is_regulator:
        return principal.org_id
    return forms.hex32(request.query_params.get("org"), "org")
