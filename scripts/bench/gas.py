"""Gas per contract function, as JSON, with baselines measured in the same run.

Gas is deterministic for a given build and input, so one run on the embedded chain is
enough. Baselines: a plain ether transfer (the floor of any transaction) and, for
anchoring, the naive design of one transaction per record compared with one
`AnchorLog.checkpoint` of a Merkle root over the same records.

    .venv/bin/python -m scripts.bench.gas [--records 64]
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict
from typing import Any, ClassVar

from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt

from ledger import merkle
from ledger.chain import Chain
from ledger.clients import Clients
from ledger.ids import name_id
from ledger.transactions import Sender
from scripts.demo import run_scenario


class RecordingSender(Sender):
    """A sender that notes the gas of every transaction by contract function."""

    log: ClassVar[dict[str, list[int]]] = defaultdict(list)

    def transact(
        self, fn: ContractFunction | ContractConstructor, gas: int | None = None
    ) -> TxReceipt:
        receipt = super().transact(fn, gas)
        key = f"{fn.address}.{fn.fn_name}" if isinstance(fn, ContractFunction) else "deploy"
        self.log[key].append(int(receipt["gasUsed"]))
        return receipt


def _summary(values: list[int]) -> dict[str, Any]:
    return {"calls": len(values), "min": min(values), "max": max(values)}


def measure(records: int) -> dict[str, Any]:
    chain = Chain.start_embedded()
    RecordingSender.log.clear()
    scenario = run_scenario(chain, lambda _: None, RecordingSender)
    if not scenario.report["verified"]:
        raise RuntimeError("scenario did not verify; gas figures would be meaningless")
    names = {c.address.lower(): n for n, c in scenario.deployment.contracts.items()}
    per_function = {
        _label(key, names): _summary(values) for key, values in sorted(RecordingSender.log.items())
    }

    member = scenario.nodes["Bank A"]
    assert member.anchors.sender is not None
    transfer = member.anchors.sender.send_value(member.anchors.sender.address, 0)
    baseline_transfer = int(transfer["gasUsed"])
    return {
        "benchmark": "gas",
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "chain": "eth-tester (py-evm), evmVersion prague, optimizer 200 runs",
        "baseline": {"plain_transfer_gas": baseline_transfer},
        "functions": {
            name: {**s, "max_over_transfer": round(s["max"] / baseline_transfer, 2)}
            for name, s in sorted(per_function.items())
        },
        "anchoring": _anchor_comparison(member, records),
    }


def _label(key: str, names: dict[str, str]) -> str:
    address, _, function = key.partition(".")
    return f"{names.get(address.lower(), address)}.{function}" if function else key


def _anchor_comparison(member: Clients, records: int) -> dict[str, Any]:
    """One checkpoint of a Merkle root over N records vs N one-record checkpoints."""
    leaves = [merkle.leaf_hash(f"record-{i}".encode()) for i in range(records)]
    batched = member.anchors.checkpoint(name_id("log", "batched"), records, merkle.root(leaves))
    naive_total = 0
    for i in range(records):
        receipt = member.anchors.checkpoint(
            name_id("log", "naive"), i + 1, merkle.root(leaves[: i + 1])
        )
        naive_total += int(receipt["gasUsed"])
    return {
        "records": records,
        "one_checkpoint_gas": int(batched["gasUsed"]),
        "one_tx_per_record_gas": naive_total,
        "naive_over_batched": round(naive_total / int(batched["gasUsed"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(measure(args.records), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
