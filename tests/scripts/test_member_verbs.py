"""The steps a new member takes with the CLI alone: keys, genesis, funding, organisations,
algorithm votes and a dataset's inferred types — each found missing by a newcomer."""

from __future__ import annotations

import json
import os
import pty
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmStatus
from ledger.deploy import Governance
from ledger.deployment import Deployment
from ledger.ids import InvalidInput, hex32, name_id
from ledger.keys import keystore_address, new_account, read_keystore, write_keystore
from ledger.transactions import Sender
from node.algorithms import stats
from node.algorithms.package import package_of
from node.api import create_app
from node.config import NodeConfig
from node.dataset_store import DatasetStore
from node.service import NodeService
from scripts.algorithm_command import algorithm_rows, resolve_algorithm
from scripts.cli import main
from scripts.deploy_command import fund_target, load_genesis
from tests.anvil import free_port
from tests.conftest import Consortium

PASSWORD = "correct horse"
ENV = "PROVNET_KEY_PASSWORD"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------- key new


def test_key_new_writes_a_private_keystore_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    out = tmp_path / "admin.json"
    code, stdout, err = run(capsys, "key", "new", "--out", str(out))
    assert code == 0, err
    address = stdout.splitlines()[0]
    assert read_keystore(out, PASSWORD).address == address == keystore_address(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert "provnet chain fund" in stdout and "consortium init" in stdout
    before = out.read_bytes()
    code, _, err = run(capsys, "key", "new", "--out", str(out))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert out.read_bytes() == before


def test_key_new_without_password_or_terminal_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a script (no tty): the old prompt died with EOFError."""
    monkeypatch.delenv("ADMIN_PW", raising=False)
    out = tmp_path / "admin.json"
    code, _, err = run(capsys, "key", "new", "--out", str(out), "--password-env", "ADMIN_PW")
    assert code == 2
    assert err.startswith("provnet: error: ADMIN_PW: environment variable not set")
    assert "export ADMIN_PW=" in err and "EOFError" not in err and err.count("\n") == 1
    assert not out.exists()


def test_key_new_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    """On a real pseudo-terminal the password is asked twice and the key is written."""
    out = tmp_path / "typed.json"
    env = {k: v for k, v in os.environ.items() if k != ENV}
    pid, fd = pty.fork()
    if pid == 0:  # the child: provnet on the terminal
        os.chdir(Path(__file__).resolve().parents[2])
        os.execve(
            sys.executable,
            [sys.executable, "-m", "scripts.cli", "key", "new", "--out", str(out)],
            env,
        )
    transcript = b""
    try:
        for _ in range(2):
            while b"password" not in transcript.split(b"\n")[-1]:
                transcript += os.read(fd, 1024)
            os.write(fd, PASSWORD.encode() + b"\n")
            transcript += os.read(fd, 1024)
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            transcript += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, transcript.decode(errors="replace")
    assert b"again" in transcript
    assert read_keystore(out, PASSWORD).address.encode() in transcript


# ------------------------------------------------------------------- consortium init


def test_consortium_init_writes_a_commented_genesis_that_deploy_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = new_account()
    write_keystore(admin, tmp_path / "a.json", PASSWORD)
    other = "0x" + "22" * 20
    out = tmp_path / "genesis.json"
    code, stdout, err = run(
        capsys, "consortium", "init", "--out", str(out), "--dev", "--threshold", "50",
        "--member", f"Bank A:provider,consumer:{tmp_path / 'a.json'}",
        "--member", f"Regulator:regulator,provider:{other}",
    )  # fmt: skip
    assert code == 0, err
    raw = json.loads(out.read_text())
    assert set(raw["_comment"]) >= {"thresholdPercent", "minApprovals", "timelockSeconds"}
    assert all("_comment" in m for m in raw["members"])
    governance, members = load_genesis(out)
    assert governance == Governance(threshold_percent=50, min_approvals=2, timelock_seconds=0)
    assert [(m.name, m.admin.lower()) for m in members] == [
        ("Bank A", admin.address.lower()),
        ("Regulator", other),
    ]
    assert members[0].org_id == name_id("org", "Bank A")
    assert f"provnet chain fund --chain http://127.0.0.1:8545 {admin.address}" in stdout
    assert f"provnet chain deploy --chain http://127.0.0.1:8545 --genesis {out}" in stdout

    # Production settings without --dev; an existing file is never replaced.
    code, _, err = run(capsys, "consortium", "init", "--out", str(out), "--member", f"B:c:{other}")
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize(
    ("member", "field"),
    [
        ("Bank A:banker:0x" + "22" * 20, "members[0].roles"),
        ("Bank A:provider", "member[0]"),
        ("Bank A:provider:nowhere.json", "member[0].admin"),
        ("Bank A:provider:0x12", "member[0].admin"),
    ],
)
def test_consortium_init_refuses_bad_members_writing_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], member: str, field: str
) -> None:
    out = tmp_path / "genesis.json"
    code, _, err = run(capsys, "consortium", "init", "--out", str(out), "--member", member)
    assert code == 2 and err.startswith(f"provnet: error: {field}: "), err
    assert not out.exists()


def test_a_misspelt_genesis_key_is_refused_and_comments_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    member = {"name": "A", "roles": "provider", "admin": "0x" + "22" * 20, "_note": "x"}
    path.write_text(json.dumps({"_comment": "hi", "thresholdPercent": 50, "members": [member]}))
    load_genesis(path)
    path.write_text(json.dumps({"thresholdPercent": 50, "timelockSecond": 0, "members": [member]}))
    with pytest.raises(InvalidInput, match=r"^timelockSecond: unknown key"):
        load_genesis(path)


# ------------------------------------------------------------------- chain fund targets


def test_fund_targets_are_addresses_keystores_or_node_directories(tmp_path: Path) -> None:
    account = new_account()
    write_keystore(account, tmp_path / "node" / "keystore.json", PASSWORD)
    config = NodeConfig(
        name="n", chain_url="http://127.0.0.1:9", manifest=Path("m.json"),
        keystore=Path("keystore.json"), password_env=ENV, tls_key=Path("k"),
        tls_cert=Path("c"), database_url="sqlite://", peer_listen="127.0.0.1:1",
        peer_endpoint="127.0.0.1:1", api_listen="127.0.0.1:2",
        api_token_file=Path("t"), data_dir=Path("d"),
    )  # fmt: skip
    config.save(tmp_path / "node" / "node.json")
    for target in ("node", "node/node.json", "node/keystore.json"):
        assert fund_target(str(tmp_path / target)) == account.address
    assert fund_target(account.address.lower()) == account.address
    with pytest.raises(InvalidInput, match="no address, keystore file or node directory"):
        fund_target(str(tmp_path / "missing"))


# ------------------------------------------------------------------- algorithms (eth-tester)


def test_algorithm_rows_follow_the_vote(consortium: Consortium) -> None:
    package = package_of(stats)
    bank_a = consortium.orgs["bank-a"].clients
    first = consortium.deployment.first_block
    (row,) = [r for r in algorithm_rows(bank_a, first) if r["name"] == package.name]
    assert (
        row["status"] == "NONE" and row["runnableHere"] and row["digest"] == hex32(package.digest)
    )
    bank_a.algorithms.propose(package.digest, package.name, package.version, package.kind)  # type: ignore[arg-type]
    (row,) = [r for r in algorithm_rows(bank_a, first) if r["name"] == package.name]
    assert (row["status"], row["votes"], row["kind"]) == ("PROPOSED", 1, "MPC")
    assert resolve_algorithm(bank_a, first, package.name) == package.digest
    consortium.orgs["bank-b"].clients.algorithms.approve(package.digest)
    assert bank_a.algorithms.status(package.digest) == AlgorithmStatus.APPROVED
    with pytest.raises(
        InvalidInput,
        match=r"no algorithm named 'nope' "
        r"\(known: fl-horizontal, fl-score, fl-vertical, psi, psi-rr22, secure-stats, "
        r"tee-join\)",
    ):
        resolve_algorithm(bank_a, first, "nope")


# ------------------------------------------------------------------- dataset show


@contextmanager
def serving(service: NodeService, tmp_path: Path) -> Iterator[Path]:
    """A node's real operator API on a free port, and a node.json pointing at it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "api-token").write_text("token-123")
    port = free_port()
    app = create_app(service, "token-123", tmp_path / "uploads")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    config = NodeConfig(
        name="bank-a", chain_url="http://127.0.0.1:9", manifest=tmp_path / "m.json",
        keystore=Path("keystore.json"), password_env=ENV, tls_key=Path("k"),
        tls_cert=Path("c"), database_url="sqlite://", peer_listen="127.0.0.1:1",
        peer_endpoint="127.0.0.1:1", api_listen=f"127.0.0.1:{port}",
        api_token_file=Path("api-token"), data_dir=Path("data"),
    )  # fmt: skip
    config.save(tmp_path / "node.json")
    try:
        yield tmp_path / "node.json"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def node_api(consortium: Consortium, tmp_path: Path) -> Iterator[Path]:
    """bank-a's node, serving its API."""
    org = consortium.orgs["bank-a"]
    service = NodeService(org.node_clients, org.org_id, DatasetStore(tmp_path / "datasets"))
    with serving(service, tmp_path) as config:
        yield config


def test_dataset_show_prints_the_inferred_column_types(
    node_api: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "accounts.csv"
    csv.write_text("account,balance,segment\nA1,10,retail\nA2,-3,business\n")
    code, stdout, err = run(
        capsys, "dataset", "register", "--config", str(node_api), "--name", "accounts",
        "--file", str(csv), "--classification", "2", "--identifier-columns", "account",
    )  # fmt: skip
    assert code == 0, err
    dataset_id = json.loads(stdout)["datasetId"]
    for reference in ("accounts", dataset_id):
        code, stdout, err = run(capsys, "dataset", "show", "--config", str(node_api), reference)
        assert code == 0, err
        shown = json.loads(stdout)
        assert shown["datasetId"] == dataset_id and shown["rowCount"] == 2
        types = {c["name"]: (c["type"], c["identifier"]) for c in shown["columns"]}
        assert types == {
            "account": ("string", True),
            "balance": ("integer", False),
            "segment": ("string", False),
        }
        assert "account: string [identifier], balance: integer, segment: string" in err
        assert "provnet grant create" in err
    code, _, err = run(capsys, "dataset", "show", "--config", str(node_api), "loans")
    assert code == 2 and "loans" in err and err.count("\n") == 1


# ------------------------------------------------------------------- on anvil, by URL


def test_a_new_consortium_from_the_cli_alone(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    anvil_url: str,
) -> None:
    """key new, consortium init, chain deploy, chain fund, algorithm and org verbs."""
    monkeypatch.setenv(ENV, PASSWORD)
    monkeypatch.setenv("PROVNET_ADMIN_PASSWORD", PASSWORD)
    for name in ("a", "b"):
        assert run(capsys, "key", "new", "--out", str(tmp_path / f"admin-{name}.json"))[0] == 0
    admin_a = keystore_address(tmp_path / "admin-a.json")
    genesis, manifest = tmp_path / "genesis.json", tmp_path / "manifest.json"
    code, _, err = run(
        capsys, "consortium", "init", "--out", str(genesis), "--dev", "--threshold", "50",
        "--member", f"Bank A:provider,consumer:{tmp_path / 'admin-a.json'}",
        "--member", f"Bank B:provider,consumer:{tmp_path / 'admin-b.json'}",
    )  # fmt: skip
    assert code == 0, err
    code, stdout, err = run(
        capsys, "chain", "deploy", "--chain", anvil_url, "--genesis", str(genesis),
        "--dev-account", "--out", str(manifest),
    )  # fmt: skip
    assert code == 0, err
    assert "provnet node init" in stdout
    source = ["--chain", anvil_url, "--manifest", str(manifest)]
    admin = ["--admin-keystore", str(tmp_path / "admin-a.json")]

    # The admin was never funded: one line naming it and the command that fixes it.
    chain = Chain.connect(anvil_url)
    head = chain.head()
    code, _, err = run(capsys, "algorithm", "propose", *source, *admin, "secure-stats")
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"provnet: chain error: account {admin_a} has no gas (balance 0 wei;")
    assert err.rstrip().endswith(f"provnet chain fund --chain {anvil_url} {admin_a}")
    assert chain.head() == head

    code, stdout, err = run(
        capsys, "chain", "fund", "--chain", anvil_url, "--eth", "5",
        str(tmp_path / "admin-a.json"), str(tmp_path / "admin-b.json"),
    )  # fmt: skip
    assert code == 0, err
    assert chain.w3.eth.get_balance(chain.w3.to_checksum_address(admin_a)) == 5 * 10**18
    code, stdout, err = run(capsys, "algorithm", "propose", *source, *admin, "secure-stats")
    assert code == 0, err
    proposed = json.loads(stdout)
    assert (proposed["status"], proposed["votes"], proposed["requiredVotes"]) == ("PROPOSED", 1, 2)
    assert "provnet algorithm vote" in proposed["next"]
    code, _, err = run(capsys, "algorithm", "vote", *source, *admin, "secure-stats")
    assert code == 2 and "already voted" in err
    code, stdout, err = run(
        capsys, "algorithm", "vote", *source,
        "--admin-keystore", str(tmp_path / "admin-b.json"), "secure-stats",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["status"] == "APPROVED"
    code, stdout, err = run(capsys, "algorithm", "list", *source)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert sorted(rows) == [
        "fl-horizontal",
        "fl-score",
        "fl-vertical",
        "psi",
        "psi-rr22",
        "secure-stats",
        "tee-join",
    ]
    for other in ("psi", "psi-rr22"):
        assert rows[other]["status"] == "NONE" and rows[other]["runnableHere"] is True
    assert rows["secure-stats"] == {
        "name": "secure-stats",
        "version": stats.VERSION,
        "digest": hex32(package_of(stats).digest),
        "kind": "MPC",
        "status": "APPROVED",
        "votes": 2,
        "deprecationVotes": 0,
        "runnableHere": True,
    }

    # A node registered but never funded: its first dataset registration used to answer
    # HTTP 500 with an out-of-gas traceback in the node log.
    deployment = Deployment.load(manifest)
    admin_clients = Clients.bind(
        chain, deployment, Sender(chain, read_keystore(tmp_path / "admin-a.json", PASSWORD))
    )
    node = new_account()
    admin_clients.consortium.register_node(node.address, "a.example:7000", name_id("cert", "a"))
    service = NodeService(
        Clients.bind(chain, deployment, Sender(chain, node)),
        name_id("org", "Bank A"),
        DatasetStore(tmp_path / "datasets"),
    )
    csv = tmp_path / "accounts.csv"
    csv.write_text("account,balance\nA1,10\n")
    with serving(service, tmp_path / "api") as config:
        code, _, err = run(
            capsys, "dataset", "register", "--config", str(config), "--name", "accounts",
            "--file", str(csv), "--classification", "2",
        )  # fmt: skip
    assert code != 0 and "internal error" not in err, err
    assert f"account {node.address} has no gas (balance 0 wei;" in err
    assert f"provnet chain fund --chain {anvil_url} {node.address}" in err

    code, stdout, err = run(capsys, "org", "list", *source)
    assert code == 0, err
    listed = json.loads(stdout)
    assert [(o["name"], o["orgId"], o["status"]) for o in listed] == [
        ("Bank A", hex32(name_id("org", "Bank A")), "ACTIVE"),
        ("Bank B", hex32(name_id("org", "Bank B")), "ACTIVE"),
    ]
    assert listed[0]["admin"] == admin_a and listed[0]["roles"] == ["provider", "consumer"]
    for reference in ("Bank B", hex32(name_id("org", "Bank B"))):
        code, stdout, err = run(capsys, "org", "show", *source, reference)
        assert code == 0 and json.loads(stdout) == listed[1], err
    code, _, err = run(capsys, "org", "show", *source, "Bank C")
    assert code == 2 and "'Bank A', 'Bank B'" in err
    code, _, err = run(capsys, "org", "list", "--chain", anvil_url)
    assert code == 2 and "--manifest" in err


def test_watch_names_the_failure_and_every_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """`task watch` on a failed task used to print only CHAIN_TASKFAILED."""
    from scripts.operator_command import _print_failure

    _print_failure(
        {
            "state": "FAILED",
            "failure": {"reason": "GRANT_REVOKED", "code": 4, "reportedBy": "0xB", "org": "B"},
            "refusals": [{"node": "0xB", "org": "B", "reason": "GRANT_REVOKED", "code": 4}],
        }
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "failed: GRANT_REVOKED (code 4) reported by 0xB of B",
        "refused by 0xB of B: GRANT_REVOKED (code 4)",
    ]


def test_dev_up_runs_a_registered_funded_consortium_until_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`provnet dev up --orgs 2`: anvil, two nodes serving, every algorithm approved; Ctrl-C
    stops every process it started."""
    import signal
    import subprocess

    import httpx

    directory = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if k != ENV}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "dev", "up", "--orgs", "2", "--dir", str(directory)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("ready: "):
                break
        assert lines and lines[-1].startswith("ready: 2 nodes"), "".join(lines)
        summary = json.loads((directory / "consortium.json").read_text())
        assert oct((directory / "key-password").stat().st_mode & 0o777) == "0o600"
        source = ["--config", summary["nodes"][0]["config"]]
        code, stdout, err = run(capsys, "org", "list", *source)
        assert code == 0, err
        orgs = json.loads(stdout)
        assert [o["name"] for o in orgs] == ["Org 1", "Org 2"]
        assert [len(o["nodes"]) for o in orgs] == [1, 1]
        assert all(o["nodes"][0]["status"] == "ACTIVE" for o in orgs)
        code, stdout, err = run(capsys, "algorithm", "list", *source)
        assert sorted((r["name"], r["status"]) for r in json.loads(stdout)) == [
            ("fl-horizontal", "APPROVED"),
            ("fl-score", "APPROVED"),
            ("fl-vertical", "APPROVED"),
            ("psi", "APPROVED"),
            ("psi-rr22", "APPROVED"),
            ("secure-stats", "APPROVED"),
            ("tee-join", "APPROVED"),
        ]
        chain = Chain.connect(summary["chain"])
        for node in summary["nodes"]:
            assert chain.w3.eth.get_balance(node["node"]) > 0
            assert httpx.get(f"{node['api']}/health", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    with pytest.raises(Exception, match="does not answer"):
        Chain.connect(summary["chain"], timeout=2.0)
    for node in summary["nodes"]:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{node['api']}/health", timeout=2)
