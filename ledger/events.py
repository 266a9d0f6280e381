"""Read and decode contract events, paged and behind a confirmation depth.

The auditor and the node's task driver rebuild everything from events, so this reader
is conservative: it never reads past `head - confirmations`, asks for blocks in pages
(shrinking the page when a node refuses a range as too large), and returns events in
chain order (block number, then log index) with their block hash so a consumer can
detect a reorg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from web3._utils.events import get_event_data
from web3.types import LogReceipt

from ledger.chain import Chain

DEFAULT_PAGE = 2_000
MIN_PAGE = 1


@dataclass(frozen=True)
class Event:
    """One decoded log, with everything needed to order it and to detect reorgs."""

    contract: str
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass(frozen=True)
class Source:
    """A contract to read events from: its name, address and ABI."""

    name: str
    address: str
    abi: Sequence[Mapping[str, Any]]


def _plain(value: Any) -> Any:
    """web3 decodes structs to AttributeDicts; consumers get plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class EventReader:
    """Decodes the events of a fixed set of contracts."""

    def __init__(
        self,
        chain: Chain,
        sources: Sequence[Source],
        confirmations: int = 0,
        page_size: int = DEFAULT_PAGE,
    ) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        if page_size < MIN_PAGE:
            raise ValueError(f"page_size must be >= {MIN_PAGE}, got {page_size}")
        self.chain = chain
        self.confirmations = confirmations
        self.page_size = page_size
        self._by_address = {s.address.lower(): s for s in sources}
        self._topics: dict[tuple[str, bytes], dict[str, Any]] = {}
        for source in sources:
            for entry in source.abi:
                if entry.get("type") == "event" and not entry.get("anonymous", False):
                    topic = bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]
                    self._topics[(source.address.lower(), topic)] = dict(entry)

    def safe_head(self) -> int:
        """The newest block considered final enough to read."""
        return max(self.chain.head() - self.confirmations, -1)

    def read(self, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        """Every event of the sources in [from_block, to_block], in chain order."""
        last = self.safe_head() if to_block is None else min(to_block, self.safe_head())
        events: list[Event] = []
        start = from_block
        page = self.page_size
        while start <= last:
            end = min(start + page - 1, last)
            try:
                logs = self.chain.w3.eth.get_logs(
                    {
                        "fromBlock": start,
                        "toBlock": end,
                        "address": [self._checksum(a) for a in self._by_address],
                    }
                )
            except Exception:
                if page == MIN_PAGE:
                    raise
                page = max(page // 2, MIN_PAGE)
                continue
            events.extend(self._decode(log) for log in logs)
            start = end + 1
        events.sort(key=lambda e: e.position)
        return events

    def _checksum(self, address: str) -> Any:
        return self.chain.w3.to_checksum_address(address)

    def _decode(self, log: LogReceipt) -> Event:
        address = str(log["address"]).lower()
        source = self._by_address[address]
        topic = bytes(log["topics"][0])
        entry = self._topics.get((address, topic))
        if entry is None:
            raise ValueError(f"log at block {log['blockNumber']} matches no event of {source.name}")
        data = get_event_data(self.chain.w3.codec, entry, log)
        return Event(
            contract=source.name,
            name=str(data["event"]),
            args=_plain(data["args"]),
            address=str(log["address"]),
            block_number=int(log["blockNumber"]),
            block_hash=bytes(log["blockHash"]),
            transaction_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )
