"""Bulk screening jobs survive a node restart: durable state, resume, retention.

Jobs run against the real six-node mesh of ``test_rpc.py`` (2-of-3 key holders, a relay,
queriers over mutual TLS), with the epoch anchored and accepted on the embedded chain as
``epochs.py`` does, so a querier node's ``QuerierRole`` finds it the way a node process
does. Every answer is compared with a plaintext computation over the providers' lists.
A restart is a new ``Screens`` (and ``QuerierRole``) on the same work directory; an
interruption at a known chunk is ``Screens.stop()`` called from the ``after_chunk``
hook, as a node shutdown calls it at an unknown one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger.ids import name_id
from node.lookup import inputs
from node.lookup.anchoring import accept_epoch, anchor_epoch
from node.lookup.node.errors import UnknownJob
from node.lookup.node.queries import QuerierRole
from node.lookup.node.screens import JOB_FILE, RESULTS_FILE, ScreenJob, Screens
from node.lookup.publisher import OwnInput
from node.lookup.rpc import LookupClient
from tests.conftest import Consortium
from tests.node.lookup.test_rpc import (
    GRANT,
    LIST,
    PURPOSE,
    Mesh,
    dkg,
    listings,
    mesh,
    org_of,
    phone,
    publish_epoch,
)

__all__ = ["mesh"]  # the fixture, imported from test_rpc

CHUNK = 4  # the querier's max_ticket: rows per chunk
PROVIDER_ORGS = {"p1": "bank-a", "p2": "bank-b", "p3": "regulator"}


@dataclass
class World:
    mesh: Mesh
    consortium: Consortium
    relay_account: LocalAccount
    rows: dict[str, list[OwnInput]]

    def role(self) -> QuerierRole:
        """A fresh querier role of node ``qa`` (a restarted node has no cache)."""
        by_address = {node.address: name for name, node in self.mesh.nodes.items()}

        def client(address: str) -> LookupClient:
            return self.mesh.client("qa", by_address[address])

        return QuerierRole(
            self.mesh.nodes["qa"].address,
            {LIST: self.mesh.roster},
            self.consortium.orgs["bank-a"].node_clients.anchors,
            client,
            max_ticket=CHUNK,
        )

    def anchor(self, epoch: int, digest: bytes) -> None:
        """The relay anchors ``epoch``, every provider accepts it (quorum 3)."""
        anchor_epoch(self.consortium.clients_for(self.relay_account).anchors, LIST, epoch, digest)
        for provider, org in PROVIDER_ORGS.items():
            assert self.mesh.nodes[provider].address == self.consortium.orgs[org].node.address
            accept_epoch(self.consortium.orgs[org].node_clients.anchors, LIST, epoch, digest)

    def used(self) -> int:
        """Queries the relay charged node ``qa``'s organisation."""
        return self.mesh.meter.usage(org_of(self.mesh, "qa"), PURPOSE, GRANT).used


@pytest.fixture
def made_accounts(consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> list[LocalAccount]:
    """The accounts the mesh fixture funds (it keeps no signer of the relay's node)."""
    made: list[LocalAccount] = []
    original = consortium.new_funded_account

    def recording() -> LocalAccount:
        account = original()
        made.append(account)
        return account

    monkeypatch.setattr(consortium, "new_funded_account", recording)
    return made


@pytest.fixture
def world(made_accounts: list[LocalAccount], mesh: Mesh, consortium: Consortium) -> World:
    keys = dkg(mesh)
    rows = listings(7)
    published = publish_epoch(mesh, keys, rows)
    relay = next(a for a in made_accounts if a.address == mesh.nodes["relay"].address)
    world = World(mesh, consortium, relay, rows)
    world.anchor(keys.epoch, published.descriptor.digest)
    return world


# ---------------------------------------------------------------------- the book


BOOK_ROWS: list[tuple[str, str]] = [
    *((phone(i), "phone") for i in range(9)),
    ("12", "phone"),  # not a phone number: skipped with its reason
    *((phone(i), "phone") for i in range(9, 14)),
    (phone(3), "fax"),  # an unknown type: skipped
    *((phone(i), "phone") for i in (0, 11, 5, 13)),
]  # 20 rows, 5 chunks of 4; phones 12 and 13 are never listed


def write_book(directory: Path, name: str = "book.csv") -> Path:
    """A book in its own directory, as the API stages an upload."""
    directory.mkdir(parents=True)
    path = directory / name
    lines = ["identifier,type", *(f"{ident},{kind}" for ident, kind in BOOK_ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def plaintext(world: World) -> list[dict[str, Any]]:
    """Each row's answer from the providers' lists in the clear: listed, multiplicity."""
    counts = Counter(row.input for mine in world.rows.values() for row in mine)
    expected: list[dict[str, Any]] = []
    for number, (ident, kind) in enumerate(BOOK_ROWS, start=1):
        if kind != "phone" or not ident.startswith("+86"):
            expected.append({"row": number, "skipped": True})
            continue
        n = counts[inputs.membership_input(LIST, "phone", ident)]
        expected.append({"row": number, "listed": n > 0, "multiplicity": n})
    assert any(r.get("listed") for r in expected) and any(
        r.get("listed") is False for r in expected
    )
    return expected


def comparable(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"row": r["row"], "skipped": True} if "skipped" in r else dict(r) for r in results]


def start(screens: Screens, book: Path) -> str:
    job = screens.start(book, list_name=LIST, purpose=PURPOSE, grant_id=GRANT, default_type=None)
    assert job["state"] == "running" and job["totalRows"] == len(BOOK_ROWS)
    return str(job["jobId"])


def finished(screens: Screens, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = screens.status(job_id, with_results=False)
        if status["state"] != "running":
            return screens.status(job_id)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout}s")


def interrupted_after(world: World, work_dir: Path, chunks: int, book: Path) -> str:
    """Start a job and stop its node's screens once ``chunks`` chunks are durable."""
    reached = threading.Event()

    def after_chunk(_job: str, done: int) -> None:
        if done == chunks:
            screens.stop()
            reached.set()

    screens = Screens(world.role(), work_dir, after_chunk=after_chunk)
    job_id = start(screens, book)
    assert reached.wait(120), "the job never reached the chunk to stop at"
    screens.stop()  # joins the job's thread: it exits without starting another chunk
    state = json.loads((work_dir / job_id / JOB_FILE).read_text())
    assert (state["state"], state["chunksDone"]) == ("running", chunks)
    assert state["rows"] == chunks * CHUNK
    return job_id


def result_lines(work_dir: Path, job_id: str) -> list[bytes]:
    return (work_dir / job_id / RESULTS_FILE).read_bytes().splitlines()


@pytest.fixture
def reference(world: World, tmp_path: Path) -> list[dict[str, Any]]:
    """An uninterrupted run's results, checked against plaintext."""
    screens = Screens(world.role(), tmp_path / "reference")
    job_id = start(screens, write_book(tmp_path / "upload-ref"))
    done = finished(screens, job_id)
    assert done["state"] == "done", done
    assert comparable(done["results"]) == plaintext(world)
    skipped = [r["skipped"] for r in done["results"] if "skipped" in r]
    assert len(skipped) == 2 and all(s.startswith("book.csv: row ") for s in skipped)
    assert str(tmp_path) not in json.dumps(done["results"])  # no server-side path
    assert done["listed"] == sum(1 for r in done["results"] if r.get("listed"))
    assert (done["rows"], done["skipped"]) == (len(BOOK_ROWS), 2)
    return list(done["results"])


# ---------------------------------------------------------------------- resume


def test_an_interrupted_job_resumed_by_a_new_node_equals_an_uninterrupted_run(
    world: World, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    charged = world.used()
    job_id = interrupted_after(world, work_dir, 2, write_book(tmp_path / "upload"))
    assert len(result_lines(work_dir, job_id)) == 2 * CHUNK
    assert not (tmp_path / "upload").exists()  # the staging directory went with the book
    assert (work_dir / job_id / "book.csv").is_file()  # kept for the resume

    restarted = Screens(world.role(), work_dir)
    with pytest.raises(UnknownJob):
        restarted.status(job_id)
    restarted.resume()
    done = finished(restarted, job_id)
    assert done["state"] == "done", done
    assert done["results"] == reference  # same rows, same order, same reasons
    assert [r["row"] for r in done["results"]] == list(range(1, len(BOOK_ROWS) + 1))
    assert (done["rows"], done["totalRows"]) == (len(BOOK_ROWS), len(BOOK_ROWS))
    # Chunks done before the stop were not asked (nor charged) again.
    valid = sum(1 for r in reference if "skipped" not in r)
    assert world.used() - charged == valid
    assert sorted(p.name for p in (work_dir / job_id).iterdir()) == [JOB_FILE, RESULTS_FILE]


def test_rows_written_but_not_counted_before_a_crash_are_cut_off_on_resume(
    world: World, reference: list[dict[str, Any]], tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    job_id = interrupted_after(world, work_dir, 3, write_book(tmp_path / "upload"))
    recorded = json.loads((work_dir / job_id / JOB_FILE).read_text())["resultsBytes"]
    results = work_dir / job_id / RESULTS_FILE
    assert results.stat().st_size == recorded
    # The crash: chunk 4's rows appended and fsynced, the node dies before job.json.
    fourth = [json.dumps(r, separators=(",", ":")) for r in reference[3 * CHUNK : 4 * CHUNK]]
    with results.open("ab") as fh:
        fh.write(("\n".join(fourth) + "\n" + '{"row": 17, "lis').encode())

    restarted = Screens(world.role(), work_dir)
    restarted.resume()
    done = finished(restarted, job_id)
    assert done["state"] == "done", done
    assert done["results"] == reference
    rows = [r["row"] for r in done["results"]]
    assert len(rows) == len(set(rows)) == len(BOOK_ROWS)
    assert len(result_lines(work_dir, job_id)) == len(BOOK_ROWS)


def test_an_epoch_rotated_while_the_node_was_down_fails_the_job_by_name(
    world: World, tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    job_id = interrupted_after(world, work_dir, 1, write_book(tmp_path / "upload"))
    world.anchor(2, name_id("descriptor", "epoch two"))  # the relay ran the next epoch

    restarted = Screens(world.role(), work_dir)
    restarted.resume()
    done = finished(restarted, job_id)
    assert done["state"] == "failed"
    error = done["error"]
    assert "epoch 1" in error and "epoch 2" in error and "screen the book again" in error
    assert "results" not in done
    assert done["rows"] == CHUNK  # what was screened before is still reported
    saved = json.loads((work_dir / job_id / JOB_FILE).read_text())
    assert (saved["state"], saved["error"]) == ("failed", error)
    assert not (work_dir / job_id / "book.csv").exists()  # a failed job's book is deleted


# ---------------------------------------------------------------------- retention


def test_finished_jobs_beyond_max_jobs_go_with_their_directories(
    world: World, tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    screens = Screens(world.role(), work_dir, max_jobs=2)
    first = start(screens, write_book(tmp_path / "u1"))
    assert finished(screens, first)["state"] == "done"
    assert sorted(p.name for p in (work_dir / first).iterdir()) == [JOB_FILE, RESULTS_FILE]
    second = start(screens, write_book(tmp_path / "u2"))
    assert finished(screens, second)["state"] == "done"
    third = start(screens, write_book(tmp_path / "u3"))  # the oldest finished job goes
    assert not (work_dir / first).exists()
    with pytest.raises(UnknownJob, match=first):
        screens.status(first)
    assert screens.status(second, with_results=False)["state"] == "done"
    assert finished(screens, third)["state"] == "done"
    assert sorted(p.name for p in work_dir.iterdir()) == sorted([second, third])


# ---------------------------------------------------------------------- no mesh needed


@pytest.fixture
def idle_role(consortium: Consortium) -> Iterator[QuerierRole]:
    """A querier role that must never be asked: these jobs are read from files only."""

    def no_client(address: str) -> LookupClient:
        raise AssertionError(f"a client of {address} was asked for")

    yield QuerierRole(
        consortium.orgs["bank-a"].node.address,
        {},
        consortium.orgs["bank-a"].node_clients.anchors,
        no_client,
        max_ticket=CHUNK,
    )


def saved_job(work_dir: Path, job_id: str, created: float, rows: list[dict[str, Any]]) -> None:
    """A finished job as a node that ran it left it."""
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    job = ScreenJob(
        job_id,
        LIST,
        purpose=PURPOSE,
        grant_id=GRANT,
        book="book.csv",
        chunk_rows=CHUNK,
        created=created,
        total=len(rows),
        rows=len(rows),
        listed=sum(1 for r in rows if r.get("listed")),
        state="done",
        epoch=1,
        chunks=1,
        results_bytes=len(data),
    )
    (work_dir / job_id).mkdir(parents=True)
    (work_dir / job_id / JOB_FILE).write_text(json.dumps(job.to_file()))
    (work_dir / job_id / RESULTS_FILE).write_bytes(data)
    (work_dir / job_id / "book.csv").write_text("identifier,type\n")  # left by a crash


def test_a_corrupt_job_file_is_reported_as_a_failed_job_not_raised(
    idle_role: QuerierRole, tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    good = "00000000000000aa"
    saved_job(work_dir, good, 1.0, [{"row": 1, "listed": True, "multiplicity": 2}])
    broken = {
        "0000000000000001": b'{"jobId": "0000000000000001", "state": "runn',  # cut short
        "0000000000000002": b"\xff\xfe not text",
        "0000000000000003": json.dumps({"jobId": "0000000000000003", "state": 7}).encode(),
    }
    for job_id, content in broken.items():
        (work_dir / job_id).mkdir()
        (work_dir / job_id / JOB_FILE).write_bytes(content)
    (work_dir / "0000000000000004").mkdir()  # stopped before its job.json was written
    (work_dir / "0000000000000004" / "book.csv").write_text("identifier\n")

    screens = Screens(idle_role, work_dir)
    screens.resume()  # raises for none of them
    assert screens.status(good) == {
        "jobId": good,
        "list": LIST,
        "state": "done",
        "epoch": 1,
        "totalRows": 1,
        "rows": 1,
        "listed": 1,
        "skipped": 0,
        "results": [{"row": 1, "listed": True, "multiplicity": 2}],
    }
    assert not (work_dir / good / "book.csv").exists()  # a finished job's leftover book
    reasons = {job_id: screens.status(job_id)["error"] for job_id in [*broken, "0000000000000004"]}
    for job_id, reason in reasons.items():
        status = screens.status(job_id)
        assert status["state"] == "failed" and "results" not in status
        assert reason.startswith(f"screening job {job_id} cannot be resumed: {JOB_FILE}")
        assert reason.endswith("screen the book again")
    assert "field 'state' has the wrong type" in reasons["0000000000000003"]
    assert "missing" in reasons["0000000000000004"]
    assert not (work_dir / "0000000000000004" / "book.csv").exists()


def test_retention_on_resume_deletes_the_oldest_finished_job_directories(
    idle_role: QuerierRole, tmp_path: Path
) -> None:
    work_dir = tmp_path / "screens"
    ids = [f"{n:016x}" for n in (0xC, 0xA, 0xB)]  # created 1, 2, 3 (not in name order)
    for created, job_id in enumerate(ids, start=1):
        saved_job(work_dir, job_id, float(created), [{"row": 1, "skipped": "x"}])
    screens = Screens(idle_role, work_dir, max_jobs=2)
    screens.resume()
    assert sorted(p.name for p in work_dir.iterdir()) == sorted(ids[1:])
    with pytest.raises(UnknownJob):
        screens.status(ids[0])
    assert screens.status(ids[1])["results"] == [{"row": 1, "skipped": "x"}]
