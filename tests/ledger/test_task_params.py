"""The salted parameter commitment: checkable given the salt, unguessable without it."""

from __future__ import annotations

import pytest

from ledger.canonical import digest_json
from ledger.ids import InvalidInput
from ledger.task_params import ParamsEnvelope, params_commitment

ACCOUNTS = [f"ACC-{i:05d}" for i in range(5000)]


def query(account: str) -> dict[str, object]:
    return {"columns": [{"name": "account", "type": "string"}],
            "filter": {"column": "account", "op": "==", "value": account}}  # fmt: skip


def test_an_unsalted_digest_gives_the_filter_away_and_the_salted_one_does_not() -> None:
    """Attack 3 as reported: guess account ids until the digest on chain matches."""
    secret = query("ACC-03141")

    def guess(on_chain: bytes, commit: object) -> str | None:
        for account in ACCOUNTS:
            if commit(query(account)) == on_chain:  # type: ignore[operator]
                return account
        return None

    old_style = digest_json("task-params", secret)
    assert guess(old_style, lambda p: digest_json("task-params", p)) == "ACC-03141"
    envelope = ParamsEnvelope.new(secret)
    # Without the salt the attacker can only try the unsalted form, or a salt of its own.
    assert guess(envelope.digest, lambda p: digest_json("task-params", p)) is None
    assert guess(envelope.digest, lambda p: params_commitment(p, bytes(32))) is None
    # A participant given the salt checks the commitment exactly.
    assert params_commitment(secret, envelope.salt) == envelope.digest
    assert ParamsEnvelope.new(secret).digest != envelope.digest  # fresh salt per task


def test_the_envelope_round_trips_and_names_what_is_wrong() -> None:
    envelope = ParamsEnvelope.new({"a": 1})
    assert ParamsEnvelope.from_json(envelope.to_json()) == envelope
    assert ParamsEnvelope.from_json(envelope.to_json()).digest == envelope.digest
    for bad, field in [
        ({"a": 1}, "params"),
        ({"params": [], "salt": "00" * 32}, "params.params"),
        ({"params": {}, "salt": "00"}, "params.salt"),
        ({"params": {}, "salt": "zz" * 32}, "params.salt"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            ParamsEnvelope.from_json(bad)
        assert exc.value.field == field
    with pytest.raises(ValueError, match="salt"):
        params_commitment({}, b"short")
