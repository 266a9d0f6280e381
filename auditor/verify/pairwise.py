"""`transcripts_agree_pairwise`: what A recorded as sent to B is what B recorded as
received from A, with the allowances for peers that went away."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditor.verify.check import Check, guarded
from auditor.verify.evidence import malformed_entry
from auditor.verify.history import TaskHistory, algorithm_name, hex_
from ledger.transcript import Entry

NAME = "transcripts_agree_pairwise"

#: Approved algorithms whose computation runs over a transport of its own, so the nodes'
#: transcripts hold only the messages around it (parameters, link set-up, result
#: commitment): for them the message-level check is not applicable, and says why. The
#: messages that are recorded must still agree: a disagreement fails as for any task.
OWN_TRANSPORT = {
    "psi-rr22": "runs SecretFlow spu's RR22 inside spu's own TLS link between the two "
    "nodes (their chain-registered certificates), whose messages provnet cannot record",
}

Message = tuple[str, str, str, bytes]  # (sender, receiver, step, message digest)


def _message(m: Message) -> str:
    return f"{m[2]!r} from {m[0]} to {m[1]}"


@guarded(NAME)
def check_transcripts_agree(h: TaskHistory, transcripts: Mapping[str, Sequence[Entry]]) -> Check:
    """What A recorded as sent to B is exactly what B recorded as received from A.

    A node records a message as sent once the peer's transport filed it, and as received
    when its protocol reads it, or as ``received-late`` when its part of the task ends
    with the message still unread (a threshold protocol finishes once enough peers
    answered). A node *finished* when it submitted a result on chain; one that did not
    may have gone away at any point (crashed, lost its inbox, stopped), so its
    transcript may end early. The rules, per message:

    * sent and received (in time or late): agrees; late ones are counted and named;
    * sent but never recorded by its receiver: passes only if the receiver did not
      finish (it went away holding the message unread); fails if it finished;
    * received but never recorded as sent: passes only if the sender did not finish,
      and for at most one message per such sender (a crash between a send and its
      record loses the record of that node's last send only); fails otherwise;
    * a message to or from a node that is not a participant of the task fails.

    Every peer that went away with messages unaccounted for is named in the detail.
    A participant that finished but whose transcript was not given fails the check, so
    it never passes on nothing; a participant that did not finish and gave no
    transcript counts as an empty one.
    """
    name = NAME
    if h.created() is None:
        return Check(name, False, f"no such task on chain: {hex_(h.task_id)}")
    participants = {p[0].lower(): p[0] for p in h.participants()}
    finished = {str(e.args["node"]).lower() for e in h.task_events if e.name == "ResultSubmitted"}
    given = {k.lower(): v for k, v in transcripts.items()}
    missing = sorted(participants[n] for n in finished if n in participants and n not in given)
    if missing:
        return Check(
            name,
            False,
            f"no transcript from {', '.join(missing)}, which submitted a result: its "
            "messages cannot be compared",
            {"missingTranscripts": missing},
        )
    strangers = sorted(n for n in set(given) - set(participants) if given[n])
    if strangers:
        return Check(name, False, f"transcript(s) from non-participant(s) {', '.join(strangers)}")
    given = {n: entries for n, entries in given.items() if n in participants}
    for node, entries in given.items():
        problem = malformed_entry(entries)
        if problem is not None:
            return Check(name, False, f"transcript of {participants[node]}: {problem}")
    sent: set[Message] = set()
    received: set[Message] = set()
    late: set[Message] = set()
    for node, entries in given.items():
        for e in entries:
            if e.kind == "sent":
                sent.add((node, e.peer.lower(), e.step, e.digest))
            elif e.kind == "received":
                received.add((e.peer.lower(), node, e.step, e.digest))
            elif e.kind == "received-late":
                late.add((e.peer.lower(), node, e.step, e.digest))
    evidence: dict[str, Any] = {}
    twice = sorted(received & late)
    if twice:
        return Check(name, False, f"{_message(twice[0])} is recorded as received twice")
    got = received | late
    outsiders = sorted(
        m for m in sent | got if m[0] not in participants or m[1] not in participants
    )
    if outsiders:
        return Check(name, False, f"{_message(outsiders[0])} names a non-participant")

    went_away: set[str] = set()
    undelivered = sorted(sent - got)
    for m in undelivered:
        if m[1] in finished:
            return Check(
                name,
                False,
                f"{_message(m)} was recorded as sent, but {participants[m[1]]} never recorded "
                "receiving it although it submitted a result",
                {"message": _message(m)},
            )
        went_away.add(m[1])
    unconfirmed = sorted(got - sent)
    per_sender: dict[str, int] = {}
    for m in unconfirmed:
        if m[0] in finished:
            return Check(
                name,
                False,
                f"{_message(m)} was recorded as received by {participants[m[1]]}, but "
                f"{participants[m[0]]} never recorded sending it although it submitted a result",
                {"message": _message(m)},
            )
        per_sender[m[0]] = per_sender.get(m[0], 0) + 1
        if per_sender[m[0]] > 1:
            return Check(
                name,
                False,
                f"{participants[m[1]]} recorded {per_sender[m[0]]}+ messages from "
                f"{participants[m[0]]} that it never recorded sending (a sender that went "
                f"away can lose the record of its last send only), e.g. {_message(m)}",
                {"message": _message(m)},
            )
        went_away.add(m[0])
    gone = sorted(participants[n] for n in went_away)
    late_by: dict[str, int] = {}
    for m in late:
        late_by[participants[m[1]]] = late_by.get(participants[m[1]], 0) + 1
    evidence = {
        "messages": len(sent | got),
        "deliveredLate": len(late),
        "lateByReceiver": dict(sorted(late_by.items())),
        "undelivered": len(undelivered),
        "unconfirmed": len(unconfirmed),
        "wentAway": gone,
    }
    detail = f"{len(sent & got)} message(s) recorded identically by sender and receiver"
    if late:
        detail += f", {len(late)} of them delivered late (received after the protocol finished)"
    if undelivered:
        detail += (
            f"; {len(undelivered)} sent to a node that went away before reading them "
            "(it submitted no result)"
        )
    if unconfirmed:
        detail += (
            f"; {len(unconfirmed)} received from a node that went away before recording "
            "the send (its last)"
        )
    if gone:
        detail += f"; went away: {', '.join(gone)}"
    if not given:
        return Check.not_applicable(
            name,
            "no transcripts given and no participant submitted a result: nothing to compare",
            evidence,
        )
    algorithm = algorithm_name(h)
    if algorithm in OWN_TRANSPORT:
        return Check.not_applicable(
            name,
            f"{algorithm} {OWN_TRANSPORT[algorithm]}; the messages around it agree: {detail}",
            {**evidence, "ownTransport": algorithm},
        )
    return Check(name, True, detail, evidence)
