"""Plain JSON-RPC reads in one round trip, for callers that read many small facts.

web3's per-call path costs ~1-3 ms of Python per request (middleware, validation that
itself asks for the chain id, result formatting) on top of the HTTP round trip; the
deployment binding makes ~50 such calls. `batch` sends many calls as one JSON-RPC batch
and returns the node's raw JSON results, which the caller parses exactly as web3 would.

Only an `HTTPProvider` is batched. Other providers (eth-tester, whose raw interface
takes Python values rather than JSON-RPC hex) get ``None``: the caller then uses its
ordinary web3 calls, so every backend still answers, just slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import HTTPProvider
from web3.types import RPCEndpoint

from ledger.chain import Chain


@dataclass(frozen=True)
class RpcError:
    """One call's error answer inside a batch (a revert, an unknown method, bad params)."""

    message: str


def can_batch(chain: Chain) -> bool:
    return isinstance(chain.w3.provider, HTTPProvider)


def batch(chain: Chain, calls: Sequence[tuple[str, list[Any]]]) -> list[Any] | None:
    """The raw ``result`` of every call, in order (an `RpcError` for a call that failed);
    ``None`` when this provider cannot batch or the node refused the batch as a whole
    (some nodes limit or disable batches): the caller falls back to single calls."""
    if not calls:
        return []
    if not can_batch(chain):
        return None
    provider = chain.w3.provider
    assert isinstance(provider, HTTPProvider)
    try:
        answers = provider.make_batch_request([(RPCEndpoint(m), p) for m, p in calls])
    except Exception:  # transport or decoding failure: let single calls report it
        return None
    if not isinstance(answers, list) or len(answers) != len(calls):
        return None
    if any(a.get("id") is None for a in answers):  # order then rests on the node: refuse
        return None
    out: list[Any] = []
    for answer in answers:
        if "error" in answer:
            error = answer["error"]
            text = error.get("message", error) if isinstance(error, dict) else error
            out.append(RpcError(str(text)))
        else:
            out.append(answer.get("result"))
    return out


def block_param(block: int | str) -> str:
    """A block number or tag as JSON-RPC wants it."""
    return hex(block) if isinstance(block, int) else block


def hex_bytes(value: Any) -> bytes | None:
    """``0x``-hex JSON to bytes; None for anything else (null, an error, malformed)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None
