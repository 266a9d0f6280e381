"""The operator's verbs, shared by the REST API and the CLI.

Each verb validates everything first, including what the chain would refuse later, and a
retried verb finds its earlier work (on disk or on chain) and does not repeat it. A
dataset's rows are stored before the chain commits to them (a commitment nobody can open
would be orphaned); a task's local record is written only after its creating transaction
is mined (a record of a task the chain refused would be orphaned), and what it holds can
be rebuilt by retrying the request (`NodeService.params_salt`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
from node.admission import dataset_levels, is_requester_style, lead_role
from node.algorithms import output_policy
from node.algorithms.package import package_of
from node.dataset_store import DatasetStore
from node.datasets import ImportedDataset, import_file
from node.references import dataset_id_of, is_id, org_of, registered_dataset_id, task_id_of
from node.service_errors import Conflict, UnknownDataset, UnknownTask
from node.state import TaskRecord, TaskStateStore
from node.task_outcome import outcome
from node.task_prechecks import (
    ProviderResolver,
    check_algorithm,
    check_counts,
    check_providers,
    check_schema,
    check_validity,
    pending_time,
)
from node.task_requests import TaskRequests

__all__ = [
    "Conflict",
    "InvalidInput",
    "NodeService",
    "TaskCreation",
    "UnknownDataset",
    "UnknownTask",
]

Progress = Callable[[str], None]


def _same_rows(a: ImportedDataset, b: ImportedDataset) -> bool:
    """Same schema (identifier marks included) and the same rows in the same order."""
    return a.columns == b.columns and a.row_count == b.row_count and a.table.equals(b.table)


SALT_KEY_DOMAIN = b"provnet:params-salt-key:v1"
SALT_DOMAIN = b"provnet:params-salt:v1"


@dataclass(frozen=True)
class TaskCreation:
    """What `NodeService.submit_task` did: ``created`` is False when an identical
    earlier request had already created the task (the API answers 200, not 201)."""

    status: dict[str, Any]
    created: bool


@dataclass
class NodeService:
    clients: Clients  # acting as this node's account
    org_id: bytes
    datasets: DatasetStore
    first_block: int = 0
    state: TaskStateStore | None = None
    algorithms: Mapping[str, ModuleType] = field(default_factory=dict)  # name -> module
    # Node-local secret the task parameters' salts are derived from (see `params_salt`);
    # None: derived from this node's account key, which every node already guards.
    params_salt_key: bytes | None = None
    _requests: TaskRequests | None = field(default=None, init=False, repr=False)

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
            "columns": None if columns is None else [_column_json(c) for c in columns],
        }

    def dataset(self, reference: object) -> dict[str, Any]:
        """One of this organisation's datasets, by id or name, at its latest version:
        columns with types, identifier marks and decimal scales, row count,
        classification and commitment (GET /datasets/{dataset})."""
        dataset_id = dataset_id_of(self.org_id, reference, "dataset")
        if self.clients.datasets.latest_version(dataset_id) == 0:
            raise UnknownDataset(
                "dataset",
                f"no dataset {reference!r} of this organisation (id {hex32(dataset_id)}) is "
                "registered on chain",
            )
        owner = self.clients.datasets.owner(dataset_id)
        if owner != self.org_id:
            raise InvalidInput(
                "dataset",
                f"{reference!r} belongs to organisation {hex32(owner)}; ask that organisation's "
                "node about it",
            )
        latest = self.clients.datasets.latest_version(dataset_id)
        return {
            **self._dataset_json(dataset_id, latest),
            "name": None if is_id(reference) else str(reference).strip(),
            "retired": self.clients.datasets.is_retired(dataset_id),
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
        # A dataset id goes to the contract as given (it names an unknown one itself); a
        # name is this organisation's dataset, checked here so a typo is named.
        ds = (
            as_bytes32(dataset_id, "datasetId")
            if is_id(dataset_id)
            else registered_dataset_id(self.clients, self.org_id, dataset_id, "datasetId")
        )
        grantee = (
            as_bytes32(grantee_org, "granteeOrg")
            if is_id(grantee_org)
            else org_of(self.clients, grantee_org, "granteeOrg", self.first_block).org_id
        )
        algo = (
            ANY_APPROVED_ALGORITHM
            if algorithm_digest is None
            else as_bytes32(algorithm_digest, "algorithmDigest")
        )
        if not purpose or len(purpose) > 64:
            raise InvalidInput("purpose", "must be 1-64 characters")
        if valid_for_seconds <= 0:
            raise InvalidInput("validForSeconds", f"must be positive, got {valid_for_seconds}")
        not_after = self._chain_time() + valid_for_seconds
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
        dataset: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`submit_task`'s status only (for callers that need not tell new from old)."""
        return self.submit_task(
            request_id, algorithm, params, providers, valid_for_seconds, dataset
        ).status

    def submit_task(
        self,
        request_id: str,
        algorithm: str,
        params: Mapping[str, Any],
        providers: Sequence[Mapping[str, Any]],
        valid_for_seconds: int,
        dataset: Mapping[str, Any] | None = None,
    ) -> TaskCreation:
        """Create a task with this node in the first seat.

        For an aggregator-style algorithm (secure statistics) that seat holds no data;
        for a requester-style one (PSI) it holds ``dataset``, this organisation's own
        dataset (``{"dataset": name or id[, "datasetVersion": n]}``, latest version by
        default), and the providers are the responders.

        The task id is derived from the organisation and the caller's `requestId`, so a
        retried request finds the task it already created (``created`` False) instead of
        making a second; the same request id with other parameters, providers or
        algorithm is a `Conflict`.

        Everything the contract or a provider would check at acceptance is checked
        first (`node.task_prechecks`): a task bound to fail is refused here, naming the
        provider and the reason, with nothing written on chain or locally. Local state
        (the parameters this node must later send, the request id) is written only once
        the creating transaction is mined, so a refused creation leaves no record.
        A crash between "mined" and "stored" is repaired by retrying the request: the
        parameters' salt is derived from a node secret and the task id (`params_salt`),
        so the retry rebuilds the very envelope the chain committed to.
        """
        if self.state is None:
            raise RuntimeError("this service was started without a task state store")
        if (
            not isinstance(request_id, str)
            or not request_id
            or len(request_id) > 128
            or not request_id.isprintable()
        ):
            raise InvalidInput("requestId", "must be 1-128 printable characters")
        module = self.algorithms.get(algorithm)
        if module is None:
            raise InvalidInput(
                "algorithm", f"unknown algorithm {algorithm!r} (known: {sorted(self.algorithms)})"
            )
        try:
            parsed = module.Params.from_json(params)
        except ValueError as exc:
            raise _params_error(exc) from None
        if (dataset is None) == is_requester_style(module):
            raise _dataset_use_error(module)
        if not isinstance(providers, Sequence) or not 1 <= len(providers) <= 15:
            count = len(providers) if isinstance(providers, Sequence) else providers
            raise InvalidInput("providers", f"expected 1..15 providers, got {count!r}")
        if not 60 <= valid_for_seconds <= 7 * 86_400:
            raise InvalidInput("validForSeconds", "must be 60 s .. 7 days")
        canonical_params = parsed.to_json()
        request_key = name_id("task", request_id)  # the id is namespaced by the org on chain
        task_id = task_id_for(self.org_id, request_key)
        digest = package_of(module).digest
        tasks = self.clients.tasks
        if tasks.state(task_id) != TaskState.NONE:
            return self._existing_task(
                task_id, request_id, digest, canonical_params, providers, lead_role(module)
            )
        envelope = self._envelope(task_id, request_id, canonical_params)
        now = pending_time(tasks.chain.w3)
        check_validity(self.clients, valid_for_seconds)
        check_algorithm(self.clients, digest, algorithm)
        resolver = ProviderResolver(self.clients, self.org_id, self.first_block)
        resolved = resolver.resolve(providers, digest, now)
        check_providers(self.clients, self.org_id, resolved, digest, now)
        check_counts(self.clients, module, parsed, self.org_id, resolved)
        columns = getattr(parsed, "columns", None)
        if columns is not None:
            check_schema(self.clients, resolved, columns)
        slots = [
            self._lead_slot(parsed, dataset, len(resolved)),
            *(p.slot for p in resolved),
        ]
        self._check_output_policy(module, parsed, slots)
        # Judged by the block the transaction joins: the contract requires
        # deadline > block.timestamp and deadline - block.timestamp <= maxTaskDuration,
        # and a later block only shortens the validity by the seconds it took to mine.
        deadline = now + valid_for_seconds
        try:
            tasks.create(request_key, digest, envelope.digest, deadline, slots)
        except ContractRevert as exc:
            if exc.error_name != "TaskAlreadyExists":
                raise
            # An identical request raced this one and won: answer as its retry.
            return self._existing_task(
                task_id, request_id, digest, canonical_params, providers, lead_role(module)
            )
        self._store(task_id, request_id, envelope, lead_role(module))
        return TaskCreation(self.task_status(task_id), True)

    def _lead_slot(
        self,
        parsed: Any,
        dataset: Mapping[str, Any] | None,
        responders: int,
    ) -> Participant:
        """This node's own seat: with its dataset for a requester-style algorithm
        (`submit_task` already refused a dataset given to, or missing for, the wrong kind)."""
        if dataset is None:
            return Participant(self.clients.account)
        check = getattr(parsed, "check_responder_count", None)
        if check is not None:
            try:
                check(responders)
            except ValueError as exc:
                raise InvalidInput("providers", str(exc)) from None
        unknown = sorted(set(dataset) - {"dataset", "datasetVersion"})
        if unknown:
            raise InvalidInput(
                "dataset", f"unknown field(s) {unknown}; expected dataset[, datasetVersion]"
            )
        dataset_id = registered_dataset_id(
            self.clients, self.org_id, dataset.get("dataset"), "dataset.dataset"
        )
        version = dataset.get("datasetVersion")
        if version is None:
            version = self.clients.datasets.latest_version(dataset_id)
        elif (
            not isinstance(version, int)
            or isinstance(version, bool)
            or not 1 <= version <= self.clients.datasets.latest_version(dataset_id)
        ):
            raise InvalidInput(
                "dataset.datasetVersion",
                f"expected a registered version (1.."
                f"{self.clients.datasets.latest_version(dataset_id)}), got {version!r}",
            )
        held = self.datasets.columns(dataset_id, version)
        if held is None:
            raise InvalidInput(
                "dataset",
                f"this node does not hold version {version} of dataset {hex32(dataset_id)}; "
                "it can only match data it holds",
            )
        column = getattr(parsed, "requester_column", None)
        if column is not None and column not in {c.name for c in held}:
            raise InvalidInput(
                "params.requester_column",
                f"dataset {hex32(dataset_id)} version {version} has no column {column!r} "
                f"(its columns: {', '.join(c.name for c in held)})",
            )
        return Participant(self.clients.account, dataset_id, version)

    def params_salt(self, task_id: bytes) -> bytes:
        """The salt of a task's parameter commitment: HMAC-SHA256(node secret, task id).

        Unpredictable to anyone without the node's secret (so the on-chain digest
        still hides the parameters, `ledger.task_params`), yet the same on every retry
        of the same request, so no salt has to be stored before the task is on chain.
        The secret is `params_salt_key`, by default SHA-256 of a domain tag and this
        node's account key.
        """
        key = self.params_salt_key
        if key is None:
            sender = self.clients.tasks.sender
            if sender is None:
                raise RuntimeError("no node account to derive the parameter salt key from")
            key = hashlib.sha256(SALT_KEY_DOMAIN + bytes(sender.account.key)).digest()
        return hmac.new(key, SALT_DOMAIN + task_id, hashlib.sha256).digest()

    def _envelope(
        self, task_id: bytes, request_id: str, canonical_params: Mapping[str, Any]
    ) -> ParamsEnvelope:
        """The envelope to commit to for a task not yet on chain.

        A local record may exist without a task on chain (left by an older version that
        stored first, or a crash): with the same parameters its salt is reused, so the
        record and the chain agree; with others the request id is taken locally.
        """
        assert self.state is not None
        record = self.state.get(task_id)
        if record is not None and record.params is not None:
            stored = ParamsEnvelope.from_json(record.params)
            if dict(stored.params) != dict(canonical_params):
                raise Conflict(
                    "requestId",
                    f"{request_id!r} was used before with other parameters (a creation that "
                    "never reached the chain); use another request id",
                )
            return stored
        return ParamsEnvelope(dict(canonical_params), self.params_salt(task_id))

    def _store(self, task_id: bytes, request_id: str, envelope: ParamsEnvelope, role: str) -> None:
        """Local state of a task on chain: its parameters and request id (idempotent;
        fills in the parameters of a record the runner created from TaskCreated)."""
        assert self.state is not None
        self.state.ensure(task_id, role=role, params=envelope.to_json())
        self._request_ids().record(task_id, request_id)

    def _request_ids(self) -> TaskRequests:
        assert self.state is not None
        if self._requests is None:
            self._requests = TaskRequests(self.state.db)
        return self._requests

    def _existing_task(
        self,
        task_id: bytes,
        request_id: str,
        digest: bytes,
        canonical_params: Mapping[str, Any],
        providers: Sequence[Mapping[str, Any]],
        role: str,
    ) -> TaskCreation:
        """A retry: the same task if the request is identical, else a `Conflict`."""
        assert self.state is not None
        info = self.clients.tasks.info(task_id)
        used = f"{request_id!r} was used for task {hex32(task_id)} with other"
        if info.algorithm_digest != digest:
            raise Conflict("requestId", f"{used} algorithm; use another request id")
        record: TaskRecord | None = self.state.get(task_id)
        if record is not None and record.params is not None:
            envelope = ParamsEnvelope.from_json(record.params)
        else:
            envelope = ParamsEnvelope(dict(canonical_params), self.params_salt(task_id))
        if dict(envelope.params) != dict(canonical_params) or envelope.digest != info.params_digest:
            raise Conflict("requestId", f"{used} parameters; use another request id")
        difference = self._provider_difference(task_id, providers)
        if difference is not None:
            raise Conflict("requestId", f"{used} providers ({difference}); use another request id")
        # Repairs a crash between "mined" and "stored"; a no-op otherwise.
        self._store(task_id, request_id, envelope, role)
        return TaskCreation(self.task_status(task_id), False)

    def _provider_difference(
        self, task_id: bytes, providers: Sequence[Mapping[str, Any]]
    ) -> str | None:
        """How the request's providers differ from the task's, or None.

        Only what the request names is compared: a default (latest version, newest
        grant, the only node) may have changed since the task was created.
        """
        own = self.clients.account.lower()
        seats = [
            p
            for p in self.clients.tasks.participants(task_id)
            if p.dataset_id != bytes(32) and p.node.lower() != own
        ]
        if len(seats) != len(providers):
            return f"{len(seats)} on chain, {len(providers)} requested"
        for i, (entry, seat) in enumerate(zip(providers, seats, strict=True)):
            where = f"providers[{i}]"
            given = {k: v for k, v in entry.items() if v is not None}
            if "org" in given or "dataset" in given:
                org = org_of(self.clients, given.get("org"), f"{where}.org", self.first_block)
                if self.clients.consortium.node_org(seat.node) != org.org_id:
                    return f"{where}: the task's node is not of {org.name!r}"
                dataset = dataset_id_of(org.org_id, given.get("dataset"), f"{where}.dataset")
            else:
                dataset = as_bytes32(given.get("datasetId"), f"{where}.datasetId")
            if dataset != seat.dataset_id:
                return f"{where}: dataset {hex32(seat.dataset_id)} on chain"
            if "node" in given and as_address(given["node"], f"{where}.node") != seat.node:
                return f"{where}: node {seat.node} on chain"
            if "datasetVersion" in given and given["datasetVersion"] != seat.dataset_version:
                return f"{where}: dataset version {seat.dataset_version} on chain"
            if "grantId" in given and as_bytes32(given["grantId"], f"{where}.grantId") != (
                seat.grant_id
            ):
                return f"{where}: grant {hex32(seat.grant_id)} on chain"
        return None

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
        """The time the next block will carry (not the last block's, which on an idle
        chain may be minutes old): see `node.task_prechecks.pending_time`."""
        return pending_time(self.clients.tasks.chain.w3)

    def _task_id(self, reference: object) -> bytes:
        return task_id_of(self.org_id, reference, "taskId")

    def task_status(self, task: object) -> dict[str, Any]:
        """A task by id or by the request id this organisation created it with.

        Adds ``requestId`` (when known) and, for a task that ended badly, ``failure``
        and ``refusals`` from the chain's events (`node.task_outcome`).
        """
        tid = self._task_id(task)
        tasks = self.clients.tasks
        if tasks.state(tid) == TaskState.NONE:
            problem = "no such task on chain"
            if not is_id(task):
                problem += f" (no task was created with request id {str(task).strip()!r})"
            raise UnknownTask(tid, problem)
        info = tasks.info(tid)
        record = self.state.get(tid) if self.state is not None else None
        request_id = self._request_ids().get(tid) if self.state is not None else None
        if request_id is None and isinstance(task, str) and not is_id(task):
            request_id = task.strip()
        ended = info.state in (TaskState.FAILED, TaskState.EXPIRED, TaskState.DISPUTED)
        why = outcome(self.clients, tid, self.first_block) if ended else None
        return {
            "taskId": hex32(tid),
            "requestId": request_id,
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
            "failure": why["failure"] if why else None,
            "refusals": why["refusals"] if why else [],
            "attestationRefusals": why["attestationRefusals"] if why else [],
        }

    def task_result(self, task: object) -> dict[str, Any]:
        """The aggregate, for the aggregator's own operator only; opens the commitment.
        The task is referred to by id or request id, as in `task_status`."""
        tid = self._task_id(task)
        record = self.state.get(tid) if self.state is not None else None
        if record is None or record.result_json is None:
            raise UnknownTask(tid, "no result held by this node for the task")
        stored = json.loads(record.result_json)
        if "share" in stored:
            # A feature holder's own model share of a vertical training task: what its
            # node keeps for scoring, committed by nobody (its chain is anchored).
            return {
                "taskId": hex32(tid),
                "state": self.clients.tasks.state(tid).name,
                "share": stored["share"],
                "params": record.params,
            }
        return {
            "taskId": hex32(tid),
            "state": self.clients.tasks.state(tid).name,
            "result": stored["result"],
            "commitmentSalt": stored["salt"],
            # What the on-chain paramsDigest commits to: hand it to an auditor
            # (`provnet audit verify --params FILE`) to have the parameters checked.
            "params": record.params,
        }


def _dataset_use_error(module: ModuleType) -> InvalidInput:
    """A task request that gives its own dataset where the algorithm takes none, or
    the other way round."""
    if is_requester_style(module):
        return InvalidInput(
            "dataset",
            f"{module.NAME} matches this organisation's own dataset against the providers' "
            'ones: name it, e.g. {"dataset": "customers"} (CLI: --dataset customers)',
        )
    return InvalidInput(
        "dataset",
        f"{module.NAME} runs with this node as a data-less aggregator; omit dataset "
        "(it is for requester algorithms such as psi)",
    )


def _params_error(exc: ValueError) -> InvalidInput:
    """A parameter error as the API reports it: the field under ``params.``."""
    name = getattr(exc, "field", None)
    if isinstance(name, str) and name:
        return InvalidInput(f"params.{name}", str(exc).removeprefix(f"{name}: "))
    return InvalidInput("params", str(exc))


def _column_json(column: Any) -> dict[str, Any]:
    out = {"name": column.name, "type": column.type, "identifier": column.identifier}
    if getattr(column, "scale", 0):
        out["scale"] = column.scale
    return out
