// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "./IAlgorithmRegistry.sol";
import {IAuthorizationRegistry} from "./IAuthorizationRegistry.sol";
import {IConsortium} from "./IConsortium.sol";
import {IDatasetRegistry} from "./IDatasetRegistry.sol";
import {ROLE_CONSUMER} from "./Roles.sol";

/**
 * @title TaskRegistry
 * @notice The enforced lifecycle of a provnet job: Created -> every participant accepts
 * (its grant is checked and metered) -> Running -> participants anchor input commitments,
 * checkpoints and result digests -> Completed when all result digests agree, Disputed
 * when they differ; Failed (with a reason code and the reporter) or Expired otherwise.
 * @dev A running task is re-checked at each anchoring step: if any participant's grant
 * was revoked, any participant node (or its organisation, or the creator organisation)
 * is no longer active, or the algorithm was deprecated, the step does not revert but
 * fails the task with a reason code, so the failure is recorded on chain. Those checks
 * loop over the task's own participants only (at most {MAX_PARTICIPANTS}).
 *
 * Task ids are derived on chain from the creating organisation and its request id
 * ({taskIdFor}), so no member can occupy another member's task id; retrying a creation
 * with the same request id hits {TaskAlreadyExists} for the same id. A task's deadline
 * is at most {maxTaskDuration} seconds after its creation. Failures and refusals come
 * only from participants whose node and organisation are active (or from the active
 * creator organisation); reason codes below {MIN_REPORTED_REASON} are the contract's own.
 */
contract TaskRegistry {
    /// @notice Lifecycle of a task.
    enum TaskState {
        None,
        Created,
        Running,
        Completed,
        Disputed,
        Failed,
        Expired
    }

    /// @notice A node taking part in a task; one with no data input (e.g. an aggregator)
    /// has datasetId 0, datasetVersion 0 and grantId 0.
    struct Participant {
        address node;
        bytes32 datasetId;
        uint32 datasetVersion;
        bytes32 grantId;
    }

    struct Task {
        bytes32 creatorOrg;
        bytes32 algorithmDigest;
        bytes32 paramsDigest;
        uint64 deadline;
        TaskState state;
        uint8 participantCount;
        uint8 acceptedCount;
        uint8 resultCount;
    }

    /// @dev A participant and its progress; the first slot packs everything but the three digests.
    struct Seat {
        address node;
        uint32 datasetVersion;
        bool accepted;
        bool inputAnchored;
        bool resultSubmitted;
        uint40 nextRound; // last anchored checkpoint round + 1; 0 before the first checkpoint
        bytes32 datasetId;
        bytes32 grantId;
        bytes32 resultDigest;
    }

    /// @notice Reason code (contract-detected): a participant's grant was revoked.
    uint16 public constant REASON_GRANT_REVOKED = 1;
    /// @notice Reason code (contract-detected): a participant node, its organisation or the creator organisation is no longer active.
    uint16 public constant REASON_PARTICIPANT_INACTIVE = 2;
    /// @notice Reason code (contract-detected): the task's algorithm is no longer approved.
    uint16 public constant REASON_ALGORITHM_DEPRECATED = 3;
    /// @notice Reason code (node-reported): the node's own algorithm package does not hash to the task's digest.
    uint16 public constant REASON_ALGORITHM_DIGEST_MISMATCH = 100;
    /// @notice Reason code (node-reported): the node's data does not match the registered dataset version.
    uint16 public constant REASON_DATASET_MISMATCH = 101;
    /// @notice Reason code (node-reported): the grant does not cover the task.
    uint16 public constant REASON_GRANT_INVALID = 102;
    /// @notice Reason code (node-reported): a peer broke the protocol.
    uint16 public constant REASON_PROTOCOL_ERROR = 103;
    /// @notice Reason code (node-reported): a peer did not answer in time.
    uint16 public constant REASON_PEER_TIMEOUT = 104;
    /// @notice Lowest reason code a caller may report; lower codes are detected by the contract only.
    uint16 public constant MIN_REPORTED_REASON = 100;
    /// @notice Most participants a task may have.
    uint256 public constant MAX_PARTICIPANTS = 16;
    /// @notice Domain separator of task ids, see {taskIdFor}.
    string public constant TASK_ID_DOMAIN = "provnet:task:v1";

    /// @notice Longest time, in seconds, from a task's creation to its deadline.
    uint64 public immutable maxTaskDuration;

    /// @notice The consortium (membership and nodes).
    IConsortium public immutable consortium;
    /// @notice The algorithm registry.
    IAlgorithmRegistry public immutable algorithms;
    /// @notice The dataset registry.
    IDatasetRegistry public immutable datasets;
    /// @notice The authorization registry, which must have this contract bound.
    IAuthorizationRegistry public immutable authorizations;

    mapping(bytes32 taskId => Task) private _tasks;
    mapping(bytes32 taskId => mapping(uint256 index => Seat)) private _seats;

    /**
     * @notice A task was created.
     * @param taskId The task, `taskIdFor(creatorOrg, requestId)`.
     * @param creatorOrg The organisation that started it (the grantee of its grants).
     * @param algorithmDigest The approved algorithm it runs.
     * @param paramsDigest Digest of its canonical parameters.
     * @param deadline Timestamp from which no step is accepted and the task may be expired.
     * @param participants Its participants, in order.
     */
    event TaskCreated(
        bytes32 indexed taskId,
        bytes32 indexed creatorOrg,
        bytes32 indexed algorithmDigest,
        bytes32 paramsDigest,
        uint64 deadline,
        Participant[] participants
    );

    /**
     * @notice A participant accepted a task (consuming one use of its grant, if any).
     * @param taskId The task.
     * @param node The participant node.
     * @param grantId The grant consumed, zero if none.
     */
    event TaskAccepted(bytes32 indexed taskId, address indexed node, bytes32 grantId);

    /**
     * @notice Every participant accepted: the task is Running.
     * @param taskId The task.
     */
    event TaskStarted(bytes32 indexed taskId);

    /**
     * @notice A participant anchored its input commitment.
     * @param taskId The task.
     * @param node The participant node.
     * @param commitment The registered dataset version's Merkle root, or the node's own commitment if it has no dataset.
     */
    event InputAnchored(bytes32 indexed taskId, address indexed node, bytes32 commitment);

    /**
     * @notice A participant anchored a checkpoint (e.g. one per federated-learning round).
     * @param taskId The task.
     * @param node The participant node.
     * @param round The round number, strictly increasing per participant.
     * @param checkpointDigest Digest of the checkpoint.
     */
    event CheckpointAnchored(bytes32 indexed taskId, address indexed node, uint32 round, bytes32 checkpointDigest);

    /**
     * @notice A participant submitted its result.
     * @param taskId The task.
     * @param node The participant node.
     * @param resultDigest Digest of the result as the node computed it.
     * @param evidenceRoot Merkle root of the node's evidence transcript for the task.
     */
    event ResultSubmitted(bytes32 indexed taskId, address indexed node, bytes32 resultDigest, bytes32 evidenceRoot);

    /**
     * @notice Every participant submitted the same result digest: the task is Completed.
     * @param taskId The task.
     * @param resultDigest The agreed result digest.
     */
    event TaskCompleted(bytes32 indexed taskId, bytes32 resultDigest);

    /**
     * @notice Every participant submitted but the result digests differ: the task is Disputed.
     * @param taskId The task.
     */
    event TaskDisputed(bytes32 indexed taskId);

    /**
     * @notice The task failed or was refused.
     * @param taskId The task.
     * @param reporter The account whose transaction recorded the failure.
     * @param reasonCode A REASON_* code (below 100 detected by the contract, 100 and above reported by a node).
     */
    event TaskFailed(bytes32 indexed taskId, address indexed reporter, uint16 reasonCode);

    /**
     * @notice A participant refused an enclave's attestation report for a task and did not
     * provision its input. The task's state does not change: the participant may challenge
     * the enclave again, or fail the task with {refuseTask} / {reportFailure}.
     * @param taskId The task.
     * @param node The refusing participant node.
     * @param reportDigest Digest of the refused attestation report (its identity, see docs/tee.md).
     * @param reason Why, a non-zero code: 1 UNKNOWN_MEASUREMENT, 2 REVOKED_MEASUREMENT,
     * 3 STALE_NONCE, 4 REPORT_EXPIRED, 5 DIGEST_MISMATCH, 6 BACKEND_NOT_ALLOWED,
     * 7 BAD_SIGNATURE, 8 UNVERIFIABLE_EVIDENCE, 9 MALFORMED (node/tee/refusal.py, in order).
     */
    event AttestationRefused(bytes32 indexed taskId, address indexed node, bytes32 reportDigest, uint8 reason);

    /**
     * @notice The task's deadline passed before it finished.
     * @param taskId The task.
     */
    event TaskExpired(bytes32 indexed taskId);

    /// @notice No such task.
    /// @param taskId The task.
    error UnknownTask(bytes32 taskId);

    /// @notice The request id is zero.
    error InvalidRequestId();

    /// @notice The creator organisation already created a task with this request id.
    /// @param taskId The existing task.
    error TaskAlreadyExists(bytes32 taskId);

    /// @notice The maximum task duration given to the constructor is zero.
    error InvalidMaxTaskDuration();

    /// @notice The deadline is further in the future than {maxTaskDuration} allows.
    /// @param deadline The rejected deadline.
    /// @param latest The latest deadline allowed now.
    error DeadlineTooFar(uint64 deadline, uint256 latest);

    /// @notice The reason code is reserved for failures the contract detects itself, and none was detected.
    /// @param reasonCode The rejected code.
    error ReservedReasonCode(uint16 reasonCode);

    /// @notice The caller's organisation lacks a role.
    /// @param orgId The caller's organisation.
    /// @param role The missing role.
    error MissingRole(bytes32 orgId, uint8 role);

    /// @notice The algorithm is not approved.
    /// @param digest The algorithm digest.
    error AlgorithmNotApproved(bytes32 digest);

    /// @notice The deadline is not in the future.
    /// @param deadline The rejected deadline.
    error InvalidDeadline(uint64 deadline);

    /// @notice A task needs 1..MAX_PARTICIPANTS participants.
    /// @param count The rejected count.
    error InvalidParticipantCount(uint256 count);

    /// @notice A node appears twice among the participants.
    /// @param node The node.
    error DuplicateParticipant(address node);

    /// @notice The node is not an active node of an active organisation.
    /// @param node The node.
    error NodeNotActive(address node);

    /// @notice A participant names a dataset its organisation does not own.
    /// @param datasetId The dataset.
    /// @param node The participant node.
    error WrongDatasetOwner(bytes32 datasetId, address node);

    /// @notice The dataset version does not exist (also: a version given without a dataset).
    /// @param datasetId The dataset.
    /// @param version The version.
    error UnknownDatasetVersion(bytes32 datasetId, uint32 version);

    /// @notice The dataset is retired.
    /// @param datasetId The dataset.
    error DatasetIsRetired(bytes32 datasetId);

    /// @notice A participant's dataset belongs to another organisation than the creator's, so a grant is needed.
    /// @param datasetId The dataset.
    error GrantRequired(bytes32 datasetId);

    /// @notice A participant without a dataset names a grant.
    /// @param node The participant node.
    error UnexpectedGrant(address node);

    /// @notice The organisation is not Active.
    /// @param orgId The organisation.
    error OrgNotActive(bytes32 orgId);

    /// @notice The account is not a participant of the task (nor, where allowed, a member of its creator organisation).
    /// @param taskId The task.
    /// @param account The account.
    error NotParticipant(bytes32 taskId, address account);

    /// @notice The task is not in the state the call needs.
    /// @param taskId The task.
    /// @param expected The state needed (Running where Created or Running would do).
    /// @param actual The task's state.
    error InvalidTaskState(bytes32 taskId, TaskState expected, TaskState actual);

    /// @notice The task's deadline has passed.
    /// @param taskId The task.
    /// @param deadline The deadline.
    error DeadlinePassed(bytes32 taskId, uint64 deadline);

    /// @notice The task's deadline has not been reached.
    /// @param taskId The task.
    /// @param deadline The deadline.
    error DeadlineNotReached(bytes32 taskId, uint64 deadline);

    /// @notice The participant already accepted.
    /// @param taskId The task.
    /// @param node The participant node.
    error AlreadyAccepted(bytes32 taskId, address node);

    /// @notice The participant already anchored its input.
    /// @param taskId The task.
    /// @param node The participant node.
    error InputAlreadyAnchored(bytes32 taskId, address node);

    /// @notice The input commitment is not the registered Merkle root of the participant's dataset version.
    /// @param taskId The task.
    /// @param node The participant node.
    /// @param expected The registered Merkle root.
    /// @param actual The commitment given.
    error InputCommitmentMismatch(bytes32 taskId, address node, bytes32 expected, bytes32 actual);

    /// @notice The participant has not anchored its input yet.
    /// @param taskId The task.
    /// @param node The participant node.
    error InputNotAnchored(bytes32 taskId, address node);

    /// @notice The checkpoint round is not above the participant's last one.
    /// @param taskId The task.
    /// @param node The participant node.
    /// @param lastRound The participant's last anchored round.
    /// @param round The round given.
    error CheckpointOutOfOrder(bytes32 taskId, address node, uint32 lastRound, uint32 round);

    /// @notice The participant already submitted its result.
    /// @param taskId The task.
    /// @param node The participant node.
    error ResultAlreadySubmitted(bytes32 taskId, address node);

    /// @notice A digest or commitment that must be non-zero is zero.
    error InvalidDigest();

    /// @notice The attestation refusal reason is zero.
    error InvalidRefusalReason();

    /**
     * @notice Deploys the task registry; bind it in the authorization registry afterwards.
     * @param consortium_ The consortium.
     * @param algorithms_ The algorithm registry.
     * @param datasets_ The dataset registry.
     * @param authorizations_ The authorization registry.
     * @param maxTaskDuration_ Longest time, in seconds, from a task's creation to its deadline; non-zero.
     */
    constructor(
        IConsortium consortium_,
        IAlgorithmRegistry algorithms_,
        IDatasetRegistry datasets_,
        IAuthorizationRegistry authorizations_,
        uint64 maxTaskDuration_
    ) {
        if (maxTaskDuration_ == 0) revert InvalidMaxTaskDuration();
        maxTaskDuration = maxTaskDuration_;
        consortium = consortium_;
        algorithms = algorithms_;
        datasets = datasets_;
        authorizations = authorizations_;
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * @notice Creates a task.
     * @dev Caller: admin or active node of an Active organisation with the CONSUMER role.
     * A participant with a dataset must be a node of the dataset's owner, name an existing
     * version of a non-retired dataset, and name a grant unless the owner is the creator.
     * The task id is `taskIdFor(creatorOrg, requestId)`: another organisation using the
     * same request id gets another task id.
     * @param requestId Non-zero id of the request, unique per creator organisation.
     * @param algorithmDigest An approved algorithm.
     * @param paramsDigest Digest of the canonical task parameters.
     * @param deadline Future timestamp from which no step is accepted, at most {maxTaskDuration} from now.
     * @param participants_ 1..MAX_PARTICIPANTS distinct active nodes.
     * @return taskId The new task's id.
     */
    function createTask(
        bytes32 requestId,
        bytes32 algorithmDigest,
        bytes32 paramsDigest,
        uint64 deadline,
        Participant[] calldata participants_
    ) external returns (bytes32 taskId) {
        bytes32 creatorOrg = consortium.activeMemberOrg(msg.sender);
        if (!consortium.hasRole(creatorOrg, ROLE_CONSUMER)) revert MissingRole(creatorOrg, ROLE_CONSUMER);
        if (requestId == bytes32(0)) revert InvalidRequestId();
        taskId = taskIdFor(creatorOrg, requestId);
        Task storage t = _tasks[taskId];
        if (t.state != TaskState.None) revert TaskAlreadyExists(taskId);
        if (!algorithms.isApproved(algorithmDigest)) revert AlgorithmNotApproved(algorithmDigest);
        if (deadline <= block.timestamp) revert InvalidDeadline(deadline);
        if (deadline - block.timestamp > maxTaskDuration) {
            revert DeadlineTooFar(deadline, block.timestamp + maxTaskDuration);
        }
        uint256 n = participants_.length;
        if (n == 0 || n > MAX_PARTICIPANTS) revert InvalidParticipantCount(n);

        for (uint256 i = 0; i < n; ++i) {
            Participant calldata p = participants_[i];
            for (uint256 j = 0; j < i; ++j) {
                if (participants_[j].node == p.node) revert DuplicateParticipant(p.node);
            }
            _checkParticipant(p, creatorOrg);
            Seat storage s = _seats[taskId][i];
            s.node = p.node;
            if (p.datasetId != bytes32(0)) {
                s.datasetVersion = p.datasetVersion;
                s.datasetId = p.datasetId;
                if (p.grantId != bytes32(0)) s.grantId = p.grantId;
            }
        }

        t.creatorOrg = creatorOrg;
        t.algorithmDigest = algorithmDigest;
        if (paramsDigest != bytes32(0)) t.paramsDigest = paramsDigest;
        t.deadline = deadline;
        t.state = TaskState.Created;
        t.participantCount = uint8(n);
        emit TaskCreated(taskId, creatorOrg, algorithmDigest, paramsDigest, deadline, participants_);
    }

    /**
     * @notice Accepts a task as one of its participants; the last acceptance starts it.
     * @dev Caller: a participant node, active now. Consumes one use of the participant's
     * grant (reverting with the grant's error if it cannot be used). If, at the last
     * acceptance, another participant's grant was revoked, a member lapsed or the
     * algorithm was deprecated since it accepted, the task fails with that reason
     * instead of starting: a task naming a revoked grant never starts.
     * @param taskId The task, in state Created and before its deadline.
     */
    function acceptTask(bytes32 taskId) external {
        Task storage t = _task(taskId);
        Seat storage s = _seat(taskId, t, msg.sender);
        if (!consortium.isActiveNode(msg.sender)) revert NodeNotActive(msg.sender);
        _requireState(taskId, t, TaskState.Created);
        _requireBeforeDeadline(taskId, t);
        if (s.accepted) revert AlreadyAccepted(taskId, msg.sender);
        bytes32 algorithmDigest = t.algorithmDigest;
        if (!algorithms.isApproved(algorithmDigest)) revert AlgorithmNotApproved(algorithmDigest);
        bytes32 creatorOrg = t.creatorOrg;
        if (!consortium.isActiveOrg(creatorOrg)) revert OrgNotActive(creatorOrg);

        s.accepted = true;
        uint8 accepted = t.acceptedCount + 1;
        t.acceptedCount = accepted;

        bytes32 grantId = s.grantId;
        if (grantId != bytes32(0)) authorizations.consumeUse(grantId, creatorOrg, s.datasetId, algorithmDigest);
        emit TaskAccepted(taskId, msg.sender, grantId);
        if (accepted == t.participantCount) {
            uint16 reason = _lapse(taskId, t);
            if (reason != 0) {
                _fail(taskId, t, reason); // recorded, not reverted: the acceptance stands
            } else {
                t.state = TaskState.Running;
                emit TaskStarted(taskId);
            }
        }
    }

    /**
     * @notice Refuses a task before it starts; the task fails.
     * @dev Caller: a participant node, active now (node and organisation). A code below
     * {MIN_REPORTED_REASON} is accepted only if the contract detects such a lapse itself
     * (revoked grant, inactive member, deprecated algorithm), and the detected code is
     * recorded; otherwise it reverts with {ReservedReasonCode}.
     * @param taskId The task, in state Created.
     * @param reasonCode Why (a REASON_* code, node-reported codes from 100).
     */
    function refuseTask(bytes32 taskId, uint16 reasonCode) external {
        Task storage t = _task(taskId);
        _seat(taskId, t, msg.sender);
        if (!consortium.isActiveNode(msg.sender)) revert NodeNotActive(msg.sender);
        _requireState(taskId, t, TaskState.Created);
        _fail(taskId, t, _reportedReason(taskId, t, reasonCode));
    }

    /**
     * @notice Records that the caller refused an enclave's attestation report for a task.
     * @dev Caller: a participant node, active now (node and organisation), while the task is
     * Created or Running. Only the event is recorded; the task's state is unchanged.
     * Reason codes are not bounded above, so that a newer node's reasons can be recorded.
     * @param taskId The task.
     * @param reportDigest Non-zero digest of the refused report.
     * @param reason Non-zero reason code (see {AttestationRefused}).
     */
    function recordAttestationRefusal(bytes32 taskId, bytes32 reportDigest, uint8 reason) external {
        Task storage t = _task(taskId);
        _seat(taskId, t, msg.sender);
        if (!consortium.isActiveNode(msg.sender)) revert NodeNotActive(msg.sender);
        _requireLive(taskId, t);
        if (reportDigest == bytes32(0)) revert InvalidDigest();
        if (reason == 0) revert InvalidRefusalReason();
        emit AttestationRefused(taskId, msg.sender, reportDigest, reason);
    }

    /**
     * @notice Anchors the caller's input commitment.
     * @dev Caller: a participant node, once, while Running and before the deadline. With a
     * dataset the commitment must be the version's registered Merkle root; without one it
     * must be non-zero. Fails the task instead if a grant, member or the algorithm lapsed.
     * @param taskId The task.
     * @param commitment The input commitment.
     */
    function anchorInput(bytes32 taskId, bytes32 commitment) external {
        (Task storage t, Seat storage s) = _runningStep(taskId);
        if (t.state != TaskState.Running) return; // failed by the step checks
        if (s.inputAnchored) revert InputAlreadyAnchored(taskId, msg.sender);
        bytes32 datasetId = s.datasetId;
        if (datasetId != bytes32(0)) {
            (, bytes32 expected,) = datasets.versionCommitment(datasetId, s.datasetVersion);
            if (commitment != expected) revert InputCommitmentMismatch(taskId, msg.sender, expected, commitment);
        } else if (commitment == bytes32(0)) {
            revert InvalidDigest();
        }
        s.inputAnchored = true;
        emit InputAnchored(taskId, msg.sender, commitment);
    }

    /**
     * @notice Anchors a checkpoint of the caller's progress (e.g. one per federated-learning round).
     * @dev Caller: a participant node, while Running and before the deadline; rounds
     * strictly increase per participant, the first may be any value. Fails the task
     * instead if a grant, member or the algorithm lapsed.
     * @param taskId The task.
     * @param round The round number.
     * @param checkpointDigest Non-zero digest of the checkpoint.
     */
    function anchorCheckpoint(bytes32 taskId, uint32 round, bytes32 checkpointDigest) external {
        (Task storage t, Seat storage s) = _runningStep(taskId);
        if (t.state != TaskState.Running) return; // failed by the step checks
        uint40 nextRound = s.nextRound;
        if (nextRound != 0 && round < nextRound) {
            revert CheckpointOutOfOrder(taskId, msg.sender, uint32(nextRound - 1), round);
        }
        if (checkpointDigest == bytes32(0)) revert InvalidDigest();
        s.nextRound = uint40(round) + 1;
        emit CheckpointAnchored(taskId, msg.sender, round, checkpointDigest);
    }

    /**
     * @notice Submits the caller's result; the last submission completes or disputes the task.
     * @dev Caller: a participant node that anchored its input, once, while Running and before
     * the deadline. Fails the task instead if a grant, member or the algorithm lapsed.
     * @param taskId The task.
     * @param resultDigest Non-zero digest of the result.
     * @param evidenceRoot Non-zero Merkle root of the caller's evidence transcript.
     */
    function submitResult(bytes32 taskId, bytes32 resultDigest, bytes32 evidenceRoot) external {
        (Task storage t, Seat storage s) = _runningStep(taskId);
        if (t.state != TaskState.Running) return; // failed by the step checks
        if (!s.inputAnchored) revert InputNotAnchored(taskId, msg.sender);
        if (s.resultSubmitted) revert ResultAlreadySubmitted(taskId, msg.sender);
        if (resultDigest == bytes32(0) || evidenceRoot == bytes32(0)) revert InvalidDigest();
        s.resultSubmitted = true;
        s.resultDigest = resultDigest;
        emit ResultSubmitted(taskId, msg.sender, resultDigest, evidenceRoot);

        uint8 results = t.resultCount + 1;
        t.resultCount = results;
        if (results < t.participantCount) return;
        mapping(uint256 => Seat) storage seats = _seats[taskId];
        for (uint256 i = 0; i < results; ++i) {
            if (seats[i].resultDigest != resultDigest) {
                t.state = TaskState.Disputed;
                emit TaskDisputed(taskId);
                return;
            }
        }
        t.state = TaskState.Completed;
        emit TaskCompleted(taskId, resultDigest);
    }

    /**
     * @notice Records that a task failed.
     * @dev Caller: a participant node active now (node and organisation), or the admin or
     * an active node of the creator organisation while it is Active. A code below
     * {MIN_REPORTED_REASON} is accepted only if the contract detects such a lapse itself,
     * and the detected code is recorded; otherwise it reverts with {ReservedReasonCode}.
     * @param taskId The task, in state Created or Running.
     * @param reasonCode Why (a REASON_* code, node-reported codes from 100).
     */
    function reportFailure(bytes32 taskId, uint16 reasonCode) external {
        Task storage t = _task(taskId);
        if (_isParticipant(taskId, t, msg.sender)) {
            if (!consortium.isActiveNode(msg.sender)) revert NodeNotActive(msg.sender);
        } else {
            bytes32 creatorOrg = t.creatorOrg;
            if (consortium.orgOfAccount(msg.sender) != creatorOrg) revert NotParticipant(taskId, msg.sender);
            consortium.activeMemberOrg(msg.sender); // reverts NotActiveMember unless active now
        }
        _requireLive(taskId, t);
        _fail(taskId, t, _reportedReason(taskId, t, reasonCode));
    }

    /**
     * @notice Expires a task whose deadline has been reached before it finished.
     * @dev Anyone may call.
     * @param taskId The task, in state Created or Running.
     */
    function expire(bytes32 taskId) external {
        Task storage t = _task(taskId);
        _requireLive(taskId, t);
        if (block.timestamp < t.deadline) revert DeadlineNotReached(taskId, t.deadline);
        t.state = TaskState.Expired;
        emit TaskExpired(taskId);
    }

    // ---------------------------------------------------------------------- views

    /**
     * @notice The id of the task an organisation creates for a request id.
     * @param creatorOrg The creating organisation.
     * @param requestId The organisation's request id.
     * @return `keccak256(abi.encode("provnet:task:v1", creatorOrg, requestId))`.
     */
    function taskIdFor(bytes32 creatorOrg, bytes32 requestId) public pure returns (bytes32) {
        return keccak256(abi.encode(TASK_ID_DOMAIN, creatorOrg, requestId));
    }

    /**
     * @notice State of a task.
     * @param taskId The task.
     * @return The state (None if unknown).
     */
    function taskState(bytes32 taskId) external view returns (TaskState) {
        return _tasks[taskId].state;
    }

    /**
     * @notice Everything stored about a task but its participants.
     * @param taskId The task.
     * @return creatorOrg The organisation that created it.
     * @return algorithmDigest Its algorithm.
     * @return paramsDigest Its parameters' digest.
     * @return deadline Its deadline.
     * @return state Its state.
     * @return participantCount Number of participants.
     * @return acceptedCount Participants that accepted.
     * @return resultCount Participants that submitted a result.
     */
    function taskInfo(bytes32 taskId)
        external
        view
        returns (
            bytes32 creatorOrg,
            bytes32 algorithmDigest,
            bytes32 paramsDigest,
            uint64 deadline,
            TaskState state,
            uint8 participantCount,
            uint8 acceptedCount,
            uint8 resultCount
        )
    {
        Task storage t = _task(taskId);
        return (
            t.creatorOrg,
            t.algorithmDigest,
            t.paramsDigest,
            t.deadline,
            t.state,
            t.participantCount,
            t.acceptedCount,
            t.resultCount
        );
    }

    /**
     * @notice A task's participants, in creation order.
     * @param taskId The task.
     * @return list The participants.
     */
    function participants(bytes32 taskId) external view returns (Participant[] memory list) {
        Task storage t = _task(taskId);
        uint256 n = t.participantCount;
        list = new Participant[](n);
        mapping(uint256 => Seat) storage seats = _seats[taskId];
        for (uint256 i = 0; i < n; ++i) {
            Seat storage s = seats[i];
            list[i] = Participant({node: s.node, datasetId: s.datasetId, datasetVersion: s.datasetVersion, grantId: s.grantId});
        }
    }

    /**
     * @notice A participant's progress in a task.
     * @dev Reverts with {NotParticipant} if `node` is not a participant.
     * @param taskId The task.
     * @param node The participant node.
     * @return accepted Whether it accepted.
     * @return inputAnchored Whether it anchored its input.
     * @return resultSubmitted Whether it submitted its result.
     * @return resultDigest Its result digest, zero until submitted.
     */
    function participantStatus(bytes32 taskId, address node)
        external
        view
        returns (bool accepted, bool inputAnchored, bool resultSubmitted, bytes32 resultDigest)
    {
        Task storage t = _task(taskId);
        Seat storage s = _seat(taskId, t, node);
        return (s.accepted, s.inputAnchored, s.resultSubmitted, s.resultDigest);
    }

    // ------------------------------------------------------------------- internal

    function _task(bytes32 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.state == TaskState.None) revert UnknownTask(taskId);
    }

    function _seat(bytes32 taskId, Task storage t, address node) private view returns (Seat storage) {
        mapping(uint256 => Seat) storage seats = _seats[taskId];
        uint256 n = t.participantCount;
        for (uint256 i = 0; i < n; ++i) {
            if (seats[i].node == node) return seats[i];
        }
        revert NotParticipant(taskId, node);
    }

    function _isParticipant(bytes32 taskId, Task storage t, address node) private view returns (bool) {
        mapping(uint256 => Seat) storage seats = _seats[taskId];
        uint256 n = t.participantCount;
        for (uint256 i = 0; i < n; ++i) {
            if (seats[i].node == node) return true;
        }
        return false;
    }

    function _requireState(bytes32 taskId, Task storage t, TaskState expected) private view {
        if (t.state != expected) revert InvalidTaskState(taskId, expected, t.state);
    }

    function _requireLive(bytes32 taskId, Task storage t) private view {
        TaskState state = t.state;
        if (state != TaskState.Created && state != TaskState.Running) {
            revert InvalidTaskState(taskId, TaskState.Running, state);
        }
    }

    function _requireBeforeDeadline(bytes32 taskId, Task storage t) private view {
        if (block.timestamp >= t.deadline) revert DeadlinePassed(taskId, t.deadline);
    }

    function _checkParticipant(Participant calldata p, bytes32 creatorOrg) private view {
        bytes32 nodeOrg = consortium.activeNodeOrg(p.node);
        if (nodeOrg == bytes32(0)) revert NodeNotActive(p.node);
        bytes32 datasetId = p.datasetId;
        if (datasetId == bytes32(0)) {
            if (p.datasetVersion != 0) revert UnknownDatasetVersion(datasetId, p.datasetVersion);
            if (p.grantId != bytes32(0)) revert UnexpectedGrant(p.node);
            return;
        }
        (bytes32 ownerOrg,, bool retired) = datasets.versionCommitment(datasetId, p.datasetVersion);
        if (ownerOrg != nodeOrg) revert WrongDatasetOwner(datasetId, p.node);
        if (retired) revert DatasetIsRetired(datasetId);
        if (p.grantId == bytes32(0) && ownerOrg != creatorOrg) revert GrantRequired(datasetId);
    }

    /// @dev Common prologue of the anchoring steps; fails the task (state no longer Running) if a check lapsed.
    function _runningStep(bytes32 taskId) private returns (Task storage t, Seat storage s) {
        t = _task(taskId);
        s = _seat(taskId, t, msg.sender);
        _requireState(taskId, t, TaskState.Running);
        _requireBeforeDeadline(taskId, t);
        uint16 reason = _lapse(taskId, t);
        if (reason != 0) _fail(taskId, t, reason);
    }

    /// @dev Why a running task can no longer go on (0 if it can): revoked grant, inactive member, deprecated algorithm.
    function _lapse(bytes32 taskId, Task storage t) private view returns (uint16) {
        mapping(uint256 => Seat) storage seats = _seats[taskId];
        uint256 n = t.participantCount;
        for (uint256 i = 0; i < n; ++i) {
            bytes32 grantId = seats[i].grantId;
            if (grantId != bytes32(0) && authorizations.isRevoked(grantId)) return REASON_GRANT_REVOKED;
        }
        if (!consortium.isActiveOrg(t.creatorOrg)) return REASON_PARTICIPANT_INACTIVE;
        for (uint256 i = 0; i < n; ++i) {
            if (!consortium.isActiveNode(seats[i].node)) return REASON_PARTICIPANT_INACTIVE;
        }
        if (!algorithms.isApproved(t.algorithmDigest)) return REASON_ALGORITHM_DEPRECATED;
        return 0;
    }

    /// @dev The code to record for a caller's report: as given from 100, else the lapse the contract detects.
    function _reportedReason(bytes32 taskId, Task storage t, uint16 reasonCode) private view returns (uint16) {
        if (reasonCode >= MIN_REPORTED_REASON) return reasonCode;
        uint16 detected = _lapse(taskId, t);
        if (detected == 0) revert ReservedReasonCode(reasonCode);
        return detected;
    }

    function _fail(bytes32 taskId, Task storage t, uint16 reasonCode) private {
        t.state = TaskState.Failed;
        emit TaskFailed(taskId, msg.sender, reasonCode);
    }
}
