"""Reverts become the same Python exception whichever way they surface.

A revert is decoded from its raw bytes to a class named after the custom error, with
its arguments by ABI name. The same revert must look identical when raised by a call,
by a transaction refused at gas estimation and by a transaction mined and replayed;
a selector declared by two contracts takes the argument names of the called one; and
no input whatsoever makes the decoder itself raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from ledger.artifacts import CONTRACT_NAMES, abi
from ledger.clients.algorithms import AlgorithmKind
from ledger.clients.base import ContractClient
from ledger.errors import ContractRevert, UnknownRevert, custom_error, decode_revert
from ledger.ids import name_id
from ledger.transactions import Sender
from tests.conftest import Consortium
from tests.contracts.test_consortium import ZERO32, normalised, propose

ALGO = name_id("algorithm", "psi")
LOG = name_id("log", "evidence")


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


# ------------------------------------------------------ the same revert, three ways

Case = Callable[[Consortium], tuple[ContractClient, str, tuple[object, ...]]]


def _unknown_proposal(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    return c.orgs["bank-a"].clients.consortium, "vote", (name_id("proposal", "none"),)


def _consortium_already_voted(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    _, proposal = propose(c, "bank-d")
    return c.orgs["bank-a"].clients.consortium, "vote", (proposal,)


def _algorithm_already_voted(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    c.orgs["bank-a"].clients.algorithms.propose(ALGO, "psi", "1", AlgorithmKind.PSI)
    return c.orgs["bank-a"].clients.algorithms, "approveAlgorithm", (ALGO,)


def _not_active_admin(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    client = c.clients_for(c.new_funded_account()).consortium
    node = c.new_funded_account().address
    return client, "registerNode", (node, "x:1", name_id("cert", "x"), ZERO32)


def _unknown_dataset(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    args = (name_id("dataset", "none"), name_id("root", "1"), 1, name_id("schema", "1"), 1, "")
    return c.orgs["bank-a"].clients.datasets, "addVersion", args


def _bubbled_not_active_member(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    client = c.clients_for(c.new_funded_account()).datasets
    args = (name_id("dataset", "x"), name_id("root", "1"), 1, name_id("schema", "1"), 1, "")
    return client, "registerDataset", args


def _tree_size(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    client = c.orgs["bank-a"].node_clients.anchors
    client.create_log(LOG, 5, name_id("root", "5"))
    return client, "checkpoint", (client.own_log_id(LOG), 4, name_id("root", "4"))


def _empty_revert(c: Consortium) -> tuple[ContractClient, str, tuple[object, ...]]:
    # an enum argument out of range fails the contract's ABI decoding: no revert data
    return c.orgs["bank-a"].clients.algorithms, "proposeAlgorithm", (ALGO, "x", "1", 6)


CASES: list[tuple[Case, str, str | None, list[str]]] = [
    (_unknown_proposal, "UnknownProposal", "Consortium", ["proposalId"]),
    (_consortium_already_voted, "AlreadyVoted", "Consortium", ["proposalId", "orgId"]),
    (_algorithm_already_voted, "AlreadyVoted", "AlgorithmRegistry", ["digest", "orgId"]),
    (_not_active_admin, "NotActiveMemberAdmin", "Consortium", ["account"]),
    (_unknown_dataset, "UnknownDataset", "DatasetRegistry", ["datasetId"]),
    # raised inside Consortium.activeMemberOrg and bubbled up by DatasetRegistry
    (_bubbled_not_active_member, "NotActiveMember", "Consortium", ["account"]),
    (_tree_size, "TreeSizeNotIncreasing", "AnchorLog", ["logId", "previous", "given"]),
    (_empty_revert, "UnknownRevert", None, ["data"]),
]


class _NoEstimateSender(Sender):
    """Sends with a fixed gas limit, so a reverting transaction is mined, then replayed."""

    def transact(self, fn: Any, gas: int | None = None) -> Any:
        return super().transact(fn, gas=gas or 1_000_000)


@pytest.mark.parametrize(
    ("case", "error", "contract", "names"), CASES, ids=[c[0].__name__.strip("_") for c in CASES]
)
def test_call_and_transactions_decode_alike(
    consortium: Consortium, case: Case, error: str, contract: str | None, names: list[str]
) -> None:
    client, fn, args = case(consortium)
    head = consortium.chain.head()
    with pytest.raises(ContractRevert) as via_call:
        client._call(fn, *args)
    with pytest.raises(ContractRevert) as via_estimate:
        client._transact(fn, *args)
    assert consortium.chain.head() == head  # refused before broadcast

    assert client.sender is not None
    mined = client.with_sender(_NoEstimateSender(consortium.chain, client.sender.account))
    with pytest.raises(ContractRevert) as via_mined:
        mined._transact(fn, *args)
    w3 = consortium.chain.w3
    assert consortium.chain.head() == head + 1  # this one was mined, and failed
    failed = w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][-1])
    assert failed["status"] == 0

    for exc in (via_call.value, via_estimate.value, via_mined.value):
        assert type(exc).__name__ == error
        assert list(exc.arguments) == names
        assert exc.contract == contract
    first = via_call.value
    for other in (via_estimate.value, via_mined.value):
        assert type(other) is type(first)
        assert other.arguments == first.arguments
        assert other.data == first.data
        assert str(other) == str(first)
    if error == "UnknownRevert":
        assert first.data == b""
    else:
        assert isinstance(first, custom_error(error))
        assert first.data[:4] == _selector(_signature(_declaration(error, contract)))


def _declaration(error: str, contract: str | None) -> dict[str, Any]:
    assert contract is not None
    return next(e for e in abi(contract) if e["type"] == "error" and e["name"] == error)


# ------------------------------------------------------- names follow the contract


def test_already_voted_takes_the_called_contracts_argument_names(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"]
    _, proposal = propose(consortium, "bank-d")
    with pytest.raises(custom_error("AlreadyVoted")) as in_consortium:
        a.clients.consortium.vote(proposal)
    a.clients.algorithms.propose(ALGO, "psi", "1", AlgorithmKind.PSI)
    with pytest.raises(custom_error("AlreadyVoted")) as in_algorithms:
        a.clients.algorithms.approve(ALGO)

    assert in_consortium.value.arguments == {"proposalId": proposal, "orgId": a.org_id}
    assert in_consortium.value.contract == "Consortium"
    assert in_algorithms.value.arguments == {"digest": ALGO, "orgId": a.org_id}
    assert in_algorithms.value.contract == "AlgorithmRegistry"
    # one selector, one Python class: only the names differ
    assert type(in_consortium.value) is type(in_algorithms.value)
    assert in_consortium.value.data[:4] == in_algorithms.value.data[:4]
    assert str(in_algorithms.value).startswith("AlgorithmRegistry.AlreadyVoted(digest=0x")

    # the hint alone picks the names, for the same bytes
    data = in_algorithms.value.data
    as_consortium = decode_revert(data, "Consortium")
    assert as_consortium.arguments == {"proposalId": ALGO, "orgId": a.org_id}
    assert as_consortium.contract == "Consortium"
    assert decode_revert(data, "AlgorithmRegistry").arguments == {"digest": ALGO, "orgId": a.org_id}
    # with no (or an unrelated) hint, one of the two declarations is used, values intact
    for hint in (None, "AnchorLog"):
        guess = decode_revert(data, hint)
        assert isinstance(guess, custom_error("AlreadyVoted"))
        assert guess.contract in ("Consortium", "AlgorithmRegistry")
        assert list(guess.arguments.values()) == [ALGO, a.org_id]


def test_address_arguments_are_checksummed(consortium: Consortium) -> None:
    """The documented contract of `exc.arguments`: address -> checksummed str."""
    stranger = consortium.new_funded_account().address
    with pytest.raises(custom_error("NotActiveMember")) as exc:
        consortium.orgs["bank-a"].clients.consortium.active_member_org(stranger)
    assert exc.value.arguments == {"account": stranger}
    assert exc.value.arguments["account"] == to_checksum_address(stranger)


# ---------------------------------------------------------- decoding raw revert data


def test_unknown_selector_gives_unknown_revert() -> None:
    for data in (b"\xde\xad\xbe\xef" + bytes(32), b"\xde\xad\xbe\xef", b"\x01\x02", b""):
        exc = decode_revert(data, "Consortium")
        assert type(exc) is UnknownRevert
        assert exc.arguments == {"data": data}
        assert exc.data == data
        assert exc.contract is None


def test_known_selector_with_malformed_arguments_gives_unknown_revert() -> None:
    selector = _selector("UnknownProposal(bytes32)")
    for tail in (b"", bytes(31)):
        exc = decode_revert(selector + tail, "Consortium")
        assert type(exc) is UnknownRevert
        assert exc.data == selector + tail
        assert exc.contract == "Consortium"


def test_builtin_error_and_panic_decode() -> None:
    error = decode_revert(_selector("Error(string)") + abi_encode(["string"], ["boom"]))
    assert type(error) is custom_error("Error")
    assert error.arguments == {"message": "boom"}
    panic = decode_revert(_selector("Panic(uint256)") + abi_encode(["uint256"], [0x11]))
    assert type(panic) is custom_error("Panic")
    assert panic.arguments == {"code": 0x11}
    assert panic.contract is None


def test_custom_error_classes_are_shared_by_name() -> None:
    cls = custom_error("TreeSizeNotIncreasing")
    assert cls is custom_error("TreeSizeNotIncreasing")
    assert issubclass(cls, ContractRevert)
    assert cls.__name__ == "TreeSizeNotIncreasing"
    assert custom_error("UnknownDataset") is not cls


_ERRORS = [
    (contract, entry)
    for contract in CONTRACT_NAMES
    for entry in abi(contract)
    if entry["type"] == "error"
]
_SELECTORS = sorted({_selector(_signature(e)) for _, e in _ERRORS})


def _values(kind: str) -> st.SearchStrategy[Any]:
    if kind == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if kind == "address":
        return st.binary(min_size=20, max_size=20).map(to_checksum_address)
    if kind == "bool":
        return st.booleans()
    if kind == "string":
        return st.text(max_size=40)
    assert kind.startswith("uint"), kind
    return st.integers(0, 2 ** int(kind[4:]) - 1)


@given(st.data())
def test_every_project_error_round_trips(data: st.DataObject) -> None:
    contract, entry = data.draw(st.sampled_from(_ERRORS))
    types = [i["type"] for i in entry["inputs"]]
    values = [data.draw(_values(t)) for t in types]
    raw = _selector(_signature(entry)) + abi_encode(types, values)
    exc = decode_revert(raw, contract)
    assert type(exc) is custom_error(entry["name"])
    assert exc.contract == contract
    assert exc.data == raw
    assert normalised(exc.arguments) == {
        i["name"]: v for i, v in zip(entry["inputs"], values, strict=True)
    }


@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.sampled_from(_SELECTORS), st.binary(max_size=300)).map(lambda t: t[0] + t[1]),
    ),
    st.sampled_from([None, *CONTRACT_NAMES, "NoSuchContract"]),
)
def test_decode_revert_never_raises(garbage: bytes, hint: str | None) -> None:
    exc = decode_revert(garbage, hint)
    assert isinstance(exc, ContractRevert)
    assert exc.data == garbage
    assert str(exc)  # renders whatever was decoded
    if type(exc) is UnknownRevert:
        assert exc.arguments == {"data": garbage}
    else:
        assert garbage[:4] in _SELECTORS
