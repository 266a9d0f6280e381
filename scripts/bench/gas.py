"""Gas per contract function, as JSON, with baselines measured in the same run.

Gas is deterministic for a given build and input, so one run is enough. The run is the
demo's scenario (a real secure-statistics task between in-process nodes, see
`scripts.demo`) on a private anvil, then calls of every mutating function the scenario
does not make. Gas is read back from the chain: every transaction since the start is
decoded to its contract function by selector, so the nodes' own transactions (accept,
anchor, submit, checkpoint) are counted as well as the scripted ones. Baselines: a plain
ether transfer (the floor of any transaction) and, for anchoring, the naive design of
one transaction per record compared with one `AnchorLog.checkpoint` of a Merkle root
over the same records.

    .venv/bin/python -m scripts.bench.gas [--records 64]
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict
from typing import Any

from ledger import merkle
from ledger.artifacts import CONTRACT_NAMES, abi
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
from scripts.anvil import advance_time, running_anvil
from scripts.demo import ScenarioResult, run_scenario

#: Two providers: the consortium has four members (and the bench admits a fifth).
PROVIDERS = 2


def _summary(values: list[int]) -> dict[str, Any]:
    return {"calls": len(values), "min": min(values), "max": max(values)}


def measure(records: int, chain_url: str | None = None) -> dict[str, Any]:
    """The report, on the anvil at `chain_url` or on a private one started for the run."""
    if chain_url is None:
        with running_anvil() as url:
            return _measure(Chain.connect(url), records)
    return _measure(Chain.connect(chain_url), records)


def _measure(chain: Chain, records: int) -> dict[str, Any]:
    first_block = chain.head() + 1
    scenario = run_scenario(chain, lambda _: None, providers=PROVIDERS)
    if not scenario.report["verified"]:
        raise RuntimeError("scenario did not verify; gas figures would be meaningless")
    _exercise_the_rest(chain, scenario)
    timelocked = _exercise_the_timelock(chain, scenario)
    member = scenario.nodes["Bank A"]
    anchoring = _anchor_comparison(member, records)
    names = {c.address.lower(): n for n, c in scenario.deployment.contracts.items()}
    names |= {c.address.lower(): n for n, c in timelocked.contracts.items()}
    by_label = gas_by_function(chain, first_block, names)  # both deployments under one name
    per_function = {label: _summary(values) for label, values in by_label.items()}

    assert member.anchors.sender is not None
    transfer = member.anchors.sender.send_value(member.anchors.sender.address, 0)
    baseline_transfer = int(transfer["gasUsed"])
    return {
        "benchmark": "gas",
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "chain": "anvil --hardfork prague (evmVersion prague), optimizer 200 runs",
        "baseline": {"plain_transfer_gas": baseline_transfer},
        "functions": {
            name: {**s, "max_over_transfer": round(s["max"] / baseline_transfer, 2)}
            for name, s in sorted(per_function.items())
        },
        "anchoring": anchoring,
    }


def gas_by_function(chain: Chain, first_block: int, names: dict[str, str]) -> dict[str, list[int]]:
    """Gas used by every transaction from `first_block` on, keyed `Contract.function`
    (`deploy` for contract creations); transactions to other addresses (funding
    transfers) are left out."""
    decoders = {name: chain.w3.eth.contract(abi=abi(name)) for name in CONTRACT_NAMES}
    found: dict[str, list[int]] = defaultdict(list)
    for number in range(first_block, chain.head() + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            assert not isinstance(tx, bytes)
            receipt = chain.w3.eth.get_transaction_receipt(tx["hash"])
            if tx.get("to") is None:
                label = "deploy"
            else:
                contract = names.get(str(tx["to"]).lower())
                if contract is None:
                    continue
                function, _ = decoders[contract].decode_function_input(tx["input"])
                label = f"{contract}.{function.fn_name}"
            found[label].append(int(receipt["gasUsed"]))
    return dict(sorted(found.items()))


def _exercise_the_rest(chain: Chain, scenario: ScenarioResult) -> None:
    """Call every mutating function the scenario does not, as its admins and nodes."""
    a, b = scenario.admins["Bank A"], scenario.admins["Bank B"]
    voters = [b, scenario.admins["Bank C"]]  # a proposal carries once enough voted
    node_a, node_b = scenario.nodes["Bank A"], scenario.nodes["Bank B"]

    def carry(proposal: bytes) -> None:
        for voter in voters:
            if not a.consortium.proposal_executed(proposal):
                voter.consortium.vote(proposal)

    newcomer = new_account()
    chain.fund(newcomer.address, 10**20)
    org = name_id("org", "Carrier C")
    carry(a.consortium.propose_member(org, "Carrier C", int(Role.PROVIDER), newcomer.address))
    carry(a.consortium.propose_suspension(org))
    carry(a.consortium.propose_reinstatement(org))
    enclave = name_id("measurement", "bench-enclave")
    carry(a.consortium.propose_measurement(enclave, name_id("algorithm", "bench-tee")))
    spare = new_account()
    a.consortium.register_node(spare.address, "127.0.0.1:7999", name_id("cert", "spare"), enclave)
    a.consortium.update_node(spare.address, "127.0.0.1:7998", name_id("cert", "spare2"))
    carry(a.consortium.propose_measurement_revocation(enclave))
    a.consortium.revoke_node(spare.address)

    old = name_id("algorithm", "old")
    a.algorithms.propose(old, "old", "0", AlgorithmKind.OTHER)
    for voter in voters:
        if not a.algorithms.is_approved(old):
            voter.algorithms.approve(old)
    a.algorithms.propose_deprecation(old)
    for voter in voters:
        if a.algorithms.is_approved(old):
            voter.algorithms.vote_deprecation(old)

    dataset = dataset_id_for(name_id("org", "Bank B"), name_id("dataset", "accounts"))
    current = b.datasets.version_info(dataset, 1)
    b.datasets.add_version(dataset, current, "file://v2")

    task_id = bytes.fromhex(scenario.report["task"][2:])
    info = node_a.tasks.info(task_id)
    grant = b.authorizations.grant(
        dataset,
        name_id("org", "Bank A"),
        name_id("purpose", "bench"), info.deadline, 1,
    )  # fmt: skip
    # a metered service (anonymous lookups) settles a period's quota blocks in one call
    b.authorizations.settle_uses(grant, 1, name_id("settlement", "bench-period"))
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
            # a data owner refuses an enclave's report (recorded), then the task
            node_b.tasks.record_attestation_refusal(
                tid, name_id("report", "bench"), "UNKNOWN_MEASUREMENT"
            )
            node_b.tasks.refuse(tid, Reason.PROTOCOL_ERROR)
        elif finish == "report":
            node_a.tasks.accept(tid)
            node_b.tasks.accept(tid)
            node_a.tasks.anchor_input(tid, name_id("input", "a"))
            node_a.tasks.anchor_checkpoint(tid, 1, name_id("checkpoint", "1"))
            node_a.tasks.report_failure(tid, Reason.PEER_TIMEOUT)
        else:
            advance_time(chain, 602)
            node_a.tasks.expire(tid)
    scenario.admins["Bank C"].datasets.retire(
        dataset_id_for(name_id("org", "Bank C"), name_id("dataset", "accounts"))
    )


def _exercise_the_timelock(chain: Chain, scenario: ScenarioResult) -> Deployment:
    """Queue, object, execute, veto and expire proposals on a second, timelocked deployment.

    The scenario's consortium has no timelock (its carrying votes execute at once), so the
    timelock functions are measured on a deployment with a 2-day timelock and a 7-day
    lifetime (threshold 50 %: 2 of its 3 genesis members, the scenario's organisations).
    """
    members = ("Bank A", "Bank B", "Regulator")
    admins = {n: scenario.admins[n].consortium.sender for n in members}
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
    deployment = deploy(chain, Sender(chain, deployer), settings, genesis)
    a, b, reg = (Clients.bind(chain, deployment, Sender(chain, accounts[n])) for n in members)

    def later(seconds: int) -> None:
        advance_time(chain, seconds)

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
