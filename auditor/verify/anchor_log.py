"""`anchor_log_consistent`: each node's evidence in AnchorLog is one append-only log.

A node anchors its transcript's root with its result (covering the entries up to the
result) and checkpoints the whole transcript in its AnchorLog log of the task, again
when late deliveries extend it. This check proves, with RFC 9162 consistency proofs
computed from the node's transcript (`ledger.merkle`):

* inclusion: the result's evidence root is a checkpoint of the log, or the tree of the
  first checkpoint at least as large extends it;
* consistency: each checkpoint extends the one before it (sizes never shrink).

Only transcripts `evidence_roots_match` authenticates are judged (a proof computed from
a forged transcript proves nothing about the chain). A node with a result but no
checkpoint is named and not judged: its evidence root on chain stands on its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verify.check import Check, digest32, guarded
from auditor.verify.evidence import anchored_prefix, authenticated, checkpoints
from auditor.verify.history import TaskHistory, hex_
from ledger import merkle
from ledger.transcript import Entry, leaf_hashes

NAME = "anchor_log_consistent"


def _consistent(leaves: Sequence[bytes], old: tuple[int, bytes], new: tuple[int, bytes]) -> bool:
    """Does the tree (old size, old root) extend to (new size, new root)? The proof is
    computed from ``leaves`` and checked against the two roots only."""
    (m, old_root), (n, new_root) = old, new
    if m == n:
        return old_root == new_root
    if not 0 < m < n <= len(leaves):
        return False
    proof = merkle.consistency_proof(list(leaves[:n]), m)
    return merkle.verify_consistency(m, n, old_root, new_root, proof)


@guarded(NAME)
def check_anchor_log(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    if h.created() is None:
        return Check(NAME, False, f"no such task on chain: {hex_(h.task_id)}")
    good, left_out = authenticated(h, transcripts)
    results = h.by_node("ResultSubmitted")
    proven: dict[str, Any] = {}
    for node, entries in sorted(good.items()):
        logged = checkpoints(h, node)
        if not logged:
            left_out[node] = "no AnchorLog checkpoint of its transcript"
            continue
        leaves = leaf_hashes(entries)
        size = anchored_prefix(entries)
        root = digest32(results[node].args["evidenceRoot"], f"evidence root of {node}")
        longest = max(s for s, _r, _b in logged)
        if longest > len(entries):
            left_out[node] = (
                f"transcript has {len(entries)} entries, a checkpoint covers {longest} "
                "(see evidence_roots_match)"
            )
            continue
        covering = next(((s, r, b) for s, r, b in logged if s >= size), None)
        if covering is None:
            return Check(
                NAME,
                False,
                f"no checkpoint of {node}'s log covers its result's evidence root (size "
                f"{size}); the largest covers {longest}",
                {"node": node},
            )
        if not _consistent(leaves, (size, root), covering[:2]):
            return Check(
                NAME,
                False,
                f"{node}'s result evidence root (size {size}) is not included in its "
                f"checkpoint of size {covering[0]} at block {covering[2]}",
                {"node": node, "evidenceRoot": hex_(root), "checkpointRoot": hex_(covering[1])},
            )
        for (s0, r0, _b0), (s1, r1, b1) in itertools.pairwise(logged):
            if s1 < s0 or not _consistent(leaves, (s0, r0), (s1, r1)):
                return Check(
                    NAME,
                    False,
                    f"{node}'s checkpoint of size {s1} at block {b1} does not extend its "
                    f"checkpoint of size {s0}",
                    {"node": node},
                )
        proven[node] = {
            "evidenceRoot": {"size": size, "root": hex_(root)},
            "checkpoints": [{"size": s, "root": hex_(r), "block": b} for s, r, b in logged],
        }
    evidence = {"nodes": proven, "notJudged": dict(sorted(left_out.items()))}
    if not proven:
        return Check.not_applicable(
            NAME, "no authenticated transcript with AnchorLog checkpoints to prove", evidence
        )
    detail = (
        f"{len(proven)} node(s): the result's evidence root is included in the AnchorLog "
        "log, and every checkpoint extends the one before"
    )
    if left_out:
        detail += f"; not judged: {', '.join(sorted(left_out))}"
    return Check(NAME, True, detail, evidence)
