"""Gas per contract function, as JSON, with baselines measured in the same run.

Gas is deterministic for a given build and input, so one run on the embedded chain is
enough. Baselines: a plain ether transfer (the floor of any transaction) and, for
anchoring, the naive design of one transaction per record compared with one
`AnchorLog.checkpoint` of a Merkle root over the same records.

    .venv/bin/python -m scripts.bench.gas [--records 64]
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict
from typing import Any, ClassVar

from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt

from ledger import merkle
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.tasks import Participant, Reason
from ledger.deploy import GenesisMember, Governance, deploy
from ledger.deployment import Deployment
from ledger.ids import dataset_id_for, name_id, task_id_for
from ledger.keys import new_account
from ledger.roles import Role
from ledger.transactions import Sender
from scripts.demo import ScenarioResult, run_scenario


class RecordingSender(Sender):
    """A sender that notes the gas of every transaction by contract function."""

    log: ClassVar[dict[str, list[int]]] = defaultdict(list)

    def transact(
        self, fn: ContractFunction | ContractConstructor, gas: int | None = None
    ) -> TxReceipt:
        receipt = super().transact(fn, gas)
        key = f"{fn.address}.{fn.fn_name}" if isinstance(fn, ContractFunction) else "deploy"
        self.log[key].append(int(receipt["gasUsed"]))
        return receipt


def _summary(values: list[int]) -> dict[str, Any]:
    return {"calls": len(values), "min": min(values), "max": max(values)}


def measure(records: int) -> dict[str, Any]:
    chain = Chain.start_embedded()
    RecordingSender.log.clear()
    scenario = run_scenario(chain, lambda _: None, RecordingSender)
    if not scenario.report["verified"]:
        raise RuntimeError("scenario did not verify; gas figures would be meaningless")
    _exercise_the_rest(chain, scenario)
    timelocked = _exercise_the_timelock(chain, scenario)
    member = scenario.nodes["Bank A"]
    anchoring = _anchor_comparison(member, records)
    names = {c.address.lower(): n for n, c in scenario.deployment.contracts.items()}
    names |= {c.address.lower(): n for n, c in timelocked.contracts.items()}
    by_label: dict[str, list[int]] = defaultdict(list)
    for key, values in sorted(RecordingSender.log.items()):
        by_label[_label(key, names)].extend(values)  # both deployments under one name
    per_function = {label: _summary(values) for label, values in by_label.items()}

    assert member.anchors.sender is not None
    transfer = member.anchors.sender.send_value(member.anchors.sender.address, 0)
    baseline_transfer = int(transfer["gasUsed"])
    return {
        "benchmark": "gas",
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "chain": "eth-tester (py-evm), evmVersion prague, optimizer 200 runs",
        "baseline": {"plain_transfer_gas": baseline_transfer},
        "functions": {
            name: {**s, "max_over_transfer": round(s["max"] / baseline_transfer, 2)}
            for name, s in sorted(per_function.items())
        },
        "anchoring": anchoring,
    }


def _exercise_the_rest(chain: Chain, scenario: ScenarioResult) -> None:
    """Call every mutating function the scenario does not, through recording senders."""
    a, b, reg = (scenario.admins[n] for n in ("Bank A", "Bank B", "Regulator"))
    node_a, node_b = scenario.nodes["Bank A"], scenario.nodes["Bank B"]
    newcomer = new_account()
    chain.fund(newcomer.address, 10**20)
    org = name_id("org", "Carrier C")
    proposal = a.consortium.propose_member(org, "Carrier C", int(Role.PROVIDER), newcomer.address)
    b.consortium.vote(proposal)
    b.consortium.vote(a.consortium.propose_suspension(org))
    b.consortium.vote(a.consortium.propose_reinstatement(org))
    spare = new_account()
    a.consortium.register_node(spare.address, "127.0.0.1:7999", name_id("cert", "spare"))
    a.consortium.update_node(spare.address, "127.0.0.1:7998", name_id("cert", "spare2"))
    a.consortium.revoke_node(spare.address)

    old = name_id("algorithm", "old")
    a.algorithms.propose(old, "old", "0", AlgorithmKind.OTHER)
    b.algorithms.approve(old)
    a.algorithms.propose_deprecation(old)
    b.algorithms.vote_deprecation(old)

    dataset = dataset_id_for(name_id("org", "Bank A"), name_id("dataset", "Bank A/accounts"))
    current = a.datasets.version_info(dataset, 1)
    a.datasets.add_version(dataset, current, "file://v2")

    task_id = bytes.fromhex(scenario.report["task"][2:])
    info = node_a.tasks.info(task_id)
    grant = b.authorizations.grant(
        dataset_id_for(name_id("org", "Bank B"), name_id("dataset", "Bank B/accounts")),
        name_id("org", "Bank A"),
        name_id("purpose", "bench"), info.deadline, 1,
    )  # fmt: skip
    b.authorizations.revoke(grant)

    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    for label, finish in (("refused", "refuse"), ("reported", "report"), ("expired", "expire")):
        request = name_id("task", f"bench-{label}")
        tid = task_id_for(name_id("org", "Bank A"), request)
        node_a.tasks.create(
            request, info.algorithm_digest, info.params_digest, now + 600,
            [Participant(node_a.account), Participant(node_b.account)],
        )  # fmt: skip
        if finish == "refuse":
            node_b.tasks.refuse(tid, Reason.PROTOCOL_ERROR)
        elif finish == "report":
            node_a.tasks.accept(tid)
            node_b.tasks.accept(tid)
            node_a.tasks.anchor_input(tid, name_id("input", "a"))
            node_a.tasks.anchor_checkpoint(tid, 1, name_id("checkpoint", "1"))
            node_a.tasks.report_failure(tid, Reason.PEER_TIMEOUT)
        else:
            chain.w3.provider.ethereum_tester.time_travel(now + 601)  # type: ignore[attr-defined]
            node_a.tasks.expire(tid)
    reg.datasets.retire(
        dataset_id_for(name_id("org", "Regulator"), name_id("dataset", "Regulator/accounts"))
    )


def _exercise_the_timelock(chain: Chain, scenario: ScenarioResult) -> Deployment:
    """Queue, object, execute, veto and expire proposals on a second, timelocked deployment.

    The scenario's consortium has no timelock (its carrying votes execute at once), so the
    timelock functions are measured on a deployment with a 2-day timelock and a 7-day
    lifetime (threshold 50 %: 2 of its 3 genesis members, the scenario's organisations).
    """
    admins = {n: c.consortium.sender for n, c in scenario.admins.items()}
    assert all(s is not None for s in admins.values())
    accounts = {n: s.account for n, s in admins.items() if s is not None}
    roles = {"Bank A": Role.PROVIDER | Role.CONSUMER, "Bank B": Role.PROVIDER | Role.CONSUMER}
    genesis = [
        GenesisMember(
            name_id("org", n), n, int(roles.get(n, Role.REGULATOR | Role.PROVIDER)), a.address
        )
        for n, a in accounts.items()
    ]
    deployer = new_account()
    chain.fund(deployer.address, 10**20)
    settings = Governance(threshold_percent=50, min_approvals=2)
    deployment = deploy(chain, RecordingSender(chain, deployer), settings, genesis)
    a, b, reg = (
        Clients.bind(chain, deployment, RecordingSender(chain, accounts[n]))
        for n in ("Bank A", "Bank B", "Regulator")
    )
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]

    def later(seconds: int) -> None:
        tester.time_travel(int(chain.w3.eth.get_block("latest")["timestamp"]) + seconds)

    newcomer = new_account()
    queued = a.consortium.propose_member(
        name_id("org", "Carrier D"), "Carrier D", int(Role.PROVIDER), newcomer.address
    )
    b.consortium.vote(queued)  # 2 of 3 at 50 %: queued for the timelock
    reg.consortium.object(queued)  # one objection of the two that cancel
    digest = name_id("algorithm", "timelocked")
    a.algorithms.propose(digest, "timelocked", "1", AlgorithmKind.OTHER)
    algorithm_proposal = a.algorithms.latest_proposal(digest)
    b.algorithms.approve(digest)
    reg.algorithms.object(algorithm_proposal)
    later(settings.timelock_seconds + 1)
    b.consortium.execute(queued)
    b.algorithms.execute(algorithm_proposal)

    vetoed = a.consortium.propose_suspension(name_id("org", "Bank B"))
    reg.consortium.veto(vetoed)
    other = name_id("algorithm", "vetoed")
    a.algorithms.propose(other, "vetoed", "1", AlgorithmKind.OTHER)
    reg.algorithms.veto(a.algorithms.latest_proposal(other))

    lapsing = a.consortium.propose_suspension(name_id("org", "Bank B"))
    lapsing_algorithm = name_id("algorithm", "lapsing")
    a.algorithms.propose(lapsing_algorithm, "lapsing", "1", AlgorithmKind.OTHER)
    later(settings.proposal_lifetime_seconds + 1)
    b.consortium.expire(lapsing)
    b.algorithms.expire(a.algorithms.latest_proposal(lapsing_algorithm))
    return deployment


def _label(key: str, names: dict[str, str]) -> str:
    address, _, function = key.partition(".")
    return f"{names.get(address.lower(), address)}.{function}" if function else key


def _anchor_comparison(member: Clients, records: int) -> dict[str, Any]:
    """One checkpoint of a Merkle root over N records vs N one-record checkpoints."""
    leaves = [merkle.leaf_hash(f"record-{i}".encode()) for i in range(records)]
    batched = member.anchors.append(name_id("log", "batched"), records, merkle.root(leaves))
    naive_total = 0
    for i in range(records):
        receipt = member.anchors.append(
            name_id("log", "naive"), i + 1, merkle.root(leaves[: i + 1])
        )
        naive_total += int(receipt["gasUsed"])
    return {
        "records": records,
        "one_checkpoint_gas": int(batched["gasUsed"]),
        "one_tx_per_record_gas": naive_total,
        "naive_over_batched": round(naive_total / int(batched["gasUsed"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(measure(args.records), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
