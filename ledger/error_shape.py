"""The one shape of an error answer, shared by the node's operator API and the auditor's
API (``auditor`` never imports ``node``, so the shape both speak lives here, as DESIGN §2
keeps schemas both sides need):

    {"error": {"code": "INVALID_INPUT", "field": "limit", "message": "..."}}

Pure functions over plain values: each API keeps its own framework handlers and OpenAPI
descriptions, and only the shape and the naming of a field are defined once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Where a request value came from, as FastAPI/pydantic prefix a validation error's
#: location; the field named to the client leaves it out.
_LOCATIONS = ("body", "form", "query", "path", "header", "cookie")


def error_json(code: str, field: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {code, field, message, ...extra}}``."""
    return {"error": {"code": code, "field": field, "message": message, **extra}}


def validation_field(loc: Iterable[Any]) -> str:
    """A validation error's location as the client wrote the field:
    ``("query", "limit")`` -> ``limit``; ``("body", "providers", 0, "node")`` ->
    ``providers[0].node``."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
