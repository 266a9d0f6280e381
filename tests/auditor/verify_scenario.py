"""One completed multi-party task, verified: the material the verifier and report tests
mutate. Real nodes (tests/node/runner_harness.py) on a fresh eth-tester chain, the real
secure-statistics protocol and real SQLite evidence stores; built once per test module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.replay import task_history
from auditor.verifier import Check, TaskHistory, deployment_checks, verify_task
from ledger.artifacts import load_artifact
from ledger.chain import Chain
from ledger.clients.tasks import TaskState
from ledger.deployment_binding import read_codes, verify_deployment
from ledger.events import Event
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry
from node.algorithms import output_policy, stats
from tests.conftest import Consortium, build_consortium
from tests.node.runner_harness import COLUMNS, Network, standard_network

PARAMS: dict[str, Any] = {
    "columns": COLUMNS,
    "value_column": "balance",
    "group_column": "segment",
    "categories": ["retail", "business", "private"],
}


@dataclass
class Completed:
    consortium: Consortium
    net: Network
    task_id: bytes
    history: TaskHistory
    transcripts: dict[str, list[Entry]]
    params: ParamsEnvelope
    result: dict[str, Any]
    codes: dict[str, bytes]
    artifacts: dict[str, dict[str, Any]]
    head: int

    def deployment(self) -> list[Check]:
        chain, deployment = self.consortium.chain, self.consortium.deployment
        return deployment_checks(verify_deployment(chain, deployment, self.head))

    def verify(
        self,
        history: TaskHistory | None = None,
        transcripts: Mapping[str, Sequence[Entry]] | None = None,
        params: ParamsEnvelope | None = None,
        deployment: Sequence[Check] | None = None,
    ) -> list[Check]:
        return verify_task(
            history or self.history,
            self.transcripts if transcripts is None else transcripts,
            params or self.params,
            deployment=self.deployment() if deployment is None else deployment,
        )

    def node(self, name: str) -> str:
        return self.net.nodes[name].runner.address

    def event(self, name: str, node: str | None = None, **match: Any) -> int:
        """Index in the history of the one event called ``name`` (acting ``node``)."""
        found = [
            i
            for i, e in enumerate(self.history.all_events)
            if e.name == name
            and (node is None or str(e.args.get("node", "")).lower() == node.lower())
            and all(e.args.get(k) == v for k, v in match.items())
        ]
        assert len(found) == 1, (name, node, match, len(found))
        return found[0]

    def with_arg(self, index: int, key: str, value: object) -> TaskHistory:
        """The history with one argument of one event replaced."""
        events = list(self.history.all_events)
        events[index] = dataclasses.replace(events[index], args={**events[index].args, key: value})
        return TaskHistory(self.task_id, events, self.history.timestamps)

    def with_event(self, event: Event) -> TaskHistory:
        events = sorted([*self.history.all_events, event], key=lambda e: e.position)
        return TaskHistory(self.task_id, events, self.history.timestamps)


def flip(value: bytes, at: int = 0) -> bytes:
    """``value`` with one byte changed."""
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


def complete_a_task(tmp: Path) -> Completed:
    consortium = build_consortium(Chain.start_embedded())
    net = standard_network(consortium, tmp, rows_each=80)
    task_id = net.create("verify-scenario", PARAMS)
    assert net.drive(task_id) == TaskState.COMPLETED
    chain, deployment = consortium.chain, consortium.deployment
    answer = net.creator.task_result("0x" + task_id.hex())
    expected = stats.plaintext_stats(
        stats.StatsParams.from_json(PARAMS), net.rows, output_policy.effective([2])
    ).to_json()
    got = answer["result"]
    assert {k: v for k, v in got.items() if k != "contributors"} == {
        k: v for k, v in expected.items() if k != "contributors"
    }
    head = chain.head()
    return Completed(
        consortium=consortium,
        net=net,
        task_id=task_id,
        history=task_history(chain, deployment, task_id),
        transcripts={n.runner.address: n.evidence.entries(task_id) for n in net.nodes.values()},
        params=ParamsEnvelope.from_json(answer["params"]),
        result=got,
        codes=read_codes(chain, deployment, head),
        artifacts={name: load_artifact(name) for name in deployment.contracts},
        head=head,
    )
