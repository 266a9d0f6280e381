"""Anonymous lookups between real node processes on anvil (issue 15, DESIGN §6).

Five organisations, each its own `provnet node run` process: bank-b, bank-c and the
regulator are the key holders (providers, 2-of-3) of one combined list ``anti-fraud``
(blacklist, lending and element-verification entries), a separate operator runs its
relay, and bank-a and bank-b query (bank-b is a provider that also asks). Providers
publish files written the way real exports write identifiers; the relay runs an epoch
with one command; every answer of every query kind is compared with the same question
answered over the plaintext lists in this test. Then one provider is stopped and
queries go on, usage is settled on chain per period (not per query), the regulator
counts each bank's queries from the relay's anchored log, and after a second epoch
(without the stopped provider) the first epoch is refused by name.

One cluster for the module; the tests run in file order and build on each other.
"""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.ids import hex32
from ledger.roles import Role
from node.algorithms.identifiers import normalise
from scripts.cli import main
from tests.e2e.cluster import Cluster, NodeProcess, running_cluster

LIST = "anti-fraud"
PROVIDERS = ("bank-b", "bank-c", "regulator")
QUERIERS = ("bank-a", "bank-b")
RELAY = "relay-op"
PURPOSE = "account-opening"
BLOCK_SIZE = 2
PERIOD = 6  # seconds: short, so the test sees several settlement periods close
DAY = 86_400
NOW = int(time.time())


def phone(i: int) -> str:
    return f"1390013{i:04d}"


def styled(number: str, i: int) -> str:
    """The same number as different exports write it."""
    return (
        f"+86 {number[:3]} {number[3:7]} {number[7:]}",
        f"{number[:3]}-{number[3:7]}-{number[7:]}",
        f"(0086) {number}",
        number,
    )[i % 4]


# provider -> rows (identifier, list, labels, event_time); phones 0..9 overlap across them
LISTS: dict[str, list[tuple[str, str, tuple[str, ...], int]]] = {
    "bank-b": [
        *((phone(i), "blacklist", ("fraud",), NOW - 5 * DAY) for i in (0, 1, 2, 3)),
        (phone(2), "blacklist", ("mule",), NOW - 2 * DAY),  # same number twice: merged
        *((phone(i), "lending", (), NOW - 3 * DAY) for i in (20, 21)),
    ],
    "bank-c": [
        *((phone(i), "blacklist", ("overdue-90",), NOW - 40 * DAY) for i in (2, 3, 4)),
        *((phone(i), "lending", (), NOW - 20 * DAY) for i in (20, 22)),
    ],
    "regulator": [
        *((phone(i), "blacklist", ("identity-theft",), NOW - 1 * DAY) for i in (3, 5)),
        (phone(20), "lending", (), NOW - 60 * DAY),
    ],
}
VERIFY_ID = "11010519491231002X"
VERIFY_RECORD = {"name": "Zhang San", "phone": "+86 138 0013 8000"}


def _write_publish(path: Path, rows: list[tuple[str, str, tuple[str, ...], int]]) -> None:
    lines = ["identifier,type,labels,event_time,list"]
    for i, (number, name, labels, when) in enumerate(rows):
        lines.append(f"{styled(number, i)},phone,{';'.join(labels)},{when},{name}")
    path.write_text("\n".join(lines) + "\n")


def _truth(list_name: str, number: str) -> list[tuple[int, tuple[str, ...]]]:
    """Per provider listing the number on the list: (latest time, united labels)."""
    out = []
    for rows in LISTS.values():
        mine = [
            (when, labels) for n, name, labels, when in rows if (n, name) == (number, list_name)
        ]
        if mine:
            labels = tuple(sorted({label for _, ls in mine for label in ls}))
            out.append((max(when for when, _ in mine), labels))
    return sorted(out)


def _roster_config(cluster_nodes: dict[str, NodeProcess], tmp: Path) -> None:
    roster = tmp / "anti-fraud.roster.json"
    roster.write_text(
        json.dumps(
            {
                "version": 1,
                "list_name": LIST,
                "t": 2,
                "providers": [cluster_nodes[p].address for p in PROVIDERS],
                "relay": cluster_nodes[RELAY].address,
                "quorum": 2,
            }
        )
    )
    for node in cluster_nodes.values():
        raw = json.loads(node.config_path.read_text())
        raw["lookup"] = {
            "rosters": [str(roster)],
            "block_size": BLOCK_SIZE,
            "period_seconds": PERIOD,
            "relay_policy": {
                "min_batch": 4,
                "min_queriers": 1,
                "max_delay": 0.2,
                "max_batch": 256,
                "max_ticket": 64,
            },
            "checkpoint_seconds": 1,
            "settle_seconds": 1,
            "step_timeout": 60,
        }
        node.config_path.write_text(json.dumps(raw))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("lookup")
    with (
        running_anvil() as url,
        running_cluster(
            url,
            tmp,
            providers=3,
            approve=(),
            extra_orgs=((RELAY, int(Role.PROVIDER)),),
            configure=lambda nodes: _roster_config(nodes, tmp),
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def grants(cluster: Cluster) -> dict[str, str]:
    """The relay's organisation registers its service dataset and grants each bank."""
    service = cluster.tmp / "lookup-service.csv"
    service.write_text("service,description\nanti-fraud,anonymous lookups\n")
    out = {}
    with cluster.nodes[RELAY].api() as api, service.open("rb") as fh:
        dataset = api.post(
            "/datasets",
            data={"name": "lookup-service", "classification": "1"},
            files={"file": (service.name, fh, "text/csv")},
        )
        assert dataset.status_code == 201, dataset.text
        for bank in QUERIERS:
            grant = api.post(
                "/grants",
                json={
                    "datasetId": dataset.json()["datasetId"],
                    "granteeOrg": hex32(cluster.nodes[bank].org_id),
                    "purpose": PURPOSE,
                    "validForSeconds": 3600,
                    "maxUses": 60,
                },
            )
            assert grant.status_code == 201, grant.text
            out[bank] = grant.json()["grantId"]
    return out


MADE: dict[str, int] = {bank: 0 for bank in QUERIERS}  # elements each bank had evaluated
STARTED: list[float] = []


def query(cluster: Cluster, grants: dict[str, str], bank: str, **body: Any) -> httpx.Response:
    request = {"listName": LIST, "purpose": PURPOSE, "grantId": grants[bank], **body}
    with cluster.nodes[bank].api() as api:
        answer = api.post("/lookup/query", json=request)
    if answer.status_code == 200:
        MADE[bank] += len(body.get("elements") or {}) or 1
        STARTED.append(time.time())
    return answer


def run_epoch(cluster: Cluster) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["lookup", "epoch", "--list", LIST,
                     "--config", str(cluster.nodes[RELAY].config_path)])  # fmt: skip
    assert code == 0, cluster.logs()
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


@pytest.fixture(scope="module")
def epoch1(cluster: Cluster, grants: dict[str, str]) -> dict[str, Any]:
    for name in PROVIDERS:
        path = cluster.tmp / f"{name}-list.csv"
        _write_publish(path, LISTS[name])
        with cluster.nodes[name].api() as api, path.open("rb") as fh:
            published = api.post(
                f"/lookup/{LIST}/publish", files={"file": (path.name, fh, "text/csv")}
            )
        assert published.status_code == 200, published.text
        assert published.json()["entries"] == len({(n, lst) for n, lst, _, _ in LISTS[name]})
    verify = cluster.tmp / "regulator-verify.csv"
    verify.write_text(f"id,id_type,name,phone\n{VERIFY_ID},national-id,{VERIFY_RECORD['name']},"
                      f"{VERIFY_RECORD['phone']}\n")  # fmt: skip
    with cluster.nodes["regulator"].api() as api, verify.open("rb") as fh:
        published = api.post(
            f"/lookup/{LIST}/publish",
            data={"verify": "true"},
            files={"file": (verify.name, fh, "text/csv")},
        )
    assert published.status_code == 200, published.text
    report = run_epoch(cluster)
    assert report["epoch"] == 1 and report["usable"] is True, report
    assert len(report["acceptedBy"]) == 3, report
    return report


def test_the_epoch_is_anchored_and_accepted_by_every_provider(
    cluster: Cluster, epoch1: dict[str, Any]
) -> None:
    entries = {(n, lst) for rows in LISTS.values() for n, lst, _, _ in rows}
    assert epoch1["entries"] == len(entries) + len(VERIFY_RECORD)  # + verify composites
    assert sorted(epoch1["acceptedBy"]) == sorted(cluster.nodes[p].address for p in PROVIDERS)
    assert epoch1["descriptorDigest"].startswith("0x") and "next" in epoch1


def test_every_query_kind_answers_as_the_plaintext_lists(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    for bank in QUERIERS:
        for i in (*range(7), 30):  # 0..5 listed in various overlaps, 6 and 30 never
            answer = query(cluster, grants, bank, identifier=styled(phone(i), i + 1))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            truth = _truth("blacklist", phone(i))
            assert body["epoch"] == 1 and body["listed"] == bool(truth)
            assert body["multiplicity"] == len(truth)
            got = sorted((x["eventTime"], tuple(x["labels"])) for x in body["listings"])
            assert got == truth
    # Element verification: one match bit per element, answered to the asker only.
    asked = {"name": " zhang  SAN ", "phone": "13800138001"}
    answer = query(
        cluster, grants, "bank-a", identifier=VERIFY_ID, type="national-id", kind="verify",
        elements=asked,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    expected = {
        field: normalise("text" if field == "name" else field, value)
        == normalise("text" if field == "name" else field, VERIFY_RECORD[field])
        for field, value in asked.items()
    }
    assert answer.json()["matches"] == expected == {"name": True, "phone": False}
    # Multi-head counts; bank-b listed phone 20 itself and excludes its own listing.
    for bank, own in (("bank-a", None), ("bank-b", NOW - 3 * DAY)):
        for i in (20, 21, 22, 23):
            request: dict[str, Any] = {"identifier": phone(i), "kind": "multihead"}
            if own is not None and i in (20, 21):
                request["ownEventTime"] = own
            answer = query(cluster, grants, bank, **request)
            assert answer.status_code == 200, answer.text
            times = [when for when, _ in _truth("lending", phone(i))]
            if own is not None and "ownEventTime" in request:
                times.remove(own)
            now = int(time.time())
            expected_counts = {
                str(w): sum(1 for t in times if now - w * DAY < t <= now) for w in (7, 30, 90)
            }
            assert answer.json()["counts"] == expected_counts


def test_refusals_are_named(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    unknown = query(cluster, grants | {"bank-a": hex32(secrets.token_bytes(32))}, "bank-a",
                    identifier=phone(1))  # fmt: skip
    assert unknown.status_code == 409, unknown.text
    assert unknown.json()["error"]["code"] == "GRANT_REFUSED"
    assert "no grant" in unknown.json()["error"]["message"]
    # bank-b's grant named by bank-a: made to another organisation.
    stolen = query(cluster, grants | {"bank-a": grants["bank-b"]}, "bank-a", identifier=phone(1))
    assert stolen.status_code == 409 and stolen.json()["error"]["code"] == "GRANT_REFUSED"
    # bank-a's own grant under a purpose it was not made for: the regulator's counts
    # per purpose are the grantor's word, not the asker's.
    relabelled = query(cluster, grants, "bank-a", identifier=phone(1), purpose="fraud-review")
    assert relabelled.status_code == 409, relabelled.text
    assert "made for another purpose than 'fraud-review'" in relabelled.json()["error"]["message"]
    bad = query(cluster, grants, "bank-a", identifier="12345")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_INPUT"
    # The relay itself may not query the union it built.
    with cluster.nodes[RELAY].api() as api:
        relay = api.post(
            "/lookup/query",
            json={"listName": LIST, "identifier": phone(1), "purpose": PURPOSE,
                  "grantId": grants["bank-a"]},
        )  # fmt: skip
    assert relay.status_code == 409 and "must not query" in relay.text


def test_screening_a_book_writes_each_rows_result(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any], tmp_path: Path
) -> None:
    book = tmp_path / "book.csv"
    numbers = [phone(i) for i in range(10)]
    book.write_text("identifier\n" + "".join(f"{styled(n, i)}\n" for i, n in enumerate(numbers))
                    + "not-a-phone\n")  # fmt: skip
    out = tmp_path / "results.csv"
    with redirect_stdout(io.StringIO()):
        code = main(["lookup", "screen", str(book), "--out", str(out), "--list", LIST,
                     "--grant", grants["bank-a"], "--type", "phone", "--poll", "0.2",
                     "--config", str(cluster.nodes["bank-a"].config_path)])  # fmt: skip
    assert code == 0
    MADE["bank-a"] += len(numbers)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(numbers) + 1
    for number, row in zip(numbers, rows, strict=False):
        truth = _truth("blacklist", number)
        assert row["listed"] == str(bool(truth)).lower()
        assert row["multiplicity"] == str(len(truth))
    assert rows[-1]["skipped"] and rows[-1]["listed"] == ""


def test_a_stopped_provider_does_not_stop_queries(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    assert cluster.nodes["bank-c"].stop() == 0
    for bank in QUERIERS:
        answer = query(cluster, grants, bank, identifier=phone(3))
        assert answer.status_code == 200, answer.text
        assert answer.json()["multiplicity"] == len(_truth("blacklist", phone(3))) == 3


def _settled(cluster: Cluster, grant: str) -> list[dict[str, Any]]:
    with cluster.nodes["regulator"].api() as api:
        report = api.get("/lookup/audit", params={"node": cluster.nodes[RELAY].address})
    assert report.status_code == 200, report.text
    return [s for s in report.json()["settled"] if s["grantId"] == grant]


def test_usage_is_settled_per_period_not_per_query(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    deadline = time.monotonic() + 60
    while True:  # every period with queries has closed and been settled
        settled = {bank: _settled(cluster, grants[bank]) for bank in QUERIERS}
        uses = {bank: sum(s["uses"] for s in settled[bank]) for bank in QUERIERS}
        if all(uses[b] == math.ceil(MADE[b] / BLOCK_SIZE) for b in QUERIERS):
            break
        assert time.monotonic() < deadline, (uses, MADE, cluster.logs())
        time.sleep(1)
    periods = math.floor(max(STARTED) / PERIOD) - math.floor(min(STARTED) / PERIOD) + 1
    for bank in QUERIERS:
        # One chain write per period with use (at most every period the test spanned),
        # far fewer than the queries made; each settles the quota blocks begun.
        assert 1 <= len(settled[bank]) <= periods < MADE[bank]
        assert len({s["settlement"] for s in settled[bank]}) == len(settled[bank])


def test_the_regulator_counts_each_banks_queries(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    relay = cluster.nodes[RELAY].address
    deadline = time.monotonic() + 60
    while True:  # the relay checkpoints its log every second
        with cluster.nodes["regulator"].api() as api:
            report = api.get("/lookup/audit", params={"node": relay}).json()
        (log,) = report["logs"]
        if log.get("verified") and log["anchored"] == log["records"]:
            break
        assert time.monotonic() < deadline, report
        time.sleep(1)
    assert log["checkpoints"] >= 1  # each anchored checkpoint extends the one before
    counted: dict[str, int] = {}
    for item in log["perOrgPurpose"]:
        if item["purpose"] == PURPOSE:
            counted[item["org"]] = counted.get(item["org"], 0) + item["queries"]
    assert counted == {hex32(cluster.nodes[b].org_id): MADE[b] for b in QUERIERS}
    per_day = sum(i["queries"] for i in log["perOrgDay"] if i["org"] in counted)
    assert per_day == sum(MADE.values()) + sum(
        i["queries"]
        for i in log["perOrgPurpose"]
        if i["org"] in counted and i["purpose"] != PURPOSE
    )
    # A provider's log verifies too; a bank that is no regulator may not read any.
    with cluster.nodes["regulator"].api() as api:
        provider = api.get("/lookup/audit", params={"node": cluster.nodes["bank-b"].address})
    assert provider.status_code == 200 and provider.json()["logs"][0]["records"] > 0
    with cluster.nodes["bank-a"].api() as api:
        denied = api.get("/lookup/audit", params={"node": relay})
    assert denied.status_code == 409 and "REGULATOR" in denied.text


def test_a_second_epoch_retires_the_first(
    cluster: Cluster, grants: dict[str, str], epoch1: dict[str, Any]
) -> None:
    # bank-b drops phone 0 from its list; bank-c is still stopped (2 of 3 suffice).
    path = cluster.tmp / "bank-b-list-2.csv"
    _write_publish(path, [row for row in LISTS["bank-b"] if row[0] != phone(0)])
    with cluster.nodes["bank-b"].api() as api, path.open("rb") as fh:
        assert (
            api.post(f"/lookup/{LIST}/publish", files={"file": (path.name, fh)}).status_code == 200
        )
    report = run_epoch(cluster)
    assert report["epoch"] == 2 and report["usable"] is True, report
    assert "offline" in report["providers"][cluster.nodes["bank-c"].address]
    assert "2 of 3" in report["note"]
    answer = query(cluster, grants, "bank-a", identifier=phone(0))
    assert answer.status_code == 200 and answer.json()["epoch"] == 2
    assert answer.json()["listed"] is False  # removed, and bank-c's lists are not in epoch 2
    stale = query(cluster, grants, "bank-a", identifier=phone(1), epoch=1)
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "STALE_EPOCH"
    assert "epoch 1 is not answered any more (current: 2)" in stale.json()["error"]["message"]
