"""The consortium demo: one consumer bank, three provider banks and a regulator, one real
secure-statistics job between the banks' own nodes, checked against the plaintext and
audited.

`provnet demo` starts a private anvil chain, deploys the contracts, and builds each bank's
node with `provnet node init` and `node.process.build_node`, the code `provnet node run`
uses: task runner, mutual-TLS gRPC peer server, chain-bound trust (see
`scripts.local_nodes`). The scenario then uses the operator's verbs (NodeService, which
the REST API calls): approve the `secure-stats` algorithm by vote, register each
provider's generated account table, grant the consumer, create the task. The nodes carry
it out on their own, driven by the chain. The secure figures the consumer reads are
printed beside the same statistics computed in the clear over the pooled rows (they must
be equal), and the regulator's view follows: the auditor replays the chain and checks
every node's evidence transcript and the disclosed parameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from auditor.service.verification import TaskVerifier
from auditor.verifier import Check
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.tasks import TaskState
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import InvalidInput, hex32, name_id
from ledger.keys import new_account
from ledger.roles import Role
from ledger.task_params import ParamsEnvelope
from ledger.transactions import Sender
from ledger.transcript import Entry
from node.algorithms import output_policy, psi, stats
from node.algorithms.package import package_of
from scripts.anvil import running_anvil

if TYPE_CHECKING:
    from scripts.local_nodes import LocalNode

FUNDING = 10**20
CONSUMER = "Bank A"
PROVIDERS = ("Bank B", "Bank C", "Bank D")
REGULATOR = "Regulator"
ROWS_PER_PROVIDER = 200
CLASSIFICATION = 2  # no differential-privacy noise at this level: the figures are exact
SEGMENTS = ("retail", "business", "private", "student")
COLUMNS = [
    {"name": "account", "type": "string", "identifier": True},  # never filtered on
    {"name": "balance_cents", "type": "integer"},
    {"name": "segment", "type": "string"},
]
PARAMS: dict[str, Any] = {
    "columns": COLUMNS,
    "value_column": "balance_cents",
    "group_column": "segment",
    "categories": ["retail", "business", "private"],  # "student" counts as other
}
#: How long the demo waits for the nodes to finish the task (generous: 2 shared cores).
TASK_TIMEOUT = 240.0
#: After the chain ends the task, how long to wait for every node's local steps.
SETTLE_TIMEOUT = 30.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ScenarioResult:
    report: dict[str, Any]
    deployment: Deployment
    admins: dict[str, Clients]  # clients acting as each organisation's admin
    nodes: dict[str, Clients]  # clients acting as each bank's node
    transcripts: dict[str, list[Entry]]  # node address -> its evidence transcript
    params: ParamsEnvelope | None  # what the consumer disclosed to the auditor
    checks: list[Check]


def short(value: bytes) -> str:
    return "0x" + value.hex()[:16] + "..."


def write_accounts(path: Path, seed: int, rows: int) -> list[dict[str, int | str]]:
    """A synthetic account table (account id, balance in cents, segment); returns its
    rows as the plaintext reference reads them."""
    rng = random.Random(seed)
    data: list[dict[str, int | str]] = [
        {
            "account": f"ACC{seed}{i:07d}",
            "balance_cents": rng.randrange(-5_000, 10**7),
            "segment": rng.choices(SEGMENTS, weights=(5, 3, 2, 1))[0],
        }
        for i in range(rows)
    ]
    path.write_text(
        "account,balance_cents,segment\n"
        + "".join(f"{r['account']},{r['balance_cents']},{r['segment']}\n" for r in data)
    )
    return data


def run_demo(as_json: bool = False) -> int:
    """`provnet demo`: the scenario on a fresh anvil, ending with the regulator's auditor
    service verifying the task through its API; exit 0 only if it verified and the
    secure figures equal the plaintext ones."""
    say: Say = (lambda _: None) if as_json else (lambda line: print(line, flush=True))
    # Certificate discovery does a TLS handshake without a client certificate, which gRPC
    # core logs at INFO on the serving side (as for `provnet node run`).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with running_anvil() as url:
        chain = Chain.connect(url)
        say(f"chain: anvil at {url}, chain id {chain.chain_id}")
        report = run_scenario(chain, say, auditor=True).report
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        say(f"verified: {report['verified']}")
    return 0 if report["verified"] else 1


def run_scenario(
    chain: Chain, say: Say, providers: int = len(PROVIDERS), *, auditor: bool = False
) -> ScenarioResult:
    """One consumer, `providers` provider banks and a regulator run one secure-statistics
    task between the banks' nodes; returns the report with the auditor's checks.

    With ``auditor`` the regulator also runs a node (it takes no part in the task) and,
    at the end, the auditor service (`scripts.demo_auditor`): it indexes the chain and
    verifies the task through its API, fetching the evidence with the regulator's node;
    the report then holds ``auditor`` (page address, report digest, verdict).

    The chain must be reached by URL (anvil or a real node): the nodes are built by
    `build_node`, which connects to the chain named in their config.
    """
    if chain.embedded:
        raise InvalidInput("chain", "the nodes reach their chain by URL (anvil), not eth-tester")
    if not 2 <= providers <= len(PROVIDERS):
        raise InvalidInput("providers", f"must be 2..{len(PROVIDERS)}, got {providers}")
    # Imported here, after `run_demo` quietened gRPC core (it reads its log level once).
    from scripts.local_nodes import start_all

    banks = [CONSUMER, *PROVIDERS[:providers]]
    with tempfile.TemporaryDirectory(prefix="provnet-demo-") as tmp:
        base = Path(tmp)
        deployment, admins = _deploy(chain, banks, say)
        manifest = base / "manifest.json"
        deployment.save(manifest)
        nodes: dict[str, LocalNode] = {}
        regulator: LocalNode | None = None
        try:
            for bank in banks:
                nodes[bank] = _node(chain, base, bank, manifest, admins[bank])
            if auditor:
                regulator = _node(chain, base, REGULATOR, manifest, admins[REGULATOR])
            start_all([*nodes.values(), *([regulator] if regulator is not None else [])])
            for bank, node in nodes.items():
                say(
                    f"{bank}: node {node.address} registered and running, peers on "
                    f"{node.node.config.peer_endpoint} (mutual TLS, certificate "
                    f"{short(node.node.server.identity.cert_sha256)})"
                )
            result = _scenario(chain, deployment, base, admins, nodes, say)
            result = _with_psi(chain, deployment, base, admins, nodes, result, say)
            if regulator is not None:
                result = _audit_service(chain, base, admins, regulator, result, say)
            return result
        finally:
            for node in [*nodes.values(), *([regulator] if regulator is not None else [])]:
                node.stop()


def _with_psi(
    chain: Chain,
    deployment: Deployment,
    base: Path,
    admins: Mapping[str, Clients],
    nodes: Mapping[str, LocalNode],
    result: ScenarioResult,
    say: Say,
) -> ScenarioResult:
    """The PSI job (`scripts.demo_psi`) between the first two banks, added to the report."""
    from scripts.demo_psi import run_psi_job

    digest = _approve_algorithm(admins, list(nodes), say, psi)
    job = run_psi_job(chain, deployment, base, nodes, digest, say, _wait)
    report = {
        **result.report,
        "psi": job,
        "verified": result.report["verified"] and job["verified"],
    }
    return dataclasses.replace(result, report=report)


def _audit_service(
    chain: Chain,
    base: Path,
    admins: Mapping[str, Clients],
    regulator: LocalNode,
    result: ScenarioResult,
    say: Say,
) -> ScenarioResult:
    """The auditor service's verification of the task, added to the report."""
    from scripts.demo_auditor import audit_through_service

    sender, node_sender = admins[REGULATOR].tasks.sender, regulator.clients.tasks.sender
    assert sender is not None and node_sender is not None
    task_id = bytes.fromhex(result.report["task"][2:])
    disclosed = None if result.params is None else result.params.to_json()
    service = audit_through_service(
        chain,
        base,
        regulator.config_path,
        sender.account,
        node_sender.account,
        task_id,
        disclosed,
        say,
    )
    report = {
        **result.report,
        "auditor": service,
        "verified": result.report["verified"] and service["verified"],
    }
    return dataclasses.replace(result, report=report)


def _deploy(chain: Chain, banks: Sequence[str], say: Say) -> tuple[Deployment, dict[str, Clients]]:
    orgs = [(bank, int(Role.PROVIDER | Role.CONSUMER)) for bank in banks]
    orgs.append((REGULATOR, int(Role.REGULATOR)))
    deployer = new_account()
    admin_accounts = {name: new_account() for name, _ in orgs}
    for account in [deployer, *admin_accounts.values()]:
        chain.fund(account.address, FUNDING)
    genesis = [
        GenesisMember(name_id("org", name), name, roles, admin_accounts[name].address)
        for name, roles in orgs
    ]
    deployment = deploy(chain, Sender(chain, deployer), Governance.dev(50), genesis)
    say(
        f"deployed the contracts (Consortium at {deployment.address('Consortium')}); "
        f"members: {', '.join(name for name, _ in orgs)}"
    )
    admins = {
        name: Clients.bind(chain, deployment, Sender(chain, account))
        for name, account in admin_accounts.items()
    }
    return deployment, admins


def _node(chain: Chain, base: Path, bank: str, manifest: Path, admin: Clients) -> LocalNode:
    """`provnet node init`, funding, `provnet node register` (by the bank's admin), then
    the node built as `provnet node run` builds it (not started yet)."""
    from scripts.local_nodes import LocalNode, init_node

    directory = base / bank.lower().replace(" ", "-")
    made = init_node(directory, bank, chain.url, manifest)
    chain.fund(made.address, FUNDING)
    admin.consortium.register_node(made.address, made.endpoint, made.cert_sha256)
    return LocalNode(bank, made.config_path)


def _approve_algorithm(
    admins: Mapping[str, Clients], banks: Sequence[str], say: Say, module: ModuleType = stats
) -> bytes:
    """The consumer's admin proposes the algorithm (`secure-stats` unless told); other
    members vote until it carries."""
    package = package_of(module)
    algorithms = admins[banks[0]].algorithms
    algorithms.propose(package.digest, module.NAME, module.VERSION, module.KIND)
    voters = [banks[0]]
    for bank in banks[1:]:
        if algorithms.is_approved(package.digest):
            break
        admins[bank].algorithms.approve(package.digest)
        voters.append(bank)
    if not algorithms.is_approved(package.digest):
        raise RuntimeError(f"{module.NAME} was not approved after every bank voted")
    say(
        f"algorithm {module.NAME} {module.VERSION} ({short(package.digest)}) approved "
        f"by vote of {', '.join(voters)}"
    )
    return package.digest


def _scenario(
    chain: Chain,
    deployment: Deployment,
    base: Path,
    admins: dict[str, Clients],
    nodes: dict[str, LocalNode],
    say: Say,
) -> ScenarioResult:
    consumer, *providers = nodes
    digest = _approve_algorithm(admins, list(nodes), say)
    rows: list[dict[str, int | str]] = []
    slots: list[dict[str, Any]] = []
    for seed, bank in enumerate(providers, start=1):
        service = nodes[bank].node.service
        path = base / f"{bank.lower().replace(' ', '-')}-accounts.csv"
        rows += write_accounts(path, seed, ROWS_PER_PROVIDER)
        dataset = service.register_dataset(
            "accounts", path, CLASSIFICATION, identifier_columns=["account"]
        )
        grant = service.grant(
            dataset["datasetId"], hex32(name_id("org", consumer)), "fraud-analytics",
            86_400, 3, hex32(digest),
        )  # fmt: skip
        slots.append(
            {
                "node": nodes[bank].address,
                "datasetId": dataset["datasetId"],
                "datasetVersion": dataset["version"],
                "grantId": grant["grantId"],
            }
        )
        say(
            f"{bank}: dataset accounts registered ({dataset['rowCount']} rows, classification "
            f"{CLASSIFICATION}, root {dataset['merkleRoot'][:18]}...), {consumer} granted 3 uses"
        )

    service = nodes[consumer].node.service
    created = service.create_task(
        f"demo-{time.time_ns()}", stats.NAME, PARAMS, slots, valid_for_seconds=3_600
    )
    task_id = bytes.fromhex(created["taskId"][2:])
    say(f"{consumer}: task {short(task_id)} created; the nodes take it from here")
    state = _wait(nodes, task_id, say)
    say(f"task state on chain: {state.name}")

    answer = service.task_result(created["taskId"]) if state == TaskState.COMPLETED else None
    parsed = stats.StatsParams.from_json(PARAMS)
    policy = output_policy.effective([CLASSIFICATION] * len(providers))
    plaintext = stats.plaintext_stats(parsed, rows, policy).to_json()
    secure = None if answer is None else answer["result"]
    equal = secure is not None and _figures(secure) == _figures(plaintext)
    if secure is not None:
        _print_side_by_side(secure, plaintext, consumer, say)
    say(f"secure result equals plaintext: {equal}")

    record = nodes[consumer].node.runner.state.get(task_id)
    disclosed = answer["params"] if answer is not None else (record.params if record else None)
    params = None if disclosed is None else ParamsEnvelope.from_json(disclosed)
    transcripts = {n.address: n.node.runner.evidence.entries(task_id) for n in nodes.values()}
    checks = audit(chain, deployment, task_id, transcripts, params)
    say("auditor verification (the regulator's replay of the chain and the transcripts):")
    for c in checks:
        verdict = {"pass": "PASS", "fail": "FAIL"}.get(c.status, "n/a")
        say(f"  [{verdict}] {c.name}: {c.detail}")
    report = {
        "task": hex32(task_id),
        "chainId": chain.chain_id,
        "state": state.name,
        "algorithm": {"name": stats.NAME, "version": stats.VERSION, "digest": hex32(digest)},
        "providers": [nodes[b].address for b in providers],
        "secure": secure,
        "plaintext": plaintext,
        "secureEqualsPlaintext": equal,
        "checks": [c.to_json() for c in checks],
        "verified": equal and all(c.passed for c in checks),
        "deployment": deployment.to_json(),
    }
    return ScenarioResult(
        report,
        deployment,
        admins,
        {bank: node.clients for bank, node in nodes.items()},
        transcripts,
        params,
        checks,
    )


def audit(
    chain: Chain,
    deployment: Deployment,
    task_id: bytes,
    transcripts: Mapping[str, Sequence[Entry]],
    params: ParamsEnvelope | None,
) -> list[Check]:
    """What `provnet audit verify --transcripts DIR --params FILE` checks (the same
    `TaskVerifier`, on the transcripts the nodes hold)."""
    return TaskVerifier(chain, deployment).verify(task_id, params, transcripts).checks


def _wait(nodes: Mapping[str, LocalNode], task_id: bytes, say: Say) -> TaskState:
    """Until the chain ends the task and every node has finished its own steps (its
    evidence transcript is then complete)."""
    tasks = next(iter(nodes.values())).clients.tasks
    deadline = time.monotonic() + TASK_TIMEOUT
    state = tasks.state(task_id)
    while state in (TaskState.CREATED, TaskState.RUNNING):
        if time.monotonic() > deadline:
            raise RuntimeError(f"task 0x{task_id.hex()} still {state.name} after {TASK_TIMEOUT} s")
        time.sleep(0.2)
        state = tasks.state(task_id)
    settle = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < settle:
        records = [n.node.runner.state.get(task_id) for n in nodes.values()]
        if all(r is not None and r.final for r in records):
            break
        time.sleep(0.2)
    else:
        say(f"not every node finished its local steps within {SETTLE_TIMEOUT} s")
    return state


def _figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The published figures: the contributors list names nodes, not data."""
    return {k: v for k, v in result.items() if k != "contributors"}


def _print_side_by_side(
    secure: Mapping[str, Any], plaintext: Mapping[str, Any], consumer: str, say: Say
) -> None:
    def exact(value: Any) -> str:
        if isinstance(value, dict):
            return f"{value['numerator']}/{value['denominator']} (~{value['value']:.2f})"
        return str(value)

    lines = [("figure", f"secure ({consumer}'s node)", "plaintext (pooled CSV rows)")]
    for key in ("count", "sum", "mean", "variance"):
        lines.append((key, exact(secure[key]), exact(plaintext[key])))
    for s, p in zip(secure["histogram"] or [], plaintext["histogram"] or [], strict=False):
        label = "segment=other" if s["other"] else f"segment={s['category']}"
        lines.append((label, exact(s["count"]), exact(p["count"])))
    width = [max(len(line[i]) for line in lines) for i in range(3)]
    for line in lines:
        say("  " + "  ".join(cell.ljust(width[i]) for i, cell in enumerate(line)).rstrip())
