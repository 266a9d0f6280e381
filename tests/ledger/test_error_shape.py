"""The error shape both APIs answer in, and how a validation error's location is named."""

from __future__ import annotations

import pytest

from ledger.error_shape import error_json, validation_field


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (("query", "limit"), "limit"),
        (("body", "providers", 0, "node"), "providers[0].node"),
        (("body",), ""),
        (("path", "taskId"), "taskId"),
        (("header", "authorization"), "authorization"),
        (("providers", 2), "providers[2]"),  # no location prefix: kept as given
        ((0, "x"), "[0].x"),
    ],
)
def test_a_location_is_named_as_the_client_wrote_the_field(
    loc: tuple[object, ...], field: str
) -> None:
    assert validation_field(loc) == field


def test_the_shape_carries_code_field_message_and_extras() -> None:
    assert error_json("CONTRACT_REVERT", "grant", "revoked", contractError="GrantRevoked") == {
        "error": {
            "code": "CONTRACT_REVERT",
            "field": "grant",
            "message": "revoked",
            "contractError": "GrantRevoked",
        }
    }
