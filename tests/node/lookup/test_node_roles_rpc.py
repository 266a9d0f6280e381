"""The epoch-step and query-log RPCs over real mutual TLS: who may call them, and how a
provider's failure reaches the relay.

Reuses the six-node mesh of ``test_rpc.py`` (the genesis nodes of bank-a, bank-b and the
regulator are the providers, a second regulator node is the relay, second nodes of
bank-a and bank-b query) and gives its providers a recording epoch control and a query
log, as ``node/lookup/node/roles.py`` does in a node process.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from node.lookup.epoch import EpochKeys, run_dkg
from node.lookup.query_log import QueryLog, QueryRecord
from node.lookup.rpc import LookupDenied, LookupRefused, LookupService
from node.lookup.rpc.client import record_from_json
from tests.node.lookup.test_rpc import LIST, Mesh, blinded, mesh

__all__ = ["mesh"]  # the fixture, imported from test_rpc


@dataclass
class RecordingControl:
    calls: list[tuple[str, int]] = field(default_factory=list)
    fail: str | None = None

    def _record(self, step: str, epoch: int) -> None:
        self.calls.append((step, epoch))
        if self.fail == step:
            raise ValueError(f"{step} failed on purpose")

    def prepare(self, list_name: str, epoch: int) -> Mapping[int, str]:
        self._record("prepare", epoch)
        return {3: "holder 3 unreachable"}

    def complete(self, list_name: str, epoch: int, exclude: Collection[int]) -> EpochKeys:
        self._record("complete", epoch)
        keys, _ = run_dkg(2, 3, epoch=epoch, list_name=list_name)
        return keys

    def publish(self, list_name: str, epoch: int) -> int:
        self._record("publish", epoch)
        return 7

    def accept(self, list_name: str, epoch: int, digest: bytes) -> bool:
        self._record("accept", epoch)
        return True


def service_of(mesh: Mesh, name: str) -> LookupService:
    hook = mesh.nodes[name].server.extra_services[0]
    service = getattr(hook, "__self__", None)
    assert isinstance(service, LookupService)
    return service


def test_only_the_lists_relay_runs_epoch_steps(mesh: Mesh) -> None:
    control = RecordingControl()
    service_of(mesh, "p1").control = control
    relay = mesh.client("relay", "p1")
    assert relay.prepare_epoch(LIST, 2) == {3: "holder 3 unreachable"}
    keys = relay.complete_epoch(LIST, 2, [3])
    assert (keys.epoch, keys.list_name) == (2, LIST)
    assert relay.publish_epoch(LIST, 2) == 7
    assert relay.accept_epoch(LIST, 2, bytes([1]) * 32) is True
    assert [step for step, _ in control.calls] == ["prepare", "complete", "publish", "accept"]
    for caller in ("qa", "p2"):  # a querier, another provider
        with pytest.raises(LookupDenied, match="is not the relay of list 'blacklist'"):
            mesh.client(caller, "p1").prepare_epoch(LIST, 2)
    assert len(control.calls) == 4  # nothing ran for them
    with pytest.raises(LookupRefused) as info:
        relay.accept_epoch(LIST, 2, bytes(31))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "descriptor_digest: expected 32 bytes, got 31"
    # A node without a key share has no epoch steps at all.
    with pytest.raises(LookupRefused) as info:
        mesh.client("relay", "qa").prepare_epoch(LIST, 2)
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
    # A provider's failure reaches the relay in the provider's words.
    control.fail = "publish"
    with pytest.raises(LookupRefused) as info:
        relay.publish_epoch(LIST, 2)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details == "publish: publish failed on purpose"


def test_query_logs_are_served_to_regulators_only(mesh: Mesh, tmp_path: Path) -> None:
    log = QueryLog(f"sqlite:///{tmp_path / 'holder.db'}", "holder")
    log.append("", "", blinded(5), 1_700_000_000.0, 1)
    regulator_org = mesh.nodes["relay"].org.org_id
    service = service_of(mesh, "p1")
    service.query_logs = lambda: [("holder", b"\x01" * 32, log.records())]
    service.is_regulator = lambda org: org == regulator_org
    served = mesh.client("relay", "p1").get_query_log()  # a node of the regulator's org
    assert served == [("holder", b"\x01" * 32, log.records())]
    for caller in ("qa", "p2"):
        with pytest.raises(LookupDenied, match="lacks the REGULATOR role"):
            mesh.client(caller, "p1").get_query_log()
    # Records travel as their canonical leaf JSON and parse back to the same record.
    record = log.records()[0]
    assert record_from_json(record.encoded()) == record
    assert isinstance(record, QueryRecord)
    log.close()
