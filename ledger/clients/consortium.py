"""Typed client for `Consortium`: membership, votes and nodes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from web3.types import TxReceipt

from ledger.clients.base import ContractClient
from ledger.ids import as_address, as_bytes32


class OrgStatus(IntEnum):
    NONE = 0
    PROPOSED = 1
    ACTIVE = 2
    SUSPENDED = 3


class NodeStatus(IntEnum):
    NONE = 0
    ACTIVE = 1
    REVOKED = 2


class MeasurementStatus(IntEnum):
    """`IConsortium.MeasurementStatus`; REVOKED is final."""

    NONE = 0
    TRUSTED = 1
    REVOKED = 2


class ProposalAction(IntEnum):
    """`Consortium.ACTION_*`: what a consortium proposal is about."""

    ADMIT = 0
    SUSPEND = 1
    REINSTATE = 2
    TRUST_MEASUREMENT = 3
    REVOKE_MEASUREMENT = 4


class ProposalState(IntEnum):
    """`ConsortiumVoting.ProposalState`; EXECUTED, EXPIRED, VETOED and CANCELLED are final."""

    NONE = 0
    VOTING = 1
    QUEUED = 2
    EXECUTED = 3
    EXPIRED = 4
    VETOED = 5
    CANCELLED = 6


@dataclass(frozen=True)
class Ballot:
    """A proposal's ballot: `expires_at` moves to `eta + lifetime` once queued."""

    state: ProposalState
    votes: int
    objections: int
    expires_at: int
    eta: int


@dataclass(frozen=True)
class Governance:
    """The consortium's governance settings, as deployed."""

    threshold_percent: int
    min_approvals: int
    proposal_lifetime_seconds: int
    timelock_seconds: int


class BallotClient(ContractClient):
    """Proposal lifecycle (`ConsortiumVoting`) of `Consortium` and `AlgorithmRegistry`."""

    def execute(self, proposal_id: bytes) -> TxReceipt:
        """Apply a queued proposal once its timelock has elapsed (anyone may call)."""
        return self._transact("execute", as_bytes32(proposal_id, "proposal_id"))

    def object(self, proposal_id: bytes) -> TxReceipt:
        """Object to a queued proposal during its timelock (cancels at `minApprovals`)."""
        return self._transact("object", as_bytes32(proposal_id, "proposal_id"))

    def veto(self, proposal_id: bytes) -> TxReceipt:
        """Veto an open proposal (caller: admin of an organisation with the REGULATOR role)."""
        return self._transact("veto", as_bytes32(proposal_id, "proposal_id"))

    def expire(self, proposal_id: bytes) -> TxReceipt:
        """Record that an open proposal has expired (anyone may call)."""
        return self._transact("expire", as_bytes32(proposal_id, "proposal_id"))

    def proposal_state(self, proposal_id: bytes) -> ProposalState:
        return ProposalState(self._call("proposalState", as_bytes32(proposal_id, "proposal_id")))

    def ballot(self, proposal_id: bytes) -> Ballot:
        state, votes, objections, expires_at, eta = self._call(
            "proposalBallot", as_bytes32(proposal_id, "proposal_id")
        )
        return Ballot(ProposalState(state), int(votes), int(objections), int(expires_at), int(eta))

    def has_objected(self, proposal_id: bytes, org_id: bytes) -> bool:
        return bool(
            self._call(
                "hasObjected", as_bytes32(proposal_id, "proposal_id"), as_bytes32(org_id, "org_id")
            )
        )

    def required_votes(self) -> int:
        """Votes that carry a proposal now: max(ceil(members x threshold / 100), minApprovals)."""
        return int(self._call("requiredVotes"))


@dataclass(frozen=True)
class NodeInfo:
    org_id: bytes
    status: NodeStatus
    endpoint: str
    tls_cert_sha256: bytes
    tee_measurement: bytes


@dataclass(frozen=True)
class MeasurementInfo:
    """What the consortium stores about an enclave measurement."""

    status: MeasurementStatus
    algorithm_digest: bytes


class ConsortiumClient(BallotClient):
    contract_name = "Consortium"

    def propose_member(self, org_id: bytes, name: str, roles: int, admin: str) -> bytes:
        receipt = self._transact(
            "proposeMember", as_bytes32(org_id, "org_id"), name, roles, as_address(admin, "admin")
        )
        return self._proposal_id(receipt)

    def propose_suspension(self, org_id: bytes) -> bytes:
        return self._proposal_id(self._transact("proposeSuspension", as_bytes32(org_id, "org_id")))

    def propose_reinstatement(self, org_id: bytes) -> bytes:
        return self._proposal_id(
            self._transact("proposeReinstatement", as_bytes32(org_id, "org_id"))
        )

    def vote(self, proposal_id: bytes) -> TxReceipt:
        return self._transact("vote", as_bytes32(proposal_id, "proposal_id"))

    def propose_measurement(self, measurement: bytes, algorithm_digest: bytes) -> bytes:
        """Propose trusting an enclave measurement that runs `algorithm_digest` (the
        caller's vote is cast too); returns the proposal id, carried by `vote`."""
        receipt = self._transact(
            "proposeMeasurement",
            as_bytes32(measurement, "measurement"),
            as_bytes32(algorithm_digest, "algorithm_digest"),
        )
        return self._measurement_proposal_id(receipt)

    def propose_measurement_revocation(self, measurement: bytes) -> bytes:
        """Propose revoking a trusted measurement for good; returns the proposal id."""
        receipt = self._transact(
            "proposeMeasurementRevocation", as_bytes32(measurement, "measurement")
        )
        return self._measurement_proposal_id(receipt)

    def register_node(
        self, node: str, endpoint: str, tls_cert_sha256: bytes, tee_measurement: bytes = bytes(32)
    ) -> TxReceipt:
        return self._transact(
            "registerNode",
            as_address(node, "node"),
            endpoint,
            as_bytes32(tls_cert_sha256, "tls_cert_sha256"),
            as_bytes32(tee_measurement, "tee_measurement"),
        )

    def update_node(
        self, node: str, endpoint: str, tls_cert_sha256: bytes, tee_measurement: bytes = bytes(32)
    ) -> TxReceipt:
        return self._transact(
            "updateNode",
            as_address(node, "node"),
            endpoint,
            as_bytes32(tls_cert_sha256, "tls_cert_sha256"),
            as_bytes32(tee_measurement, "tee_measurement"),
        )

    def revoke_node(self, node: str) -> TxReceipt:
        return self._transact("revokeNode", as_address(node, "node"))

    # views

    def org_status(self, org_id: bytes) -> OrgStatus:
        return OrgStatus(self._call("orgStatus", as_bytes32(org_id, "org_id")))

    def is_active_org(self, org_id: bytes) -> bool:
        return bool(self._call("isActiveOrg", as_bytes32(org_id, "org_id")))

    def org_roles(self, org_id: bytes) -> int:
        return int(self._call("orgRoles", as_bytes32(org_id, "org_id")))

    def org_name(self, org_id: bytes) -> str:
        return str(self._call("orgName", as_bytes32(org_id, "org_id")))

    def org_admin(self, org_id: bytes) -> str:
        return str(self._call("orgAdmin", as_bytes32(org_id, "org_id")))

    def org_of_account(self, account: str) -> bytes:
        return bytes(self._call("orgOfAccount", as_address(account, "account")))

    def is_active_node(self, node: str) -> bool:
        return bool(self._call("isActiveNode", as_address(node, "node")))

    def node_info(self, node: str) -> NodeInfo:
        org, status, endpoint, cert, tee = self._call("nodeInfo", as_address(node, "node"))
        return NodeInfo(bytes(org), NodeStatus(status), str(endpoint), bytes(cert), bytes(tee))

    def is_measurement_trusted(self, measurement: bytes) -> bool:
        """Whether the consortium trusts `measurement` now (see `measurement_trusted_at`
        in `ledger.measurements` for an earlier block)."""
        return bool(self._call("isMeasurementTrusted", as_bytes32(measurement, "measurement")))

    def measurement_info(self, measurement: bytes) -> MeasurementInfo:
        status, digest = self._call("measurementInfo", as_bytes32(measurement, "measurement"))
        return MeasurementInfo(MeasurementStatus(status), bytes(digest))

    def open_measurement_proposal(self, measurement: bytes) -> bytes:
        """The open proposal about `measurement` (32 zero bytes if none)."""
        return bytes(self._call("openMeasurementProposal", as_bytes32(measurement, "measurement")))

    def active_org_count(self) -> int:
        return int(self._call("activeOrgCount"))

    def threshold_percent(self) -> int:
        return int(self._call("thresholdPercent"))

    def governance(self) -> Governance:
        threshold, min_approvals, lifetime, timelock = self._call("governance")
        return Governance(int(threshold), int(min_approvals), int(lifetime), int(timelock))

    def member_count(self) -> int:
        """Non-removed organisations (Active or Suspended): the electorate of every ballot."""
        return int(self._call("memberCount"))

    def open_proposal(self, org_id: bytes) -> bytes:
        """The open proposal about `org_id` (32 zero bytes if none; check `proposal_state`)."""
        return bytes(self._call("openProposal", as_bytes32(org_id, "org_id")))

    def proposal_subject(self, proposal_id: bytes) -> tuple[int, bytes, int, str]:
        """(action (`ProposalAction`), org id or measurement, roles, admin) of a proposal."""
        action, org, roles, admin = self._call(
            "proposalSubject", as_bytes32(proposal_id, "proposal_id")
        )
        return int(action), bytes(org), int(roles), str(admin)

    def has_voted(self, proposal_id: bytes, org_id: bytes) -> bool:
        return bool(
            self._call(
                "hasVoted", as_bytes32(proposal_id, "proposal_id"), as_bytes32(org_id, "org_id")
            )
        )

    def proposal_executed(self, proposal_id: bytes) -> bool:
        return bool(self._call("proposalExecuted", as_bytes32(proposal_id, "proposal_id")))

    def proposal_votes(self, proposal_id: bytes) -> int:
        return int(self._call("proposalVotes", as_bytes32(proposal_id, "proposal_id")))

    def has_role(self, org_id: bytes, role: int) -> bool:
        return bool(self._call("hasRole", as_bytes32(org_id, "org_id"), role))

    def node_org(self, node: str) -> bytes:
        return bytes(self._call("nodeOrg", as_address(node, "node")))

    def active_member_org(self, account: str) -> bytes:
        """The account's organisation; raises `NotActiveMember` unless it may act now."""
        return bytes(self._call("activeMemberOrg", as_address(account, "account")))

    def active_admin_org(self, account: str) -> bytes:
        """The Active organisation whose admin `account` is, else 32 zero bytes."""
        return bytes(self._call("activeAdminOrg", as_address(account, "account")))

    def active_node_org(self, node: str) -> bytes:
        """The organisation of an active node of an Active organisation, else 32 zero bytes."""
        return bytes(self._call("activeNodeOrg", as_address(node, "node")))

    def max_endpoint_length(self) -> int:
        return int(self._call("MAX_ENDPOINT_LENGTH"))

    def _proposal_id(self, receipt: TxReceipt) -> bytes:
        return bytes(self.events_in(receipt, "ProposalCreated")[0]["proposalId"])

    def _measurement_proposal_id(self, receipt: TxReceipt) -> bytes:
        return bytes(self.events_in(receipt, "MeasurementProposed")[0]["proposalId"])
