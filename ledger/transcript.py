"""Evidence transcripts: what a node records per task, shared by nodes and the auditor.

Each entry names one fact (an input commitment, a message digest sent to or received
from a peer, an output digest) and carries the hash of the previous entry, so an entry
cannot be dropped or reordered without breaking the chain. The RFC 9162 root over the
entries is what the node anchors on chain with its result; the auditor recomputes it
from the transcript the node serves and compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import merkle
from ledger.canonical import canonical_json, digest, digest_json
from ledger.ids import log_id_for

# "received-late": a message delivered to the node for the task but never read by the
# protocol (a threshold protocol finishes early), recorded when the node's part ends.
ENTRY_KINDS = ("input", "sent", "received", "output", "received-late")
MESSAGE_KINDS = ("sent", "received", "received-late")
GENESIS_PREV = bytes(32)


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    step: str
    peer: str  # the peer node's address for sent/received, "" otherwise
    digest: bytes
    prev: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "step": self.step,
            "peer": self.peer,
            "digest": self.digest.hex(),
            "prev": self.prev.hex(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Entry:
        return cls(
            seq=int(raw["seq"]),
            kind=str(raw["kind"]),
            step=str(raw["step"]),
            peer=str(raw["peer"]),
            digest=bytes.fromhex(str(raw["digest"])),
            prev=bytes.fromhex(str(raw["prev"])),
        )

    def encoded(self) -> bytes:
        return canonical_json(self.to_json())

    def hash(self) -> bytes:
        return digest("transcript-entry", self.encoded())


class Transcript:
    """An append-only transcript under construction."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def append(self, kind: str, step: str, entry_digest: bytes, peer: str = "") -> Entry:
        if kind not in ENTRY_KINDS:
            raise ValueError(f"transcript entry kind must be one of {ENTRY_KINDS}, got {kind!r}")
        if len(entry_digest) != 32:
            raise ValueError("transcript entry digest must be 32 bytes")
        prev = self.entries[-1].hash() if self.entries else GENESIS_PREV
        entry = Entry(len(self.entries), kind, step, peer, entry_digest, prev)
        self.entries.append(entry)
        return entry

    def root(self) -> bytes:
        return transcript_root(self.entries)


def leaf_hashes(entries: Sequence[Entry]) -> list[bytes]:
    return [merkle.leaf_hash(e.encoded()) for e in entries]


def transcript_root(entries: Sequence[Entry]) -> bytes:
    return merkle.root(leaf_hashes(entries))


def chain_intact(entries: Sequence[Entry]) -> bool:
    """True when sequence numbers run 0..n-1 and every entry links to its predecessor."""
    prev = GENESIS_PREV
    for i, entry in enumerate(entries):
        if entry.seq != i or entry.prev != prev or entry.kind not in ENTRY_KINDS:
            return False
        prev = entry.hash()
    return True


def evidence_log_name(task_id: bytes) -> bytes:
    """The name under which a node creates the AnchorLog log of its transcript of a task."""
    return digest_json("evidence-log", {"task": task_id.hex()})


def evidence_log_id(node: str, task_id: bytes) -> bytes:
    """The AnchorLog id of a node's log of one task's transcript (namespaced by the node):
    where the node checkpoints its transcript and the auditor looks for those checkpoints."""
    return log_id_for(node, evidence_log_name(task_id))
