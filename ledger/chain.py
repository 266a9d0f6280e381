"""Chain backends: the in-process eth-tester chain and any JSON-RPC node.

Both are wrapped in one `Chain` so that nothing above this module knows which backend
it talks to. The chain id is always read from the node, never configured, because
anvil (and every real network) rejects a transaction signed for another chain id while
eth-tester silently accepts it — a misconfigured id would only show in production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse, Wei

from ledger.errors import ChainError


class _SerialTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe; node threads share one chain, so requests queue."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            return super().make_request(method, params)


@dataclass
class Chain:
    """A connected chain: the web3 handle, its real chain id and how it was reached."""

    w3: Web3
    chain_id: int
    url: str  # "embedded" for eth-tester

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    @classmethod
    def start_embedded(cls) -> Chain:
        """A fresh in-process chain (py-evm), for tests and the single-process demo."""
        w3 = Web3(_SerialTesterProvider())
        return cls(w3=w3, chain_id=int(w3.eth.chain_id), url="embedded")

    @classmethod
    def connect(cls, url: str, timeout: float = 10.0) -> Chain:
        """Connect to a JSON-RPC node; fails with a one-line error if it does not answer."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"chain url: expected http(s)://host:port, got {url!r}")
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            raise ChainError(f"chain url {url}: node does not answer ({exc})") from None
        return cls(w3=w3, chain_id=chain_id, url=url)

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def fund(self, address: str, wei: int) -> None:
        """Give a development account ether from the node's own unlocked account.

        Only development chains (eth-tester, anvil) have unlocked funded accounts; on a
        real network accounts are funded by their operators and this raises.
        """
        try:
            accounts = list(self.w3.eth.accounts)
        except Exception:  # a node without the eth_accounts method has none either
            accounts = []
        if not accounts:
            raise ChainError(
                f"chain {self.url} has no unlocked account to fund {address} from: only "
                "development chains (anvil, eth-tester) have one; on this chain send ether "
                f"to {address} from a funded account"
            )
        tx = self.w3.eth.send_transaction(
            {"from": accounts[0], "to": Web3.to_checksum_address(address), "value": Wei(wei)}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
        if receipt["status"] != 1:
            raise ChainError(f"funding {address} failed")
