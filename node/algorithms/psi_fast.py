"""Fast PSI mode (`psi-rr22`): the intersection by RR22 (OT/VOLE) through SecretFlow's spu.

Why a second algorithm: DH-PSI costs four curve operations per item pair and is bound by
them (``psi``'s ECDH mode); RR22 replaces them with oblivious transfer extension and VOLE
and runs 10^6 x 10^6 in seconds. It computes ``intersection`` only (the requester learns
the matched identifiers) between exactly two parties; the count, sum and payload modes
stay with ``psi``. Identifiers are normalised and deduplicated exactly as ``psi`` does
(``psi.identifier_items`` with ``tagged=False``), so both engines match the same pairs.

How it runs: spu needs numpy < 2, the node numpy 2, so spu runs in a sidecar process of
its own venv (``make fast-psi``; ``node/fastpsi``). Each node picks a port on its peer
host, and the two announce them over the recorded peer mesh (step ``psi-rr22/link``,
with their set sizes); each sidecar then presents its node's own TLS certificate and
pins the peer's, as the chain binds it (``node.peer.direct_link``). The requester is
spu's receiver (rank 0); the responder sends and learns nothing but the requester's
set size. spu is given the normalised identifiers themselves (both sides normalise the
same ``identifier_kind``, so no tag is needed to keep kinds apart, and RR22 hashes its
inputs itself); they only ever reach the node's own sidecar, through a private
temporary directory, and spu's output at the requester is the matched identifiers.

What the evidence holds: the parameters, both link messages and the result commitment,
as for every task, but not RR22's own messages, which travel inside spu's TLS link where
provnet cannot record them. The auditor says so: its message-level transcript check is
not applicable to this algorithm (the recorded messages must still agree). RR22 as spu
0.9.5 exposes it is the semi-honest variant (40-bit statistical security).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from ledger.clients.algorithms import AlgorithmKind
from ledger.rows import Column
from node.algorithms import psi
from node.algorithms.output_policy import EffectivePolicy
from node.algorithms.psi import InvalidParams, PsiError, PsiParams, PsiResult
from node.channel import Channel
from node.fastpsi import driver
from node.peer.direct_link import DirectLink

NAME: Final = "psi-rr22"
VERSION: Final = "1.0.0"
KIND: Final = AlgorithmKind.PSI
PROTOCOL: Final = "requester"
OUTPUT_POLICY: Final = False
USES_DIRECT_LINK: Final = True  # the runner passes ``link``: this node's TLS identity

_HERE = Path(__file__).resolve().parent
EXTRA_SOURCES: tuple[str, ...] = (
    str(_HERE / "psi.py"),
    *psi.EXTRA_SOURCES,
    str(_HERE.parent / "fastpsi" / "driver.py"),
    str(_HERE.parent / "fastpsi" / "sidecar.py"),
    str(_HERE.parent / "peer" / "direct_link.py"),
)

LINK_STEP: Final = "psi-rr22/link"
PARAMETER_SCHEMA: dict[str, Any] = {
    **psi.PARAMETER_SCHEMA,
    "title": "psi-rr22 parameters",
    "properties": {
        **psi.PARAMETER_SCHEMA["properties"],
        "mode": {"description": "RR22 computes the intersection only.", "const": "intersection"},
    },
}


@dataclass(frozen=True)
class FastPsiParams(PsiParams):
    """`psi`'s parameters, restricted to what RR22 computes here."""

    @classmethod
    def from_json(cls, raw: Any) -> FastPsiParams:
        parsed = PsiParams.from_json(raw)
        if parsed.mode != "intersection":
            raise InvalidParams(
                "mode",
                f"{NAME} computes the intersection only; use psi for {parsed.mode!r}",
            )
        return cls(**{f: getattr(parsed, f) for f in parsed.__dataclass_fields__})

    def check_responder_count(self, k: int) -> None:
        if k != 1:
            raise InvalidParams(
                "responders", f"{NAME} runs between two parties, got {k} responders"
            )


Params = FastPsiParams


def unavailable_reason() -> str | None:
    """Why this node cannot run the algorithm (the sidecar's venv is missing), or None;
    a node refuses such a task at acceptance instead of failing it half-way."""
    if driver.is_available():
        return None
    return f"the fast PSI engine is not installed here: run `make fast-psi` ({driver.PYTHON_ENV})"


def run_requester(
    channel: Channel,
    params: FastPsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    link: DirectLink,
    executor: Executor | None = None,
    processes: int = 1,
) -> PsiResult:
    """The requester's side: spu's receiver; returns the matched identifiers."""
    del executor, processes  # spu runs its own threads
    _check_count(params, len(responders))
    values, invalid = psi.identifier_items(
        params, table, columns, params.requester_column, "requester", tagged=False
    )
    outcome = _run(channel, "receiver", responders[0], values, timeout, link)
    matched = sorted(value.decode() for value in outcome.intersection or ())
    return psi.intersection_result(
        params, policy, len(values), invalid, [outcome.peer_count], matched
    )


def run_responder(
    channel: Channel,
    params: FastPsiParams,
    table: pa.Table,
    columns: Sequence[Column],
    requester: str,
    responders: Sequence[str],
    *,
    timeout: float,
    policy: EffectivePolicy,
    link: DirectLink,
    executor: Executor | None = None,
    processes: int = 1,
) -> None:
    """The responder's side: spu's sender; it learns the requester's set size only."""
    del policy, executor, processes
    _check_count(params, len(responders))
    values, _ = psi.identifier_items(
        params, table, columns, params.responder_column, "responder", tagged=False
    )
    _run(channel, "sender", requester, values, timeout, link)


def _check_count(params: FastPsiParams, k: int) -> None:
    try:
        params.check_responder_count(k)
    except InvalidParams as exc:
        raise PsiError("PROTOCOL_ERROR", str(exc)) from None


def _run(
    channel: Channel,
    role: driver.Role,
    peer: str,
    values: list[bytes],
    timeout: float,
    link: DirectLink,
) -> driver.FastPsiOutcome:
    """Announce this side's port and set size, learn the peer's, run the sidecar."""
    port = link.free_port()
    mine = json.dumps({"port": port, "items": len(values)}, sort_keys=True).encode()
    channel.send(peer, LINK_STEP, mine)
    theirs = channel.receive(peer, LINK_STEP, timeout)
    try:
        announced = json.loads(theirs)
        peer_port = int(announced["port"])
        if not 0 < peer_port < 65536:
            raise ValueError(f"port {peer_port} out of range")
    except (ValueError, KeyError, TypeError) as exc:
        raise PsiError("PROTOCOL_ERROR", f"{LINK_STEP}: malformed link message ({exc})") from None
    address = link.peer(peer)
    # Both sides derive the same link id from the two announcements, in rank order.
    first, second = (theirs, mine) if role == "sender" else (mine, theirs)
    link_id = "provnet-" + hashlib.sha256(first + b"\x00" + second).hexdigest()[:24]
    try:
        return driver.run_fast_psi(
            role,
            values,
            f"{link.bind_host}:{port}",
            f"{address.host}:{peer_port}",
            link.tls_cert,
            link.tls_key,
            address.cert_pem,
            timeout,
            link_id=link_id,
        )
    except driver.FastPsiUnavailable as exc:
        raise PsiError("PROTOCOL_ERROR", str(exc)) from None
    except driver.FastPsiError as exc:
        raise PsiError("PROTOCOL_ERROR", f"the spu sidecar failed: {str(exc)[:2000]}") from None
