"""Signing in from Python (scripts, tests, ``provnet auditor token``) with httpx.

The client signs the typed data the server returns, but first checks that it is a
sign-in for the key it holds and for this auditor's audience: a hostile or mistaken
server must not get a signature over some other message.
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from auditor.auth import challenge as typed


class SignInError(RuntimeError):
    """The server refused, or sent something that is not a sign-in challenge."""


def sign_in(
    base_url: str,
    account: LocalAccount,
    *,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> str:
    """A bearer token for ``account`` from the auditor at ``base_url``."""
    base = base_url.rstrip("/")
    own = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    try:
        answer = _post(http, f"{base}/v1/auth/challenge", {"address": account.address})
        data = answer.get("typedData")
        if not isinstance(data, dict):
            raise SignInError("the auditor's challenge has no typedData")
        _check_challenge(data, account.address)
        signed = _post(
            http,
            f"{base}/v1/auth/token",
            {
                "address": account.address,
                "nonce": data["message"]["nonce"],
                "signature": typed.sign(account, data),
            },
        )
    finally:
        if own:
            http.close()
    token = signed.get("token")
    if not isinstance(token, str) or not token:
        raise SignInError("the auditor's token answer has no token")
    return token


def _post(http: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        response = http.post(url, json=body)
    except httpx.HTTPError as exc:
        raise SignInError(f"cannot reach the auditor at {url}: {exc}") from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200:
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:200]
        raise SignInError(f"{url}: {response.status_code}: {message}")
    if not isinstance(payload, dict):
        raise SignInError(f"{url}: the answer is not a JSON object")
    return payload


def _check_challenge(data: dict[str, Any], address: str) -> None:
    """Sign only a SignIn message of the provnet auditor domain, for this address."""
    domain = data.get("domain")
    message = data.get("message")
    if (
        data.get("primaryType") != typed.PRIMARY_TYPE
        or data.get("types") != typed.TYPES
        or not isinstance(domain, dict)
        or domain.get("name") != typed.DOMAIN_NAME
        or not isinstance(message, dict)
        or str(message.get("address", "")).lower() != address.lower()
    ):
        raise SignInError("the auditor's challenge is not a provnet sign-in for this key")
