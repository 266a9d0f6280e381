"""The calling side of `provnet.lookup.v1.Lookup`: typed wrappers, and the library's callables.

Why this module exists: the lookup library (``epoch.py``, ``publisher.py``,
``querier.py``) takes its network hops as plain callables — ``Evaluate(epoch, blinded)``
and ``FetchBucket(index)`` — so that the computation does not change when a network is
put between the roles. This module makes those callables out of gRPC calls over the
peer plane's mutual TLS (``querier_evaluate``, ``bucket_fetcher``), and gives the
roles' other calls typed methods (:class:`LookupClient`), turning every refusal into a
named error and a stale-epoch refusal back into ``epoch.StaleEpochError``.

A client dials the node's on-chain endpoint and pins exactly the certificate whose
digest the chain registers (``ChainTrust.peer``), like ``node.peer.client``; it is
re-resolved whenever the chain's endpoint or certificate for the node changes.

Calls are single attempts: retry policy belongs to the caller, which knows whether a
repeated submission (charged again) is acceptable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import grpc

from ledger.canonical import canonical_json
from node.channel import MAX_MESSAGE_BYTES
from node.crypto import threshold_oprf
from node.crypto.threshold_oprf import ShareEvaluation
from node.identity import TlsIdentity
from node.lookup import lookup_pb2, lookup_pb2_grpc
from node.lookup.epoch import (
    EpochDescriptor,
    EpochKeys,
    EpochKeysMismatch,
    Evaluate,
    MixedBatch,
    StaleEpochError,
)
from node.lookup.querier import FetchBucket, UnionDownload
from node.lookup.query_log import QueryRecord
from node.lookup.relay import Ticket, TicketAnswer
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.service import EPOCH_TRAILER
from node.lookup.rpc.state import HolderState
from node.lookup.union import (
    Contribution,
    Union,
    UnionDigestMismatch,
    UnionTable,
    digest_from_parts,
)
from node.peer import ENVELOPE_OVERHEAD
from node.peer.client import target_name
from node.peer.trust import ChainTrust, TrustedPeer, split_endpoint

__all__ = [
    "ENTRIES_PER_PART",
    "EpochDownload",
    "LookupCallError",
    "LookupClient",
    "LookupDenied",
    "LookupNotFound",
    "LookupRefused",
    "LookupTimeout",
    "LookupUnavailable",
    "bucket_fetcher",
    "deal_epoch",
    "fetch_union",
    "querier_evaluate",
]

ENTRIES_PER_PART = 20_000
"""Contribution entries per streamed part: ~2 MB with labels, under any message limit."""
DEFAULT_TIMEOUT = 30.0


class LookupCallError(Exception):
    """Base of this module's errors: ``code`` and ``details`` as the callee said them."""

    def __init__(self, node: str, call: str, code: grpc.StatusCode, details: str) -> None:
        self.node, self.call, self.code, self.details = node, call, code, details
        super().__init__(f"{node} refused {call}: {code.name}: {details}")


class LookupRefused(LookupCallError):
    """The callee answered and refused the request as it is (bad input, wrong role, ...)."""


class LookupDenied(LookupRefused):
    """Refused because of who called (PERMISSION_DENIED or UNAUTHENTICATED)."""


class LookupNotFound(LookupRefused):
    """The list, ticket or epoch asked for is not there."""


class LookupUnavailable(LookupCallError):
    """No answer now (unreachable, TLS refused, stale chain view, over rate): transient."""


class LookupTimeout(TimeoutError):
    """A ticket's answer did not arrive within the querier's deadline."""


_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def _error(node: str, call: str, exc: grpc.RpcError, epoch: int | None) -> Exception:
    rpc = cast("grpc.Call", exc)
    code, details = rpc.code(), rpc.details() or ""
    if code == grpc.StatusCode.FAILED_PRECONDITION and epoch is not None:
        for key, value in rpc.trailing_metadata() or ():
            if key == EPOCH_TRAILER and str(value).isdigit():
                return StaleEpochError(epoch, int(value))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and details.startswith(
        ("quota exhausted", "contribution: more than")
    ):  # limits a retry cannot pass, unlike the peer rate limiter's
        return LookupRefused(node, call, code, details)
    if code in _TRANSIENT:
        if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details:
            # The TLS handshake is refused until the callee has verified this node's
            # certificate (it retries by itself after a start), or the callee is down.
            details += (
                f" (is {node} running, and does `provnet node peers` on it show this node "
                "verified?)"
            )
        return LookupUnavailable(node, call, code, details)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return LookupDenied(node, call, code, details)
    if code == grpc.StatusCode.NOT_FOUND:
        return LookupNotFound(node, call, code, details)
    return LookupRefused(node, call, code, details)


@dataclass(frozen=True)
class EpochDownload:
    """A list's current epoch as its relay serves it, checked for internal consistency.

    ``descriptor.digest`` is what must equal the builder's anchored checkpoint
    (``anchoring.current_epoch``); pass it as ``expected_digest`` to have it checked.
    """

    keys: EpochKeys
    descriptor: EpochDescriptor
    union: UnionDownload


class LookupClient:
    """Calls to one node's `Lookup` service, dialled at the endpoint the chain gives."""

    def __init__(
        self,
        trust: ChainTrust,
        identity: TlsIdentity,
        node: str,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.trust = trust
        self.identity = identity
        self.node = node
        self.timeout = timeout
        self._wire_limit = max_message_bytes + ENVELOPE_OVERHEAD
        self._lock = threading.Lock()
        self._pinned: TrustedPeer | None = None
        self._channel: grpc.Channel | None = None
        self._stub: lookup_pb2_grpc.LookupStub | None = None

    def stub(self) -> lookup_pb2_grpc.LookupStub:
        """The raw stub for the node's current endpoint and pinned certificate."""
        peer = self.trust.peer(self.node)
        with self._lock:
            if self._stub is not None and self._pinned == peer:
                return self._stub
            if self._channel is not None:
                self._channel.close()
            host, _ = split_endpoint(peer.endpoint)
            credentials = grpc.ssl_channel_credentials(
                root_certificates=peer.cert_pem,
                private_key=self.identity.key_pem,
                certificate_chain=self.identity.cert_pem,
            )
            self._channel = grpc.secure_channel(
                peer.endpoint,
                credentials,
                options=[
                    ("grpc.ssl_target_name_override", target_name(peer.cert_pem, host)),
                    ("grpc.max_send_message_length", self._wire_limit),
                    ("grpc.max_receive_message_length", self._wire_limit),
                    ("grpc.enable_retries", 0),
                ],
            )
            self._pinned = peer
            self._stub = lookup_pb2_grpc.LookupStub(self._channel)
            return self._stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub = self._pinned = None

    def __enter__(self) -> LookupClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ key holder

    def deal(self, list_name: str, epoch: int, commitments: Sequence[bytes], share: bytes) -> bool:
        """Send this node's dealing to the holder; True if it had it already.

        A holder whose share fails the commitments answers with the complaint
        (:class:`LookupRefused`, INVALID_ARGUMENT, naming this dealer).
        """
        request = lookup_pb2.DealRequest(
            list_name=list_name, epoch=epoch, commitments=list(commitments), share=share
        )
        try:
            return self.stub().Deal(request, timeout=self.timeout).duplicate
        except grpc.RpcError as exc:
            raise _error(self.node, "Deal", exc, epoch) from None

    def justify(
        self, list_name: str, epoch: int, holder: int, *, timeout: float | None = None
    ) -> tuple[list[bytes], bytes]:
        """The relay's question to a dealer a holder complained against: the commitments
        and the share it dealt that holder (checked by the caller, not here)."""
        request = lookup_pb2.JustifyRequest(list_name=list_name, epoch=epoch, holder_index=holder)
        try:
            reply = self.stub().Justify(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise _error(self.node, "Justify", exc, epoch) from None
        return [bytes(c) for c in reply.commitments], bytes(reply.share)

    def deliver_justified(
        self,
        list_name: str,
        epoch: int,
        dealer: int,
        commitments: Sequence[bytes],
        share: bytes,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Hand a complaining holder the dealer's justified share (the relay's call); True
        if it had it already. A holder that still refuses it answers with the complaint
        (:class:`LookupRefused`, INVALID_ARGUMENT, naming the dealer)."""
        request = lookup_pb2.JustifiedShare(
            list_name=list_name,
            epoch=epoch,
            dealer_index=dealer,
            commitments=list(commitments),
            share=share,
        )
        try:
            reply = self.stub().DeliverJustified(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise _error(self.node, "DeliverJustified", exc, epoch) from None
        return reply.duplicate

    def evaluate(
        self, list_name: str, epoch: int, batch_id: bytes, blinded: Sequence[bytes]
    ) -> ShareEvaluation:
        """The holder's ``k_i * B`` for a batch with its proof (the relay's call)."""
        request = lookup_pb2.EvaluateRequest(
            list_name=list_name, epoch=epoch, batch_id=batch_id, blinded_elements=list(blinded)
        )
        try:
            reply = self.stub().Evaluate(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(self.node, "Evaluate", exc, epoch) from None
        return _evaluation(reply)

    # ------------------------------------------------------------------ relay

    def contribute(
        self,
        list_name: str,
        epoch: int,
        keys: EpochKeys,
        contribution: Contribution,
        *,
        entries_per_part: int = ENTRIES_PER_PART,
    ) -> bool:
        """Stream this provider's contribution to the relay; True if it had it already."""
        keys_json = canonical_json(keys.to_json())
        entries = list(contribution.entries)

        def parts() -> Iterator[lookup_pb2.ContributionPart]:
            for start in range(0, max(1, len(entries)), entries_per_part):
                yield lookup_pb2.ContributionPart(
                    list_name=list_name,
                    epoch=epoch,
                    epoch_keys_json=keys_json if start == 0 else b"",
                    entries=[
                        lookup_pb2.Entry(
                            prf=e.prf, labels=sorted(e.labels), event_time=e.event_time
                        )
                        for e in entries[start : start + entries_per_part]
                    ],
                )

        try:
            return self.stub().Contribute(parts(), timeout=self.timeout).duplicate
        except grpc.RpcError as exc:
            raise _error(self.node, "Contribute", exc, epoch) from None

    def get_epoch(self, list_name: str, *, expected_digest: bytes | None = None) -> EpochDownload:
        """The list's current epoch; checks keys, table and bucket digests against the
        descriptor (``EpochKeysMismatch`` / ``UnionDigestMismatch``), and the descriptor
        against ``expected_digest`` (the anchored one) when given."""
        request = lookup_pb2.GetEpochRequest(list_name=list_name)
        try:
            parts = list(self.stub().GetEpoch(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _error(self.node, "GetEpoch", exc, None) from None
        if not parts:
            raise LookupRefused(self.node, "GetEpoch", grpc.StatusCode.DATA_LOSS, "no parts")
        first = parts[0]
        keys = EpochKeys.from_json(json.loads(first.epoch_keys_json))
        descriptor = EpochDescriptor.from_json(json.loads(first.descriptor_json))
        table = b"".join(p.table_part for p in parts)
        digests = tuple(bytes(d) for p in parts for d in p.bucket_digests)
        if len(table) != first.table_bytes or len(digests) != first.bucket_count:
            raise UnionDigestMismatch(
                f"the relay announced {first.table_bytes} table bytes and {first.bucket_count} "
                f"buckets but sent {len(table)} and {len(digests)}; download again"
            )
        if expected_digest is not None and descriptor.digest != expected_digest:
            raise EpochKeysMismatch(
                f"the relay's epoch {descriptor.epoch} descriptor is not the anchored one; "
                "download again or from another source"
            )
        if keys.digest != descriptor.keys_digest or keys.epoch != descriptor.epoch:
            raise EpochKeysMismatch("the relay's epoch keys do not match its descriptor")
        if digest_from_parts(descriptor.epoch, table, digests) != descriptor.union_digest:
            raise UnionDigestMismatch("the relay's table does not match its descriptor")
        return EpochDownload(keys, descriptor, UnionDownload(descriptor.epoch, table, digests))

    def get_bucket(self, list_name: str, epoch: int, index: int) -> bytes:
        """One whole label bucket (checked against its digest by the ``Querier``)."""
        request = lookup_pb2.GetBucketRequest(list_name=list_name, epoch=epoch, index=index)
        try:
            return bytes(self.stub().GetBucket(request, timeout=self.timeout).bucket)
        except grpc.RpcError as exc:
            raise _error(self.node, "GetBucket", exc, epoch) from None

    def submit(
        self, list_name: str, epoch: int, purpose: str, grant_id: bytes, blinded: Sequence[bytes]
    ) -> Ticket:
        """Hand blinded elements to the relay, charged to this node's organisation."""
        request = lookup_pb2.SubmitRequest(
            list_name=list_name,
            epoch=epoch,
            purpose=purpose,
            grant_id=grant_id,
            blinded_elements=list(blinded),
        )
        try:
            reply = self.stub().Submit(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _error(self.node, "Submit", exc, epoch) from None
        return Ticket(bytes(reply.ticket_id), reply.count)

    def collect(self, ticket_id: bytes, wait: float = 0.0) -> TicketAnswer | None:
        """The ticket's answer, waiting up to ``wait`` s at the relay; None if not ready.

        ``querier_org`` of the answer is empty: the relay does not send identities.
        """
        request = lookup_pb2.CollectRequest(
            ticket_id=ticket_id, wait_ms=max(0, min(int(wait * 1000), 2**32 - 1))
        )
        try:
            reply = self.stub().Collect(request, timeout=self.timeout + wait)
        except grpc.RpcError as exc:
            raise _error(self.node, "Collect", exc, None) from None
        if not reply.ready:
            return None
        return TicketAnswer(
            ticket_id=ticket_id,
            querier_org="",
            batch_id=bytes(reply.batch_id),
            epoch=reply.epoch,
            positions=tuple(reply.positions),
            batch_elements=tuple(bytes(e) for e in reply.batch_elements),
            evaluations=tuple(_evaluation(e) for e in reply.evaluations),
        )

    # ------------------------------------------------------------------ epoch steps

    def _step(
        self, call: str, request: lookup_pb2.EpochStepRequest, timeout: float | None
    ) -> lookup_pb2.EpochStepReply:
        method = getattr(self.stub(), call)
        try:
            reply: lookup_pb2.EpochStepReply = method(
                request, timeout=self.timeout if timeout is None else timeout
            )
            return reply
        except grpc.RpcError as exc:
            raise _error(self.node, call, exc, request.epoch) from None

    def prepare_epoch(
        self, list_name: str, epoch: int, *, timeout: float | None = None
    ) -> dict[int, str]:
        """Have the provider deal its DKG shares; the holders that did not take one."""
        reply = self._step(
            "PrepareEpoch", lookup_pb2.EpochStepRequest(list_name=list_name, epoch=epoch), timeout
        )
        return dict(zip(reply.failed_holders, reply.failures, strict=False))

    def complete_epoch(
        self, list_name: str, epoch: int, exclude: Sequence[int], *, timeout: float | None = None
    ) -> EpochKeys:
        """Have the provider combine its share over the qualified dealers; its keys."""
        request = lookup_pb2.EpochStepRequest(
            list_name=list_name, epoch=epoch, exclude=sorted(exclude)
        )
        reply = self._step("CompleteEpoch", request, timeout)
        return EpochKeys.from_json(json.loads(reply.epoch_keys_json))

    def publish_epoch(self, list_name: str, epoch: int, *, timeout: float | None = None) -> int:
        """Have the provider publish its pending list and contribute; entries sent."""
        request = lookup_pb2.EpochStepRequest(list_name=list_name, epoch=epoch)
        return int(self._step("PublishEpoch", request, timeout).entries)

    def accept_epoch(
        self, list_name: str, epoch: int, digest: bytes, *, timeout: float | None = None
    ) -> bool:
        """Have the provider check its inclusion and accept the epoch on chain."""
        request = lookup_pb2.EpochStepRequest(
            list_name=list_name, epoch=epoch, descriptor_digest=digest
        )
        return bool(self._step("AcceptEpoch", request, timeout).accepted)

    def get_query_log(self) -> list[tuple[str, bytes, list[QueryRecord]]]:
        """The callee's query logs (a regulator's call): name, anchor name, records."""
        try:
            parts = list(
                self.stub().GetQueryLog(lookup_pb2.GetQueryLogRequest(), timeout=self.timeout)
            )
        except grpc.RpcError as exc:
            raise _error(self.node, "GetQueryLog", exc, None) from None
        logs: dict[str, tuple[bytes, list[QueryRecord]]] = {}
        for part in parts:
            _, records = logs.setdefault(part.log_name, (bytes(part.anchor_name), []))
            records.extend(record_from_json(raw) for raw in part.records)
        return [(name, anchor, records) for name, (anchor, records) in logs.items()]


def record_from_json(raw: bytes) -> QueryRecord:
    """A served log record from its canonical leaf JSON; ``ValueError`` if malformed."""
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("kind") != "lookup-query-log-record":
        raise ValueError("a served query-log record is not a lookup-query-log-record")
    return QueryRecord(
        data["querier_org"],
        data["time_bucket"],
        data["purpose"],
        data["epoch"],
        bytes.fromhex(data["element_digest"]),
    )


def _evaluation(message: lookup_pb2.ShareEvaluation) -> ShareEvaluation:
    return ShareEvaluation(
        message.holder_index,
        [bytes(e) for e in message.evaluated_elements],
        bytes(message.proof),
    )


# ---------------------------------------------------------------------- callables


def querier_evaluate(
    relay: LookupClient,
    list_name: str,
    purpose: str,
    grant_id: bytes,
    *,
    poll: float = 1.0,
    timeout: float = DEFAULT_TIMEOUT,
) -> Evaluate:
    """The ``Evaluate`` hop through the relay: submit, then collect until answered.

    Returns a ``MixedBatch`` (the whole batch, every holder's evaluations and this
    ticket's positions), which ``epoch.verified_answers`` checks. One call is one
    ticket, so a round may hold at most the relay's ``max_ticket`` elements (use it as
    the querier's and publisher's chunk size). :class:`LookupTimeout` if no answer
    within ``timeout`` seconds of submitting.
    """

    def evaluate(epoch: int, blinded: list[bytes]) -> MixedBatch:
        ticket = relay.submit(list_name, epoch, purpose, grant_id, blinded)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LookupTimeout(
                    f"ticket 0x{ticket.ticket_id.hex()} not answered by {relay.node} within "
                    f"{timeout:g} s; submit again"
                )
            answer = relay.collect(ticket.ticket_id, min(poll, remaining))
            if answer is not None:
                return answer.mixed_batch()

    return evaluate


def bucket_fetcher(relay: LookupClient, list_name: str, epoch: int) -> FetchBucket:
    """The ``FetchBucket`` hop: one whole bucket of ``epoch`` from the relay."""

    def fetch(index: int) -> bytes:
        return relay.get_bucket(list_name, epoch, index)

    return fetch


def fetch_union(
    relay: LookupClient, list_name: str, *, expected_digest: bytes | None = None
) -> tuple[EpochDownload, Union]:
    """The whole current union (table and every bucket), for a provider's
    ``publisher.check_inclusion`` before it accepts the epoch on chain."""
    download = relay.get_epoch(list_name, expected_digest=expected_digest)
    epoch = download.descriptor.epoch
    buckets = tuple(
        relay.get_bucket(list_name, epoch, i) for i in range(len(download.union.bucket_digests))
    )
    union = Union(epoch, UnionTable.from_bytes(download.union.table_bytes), buckets)
    if union.digest != download.descriptor.union_digest:
        raise UnionDigestMismatch("the relay's buckets do not match its descriptor")
    return download, union


def deal_epoch(
    roster: ListRoster,
    epoch: int,
    me: str,
    holders: Mapping[str, LookupClient],
    local: HolderState,
    dealing: threshold_oprf.Dealing | None = None,
) -> dict[int, str]:
    """This provider's part of the DKG: deal, keep its own share, send every other's.

    ``holders`` maps each other provider's node to a client. Returns the holders that
    did not take their share (index -> why): a complaint (the holder says the share
    fails the commitments) or an unreachable holder; the caller runs the complaint
    round, then every holder calls ``HolderState.complete_dkg`` over the same set.
    ``dealing`` repeats an earlier dealing of this provider (a retry must not deal anew:
    a holder keeps the first dealing of each dealer).
    """
    own = roster.holder_index(me)
    if own is None:
        raise EpochKeysMismatch(f"{me} is not a provider of list {roster.list_name!r}")
    dealing = threshold_oprf.deal(roster.t, roster.n) if dealing is None else dealing
    local.receive_dealing(roster.list_name, epoch, own, dealing.commitments, dealing.shares[own])
    failed: dict[int, str] = {}
    for index in range(1, roster.n + 1):
        if index == own:
            continue
        client = holders.get(roster.holder(index))
        if client is None:
            failed[index] = "no client for this holder"
            continue
        try:
            client.deal(roster.list_name, epoch, dealing.commitments, dealing.shares[index])
        except (LookupCallError, StaleEpochError) as exc:
            failed[index] = str(exc)
    return failed
