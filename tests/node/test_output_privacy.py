"""Output privacy end to end through the task runner, attacked as a data user would.

Real chain (eth-tester), real stores and protocol, in-memory transport. bank-a is the
consumer (its node aggregates); bank-b and the regulator provide. Every refusal must be
on chain under its named reason, reported by a provider, and the refused task must still
verify (the trail accounts for the outcome); every accepted query must equal the
plaintext computation under the same policy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from auditor.replay import task_history
from auditor.verifier import verify_task
from ledger.clients.tasks import Reason, TaskState
from ledger.ids import InvalidInput, name_id
from ledger.keys import new_account
from ledger.task_params import ParamsEnvelope
from node.algorithms import output_policy, stats
from node.channel import Channel
from node.crypto import secagg
from tests.conftest import Consortium
from tests.node.faulty_channel import FaultyChannel
from tests.node.runner_harness import COLUMNS, Network, standard_network

BASE: dict[str, Any] = {"columns": COLUMNS, "value_column": "balance"}


@pytest.fixture
def net(consortium: Consortium, tmp_path: Path) -> Network:
    return standard_network(
        consortium, tmp_path, rows_each=80, identifier_columns=["account"], protocol_timeout=10.0
    )


def refused_with(net: Network, task_id: bytes, reason: Reason) -> None:
    assert net.drive(task_id) == TaskState.FAILED
    got, reporter = net.failure(task_id)
    assert got == reason
    assert reporter in {p["node"] for p in net.providers}
    # The refused task still verifies: every step is accounted for, the reason is shown.
    checks = verify_task(task_history(net.consortium.chain, net.consortium.deployment, task_id), {})
    assert [c.name for c in checks if not c.passed] == []
    outcome = next(c for c in checks if c.name == "result_digests_agree").evidence["outcome"]
    assert outcome["reason"] == reason.name


def test_an_accepted_query_equals_plaintext_under_the_policy(net: Network) -> None:
    params = {**BASE, "group_column": "segment", "categories": ["retail", "business", "private"]}
    task_id = net.create("ok", params)
    assert net.drive(task_id) == TaskState.COMPLETED
    result = net.creator.task_result("0x" + task_id.hex())
    policy = output_policy.effective([2])
    expected = stats.plaintext_stats(stats.StatsParams.from_json(params), net.rows, policy)
    assert result["result"]["min_group_size"] == policy.min_group_size == 10
    assert {k: v for k, v in result["result"].items() if k != "contributors"} == {
        k: v for k, v in expected.to_json().items() if k != "contributors"
    }
    # The disclosed parameters check against the salted on-chain commitment.
    envelope = ParamsEnvelope.from_json(result["params"])
    history = task_history(net.consortium.chain, net.consortium.deployment, task_id)
    checks = verify_task(history, {}, envelope)
    assert next(c for c in checks if c.name == "params_commitment").passed
    tampered = ParamsEnvelope({**envelope.params, "min_group_size": 99}, envelope.salt)
    rechecked = verify_task(history, {}, tampered)
    assert not next(c for c in rechecked if c.name == "params_commitment").passed


def test_one_customer_by_identifier_is_refused_on_chain(net: Network) -> None:
    """Attack 1: `account == X`, sum of balance, min_group_size 1."""
    params = {**BASE, "filter": {"column": "account", "op": "==", "value": "ACC1-7"}}
    refused_with(net, net.create("one", {**params, "min_group_size": 1}), Reason.IDENTIFIER_FILTER)


def test_one_customer_by_value_is_refused_on_chain(net: Network) -> None:
    target = net.rows[7]["balance"]
    unique = Counter(r["balance"] for r in net.rows[:80])[target] == 1
    assert unique
    params = {**BASE, "filter": {"column": "balance", "op": "==", "value": target}}
    refused_with(net, net.create("value", {**params, "min_group_size": 1}), Reason.GROUP_TOO_SMALL)


def test_the_two_query_difference_is_refused_on_chain(net: Network) -> None:
    """Attack 1b: `balance >= v` then `balance > v`, where exactly one of bank-b's
    customers has balance v: each query is large, their difference is one customer."""
    bank_b = net.rows[:80]
    counts = Counter(r["balance"] for r in bank_b)
    ordered = sorted(r["balance"] for r in bank_b)
    v = next(b for b in ordered[30:50] if counts[b] == 1)
    first = {**BASE, "filter": {"column": "balance", "op": ">=", "value": v}}
    second = {**BASE, "filter": {"column": "balance", "op": ">", "value": v}}
    assert net.drive(net.create("q1", first)) == TaskState.COMPLETED
    refused_with(net, net.create("q2", second), Reason.QUERY_OVERLAP)


def test_a_provider_of_the_creator_organisation_is_refused(
    net: Network, consortium: Consortium
) -> None:
    """Attack 2's accomplice: the consumer names a provider node of its own organisation."""
    bank_a = consortium.orgs["bank-a"]
    own = new_account()
    consortium.chain.fund(own.address, 10**20)
    bank_a.clients.consortium.register_node(
        own.address, "bank-a-2.example:7000", name_id("cert", "a2")
    )
    net.add_node("bank-a-2", "bank-a", own, consortium.clients_for(own), rows=80, seed=9)
    # The creating node refuses it before the chain (tests/node/test_task_prechecks.py);
    # a creator that skips that check still meets the provider's own refusal.
    refused_with(net, net.create_unchecked("own", dict(BASE)), Reason.PROVIDER_NOT_INDEPENDENT)


def test_too_few_provider_organisations_for_the_level_are_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = standard_network(consortium, tmp_path, rows_each=120, classification=4)
    refused_with(  # past the creating node's pre-check, as a hostile creator would
        net,
        net.create_unchecked("lvl4", {**BASE, "value_bound": 5000}),
        Reason.TOO_FEW_PROVIDER_ORGS,
    )


def test_differential_privacy_noise_and_budget_per_grant(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = standard_network(
        consortium, tmp_path, rows_each=80, classification=3, protocol_timeout=10.0
    )
    # Noise is due at level 3, so the sum needs a clipping bound: refused before the chain.
    head = consortium.chain.head()
    with pytest.raises(InvalidInput) as exc:
        net.create("dp-0", dict(BASE))
    assert exc.value.field == "params.value_bound"
    assert consortium.chain.head() == head
    params = {**BASE, "value_bound": 5000}
    task_id = net.create("dp-1", params)
    assert net.drive(task_id) == TaskState.COMPLETED
    result = net.creator.task_result("0x" + task_id.hex())["result"]
    policy = output_policy.effective([3])
    assert result["policy"]["epsilon_per_query"] == policy.epsilon_per_query
    assert result["noise"]["mechanism"] == "distributed discrete Laplace"
    # Noisy but close: the count's noise has standard deviation ~ a few rows.
    assert abs(result["count"] - len(net.rows)) < 60
    # Every provider metered the epsilon against its grant.
    for name in ("bank-b", "regulator"):
        grant = bytes.fromhex(next(
            p["grantId"] for p in net.providers if p["node"] == net.nodes[name].runner.address
        )[2:])  # fmt: skip
        assert net.nodes[name].runner._queries.epsilon_spent(grant) == policy.epsilon_per_query
    # Spend the rest of bank-b's budget; the next query is refused on chain.
    assert policy.epsilon_per_grant is not None and policy.epsilon_per_query is not None
    queries = net.nodes["bank-b"].runner._queries
    bank_b = net.providers[0]
    for n in range(int(policy.epsilon_per_grant / policy.epsilon_per_query) - 1):
        queries.record(
            task_id=n.to_bytes(32, "big"),
            dataset_id=bytes.fromhex(bank_b["datasetId"][2:]),
            version=1,
            grantee_org=consortium.orgs["bank-a"].org_id,
            grant_id=bytes.fromhex(bank_b["grantId"][2:]),
            selection=None,
            selected=80,
            epsilon=policy.epsilon_per_query,
        )
    refused_with(net, net.create("dp-2", params), Reason.PRIVACY_BUDGET_EXHAUSTED)


def test_the_noise_of_a_thousand_runs_has_the_configured_variance() -> None:
    """1,000 runs of three providers' contributions (the exact code each provider runs
    before masking; the secure sum adds them exactly, as test_secagg shows): the total's
    noise has mean 0 and, per figure, the variance the plan promises."""
    policy = output_policy.effective([3])
    params = stats.StatsParams.from_json(
        {**BASE, "value_bound": 40, "group_column": "segment", "categories": ["retail"]}
    )
    tables = [
        pa.table(
            {
                "account": [f"A{p}-{i}" for i in range(60)],
                "balance": [(i * 7 + p) % 41 for i in range(60)],
                "segment": [("retail", "other")[i % 2] for i in range(60)],
            }
        )
        for p in range(3)
    ]
    threshold, runs = 3, 1000
    rng = np.random.default_rng(2026)
    truth = np.sum([stats.local_vector(params, t) for t in tables], axis=0)
    noise = np.array(
        [
            np.sum([stats.contribution(params, t, policy, threshold, rng) for t in tables], axis=0)
            - truth
            for _ in range(runs)
        ],
        dtype=np.float64,
    )
    plan = stats.noise_plan(params, policy)
    assert plan is not None
    expected = np.array(plan.variances(threshold, len(tables)))
    # The sample variance's relative standard error is sqrt((kurtosis - 1) / runs); the
    # discrete Laplace's kurtosis is (1 + 10a + a^2) / (2a). Five standard errors.
    a = np.exp(-np.array(plan.epsilons) / np.array(plan.sensitivities))
    kurtosis = (1 + 10 * a + a * a) / (2 * a)
    tolerance = 5 * np.sqrt((kurtosis - 1) / runs)
    observed = noise.var(axis=0)
    assert np.all(np.abs(observed / expected - 1) < tolerance), (observed, expected)
    assert np.all(np.abs(noise.mean(axis=0)) < 5 * np.sqrt(expected / runs))
    # And the noise is really there: a noiseless contribution would fail the above.
    assert np.all(observed > 0.5 * expected)


def test_a_survivor_set_confirmed_by_too_few_signatures_is_refused_on_chain(
    net: Network,
) -> None:
    """Attack 2 at the consistency round: the aggregator hands one provider a survivor
    set 'confirmed' by fewer than t signatures (all a split needs, had the provider
    counted on echoes). The provider reveals nothing and fails the task on chain."""
    aggregator = net.nodes["bank-a"].runner
    honest_open = aggregator.open_channel
    victim = net.providers[0]["node"]

    def tamper(peer: str, step: str, payload: bytes) -> bytes:
        if step == secagg.STEP_CERTIFICATE and peer == victim:
            signatures = secagg.decode_certificate("aggregator", payload, len(net.providers))
            return secagg.encode_certificate(signatures[:1])
        return payload

    def open_channel(task_id: bytes, peers: list[str]) -> Channel:
        return FaultyChannel(honest_open(task_id, peers), tamper=tamper)

    aggregator.open_channel = open_channel
    task_id = net.create("split", dict(BASE))
    refused_with(net, task_id, Reason.PROTOCOL_ERROR)
    assert net.failure(task_id)[1] == victim
    record = net.nodes["bank-b"].state.get(task_id)
    assert record is not None and record.error is not None
    assert "survivor-certificate" in record.error.detail
    assert net.nodes["bank-a"].state.get(task_id).result_json is None  # type: ignore[union-attr]
