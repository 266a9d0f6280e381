"""The operator's verbs, shared by the REST API and the CLI.

Each verb validates everything first, makes its off-chain state durable, and only then
writes to chain; a retried verb finds its earlier work (on disk or on chain) and does
not repeat it. That ordering is what keeps bad input and crashes from leaving orphaned
chain state behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ledger.artifacts import abi
from ledger.clients import Clients
from ledger.clients.authorizations import ANY_APPROVED_ALGORITHM
from ledger.clients.datasets import DatasetVersion
from ledger.clients.tasks import Participant, TaskState
from ledger.errors import ContractRevert
from ledger.events import EventReader, Source
from ledger.ids import (
    InvalidInput,
    as_address,
    as_bytes32,
    dataset_id_for,
    hex32,
    name_id,
    task_id_for,
)
from ledger.task_params import ParamsEnvelope
from node.admission import dataset_levels
from node.algorithms import output_policy
from node.algorithms.package import package_of
from node.dataset_store import DatasetStore
from node.datasets import ImportedDataset, import_file
from node.state import TaskStateStore

Progress = Callable[[str], None]


def _same_rows(a: ImportedDataset, b: ImportedDataset) -> bool:
    """Same schema (identifier marks included) and the same rows in the same order."""
    return a.columns == b.columns and a.row_count == b.row_count and a.table.equals(b.table)


@dataclass
class NodeService:
    clients: Clients  # acting as this node's account
    org_id: bytes
    datasets: DatasetStore
    first_block: int = 0
    state: TaskStateStore | None = None
    algorithms: Mapping[str, ModuleType] = field(default_factory=dict)  # name -> module

    # datasets -----------------------------------------------------------------

    def register_dataset(
        self,
        name: str,
        path: Path,
        classification: int,
        progress: Progress | None = None,
        identifier_columns: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Import a file, store it, then register (or add a version) on chain.

        The id is derived from the org and the dataset name, so re-running the same
        import is recognised: if the chain already holds this exact commitment as the
        latest version, nothing new is written. `identifier_columns` marks columns
        that identify people or accounts; the marks are part of the schema digest, so
        changing them makes a new version.
        """
        say = progress or (lambda _: None)
        if not 1 <= classification <= 4:
            raise InvalidInput("classification", f"must be 1..4, got {classification}")
        dataset_name = name_id("dataset", name)  # the id is namespaced by the org on chain
        dataset_id = dataset_id_for(self.org_id, dataset_name)
        say(f"importing {path.name}")
        data = import_file(path, identifier_columns=identifier_columns)
        say(f"{data.row_count} rows read; commitment computed")
        registry = self.clients.datasets
        latest = registry.latest_version(dataset_id)
        if latest:
            owner = registry.owner(dataset_id)
            if owner != self.org_id:
                raise InvalidInput("name", f"dataset {name!r} belongs to another organisation")
            held = self.datasets.load(dataset_id, latest)
            if held is not None and _same_rows(held.data, data):
                say("identical to the latest registered version; nothing to do")
                return self._dataset_json(dataset_id, latest)
        version = latest + 1
        staged = self.datasets.load(dataset_id, version)
        if staged is None:
            self.datasets.save(dataset_id, version, data, classification)
        elif _same_rows(staged.data, data) and staged.classification == classification:
            say(f"resuming the registration of version {version} stored earlier")
            data = staged.data  # its salt key, hence its commitment
        else:
            raise InvalidInput(
                "file",
                f"version {version} of {name!r} is stored but not yet registered and differs",
            )
        commitment = DatasetVersion(
            data.merkle_root, data.row_count, data.schema_digest, classification
        )
        if latest == 0:
            registry.register(dataset_name, commitment, f"provnet://{name}")
        else:
            registry.add_version(dataset_id, commitment, f"provnet://{name}")
        say(f"registered version {version} on chain")
        return self._dataset_json(dataset_id, version)

    def _dataset_json(self, dataset_id: bytes, version: int) -> dict[str, Any]:
        info = self.clients.datasets.version_info(dataset_id, version)
        columns = self.datasets.columns(dataset_id, version)
        return {
            "datasetId": hex32(dataset_id),
            "version": version,
            "merkleRoot": hex32(info.merkle_root),
            "rowCount": info.row_count,
            "schemaDigest": hex32(info.schema_digest),
            "classification": info.classification,
            # From this node's copy (the chain holds only the schema digest).
            "columns": None
            if columns is None
            else [{"name": c.name, "type": c.type, "identifier": c.identifier} for c in columns],
        }

    def list_datasets(self) -> list[dict[str, Any]]:
        return [self._dataset_json(d, v) for d, v in self.datasets.versions()]

    # grants -------------------------------------------------------------------

    def grant(
        self,
        dataset_id: object,
        grantee_org: object,
        purpose: str,
        valid_for_seconds: int,
        max_uses: int,
        algorithm_digest: object | None = None,
    ) -> dict[str, Any]:
        ds = as_bytes32(dataset_id, "datasetId")
        grantee = as_bytes32(grantee_org, "granteeOrg")
        algo = (
            ANY_APPROVED_ALGORITHM
            if algorithm_digest is None
            else as_bytes32(algorithm_digest, "algorithmDigest")
        )
        if not purpose or len(purpose) > 64:
            raise InvalidInput("purpose", "must be 1-64 characters")
        if valid_for_seconds <= 0:
            raise InvalidInput("validForSeconds", f"must be positive, got {valid_for_seconds}")
        not_after = int(time.time()) + valid_for_seconds
        grant_id = self.clients.authorizations.grant(
            ds, grantee, name_id("purpose", purpose), not_after, max_uses, algo
        )
        return self.grant_json(grant_id)

    def grant_json(self, grant_id: bytes) -> dict[str, Any]:
        g = self.clients.authorizations.info(grant_id)
        return {
            "grantId": hex32(grant_id),
            "datasetId": hex32(g.dataset_id),
            "granteeOrg": hex32(g.grantee_org),
            "algorithmDigest": hex32(g.algorithm_digest),
            "notAfter": g.not_after,
            "maxUses": g.max_uses,
            "used": g.used,
            "revoked": g.revoked,
        }

    def revoke_grant(self, grant_id: object) -> dict[str, Any]:
        gid = as_bytes32(grant_id, "grantId")
        if not self.clients.authorizations.is_revoked(gid):
            self.clients.authorizations.revoke(gid)
        return self.grant_json(gid)

    def list_grants(self) -> list[dict[str, Any]]:
        """Grants this organisation made or received, rebuilt from chain events."""
        auth = self.clients.authorizations
        reader = EventReader(
            auth.chain,
            [Source("AuthorizationRegistry", auth.address, abi("AuthorizationRegistry"))],
        )
        ids = [
            bytes(e.args["grantId"])
            for e in reader.read(self.first_block)
            if e.name == "GrantCreated"
            and self.org_id in (bytes(e.args["grantorOrg"]), bytes(e.args["granteeOrg"]))
        ]
        return [self.grant_json(g) for g in ids]

    # tasks --------------------------------------------------------------------

    def create_task(
        self,
        request_id: str,
        algorithm: str,
        params: Mapping[str, Any],
        providers: Sequence[Mapping[str, Any]],
        valid_for_seconds: int,
    ) -> dict[str, Any]:
        """Create an aggregator-style task with this node as the aggregator.

        The task id is derived from the organisation and the caller's `requestId`, so a
        retried request finds the task it already created instead of making a second.
        Parameters are stored locally before the chain learns their digest: the chain
        holds only `digest(params)`, and this node must be able to send them later.
        """
        if self.state is None:
            raise RuntimeError("this service was started without a task state store")
        if not request_id or len(request_id) > 128 or not request_id.isprintable():
            raise InvalidInput("requestId", "must be 1-128 printable characters")
        module = self.algorithms.get(algorithm)
        if module is None:
            raise InvalidInput(
                "algorithm", f"unknown algorithm {algorithm!r} (known: {sorted(self.algorithms)})"
            )
        try:
            parsed = module.StatsParams.from_json(params)
        except ValueError as exc:
            raise _params_error(exc) from None
        if not 1 <= len(providers) <= 15:
            raise InvalidInput("providers", f"expected 1..15 providers, got {len(providers)}")
        if not 60 <= valid_for_seconds <= 7 * 86_400:
            raise InvalidInput("validForSeconds", "must be 60 s .. 7 days")
        slots = [Participant(self.clients.account)]
        for i, p in enumerate(providers):
            slots.append(
                Participant(
                    as_address(p.get("node"), f"providers[{i}].node"),
                    as_bytes32(p.get("datasetId"), f"providers[{i}].datasetId"),
                    _version(p.get("datasetVersion"), f"providers[{i}].datasetVersion"),
                    as_bytes32(p.get("grantId", "0x" + "00" * 32), f"providers[{i}].grantId"),
                )
            )
        self._check_output_policy(module, parsed, slots)
        canonical_params = parsed.to_json()
        request_key = name_id("task", request_id)  # the id is namespaced by the org on chain
        task_id = task_id_for(self.org_id, request_key)
        tasks = self.clients.tasks
        if tasks.state(task_id) == TaskState.NONE:
            # A retry reuses the salt already recorded, so the commitment stays the same.
            record = self.state.get(task_id)
            if record is not None and record.params is not None:
                envelope = ParamsEnvelope.from_json(record.params)
                if dict(envelope.params) != canonical_params:
                    raise InvalidInput(
                        "requestId", f"{request_id!r} was used before with other parameters"
                    )
            else:
                envelope = ParamsEnvelope.new(canonical_params)
                self.state.ensure(task_id, role="aggregator", params=envelope.to_json())
            digest = package_of(module).digest
            deadline = self._chain_time() + valid_for_seconds
            tasks.create(request_key, digest, envelope.digest, deadline, slots)
        return self.task_status(task_id)

    def _check_output_policy(
        self, module: ModuleType, parsed: Any, slots: Sequence[Participant]
    ) -> None:
        """Parameters the providers' output policy would refuse anyway (e.g. a missing
        clipping bound where the datasets' level adds noise): refused here, by name,
        before anything reaches the chain."""
        if not getattr(module, "OUTPUT_POLICY", False):
            return
        try:
            levels = dataset_levels(self.clients, slots)
        except ContractRevert:
            return  # an unknown dataset version: the chain refuses the task with its name
        try:
            policy = output_policy.effective(levels, parsed.min_group_size, parsed.epsilon)
            module.noise_plan(parsed, policy)
        except ValueError as exc:
            raise _params_error(exc) from None

    def _chain_time(self) -> int:
        return int(self.clients.tasks.chain.w3.eth.get_block("latest")["timestamp"])

    def task_status(self, task_id: object) -> dict[str, Any]:
        tid = as_bytes32(task_id, "taskId")
        tasks = self.clients.tasks
        if tasks.state(tid) == TaskState.NONE:
            raise UnknownTask(tid)
        info = tasks.info(tid)
        record = self.state.get(tid) if self.state is not None else None
        return {
            "taskId": hex32(tid),
            "state": info.state.name,
            "deadline": info.deadline,
            "algorithmDigest": hex32(info.algorithm_digest),
            "accepted": info.accepted_count,
            "results": info.result_count,
            "participants": info.participant_count,
            "localPhase": record.phase if record else None,
            "localError": (
                f"{record.error.reason}: {record.error.detail}" if record and record.error else None
            ),
        }

    def task_result(self, task_id: object) -> dict[str, Any]:
        """The aggregate, for the aggregator's own operator only; opens the commitment."""
        tid = as_bytes32(task_id, "taskId")
        record = self.state.get(tid) if self.state is not None else None
        if record is None or record.result_json is None:
            raise UnknownTask(tid, "no result held by this node for the task")
        stored = json.loads(record.result_json)
        return {
            "taskId": hex32(tid),
            "state": self.clients.tasks.state(tid).name,
            "result": stored["result"],
            "commitmentSalt": stored["salt"],
            # What the on-chain paramsDigest commits to: hand it to an auditor
            # (`provnet audit verify --params FILE`) to have the parameters checked.
            "params": record.params,
        }


def _params_error(exc: ValueError) -> InvalidInput:
    """A parameter error as the API reports it: the field under ``params.``."""
    name = getattr(exc, "field", None)
    if isinstance(name, str) and name:
        return InvalidInput(f"params.{name}", str(exc).removeprefix(f"{name}: "))
    return InvalidInput("params", str(exc))


class UnknownTask(InvalidInput):
    def __init__(self, task_id: bytes, problem: str = "no such task on chain") -> None:
        super().__init__("taskId", f"0x{task_id.hex()}: {problem}")


def _version(value: object, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**32:
        raise InvalidInput(field_name, f"expected a version number >= 1, got {value!r}")
    return value
