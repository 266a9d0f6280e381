"""Anonymous lookups over real gRPC and mutual TLS between in-process nodes, trust read
from the embedded chain.

Six nodes: the genesis nodes of bank-a, bank-b and the regulator are the list's three
providers (key holders, 2-of-3); a second regulator node is the relay (builder); second
nodes of bank-a and bank-b are the querying banks. A full epoch runs over the wire — DKG
over `Deal`, publication through the relay, `Contribute`, the build — and queriers'
answers are compared with a plaintext union of the providers' lists. Then each
authorisation rule is attacked the way a member would try it, and bad input is checked
by status code and by the problem its message names.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import grpc
import pytest

from node.crypto import oprf, threshold_oprf
from node.identity import TlsIdentity, new_tls_identity
from node.lookup import inputs, lookup_pb2, lookup_pb2_grpc
from node.lookup.epoch import EpochKeys, StaleEpochError
from node.lookup.metering import Meter, MeterPolicy
from node.lookup.publisher import OwnInput, check_inclusion, publish
from node.lookup.querier import Querier
from node.lookup.query_log import QueryLog
from node.lookup.relay import Relay, RelayPolicy
from node.lookup.rpc import (
    HolderState,
    ListRoster,
    LookupClient,
    LookupDenied,
    LookupNotFound,
    LookupRefused,
    LookupService,
    LookupUnavailable,
    Published,
    RelayForwarder,
    RelayState,
    RosterError,
    bucket_fetcher,
    deal_epoch,
    fetch_union,
    load_roster,
    org_label,
    querier_evaluate,
)
from node.lookup.union import Contribution, Entry, Listing
from node.peer.server import PeerServer
from node.peer.trust import ChainTrust
from tests.conftest import Consortium, Org

LIST = "blacklist"
T = 2
EPOCH = 1
MAX_CONTRIBUTION = 200  # entries the relay takes from one provider per epoch (here)
POLICY = RelayPolicy(min_batch=8, min_queriers=1, max_delay=0.05, max_batch=64, max_ticket=32)
PROVIDERS = ("p1", "p2", "p3")
# name -> (organisation, True for the org's genesis node, False for a new node of it)
NODES = {
    "p1": ("bank-a", True),
    "p2": ("bank-b", True),
    "p3": ("regulator", True),
    "relay": ("regulator", False),
    "qa": ("bank-a", False),
    "qb": ("bank-b", False),
}
QUERIERS = ("qa", "qb")
PURPOSE = "account-opening"
GRANT = bytes(range(32))
LABELS = ("fraud", "mule-account", "overdue-90")


def phone(i: int) -> str:
    return f"+86138{i:08d}"


@dataclasses.dataclass
class Node:
    name: str
    org: Org
    address: str
    identity: TlsIdentity
    trust: ChainTrust
    server: PeerServer
    holder: HolderState | None = None
    relay: RelayState | None = None
    clients: dict[str, LookupClient] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Mesh:
    consortium: Consortium
    nodes: dict[str, Node]
    roster: ListRoster
    meter: Meter
    log: QueryLog
    stack: ExitStack

    def client(self, caller: str, callee: str, identity: TlsIdentity | None = None) -> LookupClient:
        node, to = self.nodes[caller], self.nodes[callee]
        if identity is not None:
            client = LookupClient(node.trust, identity, to.address, timeout=5.0)
            self.stack.callback(client.close)
            return client
        if callee not in node.clients:
            node.clients[callee] = LookupClient(node.trust, node.identity, to.address, timeout=5.0)
            self.stack.callback(node.clients[callee].close)
        return node.clients[callee]

    def stub(self, caller: str, callee: str) -> lookup_pb2_grpc.LookupStub:
        """A raw stub over `caller`'s identity, to put any request on the wire."""
        return self.client(caller, callee).stub()

    @property
    def relay_state(self) -> RelayState:
        state = self.nodes["relay"].relay
        assert state is not None
        return state

    def holder_state(self, name: str) -> HolderState:
        state = self.nodes[name].holder
        assert state is not None
        return state


def org_of(mesh: Mesh, name: str) -> str:
    return org_label(mesh.nodes[name].org.org_id)


@pytest.fixture
def mesh(consortium: Consortium, tmp_path: Path) -> Iterator[Mesh]:
    with ExitStack() as stack:
        accounts = {
            name: consortium.orgs[org].node if genesis else consortium.new_funded_account()
            for name, (org, genesis) in NODES.items()
        }
        providers = tuple(accounts[p].address for p in PROVIDERS)
        roster = ListRoster(LIST, T, providers, accounts["relay"].address, quorum=3)
        rosters = {LIST: roster}
        meter = Meter(f"sqlite:///{tmp_path / 'relay.db'}", MeterPolicy(block_size=100))
        stack.callback(meter.close)
        log = QueryLog(meter.db, "relay")
        nodes: dict[str, Node] = {}
        for name, (org_name, genesis) in NODES.items():
            org = consortium.orgs[org_name]
            address = accounts[name].address
            identity = new_tls_identity(name)
            trust = ChainTrust(org.clients.consortium, poll_interval=0.2, fetch_timeout=1.0)
            holder = HolderState(address, rosters) if name in PROVIDERS else None
            relay = (
                RelayState(
                    address,
                    rosters,
                    lambda _list, epoch: Relay(meter, POLICY, epoch=epoch, query_log=log),
                )
                if name == "relay"
                else None
            )
            service = LookupService(
                address,
                trust,
                rosters,
                holder=holder,
                relay=relay,
                max_contribution_entries=MAX_CONTRIBUTION,
            )
            server = PeerServer(identity, address, trust, extra_services=[service.add_to])
            stack.callback(server.stop, 0)
            server.start()
            endpoint = f"127.0.0.1:{server.port}"
            if genesis:
                org.clients.consortium.update_node(address, endpoint, identity.cert_sha256)
            else:
                org.clients.consortium.register_node(address, endpoint, identity.cert_sha256)
            nodes[name] = Node(name, org, address, identity, trust, server, holder, relay)
        for node in nodes.values():
            stack.callback(node.trust.stop)
            node.trust.start()
        mesh = Mesh(consortium, nodes, roster, meter, log, stack)
        holders = {nodes[p].address: mesh.client("relay", p) for p in PROVIDERS}
        forwarder = RelayForwarder(mesh.relay_state, holders)
        stack.callback(forwarder.stop)
        forwarder.start()
        for n, name in enumerate((*PROVIDERS, *QUERIERS)):
            label = org_of(mesh, name)
            for purpose in (PURPOSE, "publish"):
                meter.add_blocks(label, purpose, GRANT, 5, reference=bytes([n, len(purpose)]) * 16)
        yield mesh


# ---------------------------------------------------------------------- helpers


def dkg(mesh: Mesh, epoch: int = EPOCH) -> EpochKeys:
    """Every provider deals over `Deal`; then each combines its own share."""
    for name in PROVIDERS:
        others = {mesh.nodes[p].address: mesh.client(name, p) for p in PROVIDERS if p != name}
        failed = deal_epoch(
            mesh.roster, epoch, mesh.nodes[name].address, others, mesh.holder_state(name)
        )
        assert failed == {}
    keys = [mesh.holder_state(p).complete_dkg(LIST, epoch) for p in PROVIDERS]
    assert keys[0] == keys[1] == keys[2]  # every holder derived the same public material
    mesh.relay_state.open_epoch(LIST, epoch)
    return keys[0]


def listings(seed: int) -> dict[str, list[OwnInput]]:
    """Overlapping lists: each provider lists 6 of 12 phones, with labels and times."""
    rng = random.Random(seed)
    rows: dict[str, list[OwnInput]] = {}
    for name in PROVIDERS:
        mine = []
        for i in rng.sample(range(12), 6):
            labels = frozenset(rng.sample(LABELS, rng.randint(1, 2)))
            x = inputs.membership_input(LIST, "phone", phone(i))
            mine.append(OwnInput(x, labels, 1_700_000_000 + rng.randrange(10**6)))
        rows[name] = mine
    return rows


def publish_epoch(mesh: Mesh, keys: EpochKeys, rows: dict[str, list[OwnInput]]) -> Published:
    """Providers publish through the relay, contribute, the relay builds, and every
    provider checks its inclusion in what the relay serves."""
    contributions = {}
    for name in PROVIDERS:
        relay = mesh.client(name, "relay")
        evaluate = querier_evaluate(relay, LIST, "publish", GRANT, poll=0.5, timeout=10)
        contributions[name] = publish(keys, rows[name], evaluate, chunk_size=POLICY.max_ticket)
        assert relay.contribute(LIST, keys.epoch, keys, contributions[name]) is False
    published = mesh.relay_state.build(LIST, keys.epoch)
    for name in PROVIDERS:
        download, union = fetch_union(
            mesh.client(name, "relay"), LIST, expected_digest=published.descriptor.digest
        )
        assert download.keys == keys
        assert check_inclusion(union, contributions[name], epoch=keys.epoch) == union.digest
    return published


def querier(mesh: Mesh, name: str, published: Published) -> Querier:
    relay = mesh.client(name, "relay")
    download = relay.get_epoch(LIST, expected_digest=published.descriptor.digest)
    return Querier(
        download.keys,
        download.union,
        bucket_fetcher(relay, LIST, download.descriptor.epoch),
        querier_evaluate(relay, LIST, PURPOSE, GRANT, poll=0.5, timeout=10),
        anchor=download.descriptor,
    )


def refused(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    """The status a raw stub call ends with; fails the test if it succeeds."""
    try:
        result = call(*args, timeout=5.0)  # type: ignore[operator]
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            list(result)
    except grpc.RpcError as exc:
        rpc = cast("grpc.Call", exc)
        return rpc.code(), rpc.details() or ""
    raise AssertionError("the call was accepted")


def blinded(n: int) -> list[bytes]:
    return [oprf.blind(f"x{i}".encode())[1] for i in range(n)]


@pytest.fixture
def epoch(mesh: Mesh) -> tuple[EpochKeys, Published, dict[str, list[OwnInput]]]:
    keys = dkg(mesh)
    rows = listings(7)
    return keys, publish_epoch(mesh, keys, rows), rows


# ---------------------------------------------------------------------- a full round


def test_a_full_epoch_over_the_wire_answers_as_the_plaintext_union(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    _, published, rows = epoch
    expected: dict[bytes, list[Listing]] = {}
    for mine in rows.values():
        for row in mine:
            expected.setdefault(row.input, []).append(
                Listing(row.event_time, tuple(sorted(row.labels)))
            )
    assert len(published.union.table) == len(expected)
    for name in QUERIERS:
        if name == "qb":
            mesh.nodes["p3"].server.stop(0)  # 2-of-3: one key holder offline changes nothing
        q = querier(mesh, name, published)
        asked = [phone(i) for i in range(14)]  # 12 possibly listed, 2 never
        answers = q.batch([("phone", p) for p in asked])
        for p, answer in zip(asked, answers, strict=True):
            truth = sorted(expected.get(inputs.membership_input(LIST, "phone", p), []))
            assert answer.listed == bool(truth)
            assert answer.multiplicity == len(truth)
            assert list(answer.listings) == truth

    # The relay charged and logged each querier under its node's organisation on chain.
    for name in QUERIERS:
        assert mesh.meter.usage(org_of(mesh, name), PURPOSE, GRANT).used == 14
    logged = {r.querier_org for r in mesh.log.records()}
    assert {org_of(mesh, q) for q in QUERIERS} <= logged


# ---------------------------------------------------------------------- who may call what


def test_roles_are_checked_against_the_roster(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    keys, _, _ = epoch
    # Evaluate: only the list's relay may have a batch evaluated by a key holder.
    request = lookup_pb2.EvaluateRequest(
        list_name=LIST, epoch=EPOCH, batch_id=bytes(16), blinded_elements=blinded(3)
    )
    for caller in ("qa", "p2"):  # a querier, and another key holder
        code, details = refused(mesh.stub(caller, "p1").Evaluate, request)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "is not the relay of list 'blacklist'" in details
    # The relay itself is served.
    evaluation = mesh.client("relay", "p1").evaluate(LIST, EPOCH, bytes(16), blinded(3))
    assert evaluation.index == 1 and len(evaluation.evaluated_elements) == 3

    # Deal and Contribute: only the list's providers.
    dealing = threshold_oprf.deal(T, 3)
    with pytest.raises(LookupDenied, match="is not a provider of list 'blacklist'"):
        mesh.client("qa", "p1").deal(LIST, EPOCH + 1, dealing.commitments, dealing.shares[1])
    assert mesh.holder_state("p1").dealers(LIST, EPOCH + 1) == []
    contribution = publish_free_contribution()
    for caller in ("qa", "relay"):
        with pytest.raises(LookupDenied, match="is not a provider of list 'blacklist'"):
            mesh.client(caller, "relay").contribute(LIST, EPOCH + 1, keys, contribution)
    assert mesh.relay_state.contributors(LIST, EPOCH + 1) == []


def publish_free_contribution() -> Contribution:
    return Contribution([Entry(bytes(64), frozenset({"fraud"}), 1)])


def test_a_contribution_is_bounded_in_entries_and_labels(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    """A provider cannot grow the relay's memory or every querier's bucket downloads."""
    keys, published, _ = epoch
    before = mesh.relay_state.contributors(LIST, EPOCH)
    rng = random.Random(11)
    endless = Contribution(
        [Entry(rng.randbytes(64), frozenset({"fraud"}), 1) for _ in range(MAX_CONTRIBUTION + 1)]
    )
    with pytest.raises(LookupRefused) as info:
        mesh.client("p1", "relay").contribute(LIST, EPOCH, keys, endless, entries_per_part=64)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"more than {MAX_CONTRIBUTION} entries" in info.value.details
    assert "lookup.max_contribution_entries" in info.value.details
    bloated = [
        frozenset({"x" * 65}),
        frozenset({"Fraud"}),
        frozenset({"new\nline"}),
        frozenset(f"label-{i}" for i in range(33)),
    ]
    for labels in bloated:
        with pytest.raises(LookupRefused) as refusal:
            mesh.client("p1", "relay").contribute(
                LIST, EPOCH, keys, Contribution([Entry(bytes(64), labels, 1)])
            )
        assert refusal.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "label" in refusal.value.details
    # Two entries of one identifier whose labels together exceed the bound.
    prf = rng.randbytes(64)
    halves = [frozenset(f"a-{i}" for i in range(20)), frozenset(f"b-{i}" for i in range(20))]
    with pytest.raises(LookupRefused, match="once its entries are merged"):
        mesh.client("p1", "relay").contribute(
            LIST, EPOCH, keys, Contribution([Entry(prf, halves[0], 1), Entry(prf, halves[1], 2)])
        )
    assert mesh.relay_state.contributors(LIST, EPOCH) == before
    assert mesh.relay_state.published(LIST).descriptor.digest == published.descriptor.digest


def test_a_bad_share_is_a_complaint_naming_the_dealer(mesh: Mesh) -> None:
    dealing = threshold_oprf.deal(T, 3)
    wrong = dealing.shares[3]  # p2 is holder 2; holder 3's share fails for it
    with pytest.raises(LookupRefused) as info:
        mesh.client("p1", "p2").deal(LIST, EPOCH, dealing.commitments, wrong)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details.startswith(f"complaint against dealer 1 ({mesh.nodes['p1'].address})")
    assert "does not match the dealer's commitments" in info.value.details
    assert mesh.holder_state("p2").dealers(LIST, EPOCH) == []
    # The right share is taken; a retry is a duplicate; another dealing conflicts.
    assert (
        mesh.client("p1", "p2").deal(LIST, EPOCH, dealing.commitments, dealing.shares[2]) is False
    )
    assert mesh.client("p1", "p2").deal(LIST, EPOCH, dealing.commitments, dealing.shares[2]) is True
    other = threshold_oprf.deal(T, 3)
    with pytest.raises(LookupRefused) as info:
        mesh.client("p1", "p2").deal(LIST, EPOCH, other.commitments, other.shares[2])
    assert info.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_a_querier_collects_only_its_own_org_tickets(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    ticket = mesh.client("qa", "relay").submit(LIST, EPOCH, PURPOSE, GRANT, blinded(2))
    # bank-b's querier node, and bank-b's provider node, try bank-a's ticket.
    for thief in ("qb", "p2"):
        with pytest.raises(LookupDenied, match="submitted by another organisation"):
            mesh.client(thief, "relay").collect(ticket.ticket_id, wait=0.0)
    # bank-a's other node (same organisation) may collect it.
    answer = None
    for _ in range(20):
        answer = mesh.client("p1", "relay").collect(ticket.ticket_id, wait=0.5)
        if answer is not None:
            break
    assert answer is not None and len(answer.positions) == 2
    with pytest.raises(LookupNotFound, match="no ticket"):
        mesh.client("qa", "relay").collect(bytes(16), wait=0.0)


def test_the_relay_charges_the_authenticated_org_not_a_claimed_one(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    # A SubmitRequest has no field for an organisation: unknown fields a client adds
    # are not read. The charge lands on the caller's organisation on chain.
    assert "org" not in " ".join(f.name for f in lookup_pb2.SubmitRequest.DESCRIPTOR.fields)
    before = {q: mesh.meter.usage(org_of(mesh, q), PURPOSE, GRANT).used for q in QUERIERS}
    mesh.client("qb", "relay").submit(LIST, EPOCH, PURPOSE, GRANT, blinded(3))
    after = {q: mesh.meter.usage(org_of(mesh, q), PURPOSE, GRANT).used for q in QUERIERS}
    assert after == {"qa": before["qa"], "qb": before["qb"] + 3}
    assert mesh.log.records()[-1].querier_org == org_of(mesh, "qb")
    # The relay may not query the union it built.
    with pytest.raises(LookupDenied, match="must not query the union it built"):
        mesh.client("relay", "relay").submit(LIST, EPOCH, PURPOSE, GRANT, blinded(1))


def test_a_node_not_active_on_chain_is_refused(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    # A certificate that is on chain for nobody: TLS refuses the connection.
    impostor = mesh.client("qa", "relay", identity=new_tls_identity("qa"))
    with pytest.raises(LookupUnavailable) as info:
        impostor.get_epoch(LIST)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    # A revoked node on its open connection: refused per call once the relay's view moves.
    client = mesh.client("qb", "relay")
    client.get_epoch(LIST)
    qb = mesh.nodes["qb"]
    qb.org.clients.consortium.revoke_node(qb.address)
    mesh.nodes["relay"].trust.refresh()
    with pytest.raises(LookupDenied, match="not registered for a node that is active on chain"):
        client.submit(LIST, EPOCH, PURPOSE, GRANT, blinded(1))
    assert mesh.meter.usage(org_of(mesh, "qb"), PURPOSE, GRANT).used == 0


# ---------------------------------------------------------------------- bad input


def test_bad_input_is_named(
    mesh: Mesh, epoch: tuple[EpochKeys, Published, dict[str, list[OwnInput]]]
) -> None:
    stub = mesh.stub("qa", "relay")
    good = blinded(2)
    short = lookup_pb2.SubmitRequest(
        list_name=LIST,
        epoch=EPOCH,
        purpose=PURPOSE,
        grant_id=GRANT,
        blinded_elements=[good[0], good[1][:31]],
    )
    code, details = refused(stub.Submit, short)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "blinded_elements[1]: expected 32 bytes, got 31"
    identity = lookup_pb2.SubmitRequest(
        list_name=LIST, epoch=EPOCH, purpose=PURPOSE, grant_id=GRANT, blinded_elements=[bytes(32)]
    )
    code, details = refused(stub.Submit, identity)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "blinded_elements[0]" in details
    code, details = refused(
        stub.Submit,
        lookup_pb2.SubmitRequest(
            list_name=LIST, epoch=EPOCH, purpose=PURPOSE, grant_id=GRANT[:5], blinded_elements=good
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "grant_id must be 32 bytes" in details
    code, details = refused(
        stub.Submit,
        lookup_pb2.SubmitRequest(
            list_name="graylist",
            epoch=EPOCH,
            purpose=PURPOSE,
            grant_id=GRANT,
            blinded_elements=good,
        ),
    )
    assert code == grpc.StatusCode.NOT_FOUND and "no lookup list 'graylist'" in details
    code, details = refused(stub.Collect, lookup_pb2.CollectRequest(ticket_id=b"short"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "ticket_id: expected 16 bytes, got 5"
    code, details = refused(
        stub.GetBucket, lookup_pb2.GetBucketRequest(list_name=LIST, epoch=EPOCH, index=10**6)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bucket 1000000 does not exist" in details
    # Nothing was charged for any of it.
    assert mesh.meter.usage(org_of(mesh, "qa"), PURPOSE, GRANT).used == 0
    # A key holder asked for a wrong-sized element by the relay.
    holder = mesh.stub("relay", "p1")
    code, details = refused(
        holder.Evaluate,
        lookup_pb2.EvaluateRequest(
            list_name=LIST, epoch=EPOCH, batch_id=bytes(16), blinded_elements=[b"\x01" * 33]
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "blinded_elements[0]: expected 32 bytes, got 33"
    # A querier (not a key holder) has no Evaluate at all.
    code, details = refused(
        mesh.stub("relay", "qa").Evaluate,
        lookup_pb2.EvaluateRequest(
            list_name=LIST, epoch=EPOCH, batch_id=bytes(16), blinded_elements=good
        ),
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED

    # A stale epoch: FAILED_PRECONDITION carrying the current one, raised as StaleEpochError.
    with pytest.raises(StaleEpochError) as info:
        mesh.client("relay", "p1").evaluate(LIST, EPOCH - 1, bytes(16), blinded(1))
    assert (info.value.asked, info.value.current) == (EPOCH - 1, EPOCH)
    with pytest.raises(StaleEpochError) as info:
        mesh.client("qa", "relay").submit(LIST, EPOCH + 1, PURPOSE, GRANT, blinded(1))
    assert (info.value.asked, info.value.current) == (EPOCH + 1, EPOCH)
    with pytest.raises(StaleEpochError):
        mesh.client("qa", "relay").get_bucket(LIST, EPOCH + 3, 0)
    # A DKG for an epoch that is not after the holder's current one is refused too.
    dealing = threshold_oprf.deal(T, 3)
    with pytest.raises(StaleEpochError):
        mesh.client("p1", "p2").deal(LIST, EPOCH, dealing.commitments, dealing.shares[2])
    assert mesh.meter.usage(org_of(mesh, "qa"), PURPOSE, GRANT).used == 0


def test_roster_validation_names_the_field(tmp_path: Path) -> None:
    a, b, c = (f"0x{i:040x}" for i in (1, 2, 3))
    roster = ListRoster(LIST, 2, (a, b), c, 2)
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(roster.to_json()))
    assert load_roster(path) == roster and roster.holder_index(b) == 2
    for kwargs, field in (
        ({"t": 3}, "t"),
        ({"quorum": 0}, "quorum"),
        ({"relay": a}, "relay"),
        ({"providers": (a, a)}, "providers"),
        ({"providers": ("0x12",)}, "providers[0]"),
        ({"list_name": "Black List"}, "list_name"),
    ):
        with pytest.raises(RosterError) as info:
            dataclasses.replace(roster, **kwargs)
        assert info.value.field == field
