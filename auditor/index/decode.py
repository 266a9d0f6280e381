"""Decode raw ``eth_getLogs`` results of a deployment, without web3's per-log machinery.

The bulk path reads logs as plain JSON-RPC dicts (hex strings) and decodes them with
one prepared decoder per (contract address, event topic), built once from the committed
ABIs. web3's ``get_event_data`` re-parses the ABI and formats every field on every
call; at tens of thousands of logs per page that is most of the indexing time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import event_abi_to_log_topic

from ledger.artifacts import CONTRACT_NAMES, abi
from ledger.canonical import digest_json
from ledger.deployment import Deployment

_SAFE_INT = 2**53 - 1


class UnknownLog(ValueError):
    """A log at a deployment address whose topic is no event of that contract's ABI."""


@dataclass(frozen=True)
class RawPosition:
    """Where a log sits: parsed once from its hex fields."""

    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int


@dataclass(frozen=True)
class DecodedLog:
    contract: str
    name: str
    address: bytes
    args: dict[str, Any]  # ABI values: bytes, int, str, bool, lists and dicts of them
    position: RawPosition


def _abi_type(entry: Mapping[str, Any]) -> str:
    """The canonical ABI type string, tuples spelled out from their components."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _shape(entry: Mapping[str, Any], value: Any) -> Any:
    """Structs as dicts keyed by component name (eth_abi gives tuples)."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        components = entry["components"]
        if kind.endswith("]"):
            element = {**entry, "type": kind[: kind.rindex("[")]}
            return [_shape(element, v) for v in value]
        return {str(c["name"]): _shape(c, v) for c, v in zip(components, value, strict=True)}
    if kind.endswith("]"):
        element = {**entry, "type": kind[: kind.rindex("[")]}
        return [_shape(element, v) for v in value]
    if kind == "address":
        return bytes.fromhex(str(value)[2:])
    return value


_Word = Callable[[bytes], Any]


def _word_decoder(kind: str) -> _Word | None:
    """A decoder of one 32-byte word for a static value type, checking its padding as
    eth_abi would; None for the types left to eth_abi (dynamic, arrays, tuples)."""
    if kind == "address":
        return lambda w: _checked(w, 12, w[12:], kind)
    if kind == "bool":
        return lambda w: _checked(w, 31, w[31] == 1, kind) if w[31] <= 1 else _bad(kind)
    if kind.startswith("bytes") and kind[5:].isdigit():
        size = int(kind[5:])
        return lambda w: w[:size] if not any(w[size:]) else _bad(kind)
    if kind.startswith("uint") and kind[4:].isdigit():
        bits = int(kind[4:])
        return lambda w: _bounded(int.from_bytes(w, "big"), 0, 2**bits, kind)
    if kind.startswith("int") and kind[3:].isdigit():
        bits = int(kind[3:])
        return lambda w: _bounded(
            int.from_bytes(w, "big", signed=True), -(2 ** (bits - 1)), 2 ** (bits - 1), kind
        )
    return None


def _checked(word: bytes, zeros: int, value: Any, kind: str) -> Any:
    if any(word[:zeros]):
        _bad(kind)
    return value


def _bounded(value: int, low: int, high: int, kind: str) -> int:
    if not low <= value < high:
        _bad(kind)
    return value


def _bad(kind: str) -> Any:
    raise UnknownLog(f"malformed {kind} value in a log")


class _EventDecoder:
    """Decodes one event of one contract: indexed topics, then the data blob at once.

    Static values (ids, hashes, addresses, integers) are sliced straight from their
    32-byte words; eth_abi decodes only events with dynamic data (strings, arrays),
    where its generic machinery earns its cost.
    """

    def __init__(self, contract: str, entry: Mapping[str, Any]) -> None:
        self.contract = contract
        self.name = str(entry["name"])
        inputs = list(entry["inputs"])
        self.indexed = [(str(i["name"]), i, _abi_type(i)) for i in inputs if i.get("indexed")]
        self.topic_words = [
            None
            if kind in ("string", "bytes") or "[" in kind or "(" in kind
            else _word_decoder(kind)
            for _, _, kind in self.indexed
        ]
        self.data = [(str(i["name"]), i) for i in inputs if not i.get("indexed")]
        self.data_types = [_abi_type(i) for _, i in self.data]
        words = [_word_decoder(kind) for kind in self.data_types]
        self.data_words: list[_Word] | None = (
            None if any(w is None for w in words) else [w for w in words if w is not None]
        )
        self.order = [str(i["name"]) for i in inputs]

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        if len(topics) != 1 + len(self.indexed):
            raise UnknownLog(
                f"{self.contract}.{self.name}: expected {1 + len(self.indexed)} topics, "
                f"got {len(topics)}"
            )
        args: dict[str, Any] = {}
        for (name, _, _), word, topic in zip(
            self.indexed, self.topic_words, topics[1:], strict=True
        ):
            # A dynamic indexed value (string, array) is in its topic only as its hash.
            args[name] = topic if word is None else word(topic)
        if self.data_words is not None:
            if len(data) != 32 * len(self.data_words):
                raise UnknownLog(
                    f"{self.contract}.{self.name}: expected {32 * len(self.data_words)} bytes "
                    f"of data, got {len(data)}"
                )
            for i, ((name, _), word) in enumerate(zip(self.data, self.data_words, strict=True)):
                args[name] = word(data[32 * i : 32 * i + 32])
        else:
            values = abi_decode(self.data_types, data)
            for (name, entry), value in zip(self.data, values, strict=True):
                args[name] = _shape(entry, value)
        return {name: args[name] for name in self.order}


class LogDecoder:
    """Every event of the six provnet contracts of one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.addresses: dict[bytes, str] = {}
        self._decoders: dict[tuple[bytes, bytes], _EventDecoder] = {}
        for name in CONTRACT_NAMES:
            address = bytes.fromhex(deployment.address(name)[2:])
            self.addresses[address] = name
            for entry in abi(name):
                if entry.get("type") == "event" and not entry.get("anonymous", False):
                    topic = bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]
                    self._decoders[(address, topic)] = _EventDecoder(name, entry)

    @property
    def address_list(self) -> list[str]:
        """The addresses for an ``eth_getLogs`` filter, as 0x-prefixed hex."""
        return ["0x" + a.hex() for a in self.addresses]

    def decode(self, log: Mapping[str, Any]) -> DecodedLog:
        """One raw JSON-RPC log; raises UnknownLog naming the block when it matches nothing."""
        address = _hex_bytes(log["address"])
        topics = [_hex_bytes(t) for t in log["topics"]]
        position = RawPosition(
            block_number=int(log["blockNumber"], 16),
            block_hash=_hex_bytes(log["blockHash"]),
            tx_hash=_hex_bytes(log["transactionHash"]),
            tx_index=int(log["transactionIndex"], 16),
            log_index=int(log["logIndex"], 16),
        )
        decoder = self._decoders.get((address, topics[0])) if topics else None
        if decoder is None:
            contract = self.addresses.get(address, "0x" + address.hex())
            raise UnknownLog(
                f"log {position.log_index} of block {position.block_number} at {contract} "
                "matches no event of the deployment's ABIs"
            )
        args = decoder.decode(topics, _hex_bytes(log["data"]))
        return DecodedLog(decoder.contract, decoder.name, address, args, position)


def deployment_digest(deployment: Deployment) -> bytes:
    """What an index database is bound to: the chain id and every contract address."""
    return digest_json(
        "auditor-index-deployment",
        {
            "chainId": deployment.chain_id,
            "contracts": {n: deployment.address(n).lower() for n in CONTRACT_NAMES},
        },
    )


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    raise TypeError(f"unexpected ABI value {type(value).__name__}")


def json_args(args: Mapping[str, Any]) -> str:
    """Event arguments as RFC 8785 JSON: bytes and addresses as 0x hex, integers beyond
    2**53 as decimal strings (JSON numbers would round them).

    Serialised with the standard library: for this value domain (ASCII ABI names as
    keys, safe integers, strings and lists) sorted compact ``json.dumps`` output *is* the
    RFC 8785 form, at a fraction of the general implementation's cost (the tests check
    the two agree on indexed events).
    """
    return json.dumps(
        _jsonable(dict(args)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
