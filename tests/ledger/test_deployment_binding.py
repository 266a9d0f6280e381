"""The manifest is bound to what the chain actually holds: code, origin and wiring."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_typing import HexStr

from ledger.artifacts import CONTRACT_NAMES, load_artifact
from ledger.deployment import DeployedContract, Deployment, ManifestError
from ledger.deployment_binding import (
    BYTECODE_CHECK,
    LINKS_CHECK,
    ORIGIN_CHECK,
    BindingCheck,
    compare_runtime_code,
    describe_metadata,
    immutable_ranges,
    link_getters,
    require_bound,
    split_metadata,
    verify_deployment,
)
from tests.conftest import Consortium

# A solc-shaped CBOR tail: {"solc": 0x000818} and its 2-byte length.
TAIL = bytes.fromhex("a164736f6c6343000818") + (10).to_bytes(2, "big")


def _by_name(checks: list[BindingCheck]) -> dict[str, BindingCheck]:
    return {c.name: c for c in checks}


def _redeploy(consortium: Consortium, name: str) -> DeployedContract:
    """A second copy of one contract: its creation transaction's input sent again by the
    deployer (same code, same constructor arguments, a new address and fresh state)."""
    chain = consortium.chain
    original = consortium.deployment.contracts[name]
    data = bytes(chain.w3.eth.get_transaction(HexStr(original.transaction))["input"])
    deployer = consortium.deployer
    tx: dict[str, Any] = {
        "from": deployer.address,
        "data": data,
        "nonce": chain.w3.eth.get_transaction_count(deployer.address),
        "gas": 15_000_000,
        "gasPrice": chain.w3.eth.gas_price,
        "chainId": chain.chain_id,
    }
    signed = deployer.sign_transaction(tx)
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1
    return dataclasses.replace(
        original,
        address=str(receipt["contractAddress"]),
        block=int(receipt["blockNumber"]),
        transaction="0x" + bytes(receipt["transactionHash"]).hex(),
    )


def _with(deployment: Deployment, name: str, contract: DeployedContract) -> Deployment:
    return dataclasses.replace(deployment, contracts={**deployment.contracts, name: contract})


# ------------------------------------------------------------------ on eth-tester


def test_the_deployed_consortium_is_bound(consortium: Consortium) -> None:
    checks = _by_name(verify_deployment(consortium.chain, consortium.deployment))
    assert set(checks) == {BYTECODE_CHECK, ORIGIN_CHECK, LINKS_CHECK}
    assert all(c.passed for c in checks.values()), [c.detail for c in checks.values()]
    links = checks[LINKS_CHECK].evidence["links"]
    assert "TaskRegistry.consortium() = Consortium" in links
    assert "AuthorizationRegistry.taskRegistry() = TaskRegistry" in links
    assert checks[BYTECODE_CHECK].evidence["TaskRegistry"]["metadata"]["solc"].startswith("0.8.")
    require_bound(consortium.chain, consortium.deployment)  # does not raise


def test_a_look_alike_consortium_fails_the_links(consortium: Consortium) -> None:
    """Same code and arguments at another address: bytecode and origin match, but
    nothing else in the deployment points at it."""
    fake = _redeploy(consortium, "Consortium")
    forged = _with(consortium.deployment, "Consortium", fake)
    checks = _by_name(verify_deployment(consortium.chain, forged))
    assert checks[BYTECODE_CHECK].passed
    assert checks[ORIGIN_CHECK].passed  # its own creation is genuine
    links = checks[LINKS_CHECK]
    assert not links.passed
    assert f"TaskRegistry.consortium() is {consortium.deployment.address('Consortium')}" in (
        links.detail
    )
    assert f"the manifest's Consortium is {fake.address}" in links.detail
    with pytest.raises(ManifestError, match="deployment_links"):
        require_bound(consortium.chain, forged)


def test_a_second_task_registry_fails_the_reverse_link(consortium: Consortium) -> None:
    d = consortium.deployment
    fake = _redeploy(consortium, "TaskRegistry")
    checks = _by_name(verify_deployment(consortium.chain, _with(d, "TaskRegistry", fake)))
    assert checks[BYTECODE_CHECK].passed
    assert not checks[LINKS_CHECK].passed
    assert "AuthorizationRegistry.taskRegistry() is" in checks[LINKS_CHECK].detail


def test_a_different_contract_fails_the_bytecode_naming_it(consortium: Consortium) -> None:
    d = consortium.deployment
    forged = _with(d, "AnchorLog", d.contracts["DatasetRegistry"])
    checks = _by_name(verify_deployment(consortium.chain, forged))
    bytecode = checks[BYTECODE_CHECK]
    assert not bytecode.passed
    assert bytecode.detail.startswith(f"AnchorLog at {d.address('DatasetRegistry')}: ")
    assert "DatasetRegistry" not in bytecode.detail.split(":")[0]
    assert not checks[ORIGIN_CHECK].passed  # the transaction created a DatasetRegistry
    assert "AnchorLog" in checks[ORIGIN_CHECK].detail


def test_an_address_without_code_and_a_made_up_transaction(consortium: Consortium) -> None:
    d = consortium.deployment
    nobody = consortium.new_funded_account().address
    fake = dataclasses.replace(
        d.contracts["AnchorLog"], address=nobody, transaction="0x" + "ab" * 32
    )
    checks = _by_name(verify_deployment(consortium.chain, _with(d, "AnchorLog", fake)))
    assert "AnchorLog at" in checks[BYTECODE_CHECK].detail
    assert "no contract code" in checks[BYTECODE_CHECK].detail
    assert "AnchorLog (transaction 0xabab" in checks[ORIGIN_CHECK].detail
    assert not checks[LINKS_CHECK].passed  # AnchorLog.consortium() cannot be read


def test_another_deployer_fails_the_origin(consortium: Consortium) -> None:
    d = dataclasses.replace(consortium.deployment, deployer=consortium.orgs["bank-a"].admin.address)
    checks = _by_name(verify_deployment(consortium.chain, d))
    assert checks[BYTECODE_CHECK].passed and checks[LINKS_CHECK].passed
    assert not checks[ORIGIN_CHECK].passed
    assert "not the deployer" in checks[ORIGIN_CHECK].detail


# ------------------------------------------------------------------ pure functions


def test_split_metadata() -> None:
    code = bytes.fromhex("6080604052") + TAIL
    assert split_metadata(code) == (bytes.fromhex("6080604052"), TAIL)
    assert describe_metadata(TAIL) == {"solc": "0.8.24"}
    # No well-formed tail: everything is executable, for either side alike.
    for odd in (b"", b"\x00", bytes.fromhex("60806040ffff"), bytes.fromhex("6080600000")):
        assert split_metadata(odd) == (odd, b"")
    assert describe_metadata(b"\xff\x00\x01") == {"raw": "0xff0001"}


def test_every_committed_artifact_has_a_metadata_tail_and_immutables() -> None:
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        code = bytes.fromhex(artifact["deployedBytecode"][2:])
        _, tail = split_metadata(code)
        assert tail and "ipfs" in describe_metadata(tail), name
        ranges = immutable_ranges(artifact["immutableReferences"])
        assert ranges, f"{name}: every provnet contract has immutables"
        assert all(s + n <= len(code) - len(tail) for v in ranges.values() for s, n in v)


REFS = {"7": [{"start": 2, "length": 4}, {"start": 8, "length": 4}]}
EXPECTED = bytes.fromhex("6080" + "00000000" + "5b5b" + "00000000" + "fe") + TAIL


def _filled(value: bytes, other: bytes | None = None) -> bytes:
    code = bytearray(EXPECTED)
    code[2:6] = value
    code[8:12] = value if other is None else other
    return bytes(code)


def test_immutables_are_masked_but_must_agree() -> None:
    ok = compare_runtime_code(_filled(b"\x11" * 4), EXPECTED, REFS)
    assert ok.problem is None and ok.evidence["immutables"] == {"7": "0x11111111"}
    split = compare_runtime_code(_filled(b"\x11" * 4, b"\x22" * 4), EXPECTED, REFS)
    assert split.problem == "immutable 7 holds different values at its 2 places"


def test_code_differences_are_named() -> None:
    outside = bytearray(_filled(b"\x11" * 4))
    outside[6] = 0x00
    assert compare_runtime_code(bytes(outside), EXPECTED, REFS).problem == (
        "executable code differs from the artifact's at byte 6"
    )
    other_tail = _filled(b"\x11" * 4)[: -len(TAIL)] + TAIL.replace(b"\x18", b"\x19")
    result = compare_runtime_code(other_tail, EXPECTED, REFS)
    assert result.problem is not None and result.problem.startswith("same executable code")
    assert result.evidence["metadata"] == {"solc": "0.8.25"}
    assert compare_runtime_code(EXPECTED + b"\x00", EXPECTED, REFS).problem == (
        f"runtime code is {len(EXPECTED) + 1} bytes, the artifact's is {len(EXPECTED)}"
    )
    assert compare_runtime_code(b"", EXPECTED, REFS).problem == (
        "no contract code at the manifest's address"
    )


@pytest.mark.parametrize(
    "refs",
    [
        [],
        {"7": "x"},
        {"7": [{"start": "2", "length": 4}]},
        {"7": [{"start": -1, "length": 4}]},
        {"7": [{"start": 0, "length": 0}]},
        {"7": [{"start": len(EXPECTED), "length": 32}]},
    ],
)
def test_malformed_immutable_references_fail_without_raising(refs: object) -> None:
    problem = compare_runtime_code(EXPECTED, EXPECTED, refs).problem
    assert problem is not None and problem.startswith("artifact's immutable references")


def test_link_getters_follow_declared_types_and_names() -> None:
    assert link_getters(load_artifact("TaskRegistry")["abi"], CONTRACT_NAMES) == {
        "consortium": "Consortium",
        "algorithms": "AlgorithmRegistry",
        "datasets": "DatasetRegistry",
        "authorizations": "AuthorizationRegistry",
    }
    assert link_getters(load_artifact("AuthorizationRegistry")["abi"], CONTRACT_NAMES)[
        "taskRegistry"
    ] == ("TaskRegistry")
    abi = [
        {"type": "function", "name": "owner", "inputs": [], "stateMutability": "view",
         "outputs": [{"type": "address", "internalType": "address"}]},
        {"type": "function", "name": "anchorLog", "inputs": [], "stateMutability": "view",
         "outputs": [{"type": "address", "internalType": "address"}]},
        {"type": "function", "name": "log", "inputs": [], "stateMutability": "nonpayable",
         "outputs": [{"type": "address", "internalType": "contract AnchorLog"}]},
        {"type": "function", "name": "x", "inputs": [{"type": "uint256"}],
         "stateMutability": "view",
         "outputs": [{"type": "address", "internalType": "contract IConsortium"}]},
    ]  # fmt: skip
    assert link_getters(abi, CONTRACT_NAMES) == {"anchorLog": "AnchorLog"}


def test_an_artifact_without_immutable_references_fails(consortium: Consortium) -> None:
    from ledger.deployment_binding import check_bytecode, read_codes

    artifacts = {n: dict(load_artifact(n)) for n in CONTRACT_NAMES}
    del artifacts["AnchorLog"]["immutableReferences"]
    check = check_bytecode(
        consortium.deployment, read_codes(consortium.chain, consortium.deployment), artifacts
    )
    assert not check.passed
    assert check.detail.startswith("AnchorLog: artifact lacks")
