"""The Jinja2 environment of the pages and the filters that format chain values.

Autoescaping is on for every template (names, reasons and evidence come from the chain,
i.e. from any member), so nothing a member registered can inject markup. Times are shown
in UTC, the one zone every reader of a shared audit trail agrees on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def fmt_time(value: Any) -> str:
    """Unix seconds as ``2026-11-30 09:20:26`` (UTC); empty for None."""
    if value is None or value == "":
        return ""
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_date(value: Any) -> str:
    """Unix seconds as ``2026-11-30`` (UTC), for period starts and date inputs."""
    if value is None or value == "":
        return ""
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d")


def short_hex(value: Any, keep: int = 6) -> str:
    """``0x1234ab…89cdef``: enough to tell ids apart in a dense table (the full value is
    in the element's title and in every export)."""
    if value is None:
        return ""
    text = str(value)
    if len(text) <= 2 + 2 * keep + 1:
        return text
    return f"{text[: 2 + keep]}…{text[-keep:]}"


def pretty_json(value: Any) -> str:
    """Evidence as indented JSON (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def zero_id(value: Any) -> bool:
    """A ``0x00…00`` id: "none" on chain (a seat without a dataset, a grantless read)."""
    text = str(value or "")
    return text.startswith("0x") and len(text) > 2 and set(text[2:]) == {"0"}


VERDICT_LABELS = {"pass": "PASS", "fail": "FAIL", "not-applicable": "N/A"}


def verdict(status: Any) -> str:
    """A check's status as the pages spell it: PASS, FAIL or N/A."""
    return VERDICT_LABELS.get(str(status), str(status).upper())


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"], default=True),
        undefined=StrictUndefined,  # a misspelt field is an error in tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=fmt_time, date=fmt_date, short=short_hex, pretty=pretty_json, verdict=verdict
    )
    env.tests["zero_id"] = zero_id
    return env
