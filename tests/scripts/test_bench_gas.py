"""The gas benchmark runs on anvil and covers every mutating contract function, the nodes'
own transactions included (no timing asserted)."""

from __future__ import annotations

from ledger.artifacts import CONTRACT_NAMES, abi
from scripts.bench.gas import measure


def test_gas_report_covers_every_mutating_function(anvil_url: str) -> None:
    report = measure(records=4, chain_url=anvil_url)
    mutating = {
        f"{name}.{entry['name']}"
        for name in CONTRACT_NAMES
        for entry in abi(name)
        if entry.get("type") == "function"
        and entry.get("stateMutability") in ("nonpayable", "payable")
        and not (name == "AuthorizationRegistry" and entry["name"] in ("consumeUse",))
        and entry["name"] not in ("renounceOwnership", "transferOwnership")
    }
    assert mutating <= set(report["functions"]), mutating - set(report["functions"])
    assert report["baseline"]["plain_transfer_gas"] == 21_000
    anchoring = report["anchoring"]
    assert anchoring["one_tx_per_record_gas"] > anchoring["one_checkpoint_gas"]
    # the scenario's task ran on the nodes: their steps were counted, once per node
    assert report["functions"]["TaskRegistry.submitResult"]["calls"] >= 3
