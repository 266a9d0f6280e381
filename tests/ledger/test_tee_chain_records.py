"""The chain-side names of TEE decisions: refusal reason codes and the measurement replay."""

from __future__ import annotations

from typing import Any

from ledger.clients.measurements import measurement_sets_at, measurement_trusted_at
from ledger.clients.tasks import ATTESTATION_REFUSAL_CODES, attestation_refusal_code
from ledger.events import Event
from ledger.ids import name_id
from node.tee.refusal import Reason

M1, M2 = name_id("measurement", "one"), name_id("measurement", "two")
ALGO = name_id("algorithm", "tee")


def test_every_refusal_reason_has_its_code_in_declaration_order() -> None:
    assert list(ATTESTATION_REFUSAL_CODES) == [r.value for r in Reason]
    assert [attestation_refusal_code(r) for r in Reason] == list(range(1, len(Reason) + 1))


def _event(
    name: str, block: int, index: int = 0, contract: str = "Consortium", **args: Any
) -> Event:
    return Event(contract, name, args, "0x" + "11" * 20, block, bytes(32), bytes(32), index)


def test_replay_answers_for_any_block() -> None:
    events = [
        _event("MeasurementRevoked", 9, measurement=M1, algorithmDigest=ALGO),
        _event("MeasurementTrusted", 5, measurement=M1, algorithmDigest=ALGO),
        _event("MeasurementTrusted", 7, 1, measurement=M2, algorithmDigest=ALGO),
        _event("MeasurementTrusted", 6, contract="AlgorithmRegistry", measurement=M2),
    ]
    assert not measurement_trusted_at(events, M1, 4)
    assert measurement_trusted_at(events, M1, 5)
    assert measurement_trusted_at(events, M1, 8)
    assert not measurement_trusted_at(events, M1, 9)
    assert not measurement_trusted_at(events, M2, 6)  # another contract's event is ignored
    sets = measurement_sets_at(events, 100)
    assert sets.trusted == frozenset({M2}) and sets.revoked == frozenset({M1})
    assert sets.algorithm_digests == {M1: ALGO, M2: ALGO}


def test_revocation_is_final_in_the_replay() -> None:
    events = [
        _event("MeasurementTrusted", 1, measurement=M1, algorithmDigest=ALGO),
        _event("MeasurementRevoked", 2, measurement=M1, algorithmDigest=ALGO),
        _event("MeasurementTrusted", 3, measurement=M1, algorithmDigest=ALGO),
    ]
    assert not measurement_trusted_at(events, M1, 3)
