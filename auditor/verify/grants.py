"""`grants_valid_and_metered`: each provider's grant existed, covered the task (dataset,
grantee, algorithm), was neither revoked nor expired when the provider accepted, and
that acceptance consumed exactly one metered use in the same transaction."""

from __future__ import annotations

from auditor.verify.check import Check, digest32, guarded, maybe_bytes
from auditor.verify.history import ZERO, TaskHistory, hex_

NAME = "grants_valid_and_metered"


@guarded(NAME)
def check_grants(h: TaskHistory) -> Check:
    created = h.created()
    if created is None:
        return Check(NAME, False, "task was never created")
    creator = digest32(created.args["creatorOrg"], "TaskCreated.creatorOrg")
    algorithm = digest32(created.args["algorithmDigest"], "TaskCreated.algorithmDigest")
    used: list[str] = []
    for node, dataset_raw, _version, grant_raw in h.participants():
        grant = digest32(grant_raw, f"grant id of participant {node}")
        if grant == ZERO:
            continue
        dataset = digest32(dataset_raw, f"dataset id of participant {node}")
        accepted = h.by_node("TaskAccepted").get(node.lower())
        if accepted is None:
            if h.ended_without_results():
                continue  # refused or cut short before accepting: no use was consumed
            return Check(NAME, False, f"{node} never accepted")
        prior = h.before(accepted.position)
        grant_events = [
            e
            for e in prior
            if e.contract == "AuthorizationRegistry" and maybe_bytes(e.args.get("grantId")) == grant
        ]
        made = next((e for e in grant_events if e.name == "GrantCreated"), None)
        evidence = {"grant": hex_(grant), "node": node, "acceptedAt": accepted.block_number}
        if made is None:
            return Check(NAME, False, f"grant {hex_(grant)} never created", evidence)
        if any(e.name == "GrantRevoked" for e in grant_events):
            return Check(NAME, False, f"grant {hex_(grant)} revoked before use", evidence)
        pinned = digest32(made.args["algorithmDigest"], "GrantCreated.algorithmDigest")
        if (
            digest32(made.args["datasetId"], "GrantCreated.datasetId") != dataset
            or digest32(made.args["granteeOrg"], "GrantCreated.granteeOrg") != creator
            or pinned not in (ZERO, algorithm)
        ):
            return Check(NAME, False, f"grant {hex_(grant)} does not cover the task", evidence)
        when = h.timestamps.get(accepted.block_number)
        not_after = int(made.args["notAfter"])
        evidence.update({"acceptedAtTime": when, "notAfter": not_after})
        if when is None or when > not_after:
            return Check(NAME, False, f"grant {hex_(grant)} expired at acceptance", evidence)
        metered = [
            e
            for e in h.all_events
            if e.name == "GrantUsed"
            and e.transaction_hash == accepted.transaction_hash
            and maybe_bytes(e.args.get("grantId")) == grant
        ]
        if len(metered) != 1 or int(metered[0].args["used"]) > int(metered[0].args["maxUses"]):
            return Check(NAME, False, f"grant {hex_(grant)} use not metered", evidence)
        used.append(f"{hex_(grant)} use {metered[0].args['used']}/{metered[0].args['maxUses']}")
    if not used:
        return Check.not_applicable(NAME, "no participant used a grant")
    return Check(
        NAME,
        True,
        f"{len(used)} grant(s) valid at acceptance, one use each metered",
        {"grants": used},
    )
