"""Turn decoded events into rows of the typed tables (see ``schema``).

One function per event kind, each a pure mapping from one event to rows: nothing here
reads the database, so a page's rows depend only on that page's logs, and re-indexing
a range after a reorg rebuilds exactly what the rollback deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditor.index.decode import DecodedLog, json_args
from auditor.index.schema import INT64_MAX

Rows = dict[str, list[dict[str, Any]]]
_Projector = Callable[["Projection", DecodedLog, dict[str, Any]], None]


def _sat(value: int) -> int:
    """uint64 into a signed BIGINT column: saturate (keeps time comparisons exact)."""
    return min(int(value), INT64_MAX)


class Projection:
    """Accumulates the rows of one page, table by table."""

    def __init__(self) -> None:
        self.rows: Rows = {}

    def _add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def add(self, log: DecodedLog, block_time: int) -> None:
        pos = log.position
        base = {
            "block_number": pos.block_number,
            "log_index": pos.log_index,
            "block_time": block_time,
        }
        self._add(
            "events",
            {
                **base,
                "block_hash": pos.block_hash,
                "tx_hash": pos.tx_hash,
                "tx_index": pos.tx_index,
                "contract": log.contract,
                "address": log.address,
                "name": log.name,
                "args": json_args(log.args),
            },
        )
        handler = _HANDLERS.get((log.contract, log.name))
        if handler is not None:
            handler(self, log, base)

    def status(
        self,
        base: dict[str, Any],
        log: DecodedLog,
        entity: str,
        entity_id: bytes,
        status: str,
        actor: bytes | None = None,
    ) -> None:
        self._add(
            "status_history",
            {
                **base,
                "entity": entity,
                "entity_id": entity_id,
                "status": status,
                "actor": actor,
                "tx_hash": log.position.tx_hash,
            },
        )


# --- handlers ---------------------------------------------------------------------------

_ORG_STATUS = {
    "OrgProposed": "proposed",
    "OrgAdmitted": "active",
    "OrgSuspended": "suspended",
    "OrgReinstated": "active",
}
_ALGORITHM_STATUS = {
    "AlgorithmProposed": "proposed",
    "AlgorithmApproved": "approved",
    "AlgorithmDeprecated": "deprecated",
    "AlgorithmProposalDropped": "dropped",
}
_TASK_STATUS = {
    "TaskCreated": "created",
    "TaskStarted": "running",
    "TaskCompleted": "completed",
    "TaskDisputed": "disputed",
    "TaskFailed": "failed",
    "TaskExpired": "expired",
}
_NODE_CHANGE = {"NodeRegistered": "registered", "NodeUpdated": "updated", "NodeRevoked": "revoked"}


def _org(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    if log.name == "OrgProposed":
        p._add(
            "organisations",
            {
                **base,
                "org_id": a["orgId"],
                "name": a["name"],
                "roles": a["roles"],
                "admin": a["admin"],
            },
        )
    p.status(base, log, "org", a["orgId"], _ORG_STATUS[log.name])


def _node(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    change = _NODE_CHANGE[log.name]
    p._add(
        "node_records",
        {
            **base,
            "node": a["node"],
            "org_id": a["orgId"],
            "change": change,
            "endpoint": a.get("endpoint"),
            "tls_cert_sha256": a.get("tlsCertSha256"),
            "tee_measurement": a.get("teeMeasurement"),
        },
    )
    if change != "updated":
        p.status(base, log, "node", a["node"], "active" if change == "registered" else "revoked")


def _algorithm(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    if log.name == "AlgorithmProposed":
        p._add(
            "algorithms",
            {
                **base,
                "digest": a["digest"],
                "name": a["name"],
                "version": a["version"],
                "kind": a["kind"],
                "proposer_org": a["proposerOrg"],
                "proposal_id": a["proposalId"],
            },
        )
    p.status(base, log, "algorithm", a["digest"], _ALGORITHM_STATUS[log.name])


def _dataset(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    if log.name == "DatasetRegistered":
        p._add(
            "datasets",
            {**base, "dataset_id": a["datasetId"], "owner_org": a["ownerOrg"], "name": a["name"]},
        )
        p.status(base, log, "dataset", a["datasetId"], "active", a["ownerOrg"])
    elif log.name == "DatasetRetired":
        p.status(base, log, "dataset", a["datasetId"], "retired")
    else:
        p._add(
            "dataset_versions",
            {
                **base,
                "dataset_id": a["datasetId"],
                "version": a["version"],
                "merkle_root": a["merkleRoot"],
                "row_count": _sat(a["rowCount"]),
                "schema_digest": a["schemaDigest"],
                "classification": a["classification"],
                "metadata_uri": a["metadataURI"],
            },
        )


def _grant(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    if log.name == "GrantCreated":
        p._add(
            "grants",
            {
                **base,
                "grant_id": a["grantId"],
                "dataset_id": a["datasetId"],
                "grantee_org": a["granteeOrg"],
                "grantor_org": a["grantorOrg"],
                "algorithm_digest": a["algorithmDigest"],
                "purpose": a["purpose"],
                "not_after": _sat(a["notAfter"]),
                "max_uses": a["maxUses"],
            },
        )
        p.status(base, log, "grant", a["grantId"], "active", a["grantorOrg"])
    elif log.name == "GrantRevoked":
        p.status(base, log, "grant", a["grantId"], "revoked", a["byOrg"])
    else:
        p._add(
            "grant_uses",
            {
                **base,
                "grant_id": a["grantId"],
                "used": a["used"],
                "max_uses": a["maxUses"],
                "tx_hash": log.position.tx_hash,
            },
        )


def _task(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    task_id = a["taskId"]
    step: dict[str, Any] = {
        **base,
        "task_id": task_id,
        "step": log.name,
        "actor_node": a.get("node", a.get("reporter")),
        "actor_org": a.get("creatorOrg"),
        "grant_id": a.get("grantId"),
        "digest": a.get("commitment", a.get("resultDigest", a.get("checkpointDigest"))),
        "evidence_root": a.get("evidenceRoot"),
        "round": a.get("round"),
        "reason_code": a.get("reasonCode"),
        "tx_hash": log.position.tx_hash,
    }
    p._add("task_steps", step)
    if log.name == "TaskCreated":
        participants = a["participants"]
        p._add(
            "tasks",
            {
                **base,
                "task_id": task_id,
                "creator_org": a["creatorOrg"],
                "algorithm_digest": a["algorithmDigest"],
                "params_digest": a["paramsDigest"],
                "deadline": _sat(a["deadline"]),
                "participant_count": len(participants),
                "tx_hash": log.position.tx_hash,
            },
        )
        for position, seat in enumerate(participants):
            p._add(
                "task_participants",
                {
                    "block_number": base["block_number"],
                    "log_index": base["log_index"],
                    "task_id": task_id,
                    "position": position,
                    "node": seat["node"],
                    "dataset_id": seat["datasetId"],
                    "dataset_version": seat["datasetVersion"],
                    "grant_id": seat["grantId"],
                },
            )
    status = _TASK_STATUS.get(log.name)
    if status is not None:
        p.status(base, log, "task", task_id, status, step["actor_node"] or step["actor_org"])


def _anchor(p: Projection, log: DecodedLog, base: dict[str, Any]) -> None:
    a = log.args
    if log.name == "LogCreated":
        p._add(
            "anchor_logs",
            {
                **base,
                "log_id": a["logId"],
                "owner": a["owner"],
                "owner_org": a["ownerOrg"],
                "name": a["name"],
            },
        )
    else:
        p._add(
            "checkpoints",
            {
                **base,
                "log_id": a["logId"],
                "tree_size": _sat(a["treeSize"]),
                "root_hash": a["rootHash"],
                "writer": a["writer"],
                "tx_hash": log.position.tx_hash,
            },
        )


_HANDLERS: dict[tuple[str, str], _Projector] = {}


def _register(contract: str, names: list[str], handler: _Projector) -> None:
    for name in names:
        _HANDLERS[(contract, name)] = handler


_register("Consortium", list(_ORG_STATUS), _org)
_register("Consortium", list(_NODE_CHANGE), _node)
_register("AlgorithmRegistry", list(_ALGORITHM_STATUS), _algorithm)
_register(
    "DatasetRegistry", ["DatasetRegistered", "DatasetRetired", "DatasetVersionAdded"], _dataset
)
_register("AuthorizationRegistry", ["GrantCreated", "GrantRevoked", "GrantUsed"], _grant)
_register(
    "TaskRegistry",
    [
        "TaskCreated",
        "TaskAccepted",
        "TaskStarted",
        "InputAnchored",
        "CheckpointAnchored",
        "ResultSubmitted",
        "TaskCompleted",
        "TaskDisputed",
        "TaskFailed",
        "TaskExpired",
    ],
    _task,
)
_register("AnchorLog", ["LogCreated", "Checkpointed"], _anchor)
