"""The lookup node's own parts, without a network: its config section, its files, the
relay's grant admission and its settlement of closed periods.

The multi-process run (`tests/e2e/test_lookup_processes.py`) puts them together; here
each is checked against a fake chain so every refusal and every idempotency rule can be
provoked directly.
"""

from __future__ import annotations

import json
import math
import random
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from ledger.clients.authorizations import AuthorizationRegistryClient, Grant
from ledger.errors import ContractRevert
from ledger.ids import InvalidInput, name_id
from node.config import NodeConfig
from node.lookup.epoch import EpochDescriptor, run_dkg
from node.lookup.listing import ListedEntry
from node.lookup.metering import Meter, MeterPolicy
from node.lookup.node.files import LookupFiles
from node.lookup.node.grants import (
    PUBLISH_PURPOSE,
    GrantAdmission,
    grant_credit_reference,
    publish_grant,
)
from node.lookup.node.loops import Settler
from node.lookup.node.settings import LookupSettings, RelayPolicySettings
from node.lookup.query_log import QueryLog
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.state import GrantRefused, Published
from node.lookup.union import Contribution, Entry, build_union

LIST = "blacklist"
SERVICE = bytes([7]) * 32
ORG_A = "0x" + "aa" * 32
ORG_B = "0x" + "bb" * 32
PROVIDERS = tuple(f"0x{i:040x}" for i in (1, 2, 3))
RELAY = f"0x{9:040x}"


# ---------------------------------------------------------------------- settings


def test_settings_parse_relative_rosters_and_name_bad_fields(tmp_path: Path) -> None:
    raw = {
        "rosters": ["lists/blacklist.json"],
        "block_size": 4,
        "period_seconds": 60,
        "relay_policy": {"min_batch": 8, "max_delay": 0.5},
        "settle_seconds": 2,
        "max_contribution_entries": 1000,
    }
    settings = LookupSettings.from_json(raw, tmp_path)
    assert settings.max_contribution_entries == 1000
    assert settings.rosters == (tmp_path / "lists/blacklist.json",)
    assert settings.relay_policy == RelayPolicySettings(min_batch=8, max_delay=0.5)
    assert (settings.block_size, settings.period_seconds, settings.settle_seconds) == (4, 60, 2)
    assert LookupSettings.from_json(settings.to_json(), tmp_path) == settings
    for bad, field_name in (
        ({"rosters": []}, "config.lookup.rosters"),
        ({"rosters": ["a"], "block_size": 0}, "config.lookup.block_size"),
        (
            {"rosters": ["a"], "relay_policy": {"min_batch": True}},
            "config.lookup.relay_policy.min_batch",
        ),
        ({"rosters": ["a"], "blocksize": 4}, "config.lookup.blocksize"),
        (
            {"rosters": ["a"], "max_contribution_entries": 1.5},
            "config.lookup.max_contribution_entries",
        ),
    ):
        with pytest.raises(InvalidInput) as info:
            LookupSettings.from_json(bad, tmp_path)
        assert info.value.field == field_name


def test_a_node_config_keeps_its_lookup_section(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "version": 1,
        "name": "n",
        "chain_url": "http://127.0.0.1:8545",
        "manifest": "manifest.json",
        "keystore": "key.json",
        "password_env": "P",
        "tls_key": "tls/key.pem",
        "tls_cert": "tls/cert.pem",
        "database_url": "sqlite:///x.db",
        "peer_listen": "127.0.0.1:1",
        "peer_endpoint": "127.0.0.1:1",
        "api_listen": "127.0.0.1:2",
        "api_token_file": "api-token",
        "data_dir": "data",
    }
    path = tmp_path / "node.json"
    path.write_text(json.dumps(base))
    assert NodeConfig.load(path).lookup is None  # written before the section existed
    path.write_text(json.dumps(base | {"lookup": {"rosters": ["r.json"], "block_size": 3}}))
    config = NodeConfig.load(path)
    assert config.lookup is not None and config.lookup.rosters == (tmp_path / "r.json",)
    config.save(path)
    assert NodeConfig.load(path) == config
    path.write_text(json.dumps(base | {"lookup": {"rosters": "r.json"}}))
    with pytest.raises(InvalidInput, match=r"config\.lookup\.rosters"):
        NodeConfig.load(path)


# ---------------------------------------------------------------------- files


def test_files_round_trip_and_keep_shares_private(tmp_path: Path) -> None:
    files = LookupFiles(tmp_path / "lookup")
    entries = [
        ListedEntry("blacklist", b"x1", frozenset({"fraud", "mule"}), 5),
        ListedEntry("lending", b"x2", frozenset(), 6),
    ]
    files.save_pending(LIST, "publish", entries)
    files.save_pending(LIST, "verify", [ListedEntry("verify", b"v", frozenset(), 7)])
    assert files.pending(LIST) == [*entries, ListedEntry("verify", b"v", frozenset(), 7)]
    files.save_pending(LIST, "publish", entries[:1])  # a new upload replaces its part
    assert [e.input for e in files.pending(LIST)] == [b"x1", b"v"]
    assert files.pending("graylist") == []

    keys, shares = run_dkg(2, 3, epoch=4, list_name=LIST)
    files.save_share(LIST, shares[2], keys)
    assert files.share(LIST) == (shares[2], keys)
    mode = stat.S_IMODE((tmp_path / "lookup/shares/blacklist.json").stat().st_mode)
    assert mode == 0o600

    rng = random.Random(3)
    union = build_union(
        4, [Contribution([Entry(rng.randbytes(64), frozenset({"fraud"}), 9) for _ in range(20)])]
    )
    published = Published(keys, EpochDescriptor(4, keys.digest, union.digest), union)
    files.save_published(LIST, published)
    restored = files.published(LIST)
    assert restored is not None and restored.union.to_bytes() == union.to_bytes()
    assert (restored.keys, restored.descriptor) == (keys, published.descriptor)
    assert not list((tmp_path / "lookup").rglob("*.tmp"))


# ---------------------------------------------------------------------- grants


@dataclass
class FakeAuthorizations:
    """Grants and settlements as the contract keeps them."""

    grants: dict[bytes, Grant] = field(default_factory=dict)
    settled: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    fail_next_settle: bool = False
    purposes: dict[bytes, str] = field(default_factory=dict)  # default "account-opening"

    def purpose_of(self, grant_id: bytes, from_block: int = 0) -> bytes:
        return name_id("purpose", self.purposes.get(grant_id, "account-opening"))

    def info(self, grant_id: bytes) -> Grant:
        grant = self.grants.get(grant_id)
        if grant is None:
            revert = type("UnknownGrant", (ContractRevert,), {"error_name": "UnknownGrant"})
            raise revert({"grantId": grant_id}, b"", "AuthorizationRegistry")
        return grant

    def is_settled(self, settlement: bytes) -> bool:
        return settlement in self.settled

    def settle_uses(self, grant_id: bytes, uses: int, settlement: bytes) -> dict[str, bytes]:
        if self.fail_next_settle:
            self.fail_next_settle = False
            raise ConnectionError("chain node went away")
        assert settlement not in self.settled, "settled twice"
        self.settled[settlement] = (grant_id, uses)
        return {"transactionHash": bytes(32)}


def grant(org: str, *, dataset: bytes = SERVICE, **changes: Any) -> Grant:
    values: dict[str, Any] = {
        "dataset_id": dataset,
        "grantee_org": bytes.fromhex(org[2:]),
        "algorithm_digest": bytes(32),
        "not_after": 2**40,
        "max_uses": 3,
        "used": 1,
        "revoked": False,
    }
    return Grant(**(values | changes))


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    m = Meter(f"sqlite:///{tmp_path / 'relay.db'}", MeterPolicy(block_size=10, period_seconds=100))
    yield m
    m.close()


def admission(meter: Meter, auth: FakeAuthorizations) -> GrantAdmission:
    roster = ListRoster(LIST, 2, PROVIDERS, RELAY, 2)
    orgs = {PROVIDERS[0]: ORG_B}
    authorizations = cast("AuthorizationRegistryClient", auth)
    return GrantAdmission(meter, authorizations, {LIST: roster}, SERVICE, orgs.get, lambda: 1e3)


def test_a_grant_is_checked_on_chain_and_credits_its_remaining_uses_once(meter: Meter) -> None:
    gid = bytes([1]) * 32
    auth = FakeAuthorizations({gid: grant(ORG_A)})
    admit = admission(meter, auth)
    admit(LIST, ORG_A, "account-opening", gid, 5)
    usage = meter.usage(ORG_A, "account-opening", gid)
    assert (usage.blocks, usage.capacity) == (2, 20)  # max_uses - used = 2 blocks of 10
    admit(LIST, ORG_A, "account-opening", gid, 5)  # credited once, not per submission
    assert meter.usage(ORG_A, "account-opening", gid).blocks == 2
    # The purpose is the grantor's, not the asker's: a bank with an account-opening
    # grant cannot have its bulk screening counted as account openings, nor the reverse.
    with pytest.raises(GrantRefused, match="made for another purpose than 'screening'"):
        admit(LIST, ORG_A, "screening", gid, 1)
    assert meter.usage(ORG_A, "screening", gid).blocks == 0


def test_the_purpose_is_read_from_the_grants_creation_event(meter: Meter) -> None:
    gid = bytes([4]) * 32
    auth = FakeAuthorizations({gid: grant(ORG_A)}, purposes={gid: "screening"})
    admit = admission(meter, auth)
    with pytest.raises(GrantRefused, match="another purpose than 'account-opening'"):
        admit(LIST, ORG_A, "account-opening", gid, 1)
    admit(LIST, ORG_A, "screening", gid, 1)
    assert meter.usage(ORG_A, "screening", gid).blocks == 2


@pytest.mark.parametrize(
    ("stored", "caller", "message"),
    [
        (None, ORG_A, "no grant"),
        (grant(ORG_A, dataset=bytes([8]) * 32), ORG_A, "on another dataset"),
        (grant(ORG_B), ORG_A, "made to another organisation"),
        (grant(ORG_A, revoked=True), ORG_A, "is revoked"),
        (grant(ORG_A, not_after=999), ORG_A, "expired"),
        (grant(ORG_A, used=3), ORG_A, "no uses left"),
    ],
)
def test_a_grant_that_cannot_be_used_is_refused_by_name(
    meter: Meter, stored: Grant | None, caller: str, message: str
) -> None:
    gid = bytes([2]) * 32
    auth = FakeAuthorizations({} if stored is None else {gid: stored})
    with pytest.raises(GrantRefused, match=message):
        admission(meter, auth)(LIST, caller, "account-opening", gid, 1)
    assert meter.usage(caller, "account-opening", gid).blocks == 0  # nothing credited


def test_publishing_is_for_the_lists_providers_and_never_touches_the_chain(meter: Meter) -> None:
    auth = FakeAuthorizations()
    admit = admission(meter, auth)
    admit(LIST, ORG_B, PUBLISH_PURPOSE, publish_grant(LIST), 25)
    assert meter.usage(ORG_B, PUBLISH_PURPOSE, publish_grant(LIST)).capacity >= 25
    with pytest.raises(GrantRefused, match="no provider node"):
        admit(LIST, ORG_A, PUBLISH_PURPOSE, publish_grant(LIST), 1)
    with pytest.raises(GrantRefused, match="publish grant"):
        admit(LIST, ORG_B, PUBLISH_PURPOSE, bytes(32), 1)
    assert grant_credit_reference(bytes(32)) != publish_grant(LIST)


# ---------------------------------------------------------------------- settlement


def test_settlement_is_one_chain_write_per_closed_period_and_settles_once(
    meter: Meter, tmp_path: Path
) -> None:
    gid = bytes([3]) * 32
    auth = FakeAuthorizations({gid: grant(ORG_A, max_uses=50, used=0)})
    admission(meter, auth)(LIST, ORG_A, "account-opening", gid, 1)
    log = QueryLog(meter.db, "relay")
    rng = random.Random(5)
    charges = [(t, rng.randint(1, 4)) for t in (10, 20, 30, 150, 160, 250)]  # periods 0, 1, 2
    for at, count in charges:
        meter.charge(ORG_A, "account-opening", gid, count, float(at))
    admission(meter, auth)(LIST, ORG_B, PUBLISH_PURPOSE, publish_grant(LIST), 3)
    meter.charge(ORG_B, PUBLISH_PURPOSE, publish_grant(LIST), 3, 15.0)  # never settled
    now = [260.0]
    files = LookupFiles(tmp_path / "lookup")
    authorizations = cast("AuthorizationRegistryClient", auth)
    settler = Settler(meter, log, authorizations, files, lambda: now[0])
    auth.fail_next_settle = True
    written = settler()  # the first chain write failed after its record was kept
    written += settler()  # retried from the record, not from the meter (it is issued once)
    now[0] = 320.0
    written += settler()
    assert settler() == []  # nothing new: no second write for any period
    per_period: dict[int, int] = {}
    for at, count in charges:
        per_period[at // 100 * 100] = per_period.get(at // 100 * 100, 0) + count
    closed = sorted(p for p in per_period if p + 100 <= 320)
    records = sorted(files.settlements().values(), key=lambda r: r["periodStart"])
    assert [r["periodStart"] for r in records] == closed  # the publish charge is not there
    assert len(records) == len(closed) < len(charges)  # per period, not per charge
    cumulative, expected_uses = 0, []
    for p in closed:
        before, cumulative = cumulative, cumulative + per_period[p]
        expected_uses.append(math.ceil(cumulative / 10) - math.ceil(before / 10))
    assert [r["uses"] for r in records] == expected_uses  # quota blocks begun per period
    assert sorted(auth.settled.values()) == sorted((gid, u) for u in expected_uses if u > 0)
    assert {r["digest"] for r in written} == {"0x" + d.hex() for d in auth.settled}
    # A restarted relay (new Settler, same files) never settles the same period again.
    assert Settler(meter, log, authorizations, files, lambda: 400.0)() == []
    log.close()
