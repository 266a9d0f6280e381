"""The task page's verification: SERVICE's ``TaskVerifier`` runs it, SERVICE's table keeps it.

The pages never judge anything themselves. They show the latest stored verification of
a task in exactly the JSON form ``GET /v1/tasks/{id}/verification`` answers, and on a
regulator's POST they run ``ctx.verifier`` and store the run with the API's own
``store`` (under the API's lock: one verification at a time), so the page, the API and
``provnet audit verify`` agree check for check.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

from auditor.api.context import ServiceContext
from auditor.api.errors import ApiError
from auditor.api.routes import verification as api
from auditor.auth.principal import Principal
from ledger.task_params import ParamsEnvelope


def available(ctx: ServiceContext) -> bool:
    """A verifier is configured (the service has a regulator node and a report key)."""
    return ctx.verifier is not None


def latest(conn: Connection, task_id: bytes) -> dict[str, Any] | None:
    """The newest stored verification of ``task_id`` as the API answers it, or None."""
    return api.latest_json(conn, task_id)


def disclosed(text: str | None) -> ParamsEnvelope | None:
    """The creator's disclosed parameters pasted into the page (the ``{"params",
    "salt"}`` envelope or the creator's ``task result`` answer), read exactly as the
    API's POST body is; None when the box is empty. `ApiError` (422) when malformed."""
    if text is None or not text.strip():
        return None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ApiError(422, "params", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "params", "expected a JSON object")
    return api.disclosed_params(body)


def run(
    ctx: ServiceContext, task_id: bytes, principal: Principal, params: ParamsEnvelope | None
) -> None:
    """Verify ``task_id`` now (evidence fetched by the regulator's node) and store it,
    exactly as the API's POST does."""
    api.run_and_store(ctx, task_id, principal.address, params)


def export_links(task_hex: str, verification: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The task's downloads, all served by the JSON API (the session cookie signs the
    browser in there too). The report and PROV exist once a verification has run."""
    base = f"/v1/tasks/{task_hex}"
    links = (verification or {}).get("links") or {}
    return [
        {"label": "Task summary", "kind": "JSON", "href": base},
        {"label": "Timeline", "kind": "JSON", "href": f"{base}/trail"},
        {"label": "Timeline", "kind": "CSV", "href": f"{base}/trail?format=csv"},
        {
            "label": "Verification",
            "kind": "JSON",
            "href": f"{base}/verification" if verification else None,
        },
        {"label": "Signed report", "kind": "DSSE", "href": links.get("report")},
        {"label": "Provenance", "kind": "PROV", "href": links.get("prov")},
    ]
