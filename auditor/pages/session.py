"""The pages' sign-in: a token pasted once, then an HttpOnly, SameSite=Strict cookie.

The token is the one ``provnet auditor token`` (or ``/v1/auth/token``) issues after an
EIP-712 signature; AUTH's ``SessionStore`` is the only judge of it. The cookie is the
one the JSON API also reads, so the pages' export links (``/v1/...``) work in the same
browser without a second sign-in. Forms that change state are POSTs, and a POST whose
``Origin`` is another site is refused: with SameSite=Strict that closes cross-site form
submission, including signing a victim into someone else's session.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from auditor.auth.fastapi import COOKIE_NAME, sessions_of
from auditor.auth.principal import Principal


def principal_of(request: Request) -> Principal | None:
    """Who the session cookie belongs to, or None (no cookie, expired, revoked key)."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    return sessions_of(request).principal(token)


def set_session(request: Request, response: Response, token: str, expires_at: int) -> None:
    """Store the token in the browser: JavaScript cannot read it, other sites cannot send
    it, and over HTTPS it never travels in clear."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        expires=expires_at,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(request: Request, response: Response) -> None:
    """Sign out: the token stops working on the server, and the cookie is deleted."""
    token = request.cookies.get(COOKIE_NAME)
    if token:
        sessions_of(request).revoke(token)
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site: ``Sec-Fetch-Site``
    where the browser sends it (every current one does), else ``Origin``, else
    ``Referer``. Tools that send none of them (curl) are let through: they carry no
    ambient cookie that a third party could abuse."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")  # "none": typed or bookmarked
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def local_path(target: str | None, default: str = "/tasks") -> str:
    """Where to go after signing in: a path on this site only (never ``//evil`` or
    ``https://...``), so the sign-in page cannot be used as an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
