"""Which enclave measurements the consortium trusted at a given block, from events alone.

`Consortium` emits `MeasurementTrusted` when a trust proposal is executed and
`MeasurementRevoked` when a revocation is; revocation is final. Replaying those events up
to block N answers "was measurement M trusted at block N?" without trusting any contract
view, the way the auditor replays membership (`auditor.verify.history`). The trusted and
revoked sets are what a data owner puts in `node.tee.verify.Expectation`.

"At block N" means after every transaction of block N: a measurement trusted by a
proposal executed in block N is trusted at N, one revoked in block N is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.artifacts import abi
from ledger.chain import Chain
from ledger.events import Event, EventReader, Source

__all__ = [
    "MeasurementSets",
    "measurement_sets_at",
    "measurement_trusted_at",
    "read_measurement_sets",
]

_TRUSTED = "MeasurementTrusted"
_REVOKED = "MeasurementRevoked"


@dataclass(frozen=True)
class MeasurementSets:
    """The consortium's decisions on enclave measurements as of one block."""

    block: int
    trusted: frozenset[bytes]
    revoked: frozenset[bytes]
    algorithm_digests: dict[bytes, bytes]  # measurement -> digest it was trusted with

    def is_trusted(self, measurement: bytes) -> bool:
        return bytes(measurement) in self.trusted


def measurement_sets_at(events: Iterable[Event], block: int) -> MeasurementSets:
    """Replay `Consortium` measurement events up to and including `block`.

    Events of other contracts, and events after `block`, are ignored, so the whole event
    history of a deployment can be passed in. A revocation is final: a later trust event
    for the same measurement (which the contract never emits) does not bring it back.
    """
    trusted: set[bytes] = set()
    revoked: set[bytes] = set()
    digests: dict[bytes, bytes] = {}
    for e in sorted(events, key=lambda ev: ev.position):
        if e.block_number > block:
            break
        if e.contract != "Consortium" or e.name not in (_TRUSTED, _REVOKED):
            continue
        measurement = bytes(e.args["measurement"])
        if e.name == _TRUSTED and measurement not in revoked:
            trusted.add(measurement)
            digests[measurement] = bytes(e.args["algorithmDigest"])
        elif e.name == _REVOKED:
            trusted.discard(measurement)
            revoked.add(measurement)
    return MeasurementSets(block, frozenset(trusted), frozenset(revoked), digests)


def measurement_trusted_at(events: Iterable[Event], measurement: bytes, block: int) -> bool:
    """Was `measurement` trusted by the consortium at block `block` (after its transactions)?"""
    return measurement_sets_at(events, block).is_trusted(measurement)


def read_measurement_sets(
    chain: Chain, consortium_address: str, block: int | None = None, confirmations: int = 0
) -> MeasurementSets:
    """Read the `Consortium` events from the chain and replay them up to `block`
    (default: the newest block `confirmations` deep)."""
    reader = EventReader(
        chain, [Source("Consortium", consortium_address, abi("Consortium"))], confirmations
    )
    last = reader.safe_head() if block is None else block
    return measurement_sets_at(reader.read(0, last), last)
