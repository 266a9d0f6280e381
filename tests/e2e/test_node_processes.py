"""Three node processes, a real anvil, gRPC over mutual TLS, a job created over REST.

The secure-statistics result fetched from the aggregator's API must equal the plaintext
computation over the providers' files, and every process must stop cleanly.

One consortium (anvil, the three processes, the providers' datasets and grants) serves
the module, as in the crash and dropout modules: the tests run in file order on one
worker (``tests/conftest.py`` groups a module-scoped fixture's tests), each task with its
own request id, and each test asserts only what its own tasks changed. The suspension of
bank-b comes after the tasks, and the last test stops every process. `provnet audit
fetch` (which had a consortium of its own in ``test_audit_fetch.py``) runs here too, on
a task of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from node.algorithms import output_policy, stats
from node.identity import TlsIdentity, certificate_digest, new_tls_identity
from node.peer import peer_pb2
from node.peer.client import PeerClient
from node.peer.trust import TrustedPeer
from scripts.cli import main
from tests.e2e.cluster import PARAMS, Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.anvil import running_anvil

    tmp: Path = tmp_path_factory.mktemp("processes")
    with running_anvil() as url, running_cluster(url, tmp) as running:
        running.share_datasets()
        yield running


def _grant_uses(capsys: pytest.CaptureFixture[str], config: str) -> list[int]:
    """How often each of a node's grants was used, by `provnet grant list`."""
    capsys.readouterr()
    assert main(["grant", "list", "--config", config]) == 0
    return [g["used"] for g in json.loads(capsys.readouterr().out)]


def test_stats_job_over_rest_completes_with_the_plaintext_result(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    aggregator = cluster.nodes["bank-a"]
    config_b = str(cluster.nodes["bank-b"].config_path)
    uses_before = _grant_uses(capsys, config_b)
    assert len(uses_before) == 1  # one grant to bank-a
    with aggregator.api() as api:
        bad = api.post("/tasks", json={"requestId": "r", "algorithm": "secure-stats"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "params"
        unknown = api.get(f"/tasks/0x{'00' * 32}")
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "taskId"
        wrong_token = api.get("/tasks/0x" + "00" * 32, headers={"Authorization": "Bearer x"})
        assert wrong_token.status_code == 401
    task = cluster.create_task("job-1")
    status = cluster.wait_terminal(task)
    assert status["state"] == "COMPLETED", (status, cluster.logs())
    with aggregator.api() as api:
        result = api.get(f"/tasks/{task}/result").json()["result"]
    expected = stats.plaintext_stats(
        stats.StatsParams.from_json(PARAMS), cluster.rows, output_policy.effective([2])
    ).to_json()
    assert {k: v for k, v in result.items() if k != "contributors"} == {
        k: v for k, v in expected.items() if k != "contributors"
    }
    assert sorted(result["contributors"]) == sorted(p["node"] for p in cluster.providers)

    # The same verbs on the CLI, through each node's API.
    config_a = str(aggregator.config_path)
    capsys.readouterr()
    assert main(["task", "watch", "--config", config_a, task, "--timeout", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "COMPLETED"
    assert main(["task", "result", "--config", config_a, task]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == result
    assert main(["task", "result", "--config", config_a, "0x" + "00" * 32]) == 2
    assert capsys.readouterr().err.startswith("provnet: error: taskId: ")
    # The job used bank-b's grant exactly once.
    assert _grant_uses(capsys, config_b) == [uses_before[0] + 1]
    regulator = cluster.nodes["regulator"]
    assert main(["dataset", "register", "--config", str(regulator.config_path),
                 "--name", "accounts", "--file", str(cluster.tmp / "regulator.csv"),
                 "--classification", "2"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["version"] == 1  # identical: no new version


def test_a_refused_and_an_accepted_query_both_verify(cluster: Cluster, tmp_path: Path) -> None:
    """The output policy between real processes: a query singling out one customer is
    refused by a provider, on chain, with its reason; the accepted one next to it equals
    the plaintext figures; `provnet audit verify` verifies both and shows the reason."""
    accepted = cluster.create_task("ok")
    assert cluster.wait_terminal(accepted)["state"] == "COMPLETED", cluster.logs()
    with cluster.nodes["bank-a"].api() as api:
        answer = api.get(f"/tasks/{accepted}/result").json()
    (tmp_path / "result.json").write_text(json.dumps(answer))
    params = stats.StatsParams.from_json(PARAMS)
    expected = stats.plaintext_stats(params, cluster.rows, output_policy.effective([2]))
    assert answer["result"]["sum"] == expected.to_json()["sum"]
    assert answer["result"]["min_group_size"] == 10  # the policy's, not the consumer's 3

    one = cluster.rows[5]["balance"]
    assert sum(r["balance"] == one for r in cluster.rows[:120]) == 1
    single = {**PARAMS, "filter": {"column": "balance", "op": "==", "value": one}}
    single.pop("group_column"), single.pop("categories")
    refused = cluster.create_task("one-customer", params=single)
    assert cluster.wait_terminal(refused)["state"] == "FAILED", cluster.logs()

    transcripts = cluster.dump_transcripts(accepted, tmp_path / "transcripts")
    code, report = cluster.audit(
        accepted, "--transcripts", str(transcripts), "--params", str(tmp_path / "result.json")
    )
    assert code == 0 and report["verified"], report
    assert report["outcome"] == {"state": "COMPLETED"}
    assert "params_commitment" in [c["name"] for c in report["checks"]]

    code, report = cluster.audit(refused)
    assert code == 0 and report["verified"], report
    assert report["outcome"]["state"] == "FAILED"
    assert report["outcome"]["reason"] == "GROUP_TOO_SMALL"
    assert report["outcome"]["reporter"] in {p["node"] for p in cluster.providers}


def test_the_regulator_fetches_every_transcript_and_the_task_verifies(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`provnet audit fetch` against the node processes.

    The regulator's node asks every participant (read from the chain) for its transcript
    with signed evidence requests over mutual TLS; what it writes must be byte for byte
    what each node holds in its own evidence database, and `provnet audit verify` must
    verify the task from those files. A node of a non-regulator organisation is refused
    before anything is written, as are an unknown task and a directory holding another
    node's transcript.
    """
    task = cluster.create_task("audited")
    assert cluster.wait_terminal(task)["state"] == "COMPLETED", cluster.logs()
    regulator = str(cluster.nodes["regulator"].config_path)
    out = tmp_path / "fetched"
    capsys.readouterr()

    # A bank's node is no regulator: refused up front, nothing written.
    bank_b = str(cluster.nodes["bank-b"].config_path)
    assert main(["audit", "fetch", "--config", bank_b, task, "--out", str(out)]) == 2
    assert "lacks the REGULATOR role" in capsys.readouterr().err
    assert not out.exists()

    unknown = "0x" + "11" * 32
    assert main(["audit", "fetch", "--config", regulator, unknown, "--out", str(out)]) == 2
    assert f"no such task on chain: {unknown}" in capsys.readouterr().err
    assert not out.exists()

    # A directory with another node's transcript would be judged with this task's.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / f"0x{'ab' * 20}.json").write_text("[]")
    assert main(["audit", "fetch", "--config", regulator, task, "--out", str(stale)]) == 2
    assert "not a participant of this task" in capsys.readouterr().err
    assert sorted(p.name for p in stale.iterdir()) == [f"0x{'ab' * 20}.json"]

    assert main(["audit", "fetch", "--config", regulator, task, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["failed"] == [] and report["state"] == "COMPLETED"
    assert f"provnet audit verify --chain {cluster.chain.url}" in captured.err
    addresses = sorted(node.address for node in cluster.nodes.values())
    assert sorted(t["node"] for t in report["transcripts"]) == addresses
    assert all(t["consistent"] and t["entries"] > 0 for t in report["transcripts"])
    assert sorted(p.stem for p in out.glob("*.json")) == addresses

    # What was fetched is what each node holds, read from its own database.
    cluster.wait_settled(task)
    direct = cluster.dump_transcripts(task, tmp_path / "direct")
    for address in addresses:
        fetched = json.loads((out / f"{address}.json").read_text())
        assert fetched == json.loads((direct / f"{address}.json").read_text()), address

    with cluster.nodes["bank-a"].api() as api:
        answer = api.get(f"/tasks/{task}/result").json()
    (tmp_path / "result.json").write_text(json.dumps(answer))
    code, verdict = cluster.audit(
        task, "--transcripts", str(out), "--params", str(tmp_path / "result.json")
    )
    assert code == 0 and verdict["verified"], verdict


def _rpc_status(client: PeerClient, envelope: peer_pb2.Envelope) -> grpc.StatusCode:
    try:
        client.deliver_once(envelope, timeout=5.0)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return,attr-defined]
    finally:
        client.close()
    return grpc.StatusCode.OK


def test_unregistered_certificates_are_refused_and_suspension_cuts_off(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against the running bank-a process: TLS identities are checked against the chain."""
    bank_a, bank_b = cluster.nodes["bank-a"], cluster.nodes["bank-b"]
    config_a = bank_a.config
    target = TrustedPeer(
        bank_a.address,
        config_a.peer_endpoint,
        certificate_digest(config_a.tls_cert.read_bytes()),
        config_a.tls_cert.read_bytes(),
    )
    config_b = bank_b.config
    b_identity = TlsIdentity(config_b.tls_key.read_bytes(), config_b.tls_cert.read_bytes())
    envelope = peer_pb2.Envelope(
        task_id=bytes(32), step="probe", sender=bank_b.address, payload=b"x"
    )

    # bank-b's registered identity gets through TLS and the per-call check: the server
    # answers about the (unknown) task, not about who is calling.
    assert (
        _rpc_status(PeerClient(target, b_identity, 1 << 20), envelope) == grpc.StatusCode.NOT_FOUND
    )
    # The same account with a certificate that is not on chain never gets a call through.
    rogue = new_tls_identity("rogue")
    assert _rpc_status(PeerClient(target, rogue, 1 << 20), envelope) != grpc.StatusCode.NOT_FOUND

    # Suspend bank-b on chain (bank-a proposes, the regulator agrees: no organisation
    # suspends another alone): bank-a's process cuts it off within its poll interval.
    proposal = bank_a.admin.consortium.propose_suspension(bank_b.org_id)
    cluster.nodes["regulator"].admin.consortium.vote(proposal)
    assert not bank_a.admin.consortium.is_active_node(bank_b.address)
    deadline = time.monotonic() + config_a.poll_interval * 5 + 5
    while True:
        status = _rpc_status(PeerClient(target, b_identity, 1 << 20), envelope)
        if status in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE):
            break
        assert time.monotonic() < deadline, f"bank-b still answered with {status}"
        time.sleep(0.2)

    # The operator's view of it: `provnet node peers` shows bank-b inactive by reason
    # and every other node verified (exit 0: nothing is left to wait for).
    capsys.readouterr()
    assert main(["node", "peers", "--config", str(bank_a.config_path), "--wait", "10"]) == 0
    out = capsys.readouterr()
    peers = {p["node"]: p for p in json.loads(out.out)["peers"]}
    assert peers.keys() == {n.address for n in cluster.nodes.values()}
    assert peers[bank_b.address]["certificate"] == "inactive"
    assert "organisation" in peers[bank_b.address]["problem"]
    others = [p["certificate"] for a, p in peers.items() if a != bank_b.address]
    assert others == ["verified"] * (len(cluster.nodes) - 1)
    assert "every active peer is verified" in out.err


def test_every_process_stops_cleanly(cluster: Cluster) -> None:
    """Last: each node, having served the tasks above, exits 0 on SIGTERM."""
    for node in cluster.nodes.values():
        assert node.stop() == 0, node.log_path.read_text()[-2000:]
