"""Signing and sending transactions from a local key.

Nonces are allocated from one counter per (chain, account) shared by every sender in
the process, under a lock held from gas estimation to broadcast: two threads of one
node (say the task driver and the operator API) can then send concurrently without
ever reusing or skipping a nonce. The counter is re-read from the chain when a send
fails, so an outside sender using the same key is recovered from, not fatal.

Every transaction is estimated first: a revert then surfaces before anything is
broadcast, decoded to the contract's custom error, and nothing lands on chain. The
sender's balance is then checked against gas x max fee (+ value), the amount the chain
itself requires, so an unfunded account fails with `NoGas` naming it instead of an
out-of-gas error from the node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt

from ledger.chain import Chain
from ledger.errors import (
    ContractRevert,
    NoGas,
    TransactionReverted,
    decode_revert,
    revert_data_from,
)

GAS_MARGIN = 1.5
GAS_HEADROOM = 25_000
RECEIPT_TIMEOUT = 120.0
RECEIPT_POLL = 0.01  # anvil automines asynchronously; the default 0.1 s caps throughput


class _NonceCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next: int | None = None


_counters: dict[tuple[int, str, str], _NonceCounter] = {}
_counters_lock = threading.Lock()


def _counter(chain: Chain, address: str) -> _NonceCounter:
    key = (chain.chain_id, chain.url if not chain.embedded else str(id(chain.w3)), address)
    with _counters_lock:
        return _counters.setdefault(key, _NonceCounter())


def raise_decoded(exc: BaseException, contract_hint: str | None = None) -> None:
    """Re-raise a backend exception as the contract's custom error when it is a revert."""
    if isinstance(exc, ContractRevert):
        raise decode_revert(exc.data, contract_hint) from None
    data = revert_data_from(exc)
    if data is not None:
        raise decode_revert(data, contract_hint) from None


class Sender:
    """Sends contract transactions signed by one local account."""

    def __init__(self, chain: Chain, account: LocalAccount) -> None:
        self.chain = chain
        self.account = account
        self.address: ChecksumAddress = account.address

    def call(self, fn: ContractFunction) -> Any:
        """A read-only call from this account, with reverts decoded."""
        try:
            return fn.call({"from": self.address})
        except Exception as exc:
            raise_decoded(exc)
            raise

    def transact(
        self, fn: ContractFunction | ContractConstructor, gas: int | None = None
    ) -> TxReceipt:
        """Estimate, sign, send and wait; a revert raises the contract's custom error."""
        tx_hash = self._send(lambda nonce: self._build(fn, nonce, gas))
        return self._wait(tx_hash, fn)

    def send_value(self, to: str, wei: int) -> TxReceipt:
        def build(nonce: int) -> dict[str, Any]:
            return {
                "to": to,
                "value": wei,
                "gas": 21_000,
                "nonce": nonce,
                "chainId": self.chain.chain_id,
                **self._fees(),
            }

        return self._wait(self._send(build), None)

    def _fees(self) -> dict[str, int]:
        w3 = self.chain.w3
        base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = int(w3.eth.max_priority_fee)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    def _build(
        self, fn: ContractFunction | ContractConstructor, nonce: int, gas: int | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "from": self.address,
            "nonce": nonce,
            "chainId": self.chain.chain_id,
            **self._fees(),
        }
        if gas is not None:
            params["gas"] = gas
        estimated = None if gas is not None else self._estimate_pending(fn, params)
        if estimated is not None:
            params["gas"] = int(estimated * GAS_MARGIN) + GAS_HEADROOM
        try:
            tx: dict[str, Any] = dict(fn.build_transaction(params))  # type: ignore[arg-type]
        except Exception as exc:
            raise_decoded(exc)
            self._raise_if_unfunded(fn, params, gas)
            raise
        if gas is None and estimated is None:
            # The estimate is taken against the current state; another participant's
            # transaction mined first can make this one take a costlier path (the last
            # result submission completes the task). Unused gas is refunded.
            tx["gas"] = int(tx["gas"] * GAS_MARGIN) + GAS_HEADROOM
        return tx

    def _send(self, build: Callable[[int], dict[str, Any]]) -> bytes:
        counter = _counter(self.chain, self.address)
        w3 = self.chain.w3
        with counter.lock:
            if counter.next is None:
                counter.next = int(w3.eth.get_transaction_count(self.address, "pending"))
            tx = build(counter.next)
            self._require_funds(tx)
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                counter.next = None  # resynchronise from the chain on the next send
                raise
            counter.next += 1
        return bytes(tx_hash)

    def _estimate_pending(
        self, fn: ContractFunction | ContractConstructor, params: dict[str, Any]
    ) -> int | None:
        """Gas estimated against the pending block, the block this transaction joins.

        `latest` would judge time-dependent calls by the last mined block's timestamp:
        on an idle dev chain that block is old, so `expire` after a deadline reverted
        in the estimate and, with no block ever mined, the task was never expired. The
        pending block carries the time the next block would get. A revert here is the
        contract's answer and is raised decoded; any other failure (a backend without
        pending estimates, such as eth-tester, or an unfunded account) returns None and
        leaves the estimate, and its error reporting, to `build_transaction`.
        """
        if self.chain.embedded:
            return None  # eth-tester has no pending-block estimates (MethodUnavailable)
        try:
            return int(fn.estimate_gas(params, block_identifier="pending"))  # type: ignore[arg-type]
        except Exception as exc:
            raise_decoded(exc)
            return None

    def _require_funds(self, tx: dict[str, Any]) -> None:
        """NoGas unless the balance covers gas x max fee + value (the chain's own rule)."""
        price = int(tx.get("maxFeePerGas", tx.get("gasPrice", 0)))
        needed = int(tx["gas"]) * price + int(tx.get("value", 0))
        balance = int(self.chain.w3.eth.get_balance(self.address))
        if balance < needed:
            raise NoGas(self.address, balance, needed, self.chain.url)

    def _raise_if_unfunded(
        self, fn: ContractFunction | ContractConstructor, params: dict[str, Any], gas: int | None
    ) -> None:
        """Explain a failed estimate that was due to the balance, not to the contract.

        Nodes estimate against the sender's balance (anvil answers "gas required exceeds
        allowance", eth-tester "cannot afford txn gas"), so the estimate is repeated at a
        zero fee: a revert then still surfaces as the contract's error, and a successful
        estimate gives the gas the balance must cover. Returns when the balance was not
        the cause, leaving the caller to re-raise the original error.
        """
        free = {k: v for k, v in params.items() if k not in ("maxFeePerGas", "gasPrice")}
        free.update(maxFeePerGas=0, maxPriorityFeePerGas=0)
        try:
            estimate = gas if gas is not None else int(fn.estimate_gas(free))  # type: ignore[arg-type]
        except Exception as exc:
            raise_decoded(exc)
            return
        if gas is None:
            estimate = int(estimate * GAS_MARGIN) + GAS_HEADROOM
        self._require_funds({"gas": estimate, "maxFeePerGas": params.get("maxFeePerGas", 0)})

    def _wait(self, tx_hash: bytes, fn: ContractFunction | ContractConstructor | None) -> TxReceipt:
        w3 = self.chain.w3
        receipt = w3.eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=RECEIPT_TIMEOUT, poll_latency=RECEIPT_POLL
        )
        if receipt["status"] != 1:
            # State moved between estimation and mining: replay to learn why.
            if isinstance(fn, ContractFunction):
                try:
                    fn.call({"from": self.address}, block_identifier=receipt["blockNumber"] - 1)
                except Exception as exc:
                    raise_decoded(exc)
            raise TransactionReverted(f"transaction 0x{tx_hash.hex()} reverted when mined")
        return receipt


def reset_nonces() -> None:
    """Forget every cached nonce (after a chain snapshot is reverted, say)."""
    with _counters_lock:
        _counters.clear()
