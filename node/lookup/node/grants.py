"""The relay's admission of a submission: a grant on chain for queries, a role for publishing.

Why this module exists: every query consumes grant uses (DESIGN §6), and the relay is
the only party that knows who asks, so it is the one that checks. A querier names a
grant in each ``Submit``; the relay reads it on chain — made on the relay
organisation's lookup service dataset, to the caller's organisation, not revoked, not
expired, uses left — and, the first time, credits the meter with the grant's remaining
uses as quota blocks (one grant use = one block of ``block_size`` queries; keyed by the
grant, so a retry or a restart never credits twice). The purpose a querier names must
be the one the grant was made for (``GrantCreated.purpose``, ``name_id("purpose",
text)``): the purpose is what the query log and the regulator's counts report, so it
is the grantor's word, not the asker's claim. The chain is written later, per period,
by the settlement loop (``loops.py``), never per query.

Providers publish through the relay like queriers (holders cannot tell a listing from a
question), under the purpose ``publish`` and the list's publish grant id
(:func:`publish_grant`), which no chain grant backs: the relay admits it only from an
organisation of one of the list's providers, credits exactly what the submission needs,
and never settles it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping

from web3.exceptions import Web3Exception

from ledger.clients.authorizations import AuthorizationRegistryClient
from ledger.errors import ChainError, ContractRevert
from ledger.ids import InvalidInput, name_id
from node.lookup.metering import Meter
from node.lookup.rpc.roster import ListRoster
from node.lookup.rpc.state import GrantRefused

__all__ = ["PUBLISH_PURPOSE", "GrantAdmission", "grant_credit_reference", "publish_grant"]

PUBLISH_PURPOSE = "publish"


def publish_grant(list_name: str) -> bytes:
    """The grant id providers publish under: a name, not a chain grant."""
    return name_id("lookup-publish", list_name)


def grant_credit_reference(grant_id: bytes) -> bytes:
    """The meter's idempotency key for crediting a grant's blocks (once per grant)."""
    return name_id("lookup-grant-credit", "0x" + grant_id.hex())


class GrantAdmission:
    """``RelayState``'s ``admit`` hook on the relay node.

    ``org_of(node)`` gives the on-chain organisation label (``"0x" + id``) of a node;
    ``service_dataset`` is the dataset id grants must be made on; ``now`` the chain's
    (or local) Unix time for expiry.
    """

    def __init__(
        self,
        meter: Meter,
        authorizations: AuthorizationRegistryClient,
        rosters: Mapping[str, ListRoster],
        service_dataset: bytes,
        org_of: Callable[[str], str | None],
        now: Callable[[], float],
        first_block: int = 0,
    ) -> None:
        self.meter = meter
        self.first_block = first_block
        self._purposes: dict[bytes, bytes] = {}  # grant id -> purpose code (immutable)
        self.authorizations = authorizations
        self.rosters = dict(rosters)
        self.service_dataset = service_dataset
        self.org_of = org_of
        self.now = now

    def __call__(self, list_name: str, org: str, purpose: str, grant_id: bytes, count: int) -> None:
        if purpose == PUBLISH_PURPOSE:
            self._publisher(list_name, org, grant_id, count)
        else:
            self._grant(org, purpose, grant_id)

    def _publisher(self, list_name: str, org: str, grant_id: bytes, count: int) -> None:
        roster = self.rosters[list_name]
        if grant_id != publish_grant(list_name):
            raise GrantRefused(
                f"grant_id: purpose {PUBLISH_PURPOSE!r} is for a list's providers and uses "
                "the list's publish grant id; queries name a grant made on chain"
            )
        if org not in {self.org_of(p) for p in roster.providers}:
            raise GrantRefused(
                f"organisation {org} has no provider node of list {list_name!r}; only "
                "providers publish"
            )
        blocks = math.ceil(count / self.meter.policy.block_size)
        self.meter.add_blocks(
            org, PUBLISH_PURPOSE, grant_id, blocks, reference=secrets.token_bytes(32)
        )

    def _grant(self, org: str, purpose: str, grant_id: bytes) -> None:
        shown = "0x" + grant_id.hex()
        if len(grant_id) != 32:
            raise GrantRefused("grant_id: a grant id is 32 bytes")
        try:
            grant = self.authorizations.info(grant_id)
        except ContractRevert as exc:
            if exc.error_name == "UnknownGrant":
                raise GrantRefused(
                    f"grant_id: no grant {shown} on chain; ask the relay's operator for one"
                ) from None
            raise GrantRefused(f"grant {shown} cannot be read on chain: {exc}") from None
        except ChainError as exc:
            raise GrantRefused(
                f"grant {shown} cannot be checked on chain now ({exc}); try again"
            ) from None
        if grant.dataset_id != self.service_dataset:
            raise GrantRefused(
                f"grant {shown} is on another dataset, not this relay's lookup service "
                f"dataset 0x{self.service_dataset.hex()}"
            )
        if "0x" + grant.grantee_org.hex() != org:
            raise GrantRefused(f"grant {shown} was made to another organisation, not {org}")
        if grant.revoked:
            raise GrantRefused(f"grant {shown} is revoked")
        if grant.not_after < self.now():
            raise GrantRefused(f"grant {shown} expired at {grant.not_after}")
        made_for = self._purpose_of(grant_id)
        if made_for != name_id("purpose", purpose):
            raise GrantRefused(
                f"grant {shown} was made for another purpose than {purpose!r} (its purpose "
                f"code is 0x{made_for.hex()}); name the purpose the grantor gave it "
                "(`provnet grant create --purpose`)"
            )
        usage = self.meter.usage(org, purpose, grant_id)
        if usage.blocks == 0:
            remaining = grant.max_uses - grant.used
            if remaining <= 0:
                raise GrantRefused(f"grant {shown} has no uses left on chain (used up)")
            self.meter.add_blocks(
                org, purpose, grant_id, remaining, reference=grant_credit_reference(grant_id)
            )

    def _purpose_of(self, grant_id: bytes) -> bytes:
        made_for = self._purposes.get(grant_id)
        if made_for is None:
            shown = "0x" + grant_id.hex()
            try:
                made_for = self.authorizations.purpose_of(grant_id, self.first_block)
            except (ChainError, InvalidInput, OSError, Web3Exception) as exc:
                raise GrantRefused(
                    f"grant {shown}: its purpose cannot be read on chain now ({exc}); try again"
                ) from None
            self._purposes[grant_id] = made_for
        return made_for
