"""Every check of one task, in the order a report lists them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from auditor.verify import attestation, scoring
from auditor.verify.algorithm import check_algorithm_approved
from auditor.verify.anchor_log import check_anchor_log
from auditor.verify.check import Check
from auditor.verify.checkpoints import ResultDisclosure, applies, check_fl_round_chain
from auditor.verify.evidence import check_evidence
from auditor.verify.failure import check_failure_reporter
from auditor.verify.grants import check_grants
from auditor.verify.history import TaskHistory
from auditor.verify.inputs import check_inputs
from auditor.verify.lifecycle import check_lifecycle_order, check_task_created
from auditor.verify.membership import check_membership
from auditor.verify.pairwise import check_transcripts_agree
from auditor.verify.params import check_params_commitment
from auditor.verify.results import check_results
from auditor.verify.transcript_io import check_transcript_io
from ledger.task_params import ParamsEnvelope
from ledger.transcript import Entry

#: The checks that read the chain's events only.
CHECKS: tuple[Callable[[TaskHistory], Check], ...] = (
    check_task_created,
    check_lifecycle_order,
    check_membership,
    check_algorithm_approved,
    check_grants,
    check_inputs,
    check_results,
    check_failure_reporter,
)

#: The checks that read the nodes' transcripts against the chain.
TRANSCRIPT_CHECKS: tuple[Callable[[TaskHistory, Mapping[str, Sequence[Entry]]], Check], ...] = (
    check_evidence,
    check_transcripts_agree,
    check_transcript_io,
    check_anchor_log,
)


def verify_task(
    history: TaskHistory,
    transcripts: Mapping[str, Sequence[Entry]],
    params: ParamsEnvelope | None = None,
    deployment: Sequence[Check] = (),
    result: ResultDisclosure | None = None,
) -> list[Check]:
    """Every check of one task; `deployment` are the chain-binding checks of the
    deployment it ran on (see `auditor.replay.deployment_checks`), reported first.
    `params_commitment` is not-applicable when no disclosed parameters are given.

    `fl_round_chain` is reported, last, only for a task it applies to (an algorithm
    that anchors round checkpoints, or any checkpoint on chain): for every other task
    it would be one more not-applicable line in every report. `result` (the
    aggregator's disclosed result and commitment salt) lets it recompute the chain.
    `tee_attestation` likewise, for an attested job (algorithm kind TEE) only; it needs
    `result` (the host's, holding the attestation bundle) to judge the enclave.
    `scoring_model` likewise, for a batch-scoring task only; it needs `params` to know
    the training task."""
    checks = list(deployment)
    if history.created() is None:
        # Nothing on chain to check: every other check would pass or fail on nothing.
        return [*checks, check_task_created(history)]
    checks += [check(history) for check in CHECKS]
    checks += [check(history, transcripts) for check in TRANSCRIPT_CHECKS]
    checks.append(check_params_commitment(history, params))
    if applies(history):
        checks.append(check_fl_round_chain(history, transcripts, params, result))
    if scoring.applies(history):
        checks.append(scoring.check_scoring_model(history, params, result))
    if attestation.applies(history):
        checks.append(attestation.check_tee_attestation(history, transcripts, result))
    return checks
