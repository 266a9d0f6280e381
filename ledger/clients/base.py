"""What every typed contract client shares: a bound contract, a sender, decoded reverts."""

from __future__ import annotations

from typing import Any

from web3.contract.contract import Contract, ContractFunction
from web3.types import TxReceipt

from ledger.artifacts import abi
from ledger.chain import Chain
from ledger.errors import ContractRevert
from ledger.ids import as_address
from ledger.transactions import Sender, raise_decoded


class ContractClient:
    """Base of the per-contract clients; subclasses set `contract_name`."""

    contract_name: str = ""

    def __init__(self, chain: Chain, address: str, sender: Sender | None = None) -> None:
        self.chain = chain
        self.address = as_address(address, f"{self.contract_name} address")
        self.sender = sender
        self.contract: Contract = chain.w3.eth.contract(
            address=self.address, abi=abi(self.contract_name)
        )

    def with_sender(self, sender: Sender) -> Any:
        """The same client acting as another account."""
        return type(self)(self.chain, self.address, sender)

    def _fn(self, name: str, *args: object) -> ContractFunction:
        return getattr(self.contract.functions, name)(*args)  # type: ignore[no-any-return]

    def _call(self, name: str, *args: object) -> Any:
        fn = self._fn(name, *args)
        try:
            if self.sender is not None:
                return fn.call({"from": self.sender.address})
            return fn.call()
        except Exception as exc:
            raise_decoded(exc, self.contract_name)
            raise

    def _transact(self, name: str, *args: object) -> TxReceipt:
        if self.sender is None:
            raise RuntimeError(f"{self.contract_name}.{name}: client has no sender account")
        try:
            return self.sender.transact(self._fn(name, *args))
        except ContractRevert as exc:
            raise_decoded(exc, self.contract_name)
            raise

    def events_in(self, receipt: TxReceipt, event: str) -> list[dict[str, Any]]:
        """Decoded args of one event type emitted by this contract in a receipt."""
        from web3.logs import DISCARD

        handler = getattr(self.contract.events, event)()
        return [dict(e["args"]) for e in handler.process_receipt(receipt, errors=DISCARD)]
