"""`fl_round_chain`'s rules for vertical logistic regression (``fl-vertical``), as pure
functions, one rule each, returning None or a sentence naming the party and the epoch.

In ``fl-vertical`` (``node/algorithms/fl_vertical.py``, protocol ``node/fl/vertical.py``)
there is no data-less aggregator: seat 0, the task's creator, is the *label holder* and
every other seat a *feature holder*, each training the model share of its own columns.
Every party anchors its own chain, one link per epoch, once its training has ended:

    link_{-1} = vertical.genesis(plan, party)
    link_e    = horizontal.chain_digest(link_{e-1}, vertical.share_digest(party, w_e), e)

with ``TaskRegistry.anchorCheckpoint(task, e, link_e)`` (the event's ``round`` is the
epoch). The rules shared with horizontal FedAvg (the result commitment, the links
recomputed from the genesis, the chain head) are in ``auditor/verify/checkpoints.py``
and are applied there to the label holder's chain; the ones here are the vertical-only
ones: per-party numbering (`numbering_problem`), the training messages of each
authenticated transcript against the party's anchored epochs (`transcripts_problem`),
the label holder's final share (`final_share_problem`) and its genesis
(`genesis_problem`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.verify.history import hex_
from ledger.transcript import Entry
from node.algorithms import fl_vertical
from node.fl import vertical

if TYPE_CHECKING:
    from auditor.verify.checkpoints import Anchored

#: The steps of one mini-batch (``vfl/<kind>/<epoch>/<batch>``) and, per kind, whether
#: the label holder sends it (True) or receives it from a feature holder (False).
KINDS: Mapping[str, bool] = {
    "partial": False,
    "residual": True,
    "masked-gradient": False,
    "opened-gradient": True,
}
PREFIX = "vfl/"


def by_party(anchored: Sequence[Anchored]) -> dict[str, list[Anchored]]:
    """The checkpoints of each anchoring node (lower-case address), in chain order."""
    out: dict[str, list[Anchored]] = {}
    for a in anchored:
        out.setdefault(a.node.lower(), []).append(a)
    return out


def numbering_problem(
    anchored: Sequence[Anchored], parties: Sequence[str], epochs: int | None, complete: bool
) -> str | None:
    """Every checkpoint is anchored by a participant; each party's own are numbered
    0..n-1 in chain order, no gap, no duplicate, never more than ``epochs``; once the
    task completed, every party anchored at least one and all the same number, ``epochs``
    when the parameters say. A task that ended otherwise may stop at any epoch."""
    names = {p.lower(): p for p in parties}
    for a in anchored:
        if a.node.lower() not in names:
            return (
                f"epoch {a.round} was anchored by {a.node}, which is not a participant "
                f"(block {a.block})"
            )
    mine = by_party(anchored)
    for party in parties:
        own = mine.get(party.lower(), [])
        for position, a in enumerate(own):
            if a.round < position:
                return f"{party}: epoch {a.round} is anchored twice (again at block {a.block})"
            if a.round > position:
                return (
                    f"{party}: epoch {position} is missing: its checkpoint after epoch "
                    f"{position - 1} is epoch {a.round} (block {a.block})"
                    if position
                    else f"{party}: epoch 0 is missing: its first checkpoint is epoch {a.round}"
                )
        if epochs is not None and len(own) > epochs:
            return f"{party}: {len(own)} epochs anchored, the parameters ask for {epochs}"
    if not complete:
        return None
    counts = {party: len(mine.get(party.lower(), [])) for party in parties}
    for party, n in counts.items():
        if n == 0:
            return f"{party}: the task completed without a single epoch checkpoint of it"
        if epochs is not None and n < epochs:
            return (
                f"{party}: epoch {n} is missing: the task completed with {n} of the "
                f"{epochs} epochs its parameters ask for anchored"
            )
    most = max(counts.values(), default=0)
    leader = next((p for p, n in counts.items() if n == most), "")
    for party, n in counts.items():
        if n < most:
            return (
                f"{party}: epoch {n} is missing: the task completed with {n} of its epochs "
                f"anchored, {leader} anchored {most}"
            )
    return None


def _epoch_of(step: str) -> tuple[str, int] | None:
    """``(kind, epoch)`` of a well-formed ``vfl/<kind>/<epoch>/<batch>`` step, else None."""
    parts = step.split("/")
    if len(parts) != 4 or parts[1] not in KINDS:
        return None
    for number in parts[2:]:
        if not (number.isascii() and number.isdigit() and number == str(int(number))):
            return None
    return parts[1], int(parts[2])


def transcripts_problem(
    label_holder: str,
    feature_holders: Sequence[str],
    anchored: Mapping[str, int],
    transcripts: Mapping[str, Sequence[Entry]],
    complete: bool,
) -> str | None:
    """Each party's training messages, as its authenticated transcript records them,
    match the epochs it anchored (``anchored``: count by lower-case node): every
    ``vfl/<kind>/<epoch>/<batch>`` entry names an epoch below that count (a party
    anchors its chain only after its last epoch, so it never trained an epoch it did
    not anchor), goes the protocol's way (partial logits and masked gradients from a
    feature holder to the label holder, residuals and opened gradients back, the public
    key from the label holder) and, once the task completed, every anchored epoch has
    messages with each of the party's peers (the label holder's peers are all the
    feature holders, a feature holder's the label holder). A message recorded as
    delivered late (``received-late``: never read) was not trained on: it is not
    counted, and in a completed task it is a problem (every message of the protocol is
    read). Transcripts are keyed by node (any case); a party without one is not judged.
    """
    given = {node.lower(): entries for node, entries in transcripts.items()}
    lh = label_holder.lower()
    holders = {f.lower(): f for f in feature_holders}
    for party in [label_holder, *feature_holders]:
        entries = given.get(party.lower())
        if entries is None:
            continue
        is_lh = party.lower() == lh
        n = anchored.get(party.lower(), 0)
        peers = list(feature_holders) if is_lh else [label_holder]
        seen: dict[str, set[int]] = {p.lower(): set() for p in peers}
        for e in entries:
            if not e.step.startswith(PREFIX):
                continue
            peer = e.peer.lower()
            late = e.kind == "received-late"
            if e.step == vertical.STEP_KEY:
                kind, epoch, from_lh = "public-key", None, True
            else:
                named = _epoch_of(e.step)
                if named is None:
                    return (
                        f"{party}'s transcript records {e.kind} {e.step!r}, which names no "
                        "epoch of the protocol"
                    )
                kind, epoch = named
                from_lh = KINDS[kind]
            want = (
                ("sent" if from_lh else "received")
                if is_lh
                else ("received" if from_lh else "sent")
            )
            right_peer = peer in holders if is_lh else peer == lh
            if not right_peer or (e.kind != want and not (late and want == "received")):
                other = "a feature holder" if is_lh else f"the label holder {label_holder}"
                return (
                    f"{party}'s transcript records {e.kind} {e.step!r} with {e.peer}; the "
                    f"protocol has it {want} {'to' if want == 'sent' else 'from'} {other}"
                )
            where = "" if epoch is None else f"epoch {epoch}: "
            if late:
                if complete:
                    return (
                        f"{where}{party} never read {e.step!r} from {e.peer} (recorded as "
                        "delivered late) although the task completed"
                    )
                continue  # it stopped before reading it: the task did not complete
            if epoch is None:
                continue
            if epoch >= n:
                return (
                    f"epoch {epoch}: {party} recorded training messages of the epoch "
                    f"({e.kind} {e.step!r}) but anchored {n} epoch checkpoint(s)"
                )
            seen[peer].add(epoch)
        if complete:
            for peer in peers:
                missing = [r for r in range(n) if r not in seen[peer.lower()]]
                if missing:
                    return (
                        f"epoch {missing[0]}: {party} anchored the epoch's checkpoint but "
                        f"recorded no training message of it with {peer}"
                    )
    return None


def final_share_problem(
    label_holder: str,
    result: Mapping[str, Any],
    share_digest: bytes,
    last_share: bytes,
    last_epoch: int,
) -> str | None:
    """The result's weights (one per feature it names) and intercept hash, under the
    label holder's name, to the result's ``share_digest`` and to the last epoch's share
    digest (the one the chain head binds)."""
    weights = np.asarray([*result["weights"], result["intercept"]], dtype=np.float64)
    features = list(result.get("features", []))
    if weights.shape != (len(features) + 1,):
        return (
            f"the result holds {weights.size - 1} weight(s) and an intercept for "
            f"{len(features)} feature(s)"
        )
    computed = vertical.share_digest(label_holder, weights)
    if computed != share_digest:
        return (
            f"the final weights and intercept hash to {hex_(computed)}, the result's "
            f"share digest is {hex_(share_digest)}"
        )
    if computed != last_share:
        return (
            f"epoch {last_epoch}: the final weights and intercept hash to {hex_(computed)}, "
            f"not to the epoch's share digest {hex_(last_share)}"
        )
    return None


def genesis_problem(
    params: fl_vertical.VerticalParams,
    task_id: bytes,
    label_holder: str,
    feature_holders: Sequence[str],
    aligned_rows: int,
    genesis: bytes,
) -> str | None:
    """The genesis is the label holder's: the digest of the plan every party derived
    from the committed parameters, the task's seats, the aligned row count the result
    states, and the task."""
    if not isinstance(aligned_rows, int) or isinstance(aligned_rows, bool) or aligned_rows < 1:
        return f"the result's aligned_rows ({aligned_rows!r}) is not a row count"
    try:
        plan = fl_vertical.plan_for(params, label_holder, feature_holders, aligned_rows, task_id)
    except vertical.VerticalError as exc:
        return f"the committed parameters and the seats give no training plan: {exc}"
    expected = vertical.genesis(plan, label_holder)
    if genesis != expected:
        return (
            f"the result's genesis {hex_(genesis)} is not the label holder's that the "
            f"committed parameters, the seats, the {aligned_rows} aligned rows and the "
            f"task derive ({hex_(expected)})"
        )
    return None
