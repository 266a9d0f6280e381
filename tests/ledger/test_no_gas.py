"""An account without ether gets `NoGas` naming it, before anything is sent.

Found by a newcomer: the first dataset registration of a freshly registered (unfunded)
node answered HTTP 500 with an out-of-gas traceback in the node log.
"""

from __future__ import annotations

import pytest

from ledger.clients.datasets import DatasetVersion
from ledger.errors import ChainError, NoGas, custom_error
from ledger.ids import name_id
from ledger.keys import new_account
from ledger.transactions import Sender
from tests.conftest import Consortium

VERSION = DatasetVersion(b"\x01" * 32, 10, b"\x02" * 32, 2)


def _unfunded_node(consortium: Consortium) -> Sender:
    """A node the bank-a admin registered but nobody funded, as after `node register`."""
    node = new_account()
    consortium.orgs["bank-a"].clients.consortium.register_node(
        node.address, "bank-a-2.example:7000", name_id("cert", "bank-a-2")
    )
    return Sender(consortium.chain, node)


def test_an_unfunded_node_registering_a_dataset_gets_no_gas(consortium: Consortium) -> None:
    sender = _unfunded_node(consortium)
    w3 = consortium.chain.w3
    head = w3.eth.block_number
    clients = consortium.clients_for(sender.account)
    with pytest.raises(NoGas) as caught:
        clients.datasets.register(name_id("dataset", "accounts"), VERSION)
    exc = caught.value
    assert isinstance(exc, ChainError) and exc.code == "NO_GAS"
    assert exc.account == sender.address and exc.balance == 0 and exc.needed > 0
    message = str(exc)
    assert message.startswith(f"account {sender.address} has no gas (balance 0 wei; ")
    assert f"needs about {exc.needed} wei" in message
    assert message.endswith(f"provnet chain fund --chain embedded {sender.address}")
    # Nothing was sent: no block, no nonce used.
    assert w3.eth.block_number == head
    assert w3.eth.get_transaction_count(sender.address, "pending") == 0


def test_too_little_ether_is_no_gas_and_enough_succeeds(consortium: Consortium) -> None:
    sender = _unfunded_node(consortium)
    consortium.chain.fund(sender.address, 1000)
    clients = consortium.clients_for(sender.account)
    with pytest.raises(NoGas) as caught:
        clients.datasets.register(name_id("dataset", "accounts"), VERSION)
    assert caught.value.balance == 1000 and caught.value.needed > 1000
    # eth-tester estimates at its block gas limit, so fund well beyond `needed` here.
    consortium.chain.fund(sender.address, 10**18)
    clients.datasets.register(name_id("dataset", "accounts"), VERSION)  # now it goes through


def test_a_plain_transfer_from_an_empty_account_is_no_gas(consortium: Consortium) -> None:
    sender = Sender(consortium.chain, new_account())
    with pytest.raises(NoGas, match=r"needs about \d+ wei"):
        sender.send_value(consortium.deployer.address, 1)


def test_a_revert_is_still_named_before_the_balance(consortium: Consortium) -> None:
    """An unfunded stranger learns that it is no admin, not merely that it has no gas."""
    stranger = consortium.clients_for(new_account())
    with pytest.raises(custom_error("NotActiveMemberAdmin")):
        stranger.algorithms.propose(b"\x07" * 32, "x", "1", 2)  # type: ignore[arg-type]
