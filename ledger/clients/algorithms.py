"""Typed client for `AlgorithmRegistry`: the consortium's approved algorithm digests."""

from __future__ import annotations

from enum import IntEnum

from web3.types import TxReceipt

from ledger.clients.consortium import BallotClient
from ledger.ids import as_bytes32


class AlgorithmKind(IntEnum):
    PSI = 0
    PIR = 1
    MPC = 2
    FL = 3
    TEE = 4
    OTHER = 5


class AlgorithmStatus(IntEnum):
    NONE = 0
    PROPOSED = 1
    APPROVED = 2
    DEPRECATED = 3


class AlgorithmRegistryClient(BallotClient):
    contract_name = "AlgorithmRegistry"

    def propose(self, digest: bytes, name: str, version: str, kind: AlgorithmKind) -> TxReceipt:
        """Propose for approval (the caller votes too); the proposal: `latest_proposal`."""
        return self._transact(
            "proposeAlgorithm", as_bytes32(digest, "algorithm digest"), name, version, int(kind)
        )

    def latest_proposal(self, digest: bytes) -> bytes:
        """The latest approval or deprecation proposal about `digest` (zero bytes if none)."""
        return bytes(self._call("latestProposal", as_bytes32(digest, "algorithm digest")))

    def approve(self, digest: bytes) -> TxReceipt:
        return self._transact("approveAlgorithm", as_bytes32(digest, "algorithm digest"))

    def propose_deprecation(self, digest: bytes) -> TxReceipt:
        return self._transact("proposeDeprecation", as_bytes32(digest, "algorithm digest"))

    def vote_deprecation(self, digest: bytes) -> TxReceipt:
        return self._transact("voteDeprecation", as_bytes32(digest, "algorithm digest"))

    def is_approved(self, digest: bytes) -> bool:
        return bool(self._call("isApproved", as_bytes32(digest, "algorithm digest")))

    def status(self, digest: bytes) -> AlgorithmStatus:
        return AlgorithmStatus(
            self._call("algorithmStatus", as_bytes32(digest, "algorithm digest"))
        )

    def kind(self, digest: bytes) -> AlgorithmKind:
        """The algorithm's kind (PSI, the zero value, if unknown: check `status` first)."""
        return AlgorithmKind(self._call("algorithmKind", as_bytes32(digest, "algorithm digest")))

    def votes(self, digest: bytes) -> tuple[int, int]:
        """(approval votes, deprecation votes) cast so far."""
        approval, deprecation = self._call("algorithmVotes", as_bytes32(digest, "algorithm digest"))
        return int(approval), int(deprecation)

    def has_voted(self, digest: bytes, org_id: bytes, deprecation: bool) -> bool:
        return bool(
            self._call(
                "hasVoted",
                as_bytes32(digest, "algorithm digest"),
                as_bytes32(org_id, "org_id"),
                deprecation,
            )
        )
