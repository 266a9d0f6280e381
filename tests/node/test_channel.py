from __future__ import annotations

import threading

import pytest

from ledger.transcript import Transcript, chain_intact
from node.channel import (
    InMemoryNetwork,
    MessageTooLarge,
    PeerTimeout,
    RecordingChannel,
    UnknownPeer,
    message_digest,
)

TASK = bytes(32)


def test_messages_are_addressed_by_peer_and_step() -> None:
    net = InMemoryNetwork(["a", "b", "c"])
    a, b = net.channel("a"), net.channel("b")
    a.send("b", "two", b"second")
    a.send("b", "one", b"first")
    assert b.receive("a", "one") == b"first"
    assert b.receive("a", "two") == b"second"
    assert sorted(a.peers) == ["b", "c"]


def test_errors_are_named() -> None:
    net = InMemoryNetwork(["a", "b"], max_message=4)
    a = net.channel("a")
    with pytest.raises(MessageTooLarge):
        a.send("b", "s", b"12345")
    with pytest.raises(UnknownPeer):
        a.send("z", "s", b"x")
    with pytest.raises(PeerTimeout, match="no message 's' from b"):
        a.receive("b", "s", timeout=0.01)
    with pytest.raises(ValueError):
        InMemoryNetwork(["a", "a"])


def test_recording_channels_produce_transcripts_that_agree() -> None:
    net = InMemoryNetwork(["a", "b"])
    ta, tb = Transcript(), Transcript()
    a = RecordingChannel(net.channel("a"), TASK, ta)
    b = RecordingChannel(net.channel("b"), TASK, tb)
    t = threading.Thread(target=lambda: a.send("b", "hello", b"payload"))
    t.start()
    assert b.receive("a", "hello") == b"payload"
    t.join()
    [sent], [received] = ta.entries, tb.entries
    assert sent.kind == "sent" and received.kind == "received"
    assert sent.digest == received.digest == message_digest(TASK, "a", "b", "hello", b"payload")
    assert chain_intact(ta.entries) and chain_intact(tb.entries)
    assert message_digest(TASK, "b", "a", "hello", b"payload") != sent.digest
