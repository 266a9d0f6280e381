"""`input_commitments_match_datasets`: each provider anchored, as its input, exactly the
Merkle root registered for the dataset version the task names."""

from __future__ import annotations

from typing import Any

from auditor.verify.check import Check, digest32, guarded, maybe_bytes
from auditor.verify.history import ZERO, TaskHistory, hex_

NAME = "input_commitments_match_datasets"


@guarded(NAME)
def check_inputs(h: TaskHistory) -> Check:
    anchored = {
        node: digest32(e.args["commitment"], f"InputAnchored.commitment of {node}")
        for node, e in h.by_node("InputAnchored").items()
    }
    compared: list[dict[str, Any]] = []
    for node, dataset_raw, version, _grant in h.participants():
        dataset = digest32(dataset_raw, f"dataset id of participant {node}")
        if dataset == ZERO:
            continue
        registered = next(
            (
                digest32(e.args["merkleRoot"], "DatasetVersionAdded.merkleRoot")
                for e in h.all_events
                if e.name == "DatasetVersionAdded"
                and maybe_bytes(e.args.get("datasetId")) == dataset
                and int(e.args["version"]) == version
            ),
            None,
        )
        got = anchored.get(node.lower())
        if got is None and h.ended_without_results():
            continue  # the task ended before this participant anchored its input
        if registered is None or got != registered:
            return Check(
                NAME,
                False,
                f"{node}: anchored input does not equal dataset {hex_(dataset)} v{version}",
                {
                    "node": node,
                    "anchored": None if got is None else hex_(got),
                    "registered": None if registered is None else hex_(registered),
                },
            )
        compared.append(
            {"node": node, "dataset": hex_(dataset), "version": version, "root": hex_(got)}
        )
    if not compared:
        return Check.not_applicable(NAME, "no participant anchored a dataset input")
    return Check(
        NAME,
        True,
        f"{len(compared)} input commitment(s) equal their registered dataset versions",
        {"inputs": compared},
    )
