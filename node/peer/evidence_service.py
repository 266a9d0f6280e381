"""Both ends of `GetEvidence`: a node's evidence, served only to a regulator's node.

DESIGN §5: evidence is served to the auditor only against a request signed by a
REGULATOR node. Three gates stand between a caller and a transcript, each because the
others alone are not enough:

1. Mutual TLS and the per-call chain check of the peer server (`server._PeerService`):
   the caller's certificate is that of a node active on chain *now*.
2. The signed request names that very node as its ``requester``. A signature alone is
   a bearer token: a request intercepted or leaked from the regulator could otherwise be
   spent by any other active node. Binding it to the TLS identity means only the
   regulator's own node can use its requests. Checked before the signature so that a
   stolen request never burns the regulator's nonce.
3. `node.evidence.access.verify_request`: the EIP-712 signature is the requester's, the
   request has not expired (and does not live too long), the requester's organisation
   holds REGULATOR now, and the nonce was never used; the nonce is consumed only when
   every check passed, and the stored nonce rows are the log of who read what.

Only then is the task looked up, so a non-regulator cannot even learn which tasks a
node holds evidence for. The answer is the transcript read in one snapshot with its
root, plus the anchors recorded for it; nothing is verified for the reader — the auditor
recomputes the root and compares it with the chain, which is the point of the exercise.

Status codes: INVALID_ARGUMENT naming the malformed field; PERMISSION_DENIED with the
`DenyReason` value first (``not_regulator: ...``), or ``requester: ...`` when the request
names another node than the caller; NOT_FOUND for a task without evidence; DATA_LOSS when
the stored transcript is no longer an intact chain; UNAVAILABLE when the chain or the
database cannot be consulted right now (an outage is never reported as a refusal);
UNIMPLEMENTED from a node that serves no evidence.

The client end is `fetch_evidence`, which signs a fresh single-use request for every
attempt and returns an `EvidenceBundle` of `ledger.transcript.Entry` objects.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from eth_account.signers.local import LocalAccount

from ledger.clients.consortium import ConsortiumClient
from ledger.ids import InvalidInput, as_address, hex32
from ledger.transcript import Entry, chain_intact, transcript_root
from node.channel import MAX_MESSAGE_BYTES, ChannelError
from node.evidence.access import (
    MAX_VALIDITY_SECONDS,
    AccessDenied,
    DenyReason,
    EvidenceRequest,
    sign_request,
    verify_request,
)
from node.evidence.store import Anchor, EvidenceStore
from node.identity import TlsIdentity
from node.peer import TASK_ID_BYTES, peer_pb2
from node.peer.client import INITIAL_BACKOFF, MAX_BACKOFF, PeerClient
from node.peer.trust import TrustedPeer

__all__ = [
    "REQUEST_VALIDITY_SECONDS",
    "AnchorRecord",
    "EvidenceBundle",
    "EvidenceDenied",
    "EvidenceNotFound",
    "EvidenceRefused",
    "EvidenceService",
    "EvidenceUnreachable",
    "bundle_from_response",
    "fetch_evidence",
    "parse_request",
    "refusal",
    "response_message",
    "signed_request",
]

log = logging.getLogger(__name__)

REQUEST_VALIDITY_SECONDS = 120
"""How long a request `fetch_evidence` signs stays valid: enough for clock skew and one
slow call, far below the server's limit, so a leaked request is soon worthless."""
SIGNATURE_BYTES = 65
_UINT256_MAX = 2**256 - 1
_MAX_NONCE_DIGITS = len(str(_UINT256_MAX))  # 78
_ADDRESS_CHARS = 42
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


# ---------------------------------------------------------------------- wire forms


@dataclass(frozen=True)
class AnchorRecord:
    """A transcript prefix of ``tree_size`` entries with ``root``, anchored in ``tx_hash``."""

    kind: str
    tree_size: int
    root: bytes
    tx_hash: bytes


@dataclass(frozen=True)
class EvidenceBundle:
    """A task's evidence as ``node`` served it: its word, to be checked against the chain."""

    node: str
    task_id: bytes
    entries: tuple[Entry, ...]
    tree_size: int
    root: bytes
    anchors: tuple[AnchorRecord, ...]


def parse_request(message: peer_pb2.EvidenceRequest) -> tuple[EvidenceRequest, bytes]:
    """The request and its signature; `InvalidInput` naming the first malformed field.

    Lengths are checked before contents so that an oversized field is never echoed back
    in an error message.
    """
    if len(message.task_id) != TASK_ID_BYTES:
        raise InvalidInput("task_id", f"expected {TASK_ID_BYTES} bytes, got {len(message.task_id)}")
    if len(message.requester) != _ADDRESS_CHARS:
        raise InvalidInput(
            "requester",
            f"expected 0x followed by 40 hex digits, got {len(message.requester)} characters",
        )
    requester = str(as_address(message.requester, "requester"))
    nonce = _parse_nonce(message.nonce)
    if len(message.signature) != SIGNATURE_BYTES:
        raise InvalidInput(
            "signature", f"expected {SIGNATURE_BYTES} bytes, got {len(message.signature)}"
        )
    request = EvidenceRequest(bytes(message.task_id), requester, nonce, message.expires_at)
    return request, bytes(message.signature)


def _parse_nonce(text: str) -> int:
    """A uint256 in decimal: the one integer form proto3 can carry at that width."""
    if not 1 <= len(text) <= _MAX_NONCE_DIGITS:
        raise InvalidInput(
            "nonce", f"expected 1..{_MAX_NONCE_DIGITS} decimal digits, got {len(text)} characters"
        )
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput("nonce", f"expected decimal digits, got {text!r}")
    value = int(text)
    if value > _UINT256_MAX:
        raise InvalidInput("nonce", "exceeds 2**256 - 1")
    return value


def signed_request(
    account: LocalAccount,
    task_id: bytes,
    chain_id: int,
    consortium_address: str,
    *,
    nonce: int,
    expires_at: int,
) -> peer_pb2.EvidenceRequest:
    """A `GetEvidence` request for ``task_id`` signed by ``account`` (EIP-712)."""
    wire, signature = sign_request(
        account, task_id, nonce, expires_at, chain_id, consortium_address
    )
    return peer_pb2.EvidenceRequest(
        task_id=task_id,
        requester=str(wire["requester"]),
        nonce=str(nonce),
        expires_at=expires_at,
        signature=signature,
    )


def response_message(
    entries: Sequence[Entry], anchors: Sequence[Anchor]
) -> peer_pb2.EvidenceResponse:
    """The wire form of a transcript snapshot, its root and its anchors."""
    return peer_pb2.EvidenceResponse(
        entries=[
            peer_pb2.TranscriptEntry(
                seq=e.seq, kind=e.kind, step=e.step, peer=e.peer, digest=e.digest, prev=e.prev
            )
            for e in entries
        ],
        tree_size=len(entries),
        root=transcript_root(entries),
        anchors=[
            peer_pb2.AnchorRecord(
                kind=a.kind, tree_size=a.tree_size, root=a.root, tx_hash=a.tx_hash
            )
            for a in anchors
        ],
    )


def bundle_from_response(
    node: str, task_id: bytes, response: peer_pb2.EvidenceResponse
) -> EvidenceBundle:
    """Rebuild the served `Entry` objects exactly, field for field; nothing is judged."""
    return EvidenceBundle(
        node=node,
        task_id=task_id,
        entries=tuple(
            Entry(e.seq, e.kind, e.step, e.peer, bytes(e.digest), bytes(e.prev))
            for e in response.entries
        ),
        tree_size=response.tree_size,
        root=bytes(response.root),
        anchors=tuple(
            AnchorRecord(a.kind, a.tree_size, bytes(a.root), bytes(a.tx_hash))
            for a in response.anchors
        ),
    )


# ---------------------------------------------------------------------- serving


class EvidenceService:
    """Answers `GetEvidence` from one node's evidence store (see the module docstring).

    ``consortium`` supplies both the EIP-712 domain (its chain id and address) and the
    live role and status checks. ``clock`` gives Unix seconds; the local clock in a node.
    """

    def __init__(
        self,
        store: EvidenceStore,
        consortium: ConsortiumClient,
        *,
        clock: Callable[[], float] = time.time,
        max_validity: int = MAX_VALIDITY_SECONDS,
    ) -> None:
        self.store = store
        self.consortium = consortium
        self._clock = clock
        self._max_validity = max_validity

    def get_evidence(
        self,
        message: peer_pb2.EvidenceRequest,
        callers: frozenset[str],
        context: grpc.ServicerContext,
    ) -> peer_pb2.EvidenceResponse:
        """Serve the evidence to ``callers`` (the nodes the TLS certificate is
        registered for, already checked against the chain) or abort the call."""
        try:
            request, signature = parse_request(message)
        except InvalidInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.requester not in callers:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"requester: the request names {request.requester}, but the client "
                f"certificate is registered for {', '.join(sorted(callers))}",
            )
        task = hex32(request.task_id)
        try:
            verify_request(
                request.to_dict(),
                signature,
                self.consortium,
                int(self._clock()),
                self.store,
                task_id=request.task_id,
                max_validity=self._max_validity,
            )
        except AccessDenied as exc:
            if exc.reason == DenyReason.MALFORMED_REQUEST:  # parse_request should prevent it
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.detail)
            log.info("evidence of task %s refused to %s: %s", task, request.requester, exc)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except Exception:
            # The chain or the nonce table could not be consulted: not a verdict.
            log.exception("cannot check the evidence request of %s now", request.requester)
            context.abort(grpc.StatusCode.UNAVAILABLE, "cannot check the request now; retry")
        try:
            # Anchors before entries: entries are append-only and an anchor is recorded
            # only over entries already stored, so every anchor read here covers a
            # prefix of the entries read next, without holding a transaction across both.
            anchors = self.store.anchors(request.task_id)
            entries = self.store.entries(request.task_id)  # one snapshot: entries and root agree
        except Exception:
            log.exception("cannot read the evidence of task %s", task)
            context.abort(grpc.StatusCode.UNAVAILABLE, "cannot read the evidence store now")
        if not entries:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"task_id: no evidence recorded for task {task}"
            )
        if not chain_intact(entries):
            # The store itself refuses roots over a broken chain; so does its server.
            log.error("transcript of task %s is not an intact chain", task)
            context.abort(
                grpc.StatusCode.DATA_LOSS, f"task_id: the transcript of task {task} is corrupted"
            )
        log.info(
            "served evidence of task %s (%d entries) to %s", task, len(entries), request.requester
        )
        return response_message(entries, anchors)


# ---------------------------------------------------------------------- fetching


class EvidenceRefused(ChannelError):
    """The node answered and will not serve the evidence; asking again will not help."""

    reason = "PROTOCOL_ERROR"

    def __init__(self, node: str, task_id: bytes, code: grpc.StatusCode, details: str) -> None:
        self.node, self.task_id, self.code, self.details = node, task_id, code, details
        super().__init__(
            f"{node} refused the evidence of task {hex32(task_id)}: {code.name}: {details}"
        )


class EvidenceDenied(EvidenceRefused):
    """Refused because of who asked (PERMISSION_DENIED or UNAUTHENTICATED).

    ``deny_reason`` is the failed check of `verify_request` (``NOT_REGULATOR``,
    ``REPLAYED_NONCE``, ...) or None when the transport layer refused (the certificate
    is not an active node's, or the request names another node than the caller).
    """

    def __init__(self, node: str, task_id: bytes, code: grpc.StatusCode, details: str) -> None:
        super().__init__(node, task_id, code, details)
        self.deny_reason: DenyReason | None
        try:
            self.deny_reason = DenyReason(details.partition(":")[0])
        except ValueError:
            self.deny_reason = None


class EvidenceNotFound(EvidenceRefused):
    """The node holds no evidence for the task."""


class EvidenceUnreachable(ChannelError):
    """No answer before the deadline (unreachable, TLS refused, or the node could not
    consult the chain); names the last obstacle."""

    reason = "PEER_TIMEOUT"

    def __init__(self, node: str, task_id: bytes, timeout: float, last_error: str) -> None:
        self.node, self.task_id, self.last_error = node, task_id, last_error
        super().__init__(
            f"could not fetch the evidence of task {hex32(task_id)} from {node} "
            f"within {timeout:g} s: {last_error}"
        )


def refusal(node: str, task_id: bytes, code: grpc.StatusCode, details: str) -> EvidenceRefused:
    """The named error for a final (non-retryable) status of `GetEvidence`."""
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return EvidenceDenied(node, task_id, code, details)
    if code == grpc.StatusCode.NOT_FOUND:
        return EvidenceNotFound(node, task_id, code, details)
    return EvidenceRefused(node, task_id, code, details)


def fetch_evidence(
    peer: TrustedPeer,
    identity: TlsIdentity,
    account: LocalAccount,
    task_id: bytes,
    chain_id: int,
    consortium_address: str,
    timeout: float,
    *,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    sleep: Callable[[float], None] = time.sleep,
) -> EvidenceBundle:
    """``task_id``'s evidence from ``peer``, asked for as ``account`` over ``identity``.

    ``account`` must be the node account ``identity``'s certificate is registered for on
    chain, since the server requires the request's signer to be the TLS caller.
    Every attempt signs a fresh request (random 256-bit nonce, valid for
    `REQUEST_VALIDITY_SECONDS`): a request is single-use, and an attempt whose answer
    was lost may already have consumed its nonce. Transient failures are retried until
    ``timeout`` (`EvidenceUnreachable`); a refusal is raised at once as `EvidenceDenied`,
    `EvidenceNotFound` or `EvidenceRefused`. The bundle is returned as served: checking
    it against the chain is the caller's business.
    """
    deadline = time.monotonic() + timeout
    backoff = INITIAL_BACKOFF
    last = "no attempt was made"
    client = PeerClient(peer, identity, max_message_bytes)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EvidenceUnreachable(peer.address, task_id, timeout, last)
            request = signed_request(
                account,
                task_id,
                chain_id,
                consortium_address,
                nonce=secrets.randbits(256),
                expires_at=int(time.time()) + REQUEST_VALIDITY_SECONDS,
            )
            try:
                response = client.get_evidence_once(request, remaining)
            except grpc.RpcError as exc:
                call = cast("grpc.Call", exc)
                code, details = call.code(), call.details() or ""
                if code not in _RETRYABLE:
                    raise refusal(peer.address, task_id, code, details) from None
                last = f"{code.name}: {details}"
            else:
                return bundle_from_response(peer.address, task_id, response)
            sleep(max(0.0, min(backoff, deadline - time.monotonic())))
            backoff = min(backoff * 2, MAX_BACKOFF)
    finally:
        client.close()
