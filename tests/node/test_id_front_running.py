"""Ids cannot be front-run: the node's task, dataset and evidence-log ids are namespaced
by its organisation (or account) on chain, so a member that claims the same request id,
dataset name or log name first only creates its own; the victim's node goes on unharmed.

Real chain (eth-tester), real stores and protocol, in-memory transport (runner harness).
"""

from __future__ import annotations

from pathlib import Path

from ledger.clients.tasks import Participant, TaskState
from ledger.ids import dataset_id_for, hex32, name_id, task_id_for
from ledger.transcript import evidence_log_id, evidence_log_name
from node.algorithms import stats
from node.algorithms.package import package_of
from tests.conftest import Consortium
from tests.node.runner_harness import COLUMNS, standard_network, write_rows

PARAMS = {"columns": COLUMNS, "value_column": "balance"}


def test_claiming_the_victims_ids_first_does_not_hurt_it(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = standard_network(consortium, tmp_path, rows_each=60)
    orgs = consortium.orgs
    victim, attacker = orgs["bank-a"], orgs["bank-b"].clients  # bank-b's admin account
    request = "quarterly-balances"
    victim_task = task_id_for(victim.org_id, name_id("task", request))
    now = int(consortium.chain.w3.eth.get_block("latest")["timestamp"])

    # The attacker sees the victim's request id and takes it first: its own task.
    receipt = attacker.tasks.create(
        name_id("task", request),
        package_of(stats).digest,
        name_id("params", "anything"),
        now + 600,
        [Participant(orgs["bank-b"].node.address)],
    )
    squatted = attacker.tasks.created_id(receipt)
    assert squatted == task_id_for(orgs["bank-b"].org_id, name_id("task", request))
    assert squatted != victim_task
    # ... and the name of the victim node's evidence log for that task, with a huge size.
    attacker.anchors.create_log(evidence_log_name(victim_task), 2**64 - 1, name_id("root", "x"))
    # ... and the victim's dataset name.
    write_rows(tmp_path / "a.csv", 7, 30)
    attacker.datasets.register(
        name_id("dataset", "accounts"),
        attacker.datasets.version_info(bytes.fromhex(net.providers[0]["datasetId"][2:]), 1),
    )

    # The victim's node creates its task under its own id, runs it and anchors evidence.
    task_id = net.create(request, PARAMS)
    assert task_id == victim_task
    info = victim.clients.tasks.info(task_id)
    assert info.creator_org == victim.org_id
    assert net.drive(task_id) == TaskState.COMPLETED
    for node in net.nodes.values():
        log_id = evidence_log_id(node.runner.address, task_id)
        assert node.clients.anchors.owner(log_id) == node.runner.address
        size, root = node.clients.anchors.latest(log_id)
        assert (size, root) == (node.evidence.size(task_id), node.evidence.root(task_id))
    # A retry of the same request finds the same task instead of creating another.
    assert net.creator.create_task(request, stats.NAME, PARAMS, net.providers, 3600)[
        "taskId"
    ] == hex32(task_id)

    # The victim registers its dataset under the name the attacker used: its own id.
    registered = net.creator.register_dataset("accounts", tmp_path / "a.csv", 2)
    mine = dataset_id_for(victim.org_id, name_id("dataset", "accounts"))
    assert registered["datasetId"] == hex32(mine)
    assert victim.clients.datasets.owner(mine) == victim.org_id
    theirs = dataset_id_for(orgs["bank-b"].org_id, name_id("dataset", "accounts"))
    assert victim.clients.datasets.owner(theirs) == orgs["bank-b"].org_id
