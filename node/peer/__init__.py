"""The peer data plane: protocol messages between nodes over mutual-TLS gRPC.

The chain is the PKI. A node trusts a peer's TLS certificate only while its SHA-256 is
the digest registered on chain for a node that is active right now (`trust.ChainTrust`).

* `server.PeerServer` accepts `Deliver(Envelope)` calls. The TLS layer only admits
  client certificates of currently active nodes (its roots are refreshed on every new
  connection); every call is then checked again against the current chain view, because
  an HTTP/2 connection outlives a revocation. The envelope's sender must be the node
  the certificate belongs to. Messages land in an inbox keyed by (task, sender, step).
* `client.PeerClient` dials a peer's on-chain endpoint pinning exactly the certificate
  whose digest the chain registers, presenting this node's own certificate.
* `channel.GrpcChannel` is the `node.channel.Channel` algorithms use: send retries until
  a deadline, receive waits on the inbox; failures are named `ChannelError`s.

This module holds the wire limits and the envelope checks both ends apply, so a
malformed message is refused identically before it is sent and when it arrives.
"""

from __future__ import annotations

from ledger.ids import InvalidInput, as_address

TASK_ID_BYTES = 32
MAX_STEP_CHARS = 128
ENVELOPE_OVERHEAD = 4096
"""Bytes allowed on the wire beyond the payload limit: task id, step, sender, framing."""
RETRY_AFTER_KEY = "provnet-retry-after-ms"
"""Trailing metadata of a rate-limit refusal: milliseconds the caller should wait."""


def check_envelope(task_id: bytes, step: str, sender: str, payload_size: int, limit: int) -> str:
    """Validate an envelope's fields; returns the sender's checksummed address.

    Raises `InvalidInput` naming the first bad field. Lengths are checked before
    contents so that an oversized field is never echoed back in an error message.
    """
    if len(task_id) != TASK_ID_BYTES:
        raise InvalidInput("task_id", f"expected {TASK_ID_BYTES} bytes, got {len(task_id)}")
    check_step(step)
    if len(sender) != 42:
        raise InvalidInput(
            "sender", f"expected 0x followed by 40 hex digits, got {len(sender)} characters"
        )
    address = as_address(sender, "sender")
    if payload_size > limit:
        raise InvalidInput("payload", f"{payload_size} bytes exceeds the {limit}-byte limit")
    return str(address)


def check_step(step: str) -> None:
    """A step names one message of a protocol: 1..128 printable characters."""
    if not 1 <= len(step) <= MAX_STEP_CHARS:
        raise InvalidInput("step", f"expected 1..{MAX_STEP_CHARS} characters, got {len(step)}")
    if not step.isprintable():
        raise InvalidInput("step", f"must be printable text, got {step!r}")
