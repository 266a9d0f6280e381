"""Re-verify a task's provenance from the chain's events and the nodes' transcripts.

The checks live in `auditor.verify`, one per module; this module keeps the names the
CLI, the demo and the tests have always imported from here.
"""

from __future__ import annotations

from auditor.verify.algorithm import check_algorithm_approved
from auditor.verify.anchor_log import check_anchor_log
from auditor.verify.check import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    Check,
    Malformed,
    digest32,
)
from auditor.verify.checkpoints import ResultDisclosure, check_fl_round_chain
from auditor.verify.deployment import deployment_checks
from auditor.verify.evidence import check_evidence
from auditor.verify.failure import MIN_REPORTED_REASON, check_failure_reporter
from auditor.verify.grants import check_grants
from auditor.verify.history import NODE_STEPS, TERMINAL, ZERO, TaskHistory
from auditor.verify.inputs import check_inputs
from auditor.verify.lifecycle import check_lifecycle_order, check_task_created
from auditor.verify.membership import check_membership
from auditor.verify.pairwise import Message, check_transcripts_agree
from auditor.verify.params import check_params_commitment
from auditor.verify.results import check_results
from auditor.verify.run import CHECKS, TRANSCRIPT_CHECKS, verify_task
from auditor.verify.transcript_io import check_transcript_io

__all__ = [
    "CHECKS",
    "FAIL",
    "MIN_REPORTED_REASON",
    "NODE_STEPS",
    "NOT_APPLICABLE",
    "PASS",
    "TERMINAL",
    "TRANSCRIPT_CHECKS",
    "ZERO",
    "Check",
    "Malformed",
    "Message",
    "ResultDisclosure",
    "TaskHistory",
    "check_algorithm_approved",
    "check_anchor_log",
    "check_evidence",
    "check_failure_reporter",
    "check_fl_round_chain",
    "check_grants",
    "check_inputs",
    "check_lifecycle_order",
    "check_membership",
    "check_params_commitment",
    "check_results",
    "check_task_created",
    "check_transcript_io",
    "check_transcripts_agree",
    "deployment_checks",
    "digest32",
    "verify_task",
]
