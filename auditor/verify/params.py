"""`params_commitment`: the parameters a participant disclosed (with their salt) are the
ones the creator committed to on chain."""

from __future__ import annotations

from auditor.verify.check import Check, digest32, guarded
from auditor.verify.history import TaskHistory, hex_
from ledger.task_params import ParamsEnvelope

NAME = "params_commitment"


@guarded(NAME)
def check_params_commitment(h: TaskHistory, disclosed: ParamsEnvelope | None) -> Check:
    created = h.created()
    if created is None:
        return Check(NAME, False, "task was never created")
    committed = digest32(created.args["paramsDigest"], "TaskCreated.paramsDigest")
    if disclosed is None:
        return Check.not_applicable(
            NAME,
            "no disclosed parameters were given (the creator's `provnet task result` answer "
            "holds them): the on-chain commitment cannot be opened",
            {"paramsDigest": hex_(committed)},
        )
    ok = disclosed.digest == committed
    return Check(
        NAME,
        ok,
        "the disclosed parameters and salt hash to the on-chain paramsDigest"
        if ok
        else "the disclosed parameters do not hash to the on-chain paramsDigest",
        {"paramsDigest": hex_(committed), "params": dict(disclosed.params)},
    )
