"""Signed evidence requests: only a regulator's active node may read a node's evidence.

A request is an EIP-712 typed message ``EvidenceRequest(bytes32 taskId, address
requester, uint256 nonce, uint64 expiresAt)`` in the domain ``provnet-evidence`` v1
bound to the chain id and the `Consortium` address. Binding the domain means a request
signed for one consortium (or a test chain) is worthless against another; EIP-712 means
the regulator's wallet shows what is being signed.

`verify_request` checks, cheapest first and touching the database last so a refused
request never consumes a nonce: well-formed fields, signature by ``requester``, expiry
in the future but not too far (a long-lived request that leaked would be a standing
read permission), the requester is an active node of an active organisation *now*
(revocation takes effect at once), the organisation holds REGULATOR, and the nonce was
never used by that requester. The nonce is checked and stored in one transaction under
a unique key, so two servers racing on the same request cannot both accept it; the
stored rows double as the log of who read which task's evidence and when.

A chain that cannot be reached is not a denial: its error propagates (a REST layer
answers 503, not 403), so an outage is never recorded as a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from sqlalchemy.exc import IntegrityError

from ledger.clients.consortium import ConsortiumClient
from ledger.ids import InvalidInput, as_address, as_bytes32
from ledger.roles import Role
from node.evidence.models import AccessNonceRow
from node.evidence.store import EvidenceStore

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "MAX_VALIDITY_SECONDS",
    "AccessDenied",
    "DenyReason",
    "EvidenceRequest",
    "request_message",
    "sign_request",
    "verify_request",
]

DOMAIN_NAME = "provnet-evidence"
DOMAIN_VERSION = "1"
# A request is meant to be used right away; ten minutes covers clock skew and retries.
MAX_VALIDITY_SECONDS = 600

_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "EvidenceRequest": [
        {"name": "taskId", "type": "bytes32"},
        {"name": "requester", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiresAt", "type": "uint64"},
    ],
}
_FIELDS = frozenset(f["name"] for f in _TYPES["EvidenceRequest"])
_UINT64_MAX = 2**64 - 1
_UINT256_MAX = 2**256 - 1


class DenyReason(StrEnum):
    MALFORMED_REQUEST = "malformed_request"
    BAD_SIGNATURE = "bad_signature"  # unparseable, or signed by someone else than requester
    EXPIRED = "expired"
    EXPIRY_TOO_FAR = "expiry_too_far"
    WRONG_TASK = "wrong_task"  # signed for another task than the one being served
    NOT_ACTIVE_NODE = "not_active_node"
    NOT_REGULATOR = "not_regulator"
    REPLAYED_NONCE = "replayed_nonce"


class AccessDenied(PermissionError):
    """An evidence request refused; ``reason`` is stable, ``detail`` is for humans."""

    def __init__(self, reason: DenyReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


@dataclass(frozen=True)
class EvidenceRequest:
    task_id: bytes
    requester: str  # checksummed address
    nonce: int
    expires_at: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form sent over the wire (task id as 0x-hex, integers as numbers)."""
        return {
            "taskId": "0x" + self.task_id.hex(),
            "requester": self.requester,
            "nonce": self.nonce,
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_dict(cls, raw: object) -> EvidenceRequest:
        """Parse the wire form; raises `InvalidInput` naming the offending field."""
        if not isinstance(raw, Mapping):
            raise InvalidInput("request", f"expected an object, got {type(raw).__name__}")
        keys = set(raw)
        if keys != _FIELDS:
            missing, extra = sorted(_FIELDS - keys), sorted(map(str, keys - _FIELDS))
            raise InvalidInput("request", f"missing fields {missing}, unexpected fields {extra}")
        return cls(
            task_id=as_bytes32(raw["taskId"], "taskId"),
            requester=str(as_address(raw["requester"], "requester")),
            nonce=_uint(raw["nonce"], "nonce", _UINT256_MAX),
            expires_at=_uint(raw["expiresAt"], "expiresAt", _UINT64_MAX),
        )


def _uint(value: object, field: str, maximum: int) -> int:
    """An unsigned integer; decimal strings are accepted for values beyond JSON's 2**53."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 78:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(field, f"expected an unsigned integer, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise InvalidInput(field, f"out of range: {value}")
    return value


def request_message(
    request: EvidenceRequest, chain_id: int, consortium_address: str
) -> SignableMessage:
    """The EIP-712 message a requester signs and a server recovers the signer from."""
    return encode_typed_data(
        full_message={
            "types": _TYPES,
            "primaryType": "EvidenceRequest",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": str(as_address(consortium_address, "consortium_address")),
            },
            "message": {
                "taskId": request.task_id,
                "requester": request.requester,
                "nonce": request.nonce,
                "expiresAt": request.expires_at,
            },
        }
    )


def sign_request(
    account: LocalAccount,
    task_id: bytes,
    nonce: int,
    expires_at: int,
    chain_id: int,
    consortium_address: str,
) -> tuple[dict[str, Any], bytes]:
    """A request for ``task_id``'s evidence signed by ``account``: (wire dict, signature)."""
    request = EvidenceRequest(
        task_id=as_bytes32(task_id, "task_id"),
        requester=str(as_address(account.address, "account")),
        nonce=_uint(nonce, "nonce", _UINT256_MAX),
        expires_at=_uint(expires_at, "expires_at", _UINT64_MAX),
    )
    signed = Account.sign_message(
        request_message(request, chain_id, consortium_address), account.key
    )
    return request.to_dict(), bytes(signed.signature)


def verify_request(
    request: dict[str, Any],
    signature: bytes,
    consortium: ConsortiumClient,
    now: int,
    store: EvidenceStore,
    *,
    task_id: bytes | None = None,
    max_validity: int = MAX_VALIDITY_SECONDS,
) -> str:
    """The checksummed requester address if the request may read evidence, else
    `AccessDenied` with the first failed check.

    ``now`` is the server's Unix time in seconds. Pass ``task_id`` when serving a
    particular task so that a request signed for another task is refused. On success
    the nonce is consumed: the same request is refused the next time.
    """
    try:
        parsed = EvidenceRequest.from_dict(request)
    except InvalidInput as exc:
        raise AccessDenied(DenyReason.MALFORMED_REQUEST, str(exc)) from None

    if not isinstance(signature, bytes | bytearray) or len(signature) != 65:
        raise AccessDenied(DenyReason.BAD_SIGNATURE, "signature must be 65 bytes (r, s, v)")
    message = request_message(parsed, consortium.chain.chain_id, consortium.address)
    try:
        signer = Account.recover_message(message, signature=bytes(signature))
    except Exception as exc:  # eth-keys raises several types for malformed signatures
        raise AccessDenied(DenyReason.BAD_SIGNATURE, f"cannot recover signer: {exc}") from None
    if signer.lower() != parsed.requester.lower():
        raise AccessDenied(
            DenyReason.BAD_SIGNATURE, f"signed by {signer}, not by requester {parsed.requester}"
        )

    if parsed.expires_at <= now:
        raise AccessDenied(DenyReason.EXPIRED, f"expired at {parsed.expires_at}, now is {now}")
    if parsed.expires_at - now > max_validity:
        raise AccessDenied(
            DenyReason.EXPIRY_TOO_FAR,
            f"expires {parsed.expires_at - now} s from now; at most {max_validity} s allowed",
        )
    if task_id is not None and parsed.task_id != task_id:
        raise AccessDenied(
            DenyReason.WRONG_TASK,
            f"request is for task 0x{parsed.task_id.hex()}, not 0x{task_id.hex()}",
        )

    org_id = consortium.active_node_org(parsed.requester)
    if org_id == bytes(32):
        raise AccessDenied(
            DenyReason.NOT_ACTIVE_NODE,
            f"{parsed.requester} is not an active node of an active organisation",
        )
    if not consortium.has_role(org_id, int(Role.REGULATOR)):
        raise AccessDenied(
            DenyReason.NOT_REGULATOR,
            f"organisation 0x{org_id.hex()} of {parsed.requester} lacks the REGULATOR role",
        )

    _consume_nonce(store, parsed, now)
    return parsed.requester


def _consume_nonce(store: EvidenceStore, request: EvidenceRequest, now: int) -> None:
    """Check and record the nonce in one transaction; the primary key settles races."""
    replay = AccessDenied(
        DenyReason.REPLAYED_NONCE,
        f"nonce {request.nonce} was already used by {request.requester}",
    )
    key = (request.requester, request.nonce.to_bytes(32, "big"))
    try:
        with store.session(write=True) as session:
            if session.get(AccessNonceRow, key) is not None:
                raise replay
            session.add(
                AccessNonceRow(
                    requester=key[0],
                    nonce=key[1],
                    task_id=request.task_id,
                    expires_at=request.expires_at,
                    used_at=datetime.fromtimestamp(now, UTC),
                )
            )
    except IntegrityError:
        raise replay from None
