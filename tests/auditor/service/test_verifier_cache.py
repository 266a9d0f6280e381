"""A reused `TaskVerifier` never answers from a stale cache, and its batched reads are the
single calls' values.

On one anvil (the batched JSON-RPC path only runs over HTTP; the embedded chain of the
other tests takes the single-call path) with a freshly deployed consortium:
- the batched reads of the deployment binding equal `read_codes`, `read_creations` and
  `read_links` for the real manifest and for forged ones;
- the code at an address changed after a passing verification fails the next one by the
  same verifier;
- a chain rewritten at the same height (revert, then other transactions) gives the same
  verifier the new events, and a chain reverted below the deployment makes its cached
  creations unusable (`deployment_origin` fails as "no such transaction").
Expectations come from reads made afresh (a new verifier, a new `EventReader`).
The last test rewinds the chain to before the deployment: it must stay last.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from web3.types import RPCEndpoint

from auditor.replay import ChainView, reader_for
from auditor.service.verification import TaskVerifier, Verification
from ledger import transactions
from ledger.artifacts import CONTRACT_NAMES, load_artifact
from ledger.chain import Chain
from ledger.deployment import Deployment
from ledger.deployment_binding import (
    CreationCache,
    link_getters,
    read_batched,
    read_codes,
    read_creations,
    read_links,
)
from ledger.ids import name_id
from tests.anvil import running_anvil
from tests.conftest import Consortium, build_consortium

_roots = itertools.count(1)


@dataclasses.dataclass
class Live:
    consortium: Consortium
    genesis_snapshot: str  # taken before the deployment


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with running_anvil() as url:
        chain = Chain.connect(url)
        before = rpc(chain, "evm_snapshot", [])
        yield Live(build_consortium(chain), before)
    transactions.reset_nonces()


def rpc(chain: Chain, method: str, params: list[Any]) -> Any:
    answer = chain.w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in answer, answer
    return answer["result"]


def revert(chain: Chain, snapshot: str) -> None:
    assert rpc(chain, "evm_revert", [snapshot]) is True
    transactions.reset_nonces()


def checkpoint(c: Consortium) -> None:
    """One AnchorLog checkpoint (one block, one event) with a root never used before."""
    root = name_id("root", f"cache-test-{next(_roots)}")
    c.orgs["bank-b"].node_clients.anchors.append(name_id("log", "cache-test"), 10, root)


def checks_by_name(v: Verification) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.detail) for c in v.checks}


TASK = b"\x07" * 32  # no such task: the deployment checks still run, and are compared


def single_call_reads(chain: Chain, d: Deployment, block: int) -> tuple[Any, Any, Any]:
    getters = {n: link_getters(load_artifact(n)["abi"], CONTRACT_NAMES) for n in d.contracts}
    return (
        read_codes(chain, d, block),
        read_creations(chain, d),
        read_links(chain, d, getters, block),
    )


def test_batched_reads_equal_the_single_calls(live: Live) -> None:
    c = live.consortium
    chain, d = c.chain, c.deployment
    unrelated_tx = rpc(chain, "eth_getBlockByNumber", ["0x1", False])["transactions"][0]
    forged = [
        d,
        dataclasses.replace(
            d,
            contracts={
                **d.contracts,
                "AlgorithmRegistry": d.contracts["DatasetRegistry"],
                "DatasetRegistry": d.contracts["AlgorithmRegistry"],
            },
        ),
        dataclasses.replace(
            d,
            contracts={
                **d.contracts,
                "AnchorLog": dataclasses.replace(
                    d.contracts["AnchorLog"], transaction="0x" + "ab" * 32
                ),
                "Consortium": dataclasses.replace(
                    d.contracts["Consortium"], transaction=unrelated_tx
                ),
                "TaskRegistry": dataclasses.replace(
                    d.contracts["TaskRegistry"], address="0x" + "11" * 20
                ),
            },
        ),
    ]
    head = chain.head()
    for manifest in forged:
        getters = {
            n: link_getters(load_artifact(n)["abi"], CONTRACT_NAMES) for n in manifest.contracts
        }
        expected = single_call_reads(chain, manifest, head)
        cache = CreationCache()
        assert read_batched(chain, manifest, getters, head, cache) == expected
        assert read_batched(chain, manifest, getters, head, cache) == expected  # from cache
    assert len(cache) == len(d.contracts) - 1  # the unknown transaction is never cached


def test_block_times_and_hashes_are_those_web3_reads(live: Live) -> None:
    chain, d = live.consortium.chain, live.consortium.deployment
    view = ChainView(chain, d)
    blocks = {n: bytes(chain.w3.eth.get_block(n)["hash"]) for n in (1, d.first_block, chain.head())}
    expected = {n: int(chain.w3.eth.get_block(n)["timestamp"]) for n in blocks}
    assert view.timestamps(blocks) == expected
    assert view.timestamps(blocks) == expected  # from the cache, by hash
    assert view.head() == (chain.head(), blocks[chain.head()])


def test_code_changed_after_a_passing_verification_fails_the_next(live: Live) -> None:
    c = live.consortium
    chain, d = c.chain, c.deployment
    snapshot = rpc(chain, "evm_snapshot", [])
    try:
        verifier = TaskVerifier(chain, d)
        first = checks_by_name(verifier.verify(TASK))
        assert first["deployment_bytecode"][0] and first["deployment_origin"][0], first
        other = rpc(chain, "eth_getCode", [d.address("DatasetRegistry"), "latest"])
        rpc(chain, "anvil_setCode", [d.address("AnchorLog"), other])
        rpc(chain, "evm_mine", [])
        again = verifier.verify(TASK)
        assert checks_by_name(again) == checks_by_name(TaskVerifier(chain, d).verify(TASK))
        passed, detail = checks_by_name(again)["deployment_bytecode"]
        assert not passed and "AnchorLog at " in detail, detail
    finally:
        revert(chain, snapshot)


def test_a_rewritten_chain_replaces_the_cached_events_and_creations(live: Live) -> None:
    c = live.consortium
    chain, d = c.chain, c.deployment
    verifier = TaskVerifier(chain, d)
    fork_point = rpc(chain, "evm_snapshot", [])
    checkpoint(c)
    verifier.verify(TASK)
    head = verifier.view.head()
    seen = verifier.view.events(head)
    assert seen == reader_for(chain, d).read(d.first_block)
    # The same height again, but other blocks: the cached head's hash no longer matches.
    revert(chain, fork_point)
    checkpoint(c)
    assert chain.head() == head[0] and verifier.view.head() != head
    fresh = reader_for(chain, d).read(d.first_block)
    assert fresh != seen and fresh[-1].args != seen[-1].args
    assert verifier.view.events(verifier.view.head()) == fresh
    assert verifier.verify(TASK).read_up_to == verifier.view.head()
    # Back to before the deployment, then past its height: every creation is gone.
    assert len(verifier.view.creations) == len(d.contracts)
    revert(chain, live.genesis_snapshot)
    rpc(chain, "anvil_mine", [hex(head[0] + 2)])
    after = checks_by_name(verifier.verify(TASK))
    assert after == checks_by_name(TaskVerifier(chain, d).verify(TASK))
    passed, detail = after["deployment_origin"]
    assert not passed and "no such transaction" in detail, detail
    assert verifier.view.events(verifier.view.head()) == []
