"""Transactions, nonces, keys and event reading on the embedded chain."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledger.chain import Chain
from ledger.errors import ChainError, NoGas
from ledger.events import EventReader, Source
from ledger.ids import InvalidInput, name_id
from ledger.keys import new_account, read_keystore, write_keystore
from ledger.transactions import Sender
from tests.conftest import Consortium


def test_chain_id_comes_from_the_node() -> None:
    chain = Chain.start_embedded()
    assert chain.chain_id == int(chain.w3.eth.chain_id)
    with pytest.raises(ValueError, match="chain url"):
        Chain.connect("127.0.0.1:8545")
    with pytest.raises(ChainError, match="does not answer"):
        Chain.connect("http://127.0.0.1:9", timeout=0.5)


def test_concurrent_senders_share_one_nonce_sequence(consortium: Consortium) -> None:
    """Eight threads anchoring through one account: every transaction lands, none collide."""
    org = consortium.orgs["bank-a"]
    anchors = org.node_clients.anchors
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(3):
                anchors.create_log(name_id("log", f"t{n}-{i}"), 1, name_id("root", f"{n}-{i}"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    chain = consortium.chain
    assert all(
        anchors.latest(anchors.own_log_id(name_id("log", f"t{n}-{i}")))[0] == 1
        for n in range(8)
        for i in range(3)
    )
    nonces = [
        int(chain.w3.eth.get_transaction_by_block(b, 0)["nonce"])
        for b in range(chain.head() - 23, chain.head() + 1)
    ]
    assert sorted(nonces) == list(range(min(nonces), min(nonces) + 24))


def test_keystore_round_trip(tmp_path: Path) -> None:
    account = new_account()
    path = tmp_path / "key.json"
    write_keystore(account, path, "correct horse")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_keystore(path, "correct horse").address == account.address
    with pytest.raises(InvalidInput, match="wrong password"):
        read_keystore(path, "wrong")
    with pytest.raises(FileExistsError):
        write_keystore(account, path, "x")
    with pytest.raises(InvalidInput, match="does not exist"):
        read_keystore(tmp_path / "none.json", "x")


def test_event_reader_pages_orders_and_respects_confirmations(consortium: Consortium) -> None:
    anchors = consortium.orgs["bank-a"].node_clients.anchors
    for size in range(1, 6):
        anchors.append(name_id("log", "reader"), size, name_id("root", str(size)))
    source = Source("AnchorLog", anchors.address, anchors.contract.abi)
    chain = consortium.chain
    everything = EventReader(chain, [source], page_size=1).read()
    sizes = [e.args["treeSize"] for e in everything if e.name == "Checkpointed"]
    assert sizes[-5:] == [1, 2, 3, 4, 5]
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert everything == EventReader(chain, [source], page_size=1000).read()
    behind = EventReader(chain, [source], confirmations=2).read()
    assert [e.args["treeSize"] for e in behind if e.name == "Checkpointed"][-3:] == [1, 2, 3]
    assert all(e.block_number <= chain.head() - 2 for e in behind)
    with pytest.raises(ValueError):
        EventReader(chain, [source], confirmations=-1)


def test_a_sender_without_ether_is_refused_before_broadcast(consortium: Consortium) -> None:
    poor = new_account()  # a node its admin registered but nobody funded
    consortium.orgs["bank-a"].clients.consortium.register_node(
        poor.address, "poor.example:7000", name_id("cert", "poor")
    )
    clients = consortium.clients_for(poor)
    with pytest.raises(NoGas, match=rf"^account {poor.address} has no gas \(balance 0 wei"):
        clients.anchors.create_log(name_id("log", "poor"), 1, name_id("root", "x"))
    assert Sender(consortium.chain, poor).chain.w3.eth.get_transaction_count(poor.address) == 0
