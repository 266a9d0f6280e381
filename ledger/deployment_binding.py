"""Bind a deployment manifest to the chain: the code and the wiring actually deployed.

`Deployment.check_artifacts` only proves that the manifest *claims* the local build. This
module checks what is really at the manifest's addresses:

- ``deployment_bytecode``: the runtime code at every address (``eth_getCode``) is the
  committed artifact's ``deployedBytecode``. The byte ranges solc leaves for immutables
  (the artifact's ``immutableReferences``) are masked on both sides, since the
  constructor fills them in; every occurrence of one immutable must hold the same value,
  as solc writes them. The CBOR metadata tail (whose last two bytes give its length) is
  split off both sides by the same function and compared exactly too, so code built
  from other sources or settings fails; the detail says whether the executable part or
  only the metadata differs.
- ``deployment_origin``: each manifest entry's transaction is a successful creation,
  by the manifest's deployer, in the manifest's block, of the contract at the manifest's
  address, from the artifact's creation bytecode (constructor arguments follow it).
- ``deployment_links``: every contract's address getters (immutable or stored, e.g.
  ``TaskRegistry.consortium()``, ``AuthorizationRegistry.taskRegistry()``) return the
  manifest's address of the contract they name. Masked immutables are exactly what
  this check reads back, so a look-alike deployed with other constructor arguments
  passes the bytecode check and fails this one.

Each check is a pure function over bytes and already-read values, returning a named
result with its evidence; a mismatch is a failed check naming the contract and what
differs, never an exception. Reading the chain is kept to the `read_*` functions;
`read_batched` reads the same values in one JSON-RPC batch (the ~50 single web3 calls
cost ~140 ms of Python per verification), and `CreationCache` lets a long-running
verifier skip re-reading creation transactions whose block is still canonical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.types import BlockIdentifier

from ledger import rpc_batch
from ledger.artifacts import CONTRACT_NAMES, ArtifactError, load_artifact
from ledger.chain import Chain
from ledger.deployment import Deployment, ManifestError

BYTECODE_CHECK = "deployment_bytecode"
LINKS_CHECK = "deployment_links"
ORIGIN_CHECK = "deployment_origin"

BlockId = BlockIdentifier


@dataclass(frozen=True)
class BindingCheck:
    """One named check's outcome, shaped like the auditor's checks (name, pass, why)."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- pure: bytes


def split_metadata(code: bytes) -> tuple[bytes, bytes]:
    """(executable part, CBOR metadata tail including its 2-byte length).

    solc appends a CBOR map and its length as a big-endian uint16. When the tail is not
    well formed (no map header where the length points) the whole code is executable
    and the tail is empty, for deployed and artifact code alike.
    """
    if len(code) < 2:
        return code, b""
    length = int.from_bytes(code[-2:], "big")
    start = len(code) - 2 - length
    if length == 0 or start < 0 or not 0xA0 <= code[start] <= 0xB7:
        return code, b""
    return code[:start], code[start:]


def describe_metadata(tail: bytes) -> dict[str, str]:
    """The metadata map's entries as hex/text (e.g. ipfs hash, solc version); best effort."""
    if len(tail) < 3:
        return {}
    try:
        decoded, _ = _cbor(tail[:-2], 0)
    except (IndexError, ValueError):
        return {"raw": "0x" + tail.hex()}
    if not isinstance(decoded, dict):
        return {"raw": "0x" + tail.hex()}
    out = {}
    for key, value in decoded.items():
        if key == "solc" and isinstance(value, bytes) and len(value) == 3:
            out[str(key)] = ".".join(str(b) for b in value)
        elif isinstance(value, bytes):
            out[str(key)] = "0x" + value.hex()
        else:
            out[str(key)] = str(value)
    return out


def _cbor(data: bytes, pos: int) -> tuple[object, int]:
    """The subset of CBOR solc emits: unsigned ints, byte/text strings, maps, booleans."""
    head = data[pos]
    major, info = head >> 5, head & 0x1F
    pos += 1
    if major == 7:
        if info in (20, 21):
            return info == 21, pos
        raise ValueError("unsupported simple value")
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise ValueError("truncated")
        arg, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    else:
        raise ValueError("indefinite lengths unsupported")
    if major == 0:
        return arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise ValueError("truncated")
        raw = data[pos : pos + arg]
        return (raw if major == 2 else raw.decode()), pos + arg
    if major == 5:
        items: dict[object, object] = {}
        for _ in range(arg):
            key, pos = _cbor(data, pos)
            items[str(key)], pos = _cbor(data, pos)
        return items, pos
    raise ValueError(f"unsupported CBOR major type {major}")


def immutable_ranges(references: object) -> dict[str, list[tuple[int, int]]]:
    """solc's ``immutableReferences`` as {AST id: [(start, length)]}; ValueError if malformed."""
    if not isinstance(references, Mapping):
        raise ValueError("immutableReferences is not an object")
    ranges: dict[str, list[tuple[int, int]]] = {}
    for ident, spans in references.items():
        if not isinstance(spans, list):
            raise ValueError(f"immutable {ident}: not a list of ranges")
        out = []
        for span in spans:
            start = span.get("start") if isinstance(span, Mapping) else None
            length = span.get("length") if isinstance(span, Mapping) else None
            if not isinstance(start, int) or not isinstance(length, int):
                raise ValueError(f"immutable {ident}: range without integer start/length")
            if start < 0 or length <= 0:
                raise ValueError(f"immutable {ident}: negative or empty range")
            out.append((start, length))
        ranges[str(ident)] = out
    return ranges


def mask(code: bytes, ranges: Mapping[str, Sequence[tuple[int, int]]]) -> bytes:
    """The code with every immutable range zeroed (solc's own placeholder is zeros)."""
    out = bytearray(code)
    for spans in ranges.values():
        for start, length in spans:
            out[start : start + length] = bytes(length)
    return bytes(out)


@dataclass(frozen=True)
class CodeComparison:
    """One contract's deployed code against its artifact; `problem` is None when equal."""

    problem: str | None
    evidence: dict[str, Any]


def compare_runtime_code(deployed: bytes, expected: bytes, references: object) -> CodeComparison:
    """Deployed runtime code against the artifact's deployedBytecode, immutables masked."""
    evidence: dict[str, Any] = {
        "codeHash": "0x" + keccak(deployed).hex(),
        "size": len(deployed),
        "expectedSize": len(expected),
    }
    if not deployed:
        return CodeComparison("no contract code at the manifest's address", evidence)
    try:
        ranges = immutable_ranges(references)
    except ValueError as exc:
        return CodeComparison(f"artifact's immutable references are malformed: {exc}", evidence)
    if any(s + n > len(expected) for spans in ranges.values() for s, n in spans):
        return CodeComparison("artifact's immutable references lie outside its code", evidence)
    if len(deployed) != len(expected):
        return CodeComparison(
            f"runtime code is {len(deployed)} bytes, the artifact's is {len(expected)}", evidence
        )
    values: dict[str, str] = {}
    for ident, spans in sorted(ranges.items()):
        seen = {deployed[s : s + n] for s, n in spans}
        if len(seen) > 1:
            return CodeComparison(
                f"immutable {ident} holds different values at its {len(spans)} places", evidence
            )
        if seen:
            values[ident] = "0x" + seen.pop().hex()
    evidence["immutables"] = values
    got_code, got_meta = split_metadata(mask(deployed, ranges))
    want_code, want_meta = split_metadata(mask(expected, ranges))
    evidence["metadata"] = describe_metadata(got_meta)
    if got_code != want_code:
        at = next(
            (i for i, (a, b) in enumerate(zip(got_code, want_code, strict=False)) if a != b),
            min(len(got_code), len(want_code)),
        )
        return CodeComparison(f"executable code differs from the artifact's at byte {at}", evidence)
    if got_meta != want_meta:
        evidence["expectedMetadata"] = describe_metadata(want_meta)
        return CodeComparison(
            "same executable code but different metadata (built from other sources or settings)",
            evidence,
        )
    return CodeComparison(None, evidence)


def check_bytecode(
    deployment: Deployment,
    codes: Mapping[str, bytes],
    artifacts: Mapping[str, Mapping[str, Any]],
) -> BindingCheck:
    """``deployment_bytecode``: every manifest address holds its artifact's runtime code."""
    problems: list[str] = []
    evidence: dict[str, Any] = {}
    for name, contract in deployment.contracts.items():
        artifact = artifacts.get(name, {})
        entry: dict[str, Any] = {"address": contract.address}
        evidence[name] = entry
        expected_hex = artifact.get("deployedBytecode")
        references = artifact.get("immutableReferences")
        expected = _hex_bytes(expected_hex)
        if expected is None or references is None:
            problems.append(
                f"{name}: artifact lacks deployedBytecode or immutableReferences "
                "(rebuild with `provnet contracts build`)"
            )
            continue
        result = compare_runtime_code(codes.get(name, b""), expected, references)
        entry.update(result.evidence)
        if result.problem is not None:
            problems.append(f"{name} at {contract.address}: {result.problem}")
    if problems:
        return BindingCheck(BYTECODE_CHECK, False, "; ".join(problems), evidence)
    return BindingCheck(
        BYTECODE_CHECK,
        True,
        f"the code at all {len(deployment.contracts)} manifest addresses is the committed "
        "artifacts' runtime code (immutables masked, metadata equal)",
        evidence,
    )


def _hex_bytes(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None  # e.g. unlinked library placeholders


@dataclass(frozen=True)
class Creation:
    """What the chain says about a manifest entry's transaction (None: no such transaction)."""

    sender: str
    block: int
    status: int
    contract_address: str | None
    input: bytes


def check_origin(
    deployment: Deployment,
    creations: Mapping[str, Creation | None],
    artifacts: Mapping[str, Mapping[str, Any]],
) -> BindingCheck:
    """``deployment_origin``: every contract was created as the manifest says."""
    problems: list[str] = []
    for name, contract in deployment.contracts.items():
        made = creations.get(name)
        where = f"{name} (transaction {contract.transaction})"
        if made is None:
            problems.append(f"{where}: no such transaction on this chain")
            continue
        creation_code = _hex_bytes(artifacts.get(name, {}).get("bytecode"))
        differences = []
        if made.status != 1:
            differences.append("it failed")
        if (made.contract_address or "").lower() != contract.address.lower():
            differences.append(f"it created {made.contract_address}, not {contract.address}")
        if made.block != contract.block:
            differences.append(f"it is in block {made.block}, not {contract.block}")
        if made.sender.lower() != deployment.deployer.lower():
            differences.append(f"it was sent by {made.sender}, not the deployer")
        if creation_code is None or not made.input.startswith(creation_code):
            differences.append("its input is not the artifact's creation bytecode")
        if differences:
            problems.append(f"{where}: " + ", ".join(differences))
    if problems:
        return BindingCheck(ORIGIN_CHECK, False, "; ".join(problems))
    return BindingCheck(
        ORIGIN_CHECK,
        True,
        f"all {len(deployment.contracts)} contracts were created by the deployer's manifest "
        "transactions from the artifacts' creation bytecode",
        {"deployer": deployment.deployer},
    )


# ---------------------------------------------------------------- pure: links


def link_getters(abi: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """{getter: contract it names} for every argument-less view returning one address.

    A getter names a contract by its declared type (``contract IConsortium`` or
    ``contract Consortium``) or, for a plain ``address``, by its own name
    (``taskRegistry`` -> ``TaskRegistry``). Address getters naming no deployed contract
    are left out: they are not cross-references.
    """
    by_lower = {n.lower(): n for n in names}
    getters: dict[str, str] = {}
    for item in abi:
        if item.get("type") != "function" or item.get("inputs"):
            continue
        if item.get("stateMutability") not in ("view", "pure"):
            continue
        outputs = item.get("outputs") or []
        if len(outputs) != 1 or outputs[0].get("type") != "address":
            continue
        internal = str(outputs[0].get("internalType", ""))
        target = None
        if internal.startswith("contract "):
            declared = internal.removeprefix("contract ").split(".")[-1]
            target = by_lower.get(declared.lower())
            if target is None and declared[:1] == "I":
                target = by_lower.get(declared[1:].lower())
        if target is None:
            target = by_lower.get(str(item.get("name", "")).lower())
        if target is not None:
            getters[str(item["name"])] = target
    return getters


def check_links(
    deployment: Deployment,
    getters: Mapping[str, Mapping[str, str]],
    observed: Mapping[str, Mapping[str, str | None]],
) -> BindingCheck:
    """``deployment_links``: each contract's references point at the manifest's addresses.

    `getters` is `link_getters` per contract; `observed[contract][getter]` is the address
    read from the chain, or None when the call failed.
    """
    problems: list[str] = []
    links: list[str] = []
    for name in deployment.contracts:
        for getter, target in sorted(getters.get(name, {}).items()):
            want = deployment.address(target)
            got = observed.get(name, {}).get(getter)
            if got is None:
                problems.append(f"{name}.{getter}() could not be read")
            elif got.lower() != want.lower():
                problems.append(
                    f"{name}.{getter}() is {got}, but the manifest's {target} is {want}"
                )
            else:
                links.append(f"{name}.{getter}() = {target}")
    evidence: dict[str, Any] = {"links": links}
    if problems:
        return BindingCheck(LINKS_CHECK, False, "; ".join(problems), evidence)
    if not links:
        return BindingCheck(LINKS_CHECK, False, "no cross-references found to check", evidence)
    return BindingCheck(
        LINKS_CHECK,
        True,
        f"all {len(links)} cross-references point at the manifest's addresses",
        evidence,
    )


# ---------------------------------------------------------------- reading the chain


def read_codes(chain: Chain, deployment: Deployment, block: BlockId = "latest") -> dict[str, bytes]:
    """``eth_getCode`` at every manifest address."""
    return {
        name: bytes(chain.w3.eth.get_code(chain.w3.to_checksum_address(c.address), block))
        for name, c in deployment.contracts.items()
    }


def read_creations(chain: Chain, deployment: Deployment) -> dict[str, Creation | None]:
    """The receipt and transaction of every manifest entry's deployment transaction."""
    out: dict[str, Creation | None] = {}
    for name, c in deployment.contracts.items():
        try:
            tx = chain.w3.eth.get_transaction(HexStr(c.transaction))
            receipt = chain.w3.eth.get_transaction_receipt(HexStr(c.transaction))
        except Exception:  # unknown or malformed hash: the entry has no origin here
            out[name] = None
            continue
        created = receipt.get("contractAddress")
        out[name] = Creation(
            sender=str(tx["from"]),
            block=int(receipt["blockNumber"]),
            status=int(receipt["status"]),
            contract_address=str(created) if created else None,
            input=bytes(tx["input"]),
        )
    return out


def read_links(
    chain: Chain,
    deployment: Deployment,
    getters: Mapping[str, Mapping[str, str]],
    block: BlockId = "latest",
) -> dict[str, dict[str, str | None]]:
    """Call every link getter; a call that reverts or returns garbage reads as None."""
    observed: dict[str, dict[str, str | None]] = {}
    for name, named in getters.items():
        contract = chain.w3.eth.contract(
            address=chain.w3.to_checksum_address(deployment.address(name)),
            abi=load_artifact(name)["abi"],
        )
        observed[name] = {}
        for getter in named:
            try:
                value = contract.get_function_by_name(getter)().call(block_identifier=block)
                observed[name][getter] = str(value)
            except Exception:  # any failure to read (revert, bad output, RPC) fails the link
                observed[name][getter] = None
    return observed


class CreationCache:
    """Creation facts already read, kept across verifications by a long-running verifier.

    A manifest entry's transaction and receipt cannot change while the block holding it
    stays canonical: the transaction hash commits to sender and input, and the block
    hash to the receipt (status, created address). So an entry is stored with the hash
    of the block its receipt names, and it is served only after the canonical block at
    that number is read again (in the same round trip as the code and links) and still
    has that hash; a reorg or a revert that touched the block makes it be read afresh.
    Only creations in a block at or below the block the checks read at (the confirmed
    head) are stored, and never a missing transaction (it may still be mined).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Creation, bytes]] = {}

    def get(self, transaction: str) -> tuple[Creation, bytes] | None:
        return self._entries.get(transaction.lower())

    def put(self, transaction: str, creation: Creation, block_hash: bytes) -> None:
        self._entries[transaction.lower()] = (creation, block_hash)

    def drop(self, transaction: str) -> None:
        self._entries.pop(transaction.lower(), None)

    def __len__(self) -> int:
        return len(self._entries)


def _creation_from_json(tx: Any, receipt: Any) -> tuple[Creation, bytes] | None:
    """A `Creation` from raw JSON-RPC objects, as `read_creations` builds it from web3's
    (checksum addresses, ints), with the receipt's block hash; None if either is absent."""
    if not isinstance(tx, Mapping) or not isinstance(receipt, Mapping):
        return None
    try:
        created = receipt.get("contractAddress")
        block_hash = _hex_bytes(receipt.get("blockHash"))
        data = _hex_bytes(tx.get("input"))
        if block_hash is None or data is None:
            return None
        creation = Creation(
            sender=to_checksum_address(str(tx["from"])),
            block=int(str(receipt["blockNumber"]), 16),
            status=int(str(receipt["status"]), 16),
            contract_address=to_checksum_address(str(created)) if created else None,
            input=data,
        )
    except (KeyError, ValueError):
        return None
    return creation, block_hash


def _decode_address(chain: Chain, raw: Any) -> str | None:
    """An ``eth_call`` result decoded as one ``address`` the way web3's contract call does
    (same codec, checksum output); None when it reverted or is not an address."""
    data = _hex_bytes(raw)
    if data is None:
        return None
    try:
        (value,) = chain.w3.codec.decode(["address"], data)
    except Exception:  # short or non-zero-padded output: web3's call raises on it too
        return None
    return str(to_checksum_address(value))


def _selectors(abi: Sequence[Mapping[str, Any]], getter: str) -> bytes | None:
    """The selector of the argument-less ``getter``; None when the ABI overloads the name
    (web3's ``get_function_by_name`` refuses those, so the link reads as unreadable)."""
    matching = [i for i in abi if i.get("type") == "function" and i.get("name") == getter]
    if len(matching) != 1 or matching[0].get("inputs"):
        return None
    return keccak(text=f"{getter}()")[:4]


def read_batched(
    chain: Chain,
    deployment: Deployment,
    getters: Mapping[str, Mapping[str, str]],
    block: BlockId,
    cache: CreationCache | None = None,
) -> tuple[dict[str, bytes], dict[str, Creation | None], dict[str, dict[str, str | None]]] | None:
    """What `read_codes`, `read_creations` and `read_links` return, in one JSON-RPC batch
    (two when a cached creation's block is no longer canonical); None when the provider
    cannot batch, and the caller uses those three instead.

    Code and links are always read at ``block``: code can change at an address
    (``SELFDESTRUCT`` then ``CREATE2``, or a dev chain's ``anvil_setCode``) and links are
    storage, so neither is cached. Creations come from ``cache`` only as `CreationCache`
    says.
    """
    if not isinstance(block, int | str):
        return None
    at = rpc_batch.block_param(block)
    names = list(deployment.contracts)
    calls: list[tuple[str, list[Any]]] = []
    for name in names:
        calls.append(("eth_getCode", [deployment.address(name), at]))
    link_calls: list[tuple[str, str, int | None]] = []
    for name, named in getters.items():
        abi = load_artifact(name)["abi"]
        for getter in named:
            selector = _selectors(abi, getter)
            if selector is None:
                link_calls.append((name, getter, None))
                continue
            link_calls.append((name, getter, len(calls)))
            to = deployment.address(name)
            calls.append(("eth_call", [{"to": to, "data": "0x" + selector.hex()}, at]))
    cached: dict[str, tuple[Creation, bytes, int]] = {}  # name -> creation, hash, call index
    fresh: dict[str, int] = {}  # name -> index of its transaction call (receipt follows)
    for name in names:
        tx = deployment.contracts[name].transaction
        hit = None if cache is None else cache.get(tx)
        if hit is not None:
            creation, block_hash = hit
            cached[name] = (creation, block_hash, len(calls))
            calls.append(("eth_getBlockByNumber", [hex(creation.block), False]))
        else:
            fresh[name] = len(calls)
            calls.append(("eth_getTransactionByHash", [tx]))
            calls.append(("eth_getTransactionReceipt", [tx]))
    answers = rpc_batch.batch(chain, calls)
    if answers is None or any(
        isinstance(answers[i], rpc_batch.RpcError) for i in range(len(names))
    ):
        return None  # web3's get_code raises on an error answer: let it, via the fallback
    codes = {name: _hex_bytes(answers[i]) or b"" for i, name in enumerate(names)}
    observed: dict[str, dict[str, str | None]] = {name: {} for name in getters}
    for name, getter, index in link_calls:
        observed[name][getter] = None if index is None else _decode_address(chain, answers[index])
    creations: dict[str, Creation | None] = {}
    for name, (creation, block_hash, index) in cached.items():
        canonical = answers[index]
        if isinstance(canonical, Mapping) and _hex_bytes(canonical.get("hash")) == block_hash:
            creations[name] = creation
        else:  # reorged, reverted or unreadable: forget it and read it again
            assert cache is not None
            cache.drop(deployment.contracts[name].transaction)
            fresh[name] = -1
    stale = [name for name, index in fresh.items() if index < 0]
    if stale:
        again: list[tuple[str, list[Any]]] = []
        for name in stale:
            tx = deployment.contracts[name].transaction
            again += [("eth_getTransactionByHash", [tx]), ("eth_getTransactionReceipt", [tx])]
        second = rpc_batch.batch(chain, again)
        if second is None:
            return None
        for k, name in enumerate(stale):
            fresh[name] = len(answers) + 2 * k
        answers = [*answers, *second]
    limit = block if isinstance(block, int) else None
    for name, index in fresh.items():
        read = _creation_from_json(answers[index], answers[index + 1])
        creations[name] = None if read is None else read[0]
        confirmed = read is not None and limit is not None and read[0].block <= limit
        if confirmed and cache is not None and read is not None:
            cache.put(deployment.contracts[name].transaction, *read)
    return codes, {name: creations[name] for name in names}, observed


def verify_deployment(
    chain: Chain,
    deployment: Deployment,
    block: BlockId = "latest",
    creations: CreationCache | None = None,
) -> list[BindingCheck]:
    """The three binding checks of a deployment; code and links are read at `block`.

    Over HTTP everything is read in one JSON-RPC batch (`read_batched`), with creation
    facts from ``creations`` when given and still canonical; other providers read call
    by call. Both give the checks the same values.
    """
    try:
        artifacts = {name: load_artifact(name) for name in deployment.contracts}
    except ArtifactError as exc:
        return [
            BindingCheck(BYTECODE_CHECK, False, str(exc)),
            BindingCheck(ORIGIN_CHECK, False, str(exc)),
            BindingCheck(LINKS_CHECK, False, str(exc)),
        ]
    getters = {
        name: link_getters(artifact["abi"], CONTRACT_NAMES) for name, artifact in artifacts.items()
    }
    read = read_batched(chain, deployment, getters, block, creations)
    if read is None:
        codes = read_codes(chain, deployment, block)
        made = read_creations(chain, deployment)
        observed = read_links(chain, deployment, getters, block)
    else:
        codes, made, observed = read
    checks = [
        check_bytecode(deployment, codes, artifacts),
        check_origin(deployment, made, artifacts),
        check_links(deployment, getters, observed),
    ]
    at = {"block": block}
    return [BindingCheck(c.name, c.passed, c.detail, {**at, **c.evidence}) for c in checks]


def require_bound(chain: Chain, deployment: Deployment, block: BlockId = "latest") -> None:
    """Refuse (ManifestError) a deployment whose chain code or wiring is not the manifest's."""
    for check in verify_deployment(chain, deployment, block):
        if not check.passed:
            raise ManifestError(check.name, check.detail)
