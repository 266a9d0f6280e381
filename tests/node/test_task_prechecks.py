"""Tasks bound to fail are refused before any chain write, naming the provider and why.

Found as a consumer finds them: a single provider, a revoked, expired, used-up or
foreign grant, a grant for another dataset, columns that differ from the registered
schema, a provider node that was revoked, too few provider organisations for the
classification level. Each used to answer 201, go on chain, consume the other
providers' grant uses and then fail as CHAIN_TASKFAILED. Now each is a `Conflict`
(chain state, HTTP 409) or an `InvalidInput` (the request, HTTP 422) naming
``providers[i] (org name)``, and nothing is written: no transaction from the creating
node, no local record.

Also here: request-id reuse (identical retry vs other parameters), the providers' short
form by names, task references by request id, the failure reason shown to the consumer,
and the runner's tolerance of a task whose local record is missing or stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.clients.tasks import Participant, Reason, TaskState
from ledger.ids import InvalidInput, hex32, name_id, task_id_for
from ledger.task_params import ParamsEnvelope
from node.algorithms import stats
from node.algorithms.package import package_of
from node.service_errors import Conflict, UnknownDataset, UnknownTask
from node.task_prechecks import pending_time
from tests.conftest import Consortium
from tests.node.runner_harness import COLUMNS, Network, standard_network

PARAMS: dict[str, Any] = {"columns": COLUMNS, "value_column": "balance"}


@pytest.fixture
def net(consortium: Consortium, tmp_path: Path) -> Network:
    return standard_network(consortium, tmp_path, rows_each=40, protocol_timeout=10.0)


def _tester(consortium: Consortium) -> Any:
    return consortium.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]


def _grant(net: Network, grantor: str, dataset: str, grantee: str, **kw: Any) -> str:
    orgs = net.consortium.orgs
    now = pending_time(net.consortium.chain.w3)
    grant = orgs[grantor].clients.authorizations.grant(
        bytes.fromhex(dataset[2:]),
        orgs[grantee].org_id,
        name_id("purpose", "stats"),
        now + kw.get("valid_for", 86_400),
        kw.get("max_uses", 5),
    )
    return hex32(grant)


def refused(
    net: Network,
    error: type[InvalidInput],
    field: str,
    words: list[str],
    providers: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    request_id: str = "bound-to-fail",
) -> None:
    """The request is refused with ``error`` on ``field``, its message containing every
    one of ``words``, and nothing was written on chain or locally."""
    consortium, service = net.consortium, net.creator
    w3 = consortium.chain.w3
    head, nonce = consortium.chain.head(), w3.eth.get_transaction_count(service.clients.account)
    with pytest.raises(error) as caught:
        service.submit_task(
            request_id,
            stats.NAME,
            PARAMS if params is None else params,
            net.providers if providers is None else providers,
            3600,
        )
    assert type(caught.value) is error, caught.value  # 409 and 422 are told apart
    assert caught.value.field == field, caught.value
    for word in words:
        assert word in caught.value.problem, (word, caught.value.problem)
    assert consortium.chain.head() == head
    assert w3.eth.get_transaction_count(service.clients.account) == nonce
    task_id = task_id_for(service.org_id, name_id("task", request_id))
    assert service.state is not None and service.state.get(task_id) is None
    assert service.clients.tasks.state(task_id) == TaskState.NONE


def test_a_single_provider_is_refused(net: Network) -> None:
    refused(net, InvalidInput, "providers", ["at least 2"], providers=net.providers[:1])


def test_a_revoked_grant_is_refused_naming_the_provider(net: Network) -> None:
    grant = bytes.fromhex(net.providers[0]["grantId"][2:])
    net.consortium.orgs["bank-b"].clients.authorizations.revoke(grant)
    refused(net, Conflict, "providers[0].grantId", ["providers[0] (bank-b)", "revoked"])


def test_an_expired_grant_is_refused(net: Network) -> None:
    short = _grant(net, "regulator", net.providers[1]["datasetId"], "bank-a", valid_for=100)
    providers = [net.providers[0], {**net.providers[1], "grantId": short}]
    _tester(net.consortium).time_travel(pending_time(net.consortium.chain.w3) + 200)
    refused(
        net, Conflict, "providers[1].grantId", ["providers[1] (regulator)", "expired"], providers
    )


def test_a_used_up_grant_is_refused_before_it_consumes_the_others(net: Network) -> None:
    once = _grant(net, "bank-b", net.providers[0]["datasetId"], "bank-a", max_uses=1)
    net.providers[0] = {**net.providers[0], "grantId": once}
    assert net.drive(net.create("first", PARAMS)) == TaskState.COMPLETED
    other = bytes.fromhex(net.providers[1]["grantId"][2:])
    used = net.creator.clients.authorizations.info(other).used
    refused(net, Conflict, "providers[0].grantId", ["providers[0] (bank-b)", "used up"])
    assert net.creator.clients.authorizations.info(other).used == used


def test_a_grant_to_another_organisation_is_refused(net: Network) -> None:
    foreign = _grant(net, "bank-b", net.providers[0]["datasetId"], "regulator")
    providers = [{**net.providers[0], "grantId": foreign}, net.providers[1]]
    refused(
        net, Conflict, "providers[0].grantId", ["providers[0] (bank-b)", "granted to"], providers
    )


def test_a_grant_for_another_dataset_is_refused(net: Network) -> None:
    # bank-b grants its dataset, but the entry names the regulator's grant for bank-b's data.
    providers = [{**net.providers[0], "grantId": net.providers[1]["grantId"]}, net.providers[1]]
    refused(
        net, Conflict, "providers[0].grantId", ["providers[0] (bank-b)", "for dataset"], providers
    )


def test_columns_that_differ_from_the_registered_schema_are_refused(net: Network) -> None:
    renamed = [{**c, "name": "amount"} if c["name"] == "balance" else c for c in COLUMNS]
    params = {"columns": renamed, "value_column": "amount"}
    refused(
        net,
        InvalidInput,
        "params.columns",
        ["providers[0] (bank-b)", "registered schema"],
        params=params,
    )


def test_a_revoked_provider_node_is_refused(net: Network) -> None:
    regulator = net.consortium.orgs["regulator"]
    regulator.clients.consortium.revoke_node(regulator.node.address)
    refused(net, Conflict, "providers[1].node", ["providers[1] (regulator)", "not an active"])


def test_too_few_provider_organisations_for_the_level_are_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = standard_network(consortium, tmp_path, rows_each=60, classification=4)
    refused(
        net,
        InvalidInput,
        "providers",
        ["2 provider organisation(s)", "at least 3"],
        params={**PARAMS, "value_bound": 5000},
    )


def test_an_unapproved_algorithm_is_refused(net: Network) -> None:
    orgs = net.consortium.orgs
    digest = package_of(stats).digest
    orgs["bank-a"].clients.algorithms.propose_deprecation(digest)
    orgs["bank-b"].clients.algorithms.vote_deprecation(digest)
    assert not net.creator.clients.algorithms.is_approved(digest)
    refused(net, Conflict, "algorithm", ["not approved"])


# request ids --------------------------------------------------------------------------


def test_a_request_id_reused_with_other_parameters_is_a_conflict(net: Network) -> None:
    service, head = net.creator, net.consortium.chain.head()
    first = service.submit_task("job-1", stats.NAME, PARAMS, net.providers, 3600)
    assert first.created
    head = net.consortium.chain.head()
    retry = service.submit_task("job-1", stats.NAME, PARAMS, net.providers, 3600)
    assert not retry.created and retry.status["taskId"] == first.status["taskId"]
    other = {**PARAMS, "min_group_size": 30}
    with pytest.raises(Conflict) as caught:
        service.submit_task("job-1", stats.NAME, other, net.providers, 3600)
    assert caught.value.field == "requestId" and "parameters" in caught.value.problem
    with pytest.raises(Conflict) as caught:
        service.submit_task("job-1", stats.NAME, PARAMS, net.providers[::-1], 3600)
    assert caught.value.field == "requestId" and "providers" in caught.value.problem
    assert net.consortium.chain.head() == head


def test_a_crash_between_mined_and_stored_is_repaired_by_the_retry(net: Network) -> None:
    """The transaction was mined, the node died before storing the parameters, and its
    runner saw TaskCreated first: the retry rebuilds the same envelope (derived salt)
    and fills in the record the runner made, and the task completes."""
    service = net.creator
    assert service.state is not None
    request_key = name_id("task", "crashed")
    task_id = task_id_for(service.org_id, request_key)
    envelope = ParamsEnvelope(
        stats.StatsParams.from_json(PARAMS).to_json(), service.params_salt(task_id)
    )
    slots = [Participant(service.clients.account)] + [
        Participant(
            p["node"],
            bytes.fromhex(p["datasetId"][2:]),
            p["datasetVersion"],
            bytes.fromhex(p["grantId"][2:]),
        )
        for p in net.providers
    ]
    now = pending_time(net.consortium.chain.w3)
    service.clients.tasks.create(
        request_key, package_of(stats).digest, envelope.digest, now + 3600, slots
    )
    net.nodes["bank-a"].runner.poll_once()  # TaskCreated before the parameters exist
    record = service.state.get(task_id)
    assert record is not None and record.params is None
    retry = service.submit_task("crashed", stats.NAME, PARAMS, net.providers, 3600)
    assert not retry.created and retry.status["requestId"] == "crashed"
    record = service.state.get(task_id)
    assert record is not None and record.params == envelope.to_json()
    assert net.drive(task_id) == TaskState.COMPLETED
    assert service.task_result("crashed")["result"]["count"] == 80


# names instead of ids -----------------------------------------------------------------


def test_providers_by_organisation_and_dataset_name(net: Network) -> None:
    short = [
        {"org": "bank-b", "dataset": "bank-b/accounts"},
        {"org": "regulator", "dataset": "regulator/accounts", "datasetVersion": 1},
    ]
    created = net.creator.submit_task("by-name", stats.NAME, PARAMS, short, 3600)
    task_id = bytes.fromhex(created.status["taskId"][2:])
    seats = net.creator.clients.tasks.participants(task_id)[1:]
    assert [
        {
            "node": s.node,
            "datasetId": hex32(s.dataset_id),
            "datasetVersion": s.dataset_version,
            "grantId": hex32(s.grant_id),
        }
        for s in seats
    ] == net.providers
    # The identical request in the full form is the same task.
    again = net.creator.submit_task("by-name", stats.NAME, PARAMS, net.providers, 3600)
    assert not again.created and again.status["taskId"] == created.status["taskId"]


def test_the_newest_usable_grant_is_chosen_and_an_unknown_name_is_named(net: Network) -> None:
    newer = _grant(net, "bank-b", net.providers[0]["datasetId"], "bank-a")
    net.consortium.orgs["bank-b"].clients.authorizations.revoke(bytes.fromhex(newer[2:]))
    newest = _grant(net, "bank-b", net.providers[0]["datasetId"], "bank-a")
    short = [
        {"org": "bank-b", "dataset": "bank-b/accounts"},
        {"org": "regulator", "dataset": "regulator/accounts"},
    ]
    status = net.creator.submit_task("newest", stats.NAME, PARAMS, short, 3600).status
    seats = net.creator.clients.tasks.participants(bytes.fromhex(status["taskId"][2:]))
    assert hex32(seats[1].grant_id) == newest
    with pytest.raises(InvalidInput) as caught:
        net.creator.submit_task(
            "typo", stats.NAME, PARAMS, [{"org": "bank-c", "dataset": "x"}, short[1]], 3600
        )
    assert caught.value.field == "providers[0].org" and "bank-b" in caught.value.problem
    with pytest.raises(InvalidInput) as caught:
        net.creator.submit_task(
            "typo", stats.NAME, PARAMS, [{"org": "bank-b", "dataset": "nope"}, short[1]], 3600
        )
    assert caught.value.field == "providers[0].dataset" and "'nope'" in caught.value.problem


def test_the_consumer_sees_who_refused_and_why(net: Network) -> None:
    net.nodes["regulator"].runner.algorithms = {}  # its code no longer hashes to the digest
    task_id = net.create("refused", PARAMS)
    assert net.drive(task_id) == TaskState.FAILED
    status = net.creator.task_status("refused")
    assert status["taskId"] == hex32(task_id) and status["requestId"] == "refused"
    regulator = net.nodes["regulator"].runner.address
    assert status["failure"] == {
        "reason": "ALGORITHM_DIGEST_MISMATCH",
        "code": int(Reason.ALGORITHM_DIGEST_MISMATCH),
        "reportedBy": regulator,
        "org": "regulator",
    }
    assert status["refusals"] == [
        {
            "node": regulator,
            "org": "regulator",
            "reason": "ALGORITHM_DIGEST_MISMATCH",
            "code": int(Reason.ALGORITHM_DIGEST_MISMATCH),
        }
    ]
    with pytest.raises(UnknownTask) as caught:
        net.creator.task_status("never-made")
    assert "never-made" in caught.value.problem


def test_a_dataset_by_name_and_a_grant_to_an_organisation_by_name(
    consortium: Consortium, tmp_path: Path
) -> None:
    net = standard_network(consortium, tmp_path, rows_each=20)
    regulator_service = type(net.creator)(
        consortium.orgs["regulator"].node_clients,
        consortium.orgs["regulator"].org_id,
        net.nodes["regulator"].runner.datasets,
        consortium.deployment.first_block,
    )
    shown = regulator_service.dataset("regulator/accounts")
    assert shown["datasetId"] == net.providers[1]["datasetId"]
    assert [c["name"] for c in shown["columns"]] == [c["name"] for c in COLUMNS]
    assert shown["rowCount"] == 20
    grant = regulator_service.grant("regulator/accounts", "bank-b", "stats", 3600, 2)
    assert grant["datasetId"] == shown["datasetId"]
    assert grant["granteeOrg"] == hex32(consortium.orgs["bank-b"].org_id)
    with pytest.raises(UnknownDataset) as caught:
        regulator_service.dataset("missing")
    assert caught.value.field == "dataset"


# the runner ---------------------------------------------------------------------------


def test_a_stale_local_record_does_not_stop_expiry(net: Network) -> None:
    """A record whose task never reached the chain (an older node recorded before its
    creating transaction reverted) used to raise in every poll and stop the expiry of
    every later task; now it is closed once, by name, and the real task expires."""
    aggregator = net.nodes["bank-a"]
    ghost = bytes(31) + b"\x07"
    aggregator.state.ensure(
        ghost, role="aggregator", params=ParamsEnvelope({"x": 1}, bytes(32)).to_json()
    )
    task_id = net.create("overdue", PARAMS, valid_for=60)
    aggregator.runner.poll_once()
    deadline = net.creator.clients.tasks.info(task_id).deadline
    _tester(net.consortium).time_travel(deadline + 1)
    aggregator.runner.poll_once()
    assert net.creator.clients.tasks.state(task_id) == TaskState.EXPIRED
    stale = aggregator.state.get(ghost)
    assert stale is not None and stale.phase == "failed"
    assert stale.error is not None and stale.error.reason == "NOT_ON_CHAIN"


def test_a_restart_names_a_stale_record_for_what_it_is(net: Network) -> None:
    """After a restart the same stale record used to be labelled CHAIN_TASKNONE ("the
    chain ended the task"), which no chain ever did."""
    aggregator = net.nodes["bank-a"]
    ghost = bytes(31) + b"\x09"
    aggregator.state.ensure(ghost, role="aggregator")
    aggregator.runner.recover()
    stale = aggregator.state.get(ghost)
    assert stale is not None and stale.phase == "failed"
    assert stale.error is not None and stale.error.reason == "NOT_ON_CHAIN"
