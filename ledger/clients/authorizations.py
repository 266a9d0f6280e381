"""Typed client for `AuthorizationRegistry`: metered, revocable grants of dataset use."""

from __future__ import annotations

from dataclasses import dataclass

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import InvalidInput, as_bytes32

ANY_APPROVED_ALGORITHM = bytes(32)


@dataclass(frozen=True)
class Grant:
    dataset_id: bytes
    grantee_org: bytes
    algorithm_digest: bytes
    not_after: int
    max_uses: int
    used: int
    revoked: bool


class AuthorizationRegistryClient(ContractClient):
    contract_name = "AuthorizationRegistry"

    def grant(
        self,
        dataset_id: bytes,
        grantee_org: bytes,
        purpose: bytes,
        not_after: int,
        max_uses: int,
        algorithm_digest: bytes = ANY_APPROVED_ALGORITHM,
    ) -> bytes:
        if max_uses <= 0 or max_uses >= 2**32:
            raise InvalidInput("max_uses", f"must be 1..{2**32 - 1}, got {max_uses}")
        if not_after <= 0 or not_after >= 2**64:
            raise InvalidInput("not_after", f"must be a unix time, got {not_after}")
        receipt = self._transact(
            "grant",
            as_bytes32(dataset_id, "dataset_id"),
            as_bytes32(grantee_org, "grantee_org"),
            as_bytes32(algorithm_digest, "algorithm_digest"),
            as_bytes32(purpose, "purpose"),
            not_after,
            max_uses,
        )
        return bytes(self.events_in(receipt, "GrantCreated")[0]["grantId"])

    def purpose_of(self, grant_id: bytes, from_block: int = 0) -> bytes:
        """The purpose code a grant was made for.

        The contract keeps the purpose in the ``GrantCreated`` event only (storage holds
        what ``consumeUse`` checks), so this reads that one event by its indexed grant id.
        Raises ``InvalidInput`` when no such event exists from ``from_block`` on.
        """
        gid = as_bytes32(grant_id, "grant_id")
        logs = self.contract.events.GrantCreated().get_logs(
            argument_filters={"grantId": gid}, from_block=from_block
        )
        for log in logs:
            return bytes(log["args"]["purpose"])
        raise InvalidInput("grant_id", f"no GrantCreated event for 0x{gid.hex()}")

    def revoke(self, grant_id: bytes) -> TxReceipt:
        return self._transact("revoke", as_bytes32(grant_id, "grant_id"))

    def bind_task_registry(self, task_registry: str) -> TxReceipt:
        return self._transact("bindTaskRegistry", task_registry)

    def consume_use(
        self, grant_id: bytes, grantee_org: bytes, dataset_id: bytes, algorithm_digest: bytes
    ) -> TxReceipt:
        """Consume one use; only the bound TaskRegistry may (others revert NotTaskRegistry)."""
        return self._transact(
            "consumeUse",
            as_bytes32(grant_id, "grant_id"),
            as_bytes32(grantee_org, "grantee_org"),
            as_bytes32(dataset_id, "dataset_id"),
            as_bytes32(algorithm_digest, "algorithm_digest"),
        )

    def settle_uses(self, grant_id: bytes, uses: int, settlement: bytes) -> TxReceipt:
        """Settle ``uses`` uses consumed outside tasks (a metered service's quota blocks or
        period), as the dataset's owner; ``settlement`` digests the off-chain record and
        settles once (a retry reverts ``SettlementAlreadyRecorded``: check
        :meth:`is_settled` first)."""
        if uses <= 0 or uses >= 2**32:
            raise InvalidInput("uses", f"must be 1..{2**32 - 1}, got {uses}")
        return self._transact(
            "settleUses",
            as_bytes32(grant_id, "grant_id"),
            uses,
            as_bytes32(settlement, "settlement"),
        )

    def is_settled(self, settlement: bytes) -> bool:
        return bool(self._call("isSettled", as_bytes32(settlement, "settlement")))

    def task_registry(self) -> str:
        """The bound TaskRegistry, the zero address until bound."""
        return str(self._call("taskRegistry"))

    def owner(self) -> str:
        """The account that may bind the TaskRegistry; zero once bound."""
        return str(self._call("owner"))

    def is_usable(self, grant_id: bytes) -> bool:
        return bool(self._call("isUsable", as_bytes32(grant_id, "grant_id")))

    def is_revoked(self, grant_id: bytes) -> bool:
        return bool(self._call("isRevoked", as_bytes32(grant_id, "grant_id")))

    def info(self, grant_id: bytes) -> Grant:
        ds, grantee, algo, not_after, max_uses, used, revoked = self._call(
            "grantInfo", as_bytes32(grant_id, "grant_id")
        )
        return Grant(
            bytes(ds),
            bytes(grantee),
            bytes(algo),
            int(not_after),
            int(max_uses),
            int(used),
            bool(revoked),
        )
