"""The `provnet.lookup.v1.Lookup` servicer: who may call what, and the status of every refusal.

Why this module exists: the lookup roles (``state.py``) trust what they are told about
the caller — which dealer, which provider, which organisation — so that word must come
from somewhere an attacker member cannot write. Here it comes from the transport only,
as `node.peer.evidence_service` does for evidence: the caller's TLS certificate (already
admitted by the peer server's roots) is looked up again in the chain view on every call
(an HTTP/2 connection outlives a revocation), giving the active node(s) it is
registered for and their organisation; the list's :class:`ListRoster` then says which
role that node has. No request field names a node or an organisation, so none can be
forged: a querier's organisation, charged and logged by the relay, is the one its node
belongs to on chain.

Per call: authenticate (UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE when the chain
view is stale), charge the peer rate limiter if given (RESOURCE_EXHAUSTED with the
peer plane's retry trailer), check the role (UNIMPLEMENTED when this node does not play
it at all, FAILED_PRECONDITION when it does not for this list, PERMISSION_DENIED when
the caller may not), check the fields (INVALID_ARGUMENT naming the field), then hand
over to the role. A stale epoch is FAILED_PRECONDITION with the current epoch in the
``provnet-lookup-epoch`` trailer, which the client turns back into ``StaleEpochError``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol, cast

import grpc

from ledger.canonical import canonical_json
from node.crypto import oprf
from node.crypto.oprf import OprfError
from node.crypto.threshold_oprf import MAX_HOLDERS, InvalidDealingError, ShareEvaluation
from node.identity import certificate_digest
from node.lookup import lookup_pb2, lookup_pb2_grpc
from node.lookup.epoch import (
    MAX_BATCH,
    DkgError,
    EpochKeys,
    EpochKeysFormatError,
    EpochKeysMismatch,
    StaleEpochError,
)
from node.lookup.keyholder import MalformedBatchError
from node.lookup.metering import MeteringError, PeriodClosed, QuotaExhausted
from node.lookup.query_log import QueryRecord
from node.lookup.relay import RelayError
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.state import (
    ContributionConflict,
    DealingConflict,
    GrantRefused,
    HolderRole,
    InvalidContribution,
    JustificationRefused,
    NoEpochError,
    NotInRoster,
    NotYourTicket,
    Published,
    RelayRole,
    UnknownList,
    UnknownTicket,
)
from node.lookup.union import Entry
from node.peer import RETRY_AFTER_KEY
from node.peer.server import PeerRateLimiter
from node.peer.trust import ChainTrust, TrustUnavailable

__all__ = [
    "BATCH_ID_BYTES",
    "CHUNK_BYTES",
    "EPOCH_TRAILER",
    "MAX_WAIT_MS",
    "TICKET_ID_BYTES",
    "EpochControl",
    "LookupService",
    "QueryLogSource",
    "org_label",
]

log = logging.getLogger(__name__)

EPOCH_TRAILER = "provnet-lookup-epoch"
"""Trailing metadata of a stale-epoch refusal: the epoch the callee answers for."""
CHUNK_BYTES = 1024 * 1024
"""Table bytes (or 32-byte digests' worth) per streamed part: far below any message limit."""
MAX_WAIT_MS = 5_000
"""Longest a `Collect` may hold a server thread; a querier polls again after it."""
BATCH_ID_BYTES = 16
TICKET_ID_BYTES = 16
_MAX_LIST_NAME = 64


def org_label(org_id: bytes) -> str:
    """The text the relay meters and logs an organisation under: its on-chain id in hex."""
    return "0x" + org_id.hex()


@dataclass(frozen=True)
class _Caller:
    nodes: frozenset[str]
    org: str


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


def _stale(context: grpc.ServicerContext, exc: StaleEpochError) -> NoReturn:
    context.set_trailing_metadata(((EPOCH_TRAILER, str(exc.current)),))
    _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"epoch: {exc}")


def _refuse(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """The status of a role's named error (see the module docstring)."""
    if isinstance(exc, StaleEpochError):
        _stale(context, exc)
    code = grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, UnknownList | UnknownTicket):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(exc, NotYourTicket | GrantRefused):
        code = grpc.StatusCode.PERMISSION_DENIED
    elif isinstance(
        exc, NotInRoster | NoEpochError | DkgError | PeriodClosed | JustificationRefused
    ):
        code = grpc.StatusCode.FAILED_PRECONDITION
    elif isinstance(exc, DealingConflict | ContributionConflict):
        code = grpc.StatusCode.ALREADY_EXISTS
    elif isinstance(exc, QuotaExhausted):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
    _abort(context, code, str(exc))


_ROLE_ERRORS: tuple[type[Exception], ...] = (
    StaleEpochError,
    UnknownList,
    UnknownTicket,
    NotYourTicket,
    NotInRoster,
    NoEpochError,
    DkgError,
    DealingConflict,
    ContributionConflict,
    InvalidContribution,
    JustificationRefused,
    EpochKeysMismatch,
    EpochKeysFormatError,
    MalformedBatchError,
    RelayError,
    MeteringError,
    GrantRefused,
)

RECORDS_PER_PART = 10_000
"""Query-log records per streamed part (~2 MB of leaf JSON)."""


class EpochControl(Protocol):
    """A provider node's part of an epoch, each step started by the list's relay."""

    def prepare(self, list_name: str, epoch: int) -> Mapping[int, str]: ...

    def justify(self, list_name: str, epoch: int, holder: int) -> tuple[list[bytes], bytes]: ...

    def complete(self, list_name: str, epoch: int, exclude: Collection[int]) -> EpochKeys: ...

    def publish(self, list_name: str, epoch: int) -> int: ...

    def accept(self, list_name: str, epoch: int, digest: bytes) -> bool: ...


QueryLogSource = Callable[[], Sequence[tuple[str, bytes, Sequence[QueryRecord]]]]
"""This node's query logs: ``(log name, AnchorLog name, records)`` each."""


def _check_list_name(context: grpc.ServicerContext, name: str) -> str:
    # Length first, so an oversized field is never echoed back in a message.
    if not 1 <= len(name) <= _MAX_LIST_NAME:
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"list_name: expected 1..{_MAX_LIST_NAME} characters, got {len(name)}",
        )
    return name


def _check_bytes(context: grpc.ServicerContext, value: bytes, field: str, size: int) -> bytes:
    if len(value) != size:
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field}: expected {size} bytes, got {len(value)}",
        )
    return bytes(value)


def _dealing(
    context: grpc.ServicerContext, commitments: Sequence[bytes], share: bytes
) -> tuple[list[bytes], bytes]:
    """A dealing's commitments and share as the wire carries them (``Deal`` and
    ``DeliverJustified``), sizes checked; the commitments are verified by the holder."""
    if len(commitments) > MAX_HOLDERS:
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"commitments: at most {MAX_HOLDERS} elements, got {len(commitments)}",
        )
    checked = [
        _check_bytes(context, c, f"commitments[{i}]", oprf.ELEMENT_BYTES)
        for i, c in enumerate(commitments)
    ]
    return checked, _check_bytes(context, share, "share", oprf.SCALAR_BYTES)


def _check_elements(
    context: grpc.ServicerContext, values: Sequence[bytes], field: str, limit: int
) -> list[bytes]:
    if not 1 <= len(values) <= limit:
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field}: expected 1..{limit} elements, got {len(values)}",
        )
    out = []
    for i, value in enumerate(values):
        element = _check_bytes(context, value, f"{field}[{i}]", oprf.ELEMENT_BYTES)
        try:
            oprf.check_element(element, f"{field}[{i}]")
        except OprfError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        out.append(element)
    return out


def evaluation_message(evaluation: ShareEvaluation) -> lookup_pb2.ShareEvaluation:
    return lookup_pb2.ShareEvaluation(
        holder_index=evaluation.index,
        evaluated_elements=list(evaluation.evaluated_elements),
        proof=evaluation.proof,
    )


class LookupService(lookup_pb2_grpc.LookupServicer):
    """The lookup roles of one node, behind per-call authorisation.

    ``holder`` is given on a provider node, ``relay`` on a relay node; a role not given
    is answered UNIMPLEMENTED. ``control`` runs a provider's epoch steps when the list's
    relay asks; ``query_logs`` serves this node's logs to a node whose organisation
    ``is_regulator`` says holds the REGULATOR role now. ``rosters`` are the lists this
    node takes part in. ``clock`` gives Unix seconds (the relay's metering time).
    """

    def __init__(
        self,
        node: str,
        trust: ChainTrust,
        rosters: Mapping[str, ListRoster],
        *,
        holder: HolderRole | None = None,
        relay: RelayRole | None = None,
        rate: PeerRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        control: EpochControl | None = None,
        query_logs: QueryLogSource | None = None,
        is_regulator: Callable[[bytes], bool] | None = None,
        max_contribution_entries: int = 20_000_000,
    ) -> None:
        self.node = node
        self.max_contribution_entries = max_contribution_entries
        self.trust = trust
        self.rosters = dict(rosters)
        self.holder = holder
        self.relay = relay
        self.control = control
        self.query_logs = query_logs
        self.is_regulator = is_regulator
        self.rate = rate
        self._clock = clock

    def add_to(self, server: grpc.Server) -> None:
        """The ``PeerServer(extra_services=[service.add_to])`` hook."""
        lookup_pb2_grpc.add_LookupServicer_to_server(self, server)

    # ------------------------------------------------------------------ gates

    def _authenticate(self, context: grpc.ServicerContext, size: int) -> _Caller:
        """The caller's active nodes and their one organisation, or abort."""
        # The stubs say Mapping[str, bytes]; gRPC actually gives a list of values per key.
        auth = cast("dict[str, Sequence[bytes]]", context.auth_context())
        certs = auth.get("x509_pem_cert") or []
        if not certs:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no client certificate presented")
        try:
            nodes = self.trust.nodes_for_certificate(certs[0])
        except TrustUnavailable as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"cannot check the caller now: {exc}")
        if not nodes:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"client certificate SHA-256 {certificate_digest(certs[0]).hex()} is not "
                "registered for a node that is active on chain",
            )
        records = [self.trust.record(node) for node in nodes]
        orgs = {r.org_id for r in records if r is not None}
        if len(orgs) != 1:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "the client certificate is registered for nodes of several organisations; "
                "a lookup caller must belong to exactly one",
            )
        if self.rate is not None:
            refused = self.rate.admit(",".join(sorted(nodes)), size)
            if refused is not None:
                why, wait = refused
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(max(1, round(wait * 1000)))),))
                _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, why)
        return _Caller(nodes, org_label(orgs.pop()))

    def _roster(self, context: grpc.ServicerContext, list_name: str) -> ListRoster:
        roster = self.rosters.get(_check_list_name(context, list_name))
        if roster is None:
            _refuse(context, UnknownList(list_name))
        return roster

    def _holder_role(self, context: grpc.ServicerContext) -> HolderRole:
        if self.holder is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node holds no lookup key share")
        return self.holder

    def _relay_role(self, context: grpc.ServicerContext) -> RelayRole:
        if self.relay is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node is no lookup relay")
        return self.relay

    def _provider(self, context: grpc.ServicerContext, roster: ListRoster, caller: _Caller) -> int:
        """The caller's holder index, or PERMISSION_DENIED: only providers deal/contribute."""
        for node in sorted(caller.nodes):
            index = roster.holder_index(node)
            if index is not None:
                return index
        _abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            f"caller {', '.join(sorted(caller.nodes))} is not a provider of list "
            f"{roster.list_name!r}",
        )

    # ------------------------------------------------------------------ key holder

    def Deal(
        self, request: lookup_pb2.DealRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.DealReply:
        caller = self._authenticate(context, request.ByteSize())
        holder = self._holder_role(context)
        roster = self._roster(context, request.list_name)
        dealer = self._provider(context, roster, caller)
        commitments, share = _dealing(context, request.commitments, request.share)
        try:
            duplicate = holder.receive_dealing(
                roster.list_name, request.epoch, dealer, commitments, share
            )
        except InvalidDealingError as exc:
            log.warning("DKG complaint against dealer %d of %s: %s", dealer, roster.list_name, exc)
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"complaint against dealer {dealer} ({roster.holder(dealer)}): {exc}",
            )
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        return lookup_pb2.DealReply(duplicate=duplicate)

    def Evaluate(
        self, request: lookup_pb2.EvaluateRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.ShareEvaluation:
        caller = self._authenticate(context, request.ByteSize())
        holder = self._holder_role(context)
        roster = self._roster(context, request.list_name)
        if roster.relay not in caller.nodes:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {', '.join(sorted(caller.nodes))} is not the relay of list "
                f"{roster.list_name!r}; only the relay forwards batches to key holders",
            )
        _check_bytes(context, request.batch_id, "batch_id", BATCH_ID_BYTES)
        blinded = _check_elements(context, request.blinded_elements, "blinded_elements", MAX_BATCH)
        try:
            evaluation = holder.evaluate(roster.list_name, request.epoch, blinded)
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        return evaluation_message(evaluation)

    # ------------------------------------------------------------------ relay

    def Contribute(
        self,
        request_iterator: Iterator[lookup_pb2.ContributionPart],
        context: grpc.ServicerContext,
    ) -> lookup_pb2.ContributeReply:
        caller = self._authenticate(context, 0)
        relay = self._relay_role(context)
        roster: ListRoster | None = None
        provider = 0
        epoch = 0
        keys: EpochKeys | None = None
        entries: list[Entry] = []
        for number, part in enumerate(request_iterator):
            if self.rate is not None:
                refused = self.rate.admit(",".join(sorted(caller.nodes)), part.ByteSize())
                if refused is not None:
                    _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, refused[0])
            if roster is None:
                roster = self._roster(context, part.list_name)
                provider = self._provider(context, roster, caller)
                epoch = part.epoch
                keys = _parse_keys(context, part.epoch_keys_json)
            elif (part.list_name, part.epoch) != (roster.list_name, epoch) or part.epoch_keys_json:
                _abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"part {number}: every part must repeat the first part's list_name and "
                    "epoch, and only the first carries epoch_keys_json",
                )
            if len(entries) + len(part.entries) > self.max_contribution_entries:
                # Refused while streaming: the relay holds a contribution until the
                # build, so an endless stream must not reach its memory limit first.
                _abort(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"contribution: more than {self.max_contribution_entries} entries; the "
                    "relay's lookup.max_contribution_entries bounds one provider's list per "
                    "epoch (nothing of it was kept)",
                )
            for i, entry in enumerate(part.entries):
                entries.append(
                    Entry(
                        _check_bytes(context, entry.prf, f"entries[{i}].prf", 64),
                        frozenset(entry.labels),
                        entry.event_time,
                    )
                )
        if roster is None or keys is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "contribution: no part was sent")
        try:
            duplicate = relay.add_contribution(roster.list_name, epoch, provider, keys, entries)
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        return lookup_pb2.ContributeReply(duplicate=duplicate, entries=len(entries))

    def _published(self, context: grpc.ServicerContext, size: int, list_name: str) -> Published:
        """The relay's built epoch of ``list_name`` for an authenticated caller, or abort."""
        self._authenticate(context, size)
        relay = self._relay_role(context)
        roster = self._roster(context, list_name)
        try:
            published = relay.published(roster.list_name)
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        if published is None:
            _refuse(context, NoEpochError(f"list {roster.list_name!r} has no built epoch yet"))
        return published

    def GetEpoch(
        self, request: lookup_pb2.GetEpochRequest, context: grpc.ServicerContext
    ) -> Iterator[lookup_pb2.EpochPart]:
        published = self._published(context, request.ByteSize(), request.list_name)
        table = published.union.table_bytes
        digests = published.union.bucket_digests
        yield lookup_pb2.EpochPart(
            epoch_keys_json=canonical_json(published.keys.to_json()),
            descriptor_json=canonical_json(published.descriptor.to_json()),
            table_bytes=len(table),
            bucket_count=len(digests),
        )
        for start in range(0, len(table), CHUNK_BYTES):
            yield lookup_pb2.EpochPart(table_part=table[start : start + CHUNK_BYTES])
        per_part = CHUNK_BYTES // 32
        for start in range(0, len(digests), per_part):
            yield lookup_pb2.EpochPart(bucket_digests=list(digests[start : start + per_part]))

    def GetBucket(
        self, request: lookup_pb2.GetBucketRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.Bucket:
        published = self._published(context, request.ByteSize(), request.list_name)
        if request.epoch != published.descriptor.epoch:
            _stale(context, StaleEpochError(request.epoch, published.descriptor.epoch))
        buckets = published.union.buckets
        if request.index >= len(buckets):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"index: bucket {request.index} does not exist; epoch {request.epoch} has "
                f"{len(buckets)} buckets",
            )
        return lookup_pb2.Bucket(bucket=buckets[request.index])

    def Submit(
        self, request: lookup_pb2.SubmitRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.SubmitReply:
        caller = self._authenticate(context, request.ByteSize())
        relay = self._relay_role(context)
        roster = self._roster(context, request.list_name)
        if roster.relay in caller.nodes:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "the relay must not query the union it built: it could tell who listed what",
            )
        blinded = _check_elements(context, request.blinded_elements, "blinded_elements", MAX_BATCH)
        try:
            ticket = relay.submit(
                roster.list_name,
                request.epoch,
                caller.org,
                request.purpose,
                bytes(request.grant_id),
                blinded,
                self._clock(),
            )
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        return lookup_pb2.SubmitReply(ticket_id=ticket.ticket_id, count=ticket.count)

    def Collect(
        self, request: lookup_pb2.CollectRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.CollectReply:
        caller = self._authenticate(context, request.ByteSize())
        relay = self._relay_role(context)
        ticket_id = _check_bytes(context, request.ticket_id, "ticket_id", TICKET_ID_BYTES)
        wait = min(request.wait_ms, MAX_WAIT_MS) / 1000
        try:
            answer = relay.collect(ticket_id, caller.org, wait)
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        if answer is None:
            return lookup_pb2.CollectReply(ready=False)
        return lookup_pb2.CollectReply(
            ready=True,
            batch_id=answer.batch_id,
            epoch=answer.epoch,
            positions=list(answer.positions),
            batch_elements=list(answer.batch_elements),
            evaluations=[evaluation_message(e) for e in answer.evaluations],
        )

    # ------------------------------------------------------------------ epoch steps

    def _from_relay(
        self,
        context: grpc.ServicerContext,
        list_name: str,
        epoch: int,
        size: int,
        what: str,
        role: Callable[[grpc.ServicerContext], object],
    ) -> ListRoster:
        """Authenticate the list's relay as the caller, for a provider of the list, or abort.

        Every relay-driven DKG and epoch call (the steps, ``Justify``,
        ``DeliverJustified``) passes here, so one rule says who may drive an epoch.
        ``role`` aborts UNIMPLEMENTED when this node lacks the role (after authentication,
        so an unknown caller learns nothing about this node's roles).
        """
        caller = self._authenticate(context, size)
        role(context)
        roster = self._roster(context, list_name)
        if roster.relay not in caller.nodes:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {', '.join(sorted(caller.nodes))} is not the relay of list "
                f"{roster.list_name!r}; only the relay {what}",
            )
        if roster.holder_index(self.node) is None:
            _refuse(context, NotInRoster(f"this node is no provider of list {roster.list_name!r}"))
        if not 0 < epoch < 2**63:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "epoch: must be 1..2^63-1")
        return roster

    def _step(
        self, request: lookup_pb2.EpochStepRequest, context: grpc.ServicerContext
    ) -> tuple[EpochControl, ListRoster]:
        """Authenticate the list's relay and return this provider's epoch control."""
        roster = self._from_relay(
            context,
            request.list_name,
            request.epoch,
            request.ByteSize(),
            "runs an epoch",
            self._control,
        )
        return self._control(context), roster

    def _control(self, context: grpc.ServicerContext) -> EpochControl:
        if self.control is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node holds no lookup key share")
        return self.control

    def _run_step(
        self, context: grpc.ServicerContext, step: str, work: Callable[[], object]
    ) -> object:
        try:
            return work()
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        except Exception as exc:  # the relay is told why, in the provider's words
            log.warning("lookup epoch step %s failed: %s", step, exc)
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{step}: {exc}")

    def PrepareEpoch(
        self, request: lookup_pb2.EpochStepRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.EpochStepReply:
        control, roster = self._step(request, context)
        failed = cast(
            "Mapping[int, str]",
            self._run_step(
                context, "prepare", lambda: control.prepare(roster.list_name, request.epoch)
            ),
        )
        return lookup_pb2.EpochStepReply(
            failed_holders=sorted(failed), failures=[failed[i] for i in sorted(failed)]
        )

    def CompleteEpoch(
        self, request: lookup_pb2.EpochStepRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.EpochStepReply:
        control, roster = self._step(request, context)
        exclude = list(request.exclude)
        keys = cast(
            "EpochKeys",
            self._run_step(
                context,
                "complete",
                lambda: control.complete(roster.list_name, request.epoch, exclude),
            ),
        )
        return lookup_pb2.EpochStepReply(epoch_keys_json=canonical_json(keys.to_json()))

    def PublishEpoch(
        self, request: lookup_pb2.EpochStepRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.EpochStepReply:
        control, roster = self._step(request, context)
        entries = cast(
            "int",
            self._run_step(
                context, "publish", lambda: control.publish(roster.list_name, request.epoch)
            ),
        )
        return lookup_pb2.EpochStepReply(entries=entries)

    def AcceptEpoch(
        self, request: lookup_pb2.EpochStepRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.EpochStepReply:
        control, roster = self._step(request, context)
        digest = _check_bytes(context, request.descriptor_digest, "descriptor_digest", 32)
        accepted = cast(
            "bool",
            self._run_step(
                context,
                "accept",
                lambda: control.accept(roster.list_name, request.epoch, digest),
            ),
        )
        return lookup_pb2.EpochStepReply(accepted=accepted)

    # ------------------------------------------------------------------ justification

    def Justify(
        self, request: lookup_pb2.JustifyRequest, context: grpc.ServicerContext
    ) -> lookup_pb2.JustifyReply:
        """The dealer's side of the justification round (relay only; see ``provider.py``)."""
        roster = self._from_relay(
            context,
            request.list_name,
            request.epoch,
            request.ByteSize(),
            "asks a dealer to justify a share",
            self._control,
        )
        control = self._control(context)
        if not 1 <= request.holder_index <= roster.n:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"holder_index: expected 1..{roster.n}, got {request.holder_index}",
            )
        commitments, share = cast(
            "tuple[list[bytes], bytes]",
            self._run_step(
                context,
                "justify",
                lambda: control.justify(roster.list_name, request.epoch, request.holder_index),
            ),
        )
        log.info(
            "DKG justification: revealed this dealer's share for holder %d of %s epoch %d "
            "to the relay",
            request.holder_index,
            roster.list_name,
            request.epoch,
        )
        return lookup_pb2.JustifyReply(commitments=commitments, share=share)

    def DeliverJustified(
        self, request: lookup_pb2.JustifiedShare, context: grpc.ServicerContext
    ) -> lookup_pb2.DealReply:
        """A complaining holder's second look at a dealer's share, handed over by the relay.

        Verified exactly as a dealt share (``receive_dealing``): a holder that refuses a
        share the relay found consistent with its commitments has complained falsely,
        and the relay leaves it out of the epoch.
        """
        roster = self._from_relay(
            context,
            request.list_name,
            request.epoch,
            request.ByteSize(),
            "hands over justified shares",
            self._holder_role,
        )
        holder = self._holder_role(context)
        dealer = request.dealer_index
        if not 1 <= dealer <= roster.n or dealer == roster.holder_index(self.node):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"dealer_index: expected another provider's index in 1..{roster.n}, got {dealer}",
            )
        commitments, share = _dealing(context, request.commitments, request.share)
        try:
            duplicate = holder.receive_dealing(
                roster.list_name, request.epoch, dealer, commitments, share
            )
        except InvalidDealingError as exc:
            log.warning(
                "DKG complaint upheld against dealer %d's justified share of %s: %s",
                dealer,
                roster.list_name,
                exc,
            )
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"complaint against dealer {dealer} ({roster.holder(dealer)}): {exc}",
            )
        except _ROLE_ERRORS as exc:
            _refuse(context, exc)
        return lookup_pb2.DealReply(duplicate=duplicate)

    # ------------------------------------------------------------------ regulator

    def GetQueryLog(
        self, request: lookup_pb2.GetQueryLogRequest, context: grpc.ServicerContext
    ) -> Iterator[lookup_pb2.QueryLogPart]:
        caller = self._authenticate(context, request.ByteSize())
        if self.query_logs is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node keeps no lookup query log")
        org = bytes.fromhex(caller.org[2:])
        try:
            regulator = self.is_regulator is not None and self.is_regulator(org)
        except Exception as exc:  # the chain could not be asked now
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"cannot check the caller's role: {exc}")
        if not regulator:
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"organisation {caller.org} lacks the REGULATOR role; only a regulator reads "
                "lookup query logs",
            )
        for name, anchor_name, records in self.query_logs():
            yield lookup_pb2.QueryLogPart(log_name=name, anchor_name=anchor_name)
            for start in range(0, len(records), RECORDS_PER_PART):
                chunk = records[start : start + RECORDS_PER_PART]
                yield lookup_pb2.QueryLogPart(log_name=name, records=[r.encoded() for r in chunk])


def _parse_keys(context: grpc.ServicerContext, raw: bytes) -> EpochKeys:
    try:
        return EpochKeys.from_json(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"epoch_keys_json: {exc}")
