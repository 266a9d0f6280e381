"""The auditor's API against its own OpenAPI document, as a client generator sees it.

schemathesis drives the ASGI app (over the indexed anvil history, signed in as the
regulator) with requests generated from ``/openapi.json``, valid and invalid: no answer
may be a 5xx, every answer must be a status and content type the document lists, and
every 4xx must carry the one error shape with a message.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from auditor.index.store import IndexStore
from tests.auditor.api.conftest import Api, make_api
from tests.auditor.api.scenario import History

pytestmark = pytest.mark.anvil

EXAMPLES = 5  # per operation and mode: the file stays within its time budget


def error_has_a_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is ``{"error": {"code", "field", "message"}}`` with a non-empty message."""
    if 400 <= response.status_code < 500:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict), f"{response.status_code} without the error shape: {body}"
        assert {"code", "field", "message"} <= set(error), error
        assert isinstance(error["message"], str) and error["message"].strip(), error
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_has_a_message,
]


@pytest.fixture(scope="module")
def fuzzed(history: History, sqlite_index: IndexStore) -> Api:
    """An app of its own (its own sign-in sessions), so a fuzzed logout cannot end the
    tokens of the other test modules."""
    return make_api(history, sqlite_index)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_answer_is_a_server_error_and_every_4xx_says_why(
    fuzzed: Api, history: History, mode: GenerationMode
) -> None:
    """Each operation gets its own bounded, derandomized run, so a failure names the
    operation and reproduces."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"GET /v1/tasks", "GET /v1/tasks/{taskId}/trail", "GET /v1/status"} <= labels
    regulator = history.consortium.orgs["regulator"].admin
    for operation in operations:
        raw = operation.definition.raw
        if mode is GenerationMode.NEGATIVE and not (raw.get("parameters") or "requestBody" in raw):
            continue  # nothing a client could send wrong
        # A fresh token per operation: a fuzzed POST /v1/auth/logout ends only its own.
        headers = {"Authorization": f"Bearer {fuzzed.sign_in(regulator)}"}
        try:
            fuzz(operation, mode, headers)
        except Exception as exc:
            exc.add_note(f"operation: {operation.label} ({mode.value})")
            raise


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests on every run: a failure reproduces
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
