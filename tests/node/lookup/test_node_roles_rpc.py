"""The epoch-step, justification and query-log RPCs over real mutual TLS: who may call
them, how a provider's failure reaches the relay, and the DKG's justification round as
a cheating dealer or a lying holder would attack it.

Reuses the six-node mesh of ``test_rpc.py`` (the genesis nodes of bank-a, bank-b and the
regulator are the providers, a second regulator node is the relay, second nodes of
bank-a and bank-b query) and gives its providers a recording epoch control and a query
log, as ``node/lookup/node/roles.py`` does in a node process.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from ledger.clients.anchor_log import AnchorLogClient
from node.crypto import threshold_oprf
from node.crypto.threshold_oprf import InvalidShareError
from node.lookup import inputs, lookup_pb2
from node.lookup.epoch import EpochKeys, run_dkg
from node.lookup.node.epochs import EpochDriver
from node.lookup.node.errors import EpochRunError
from node.lookup.node.files import LookupFiles
from node.lookup.node.provider import ProviderControl
from node.lookup.publisher import OwnInput
from node.lookup.query_log import QueryLog, QueryRecord
from node.lookup.rpc import (
    HolderState,
    LookupClient,
    LookupDenied,
    LookupRefused,
    LookupService,
)
from node.lookup.rpc.client import record_from_json
from node.lookup.union import Listing
from tests.node.lookup.test_rpc import (
    EPOCH,
    LIST,
    POLICY,
    PROVIDERS,
    QUERIERS,
    Mesh,
    T,
    blinded,
    listings,
    mesh,
    phone,
    publish_epoch,
    querier,
    refused,
)

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

    def justify(self, list_name: str, epoch: int, holder: int) -> tuple[list[bytes], bytes]:
        self._record("justify", epoch)
        dealing = threshold_oprf.deal(2, 3)
        return dealing.commitments, dealing.shares[holder]

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


# ---------------------------------------------------------------------- justification round
#
# The providers get the real `ProviderControl` and the relay the real `EpochDriver`, all
# talking over the mesh's gRPC; the chain's anchor log is not needed for the DKG. The
# misbehaving members are test-only subclasses: a dealer that corrupts one holder's share,
# a holder that refuses one honest dealer's share (always, or once).


class _CorruptingControl(ProviderControl):
    """A cheating dealer: holder ``victims`` get a share off its polynomial, and it
    justifies with the same bad share (it cannot produce a good one it did not send)."""

    victims: tuple[int, ...] = ()

    def prepare(self, list_name: str, epoch: int) -> Mapping[int, str]:
        if (list_name, epoch) not in self._dealings:
            honest = threshold_oprf.deal(T, 3)
            shares = dict(honest.shares)
            for victim in self.victims:
                shares[victim] = honest.shares[victim % 3 + 1]  # another holder's point
            self._dealings[(list_name, epoch)] = threshold_oprf.Dealing(honest.commitments, shares)
        return super().prepare(list_name, epoch)


def corrupting(*victims: int) -> type[ProviderControl]:
    """A cheating dealer's class that corrupts the shares of holders ``victims``."""
    return type("CorruptingControl", (_CorruptingControl,), {"victims": victims})


class LyingHolder(HolderState):
    """A holder that refuses dealer ``accused``'s shares, valid or not: ``refusals`` times
    (None: always), first when dealt, then when the relay hands the justified share."""

    accused = 1
    refusals: int | None = None

    def receive_dealing(
        self, list_name: str, epoch: int, dealer: int, commitments: Sequence[bytes], share: bytes
    ) -> bool:
        if dealer == self.accused and (self.refusals is None or self.refusals > 0):
            if self.refusals is not None:
                self.refusals -= 1
            raise InvalidShareError(
                dealer, "share for holder 3 does not match the dealer's commitments (a lie)"
            )
        return super().receive_dealing(list_name, epoch, dealer, commitments, share)


def by_address(mesh: Mesh) -> dict[str, str]:
    return {node.address: name for name, node in mesh.nodes.items()}


def client_of(mesh: Mesh, caller: str) -> Callable[[str], LookupClient]:
    """``caller``'s clients by the callee's node address, as a node process has them."""
    names = by_address(mesh)
    return lambda address: mesh.client(caller, names[address])


def wire_epoch(
    mesh: Mesh,
    tmp_path: Path,
    controls: Mapping[str, type[ProviderControl]] | None = None,
    holders: Mapping[str, HolderState] | None = None,
) -> EpochDriver:
    """Give each provider a real epoch control (of the class ``controls`` says, and the
    holder state ``holders`` says), and return the relay's driver over the same mesh."""
    rosters = {LIST: mesh.roster}
    for name in PROVIDERS:
        node = mesh.nodes[name]
        if holders and name in holders:
            node.holder = holders[name]
            service_of(mesh, name).holder = holders[name]
        control_class = (controls or {}).get(name, ProviderControl)
        service_of(mesh, name).control = control_class(
            node.address,
            rosters,
            mesh.holder_state(name),
            LookupFiles(tmp_path / name),
            client_of(mesh, name),
            cast("AnchorLogClient", None),  # only the accept step uses the chain
            max_ticket=POLICY.max_ticket,
        )
    return EpochDriver(
        mesh.nodes["relay"].address,
        rosters,
        mesh.relay_state,
        LookupFiles(tmp_path / "relay"),
        client_of(mesh, "relay"),
        cast("AnchorLogClient", None),
        step_timeout=10.0,
    )


def keys_of(mesh: Mesh, name: str) -> EpochKeys | None:
    exported = mesh.holder_state(name).export(LIST)
    return None if exported is None else exported[1]


def assert_queries_answer_as_plaintext(
    mesh: Mesh, keys: EpochKeys, rows: dict[str, list[OwnInput]]
) -> None:
    """Open the key epoch, publish, build, and check every querier against the lists."""
    mesh.relay_state.open_epoch(LIST, keys.epoch)
    published = publish_epoch(mesh, keys, rows)
    expected: dict[bytes, list[Listing]] = {}
    for mine in rows.values():
        for row in mine:
            expected.setdefault(row.input, []).append(
                Listing(row.event_time, tuple(sorted(row.labels)))
            )
    for name in QUERIERS:
        asked = [phone(i) for i in range(14)]
        answers = querier(mesh, name, published).batch([("phone", p) for p in asked])
        for p, answer in zip(asked, answers, strict=True):
            truth = sorted(expected.get(inputs.membership_input(LIST, "phone", p), []))
            assert (answer.multiplicity, list(answer.listings)) == (len(truth), truth)


def test_a_dealer_whose_share_fails_its_justification_is_excluded_and_the_epoch_works(
    mesh: Mesh, tmp_path: Path
) -> None:
    # Dealer p1 (index 1) cheats holder p2 (index 2).
    driver = wire_epoch(mesh, tmp_path, controls={"p1": corrupting(2)})
    report: dict[str, Any] = {}
    holders = driver.run_dkg(mesh.roster, EPOCH, report)

    p1 = mesh.nodes["p1"].address
    assert report["excluded"] == [1]
    [complaint] = report["complaints"]
    assert (complaint["dealer"], complaint["holder"]) == (1, 2)
    assert complaint["outcome"] == "justified-complaint"
    assert (
        "dealer 1's share for holder 2 does not match its commitments (justified complaint)"
        in complaint["detail"]
    )
    assert report["providers"][p1].startswith("excluded as dealer: dealer 1's share")
    # Every holder (the cheating dealer too, as a holder) combined over dealers 2 and 3.
    assert sorted(holders) == sorted(mesh.nodes[p].address for p in PROVIDERS)
    keys = [keys_of(mesh, p) for p in PROVIDERS]
    assert keys[0] is not None and keys[0] == keys[1] == keys[2]
    assert_queries_answer_as_plaintext(mesh, keys[0], listings(7))


@pytest.mark.parametrize("refusals", [None, 1])
def test_a_false_complaint_does_not_exclude_an_honest_dealer(
    mesh: Mesh, tmp_path: Path, refusals: int | None
) -> None:
    """Holder p3 refuses honest dealer p1's share. Refusing for good names p3 a liar and
    leaves it without a share; taking the justified share (a fault, not a lie) settles
    it. Either way dealer 1 stays qualified and the holders agree on one key set."""
    liar = LyingHolder(mesh.nodes["p3"].address, {LIST: mesh.roster})
    liar.refusals = refusals
    driver = wire_epoch(mesh, tmp_path, holders={"p3": liar})
    report: dict[str, Any] = {}
    holders = driver.run_dkg(mesh.roster, EPOCH, report)

    assert report["excluded"] == []  # the accused dealer stays qualified
    [complaint] = report["complaints"]
    assert (complaint["dealer"], complaint["holder"]) == (1, 3)
    p3 = mesh.nodes["p3"].address
    if refusals is None:
        assert complaint["outcome"] == "false-complaint"
        assert complaint["holderNode"] == p3
        assert (
            "refused dealer 1's share, which matches the dealer's commitments"
            in (complaint["detail"])
        )
        assert "false complaint" in report["providers"][p3]
        honest = ["p1", "p2"]
        assert keys_of(mesh, "p3") is None  # the liar ends up with no share
        assert p3 not in holders
    else:
        assert complaint["outcome"] == "resolved"
        honest = list(PROVIDERS)
    assert sorted(holders) == sorted(mesh.nodes[p].address for p in honest)
    keys = [keys_of(mesh, p) for p in honest]
    assert keys[0] is not None and all(k == keys[0] for k in keys)
    assert len({k.digest for k in keys if k is not None}) == 1
    # The key set is over all three dealers: it is the one p1's public share says.
    assert sorted(keys[0].public_shares) == [1, 2, 3]
    assert_queries_answer_as_plaintext(mesh, keys[0], listings(9))


def test_a_dealer_with_t_complaints_is_excluded_without_revealing_shares(
    mesh: Mesh, tmp_path: Path
) -> None:
    # Two complaints against dealer 1: t of them.
    driver = wire_epoch(mesh, tmp_path, controls={"p1": corrupting(2, 3)})
    report: dict[str, Any] = {}
    driver.run_dkg(mesh.roster, EPOCH, report)
    assert report["excluded"] == [1]
    assert [(c["holder"], c["outcome"]) for c in report["complaints"]] == [
        (2, "too-many-complaints"),
        (3, "too-many-complaints"),
    ]
    # The dealer itself would not have answered the second one either.
    dealer = mesh.client("relay", "p1")
    with pytest.raises(LookupRefused, match="holds no dealing"):
        dealer.justify(LIST, EPOCH, 2)  # completed: the dealing is forgotten


def test_only_the_relay_asks_for_and_hands_over_justified_shares(
    mesh: Mesh, tmp_path: Path
) -> None:
    wire_epoch(mesh, tmp_path, controls={"p1": corrupting(2, 3)})
    relay = mesh.client("relay", "p1")
    assert sorted(relay.prepare_epoch(LIST, EPOCH)) == [2, 3]  # both refused the share

    ask = lookup_pb2.JustifyRequest(list_name=LIST, epoch=EPOCH, holder_index=2)
    for caller in ("qa", "p2"):  # a querier, and the complaining provider itself
        code, details = refused(mesh.stub(caller, "p1").Justify, ask)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "is not the relay of list 'blacklist'" in details
    dealing = threshold_oprf.deal(T, 3)
    hand = lookup_pb2.JustifiedShare(
        list_name=LIST,
        epoch=EPOCH,
        dealer_index=1,
        commitments=dealing.commitments,
        share=dealing.shares[2],
    )
    for caller in ("qa", "p1"):  # a querier, and a provider posing as the relay
        code, details = refused(mesh.stub(caller, "p2").DeliverJustified, hand)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "is not the relay of list 'blacklist'" in details
    assert 1 not in mesh.holder_state("p2").dealers(LIST, EPOCH)  # nothing was kept

    # The relay is answered, with the share the dealer sent (here: the bad one).
    commitments, share = relay.justify(LIST, EPOCH, 2)
    with pytest.raises(InvalidShareError):
        threshold_oprf.verify_share(commitments, 2, share, dealer=1)
    # ... but never with a t-th point of its polynomial, nor for another epoch.
    with pytest.raises(LookupRefused) as info:
        relay.justify(LIST, EPOCH, 3)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "would reveal 2 shares" in info.value.details and "t=2" in info.value.details
    with pytest.raises(LookupRefused) as info:
        relay.justify(LIST, EPOCH + 4, 2)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "holds no dealing of list 'blacklist' epoch 5" in info.value.details
    # An honest dealer reveals nothing for a holder that took its share.
    assert mesh.client("relay", "p2").prepare_epoch(LIST, EPOCH) == {}
    with pytest.raises(LookupRefused, match="holder 3 did not refuse"):
        mesh.client("relay", "p2").justify(LIST, EPOCH, 3)

    # The holder checks a handed-over share like a dealt one: a bad one is a complaint.
    with pytest.raises(LookupRefused) as info:
        mesh.client("relay", "p2").deliver_justified(LIST, EPOCH, 1, commitments, share)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details.startswith("complaint against dealer 1")
    with pytest.raises(LookupRefused, match="dealer_index: expected another provider"):
        mesh.client("relay", "p2").deliver_justified(LIST, EPOCH, 2, commitments, share)
    assert (
        mesh.client("relay", "p2").deliver_justified(
            LIST, EPOCH, 1, dealing.commitments, dealing.shares[2]
        )
        is False
    )
    assert 1 in mesh.holder_state("p2").dealers(LIST, EPOCH)


def test_too_few_qualified_dealers_stop_the_epoch(mesh: Mesh, tmp_path: Path) -> None:
    # p2 and p3 each cheat holder 1: one qualified dealer is left, t=2 are needed.
    driver = wire_epoch(mesh, tmp_path, controls={"p2": corrupting(1), "p3": corrupting(1)})
    report: dict[str, Any] = {}
    with pytest.raises(EpochRunError, match="1 qualified dealers"):
        driver.run_dkg(mesh.roster, EPOCH, report)
    assert report["excluded"] == [2, 3]
    assert {c["outcome"] for c in report["complaints"]} == {"justified-complaint"}
    assert all(keys_of(mesh, p) is None for p in PROVIDERS)
