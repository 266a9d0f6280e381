"""The bulk log decoder refuses what the chain could not have emitted, naming it.

Contents of well-formed logs are compared with web3's decoding in the anvil tests; here
are the malformed and foreign logs a hostile or misconfigured node could serve.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils.abi import event_abi_to_log_topic

from auditor.index.decode import LogDecoder, UnknownLog, json_args
from ledger.artifacts import CONTRACT_NAMES, abi
from ledger.canonical import canonical_json
from ledger.deployment import DeployedContract, Deployment


def deployment() -> Deployment:
    return Deployment(
        chain_id=31337,
        deployer="0x" + "11" * 20,
        contracts={
            name: DeployedContract("0x" + f"{i + 1:02x}" * 20, 1, bytes(32), "0x" + "00" * 32)
            for i, name in enumerate(CONTRACT_NAMES)
        },
    )


def checkpointed_topic() -> str:
    entry = next(e for e in abi("AnchorLog") if e.get("name") == "Checkpointed")
    return "0x" + bytes(event_abi_to_log_topic(entry)).hex()  # type: ignore[arg-type]


def raw_log(*, topics: list[str], data: str, address: str | None = None) -> dict[str, Any]:
    return {
        "address": address or deployment().address("AnchorLog"),
        "topics": topics,
        "data": data,
        "blockNumber": "0x7",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x2",
    }


LOG_ID = "0x" + "aa" * 32
WRITER = "0x" + "00" * 12 + "bb" * 20
SIZE = "00" * 31 + "05"
ROOT = "cc" * 32


def test_a_checkpoint_decodes_to_its_fields() -> None:
    log = LogDecoder(deployment()).decode(
        raw_log(topics=[checkpointed_topic(), LOG_ID, WRITER], data="0x" + SIZE + ROOT)
    )
    assert (log.contract, log.name) == ("AnchorLog", "Checkpointed")
    assert log.args == {
        "logId": bytes.fromhex("aa" * 32),
        "treeSize": 5,
        "rootHash": bytes.fromhex(ROOT),
        "writer": bytes.fromhex("bb" * 20),
    }
    assert (log.position.block_number, log.position.log_index) == (7, 2)
    assert (
        json_args(log.args)
        == canonical_json(
            {"logId": LOG_ID, "treeSize": 5, "rootHash": "0x" + ROOT, "writer": "0x" + "bb" * 20}
        ).decode()
    )


@pytest.mark.parametrize(
    ("topics", "data", "problem"),
    [
        ([LOG_ID], "0x" + SIZE + ROOT, "matches no event"),  # not an event topic
        (["TOPIC", LOG_ID], "0x" + SIZE + ROOT, "expected 3 topics, got 2"),
        (["TOPIC", LOG_ID, "0x" + "01" + "00" * 11 + "bb" * 20], "0x" + SIZE + ROOT, "address"),
        (["TOPIC", LOG_ID, WRITER], "0x" + "01" + "00" * 31 + ROOT, "uint64"),  # 2**248
        (["TOPIC", LOG_ID, WRITER], "0x" + SIZE, "expected 64 bytes of data, got 32"),
    ],
)
def test_a_malformed_log_is_refused_by_name(topics: list[str], data: str, problem: str) -> None:
    topics = [checkpointed_topic() if t == "TOPIC" else t for t in topics]
    with pytest.raises(UnknownLog, match=problem):
        LogDecoder(deployment()).decode(raw_log(topics=topics, data=data))


def test_a_log_of_another_contract_names_its_address_and_block() -> None:
    with pytest.raises(UnknownLog, match=r"block 7 at 0x9999.* matches no event"):
        LogDecoder(deployment()).decode(
            raw_log(topics=[checkpointed_topic()], data="0x", address="0x" + "99" * 20)
        )
