"""`transcript_io_matches_chain`: a node's transcript says it used as input, and produced
as output, exactly what it anchored on chain (`InputAnchored.commitment`,
`ResultSubmitted.resultDigest`).

The evidence root binds the transcript to the chain as a whole; this check binds its
meaning: a node could otherwise anchor one input commitment while its transcript (the
record of what it computed on) names another. Only transcripts that
`evidence_roots_match` authenticates are judged: one that does not hash to its anchor
says nothing about what the node anchored, and is that check's failure, not this one's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verify.check import Check, digest32, guarded
from auditor.verify.evidence import anchored_prefix, authenticated
from auditor.verify.history import TaskHistory, hex_
from ledger.transcript import Entry

NAME = "transcript_io_matches_chain"


def _one(entries: Sequence[Entry], kind: str) -> Entry | str:
    found = [e for e in entries if e.kind == kind]
    if len(found) != 1:
        return f"{len(found)} {kind!r} entries (exactly one expected)"
    return found[0]


@guarded(NAME)
def check_transcript_io(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    if h.created() is None:
        return Check(NAME, False, f"no such task on chain: {hex_(h.task_id)}")
    good, left_out = authenticated(h, transcripts)
    inputs = h.by_node("InputAnchored")
    results = h.by_node("ResultSubmitted")
    compared: dict[str, Any] = {}
    for node, entries in sorted(good.items()):
        anchored = entries[: anchored_prefix(entries)]
        on_chain_in = inputs.get(node)
        if on_chain_in is None:
            return Check(NAME, False, f"{node} submitted a result but anchored no input")
        want_in = digest32(on_chain_in.args["commitment"], f"InputAnchored.commitment of {node}")
        want_out = digest32(
            results[node].args["resultDigest"], f"ResultSubmitted.resultDigest of {node}"
        )
        for kind, want, event in (
            ("input", want_in, "InputAnchored.commitment"),
            ("output", want_out, "ResultSubmitted.resultDigest"),
        ):
            entry = _one(anchored, kind)
            if isinstance(entry, str):
                return Check(NAME, False, f"transcript of {node}: {entry}", {"node": node})
            if entry.digest != want:
                return Check(
                    NAME,
                    False,
                    f"transcript of {node}: its {kind} entry {hex_(entry.digest)} is not the "
                    f"{event} it anchored on chain ({hex_(want)})",
                    {"node": node, "entry": entry.seq, "onChain": hex_(want)},
                )
        compared[node] = {"input": hex_(want_in), "output": hex_(want_out)}
    evidence = {"compared": compared, "notJudged": dict(sorted(left_out.items()))}
    if not compared:
        return Check.not_applicable(
            NAME, "no authenticated transcript of a node that submitted a result", evidence
        )
    detail = f"{len(compared)} transcript(s) name the input and output their node anchored"
    if left_out:
        detail += f"; {len(left_out)} not judged (see evidence_roots_match)"
    return Check(NAME, True, detail, evidence)
