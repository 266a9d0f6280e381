"""`evidence_roots_match`: each participant's transcript hashes to the evidence root it
anchored with its result, and what the other evidence checks may rely on.

`authenticated` is the set of transcripts this check accepts: the transcript-to-chain
checks (`transcript_io`, `anchor_log`) judge only those, so a forged or missing
transcript fails here, once, and not again in every check that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from auditor.verify.check import Check, Malformed, digest32, guarded, maybe_bytes
from auditor.verify.history import TaskHistory, hex_
from ledger.transcript import Entry, chain_intact, evidence_log_id, transcript_root

NAME = "evidence_roots_match"


def malformed_entry(entries: Sequence[Entry]) -> str | None:
    """The first entry whose digest or link is not a 32-byte hash, described; or None."""
    for i, e in enumerate(entries):
        for what, value in (("digest", e.digest), ("prev", e.prev)):
            if not isinstance(value, bytes) or len(value) != 32:
                got = len(value) if isinstance(value, bytes) else type(value).__name__
                return f"entry {i} {what} is not a 32-byte hash ({got})"
    return None


def authenticated(
    h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]
) -> tuple[dict[str, Sequence[Entry]], dict[str, str]]:
    """Transcripts (by lower-case node) that hash to their node's anchored evidence
    root, and, for every other node that submitted a result, why its transcript is not
    one of them. Never raises: a malformed root or entry just leaves a node out."""
    given = {k.lower(): v for k, v in transcripts.items()}
    good: dict[str, Sequence[Entry]] = {}
    left_out: dict[str, str] = {}
    for node, event in h.by_node("ResultSubmitted").items():
        entries = given.get(node)
        if entries is None:
            left_out[node] = "no transcript given"
            continue
        try:
            root = digest32(event.args.get("evidenceRoot"), "evidence root")
        except Malformed:
            left_out[node] = "its anchored evidence root is malformed"
            continue
        if malformed_entry(entries) is not None or not chain_intact(entries):
            left_out[node] = "transcript malformed or not hash-chained"
        elif transcript_root(entries[: anchored_prefix(entries)]) != root:
            left_out[node] = "transcript does not hash to its anchored evidence root"
        else:
            good[node] = entries
    return good, left_out


def checkpoints(h: TaskHistory, node: str) -> list[tuple[int, bytes, int]]:
    """(tree size, root, block) of every checkpoint of ``node``'s log of this task, in
    chain order; a malformed size or root raises `Malformed` (the caller's check fails)."""
    log_id = evidence_log_id(node, h.task_id)
    found = []
    for e in h.all_events:
        if (
            e.contract == "AnchorLog"
            and e.name == "Checkpointed"
            and maybe_bytes(e.args.get("logId")) == log_id
        ):
            size = e.args["treeSize"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise Malformed(f"checkpoint tree size of {node} is not a size ({size!r})")
            root = digest32(e.args["rootHash"], f"checkpoint root of {node} at size {size}")
            found.append((size, root, e.block_number))
    return found


def anchored_prefix(entries: Sequence[Entry]) -> int:
    """Length of the transcript before its trailing late deliveries: what a node's
    result root covers (it records messages it never read only after submitting)."""
    size = len(entries)
    while size > 0 and entries[size - 1].kind == "received-late":
        size -= 1
    return size


@guarded(NAME)
def check_evidence(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    """Each transcript hashes to the root its node anchored with its result.

    A transcript may extend that prefix with late deliveries only (``received-late``:
    messages delivered to the node but never read by the protocol, recorded when its
    part of the task ended, after the result). The extended transcript must then be
    exactly the node's latest checkpoint in its AnchorLog log of the task (size and
    root), so the remainder is anchored too and cannot be written after the fact.
    Whether or not there is a remainder, a transcript shorter than that latest
    checkpoint is refused: entries the node anchored are missing.
    """
    name = NAME
    anchored = {
        node: digest32(e.args["evidenceRoot"], f"ResultSubmitted.evidenceRoot of {node}")
        for node, e in h.by_node("ResultSubmitted").items()
    }
    if h.created() is None:
        return Check(name, False, f"no such task on chain: {hex_(h.task_id)}")
    given = {k.lower(): v for k, v in transcripts.items()}
    roots: dict[str, str] = {}
    late: dict[str, int] = {}
    for node, _d, _v, _g in h.participants():
        if node.lower() not in anchored and h.ended_without_results():
            continue  # never submitted: no root was anchored to match a transcript against
        entries = given.get(node.lower())
        if entries is None:
            return Check(name, False, f"no transcript from {node}, which anchored a result")
        problem = malformed_entry(entries)
        if problem is not None:
            return Check(name, False, f"transcript of {node}: {problem}", {"node": node})
        if not chain_intact(entries):
            return Check(name, False, f"transcript of {node} is not hash-chained")
        prefix = anchored_prefix(entries)
        root = transcript_root(entries[:prefix])
        if anchored.get(node.lower()) != root:
            return Check(name, False, f"transcript of {node} does not hash to its anchor")
        logged = checkpoints(h, node)
        latest = logged[-1][:2] if logged else None
        full = (len(entries), transcript_root(entries))
        if prefix < len(entries) and latest != full:
            return Check(
                name,
                False,
                f"transcript of {node} adds {len(entries) - prefix} late deliveries after its "
                f"anchored result, but its latest AnchorLog checkpoint "
                f"({'none' if latest is None else f'size {latest[0]}'}) is not that transcript",
            )
        if latest is not None and latest[0] > len(entries):
            return Check(
                name,
                False,
                f"transcript of {node} has {len(entries)} entries, its latest AnchorLog "
                f"checkpoint covers {latest[0]}: anchored entries are missing",
            )
        roots[node] = hex_(root)
        if prefix < len(entries):
            late[node] = len(entries) - prefix
    if not roots:
        return Check.not_applicable(
            name, "no participant anchored a result: no transcript to match against one"
        )
    detail = f"{len(roots)} transcript(s) hash to their anchored roots"
    if late:
        detail += (
            f"; {sum(late.values())} late deliveries after them, covered by the nodes' "
            "latest AnchorLog checkpoints"
        )
    return Check(name, True, detail, {"roots": roots, "lateDeliveries": late})
