"""Contract reverts as Python exceptions named after the contract's custom error.

Both backends report a revert differently (eth-tester raises `TransactionFailed` with
the raw revert bytes, anvil answers a JSON-RPC error with `data`), so reverts are
normalised here from the raw bytes: the 4-byte selector is looked up in every project
ABI and the arguments decoded. A caller can then write
`except custom_error("GrantExpired") as exc: exc.arguments["notAfter"]`, identically
on every chain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.artifacts import CONTRACT_NAMES, abi


class ChainError(RuntimeError):
    """Base of every error raised by the ledger layer when talking to a chain.

    A subclass may carry a class attribute ``code`` (e.g. ``"NO_GAS"``): the stable
    name the REST API answers with, so a client can act on the kind of failure
    without parsing the message.
    """


class NoGas(ChainError):
    """The sending account cannot pay for the transaction; nothing was sent.

    Raised before signing, so a newcomer whose admin or node account was never funded
    reads which account, how much it holds and how much is needed, and the command
    that funds it on a development chain, instead of an out-of-gas traceback.
    """

    code = "NO_GAS"

    def __init__(self, account: str, balance: int, needed: int, chain_url: str) -> None:
        self.account = account
        self.balance = balance
        self.needed = needed
        super().__init__(
            f"account {account} has no gas (balance {balance} wei; the transaction needs "
            f"about {needed} wei) \u2014 on a development chain: "
            f"provnet chain fund --chain {chain_url} {account}"
        )


class ContractRevert(ChainError):
    """A contract call reverted. Subclasses carry the custom error's name."""

    error_name = "ContractRevert"

    def __init__(self, arguments: Mapping[str, Any], data: bytes, contract: str | None) -> None:
        self.arguments = dict(arguments)
        self.data = data
        self.contract = contract
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in self.arguments.items())
        where = f"{contract}." if contract else ""
        super().__init__(f"{where}{self.error_name}({rendered})")


class UnknownRevert(ContractRevert):
    """Revert data that matches no known error (or no data at all)."""

    error_name = "UnknownRevert"


class TransactionReverted(ChainError):
    """A mined transaction failed and replaying it gave no decodable reason."""


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


_BUILTIN_ERRORS: tuple[dict[str, Any], ...] = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(i) for i in entry['inputs'])})"


def _canonical_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


_classes: dict[str, type[ContractRevert]] = {}


def custom_error(name: str) -> type[ContractRevert]:
    """The exception class for a custom error name (created once, shared by all contracts)."""
    if name not in _classes:
        _classes[name] = type(name, (ContractRevert,), {"error_name": name, "__module__": __name__})
    return _classes[name]


@cache
def _selector_table() -> dict[bytes, list[tuple[str | None, dict[str, Any]]]]:
    """Selector -> every (contract, error ABI) declaring it.

    Two contracts may declare the same error signature with different argument names
    (`AlreadyVoted(bytes32,bytes32)`), so all declarations are kept and the caller's
    contract, when known, picks the names.
    """
    table: dict[bytes, list[tuple[str | None, dict[str, Any]]]] = {}
    for entry in _BUILTIN_ERRORS:
        table.setdefault(keccak(text=_signature(entry))[:4], []).append((None, dict(entry)))
    for contract in CONTRACT_NAMES:
        for entry in abi(contract):
            if entry.get("type") == "error":
                table.setdefault(keccak(text=_signature(entry))[:4], []).append((contract, entry))
    return table


def decode_revert(data: bytes, contract_hint: str | None = None) -> ContractRevert:
    """Turn raw revert bytes into the matching exception instance (never raises).

    `contract_hint` names the contract that was called; its declaration of an error
    wins when several contracts declare the same selector.
    """
    candidates = _selector_table().get(bytes(data[:4]), []) if len(data) >= 4 else []
    if not candidates:
        return UnknownRevert({"data": bytes(data)}, bytes(data), None)
    contract, spec = next((c for c in candidates if c[0] == contract_hint), candidates[0])
    types = [_canonical_type(i) for i in spec["inputs"]]
    try:
        values = abi_decode(types, bytes(data[4:]))
    except Exception:
        return UnknownRevert({"data": bytes(data)}, bytes(data), contract)
    names = [i["name"] or f"arg{n}" for n, i in enumerate(spec["inputs"])]
    decoded = [_checksummed(t, v) for t, v in zip(types, values, strict=True)]
    return custom_error(spec["name"])(dict(zip(names, decoded, strict=True)), bytes(data), contract)


def _checksummed(abi_type: str, value: Any) -> Any:
    """eth_abi decodes addresses in lower case; callers compare EIP-55 forms."""
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("address[") and isinstance(value, list | tuple):
        return type(value)(_checksummed(abi_type[: abi_type.rindex("[")], v) for v in value)
    return value


def revert_data_from(exc: BaseException) -> bytes | None:
    """Extract raw revert bytes from whatever a backend raised, or None if it was no revert."""
    for candidate in exception_chain(exc):
        data = getattr(candidate, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, dict) and isinstance(data.get("data"), str):
            return bytes.fromhex(str(data["data"]).removeprefix("0x"))
        if type(candidate).__name__ == "TransactionFailed":
            return _eth_tester_bytes(candidate)
    return None


def exception_chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and every exception it was raised from or while handling, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _eth_tester_bytes(exc: BaseException) -> bytes:
    """eth-tester wraps the raw bytes into a message; the innermost exception keeps them."""
    for candidate in exception_chain(exc):
        first = candidate.args[0] if candidate.args else None
        if isinstance(first, bytes):
            return first
        if isinstance(first, Exception) and first.args and isinstance(first.args[0], bytes):
            return first.args[0]
    message = str(exc.args[0]) if exc.args else ""
    tail = message.removeprefix("execution reverted: ")
    if tail.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(tail)
        except (ValueError, SyntaxError):
            return b""
        return value if isinstance(value, bytes) else b""
    # A plain reason string: re-encode it as Error(string) so it decodes uniformly.
    return keccak(text="Error(string)")[:4] + abi_encode(["string"], [tail]) if tail else b""
