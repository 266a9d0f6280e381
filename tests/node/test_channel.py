from __future__ import annotations

import threading

import pytest

from ledger.ids import as_address
from ledger.transcript import Transcript, chain_intact
from node.channel import (
    ChannelError,
    InMemoryNetwork,
    MessageTooLarge,
    PeerTimeout,
    RecordingChannel,
    UnknownPeer,
    message_digest,
)
from node.peer.server import AlreadyReceived, Inbox, TaskClosed

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


def test_unread_messages_are_handed_over_once_and_a_sealed_party_takes_no_more() -> None:
    net = InMemoryNetwork(["a", "b", "c"])
    transcript = Transcript()
    b = RecordingChannel(net.channel("b"), TASK, transcript)
    net.channel("a").send("b", "two", b"2")
    net.channel("c").send("b", "one", b"1")
    net.channel("a").send("b", "one", b"read")
    assert b.receive("a", "one") == b"read"
    assert b.record_unread() == 2  # a's "two" and c's "one", by sender then step
    assert [(e.kind, e.peer, e.step) for e in transcript.entries] == [
        ("received", "a", "one"),
        ("received-late", "a", "two"),
        ("received-late", "c", "one"),
    ]
    assert transcript.entries[1].digest == message_digest(TASK, "a", "b", "two", b"2")
    assert chain_intact(transcript.entries)
    assert b.record_unread(seal=True) == 0  # handed over once
    with pytest.raises(ChannelError, match="b has closed this task"):
        net.channel("a").send("b", "three", b"3")
    net.channel("b").send("a", "reply", b"r")  # sealing b does not silence it


def test_the_inbox_hands_over_unread_messages_and_a_seal_refuses_later_ones() -> None:
    a, b = str(as_address("0x" + "aa" * 20, "a")), str(as_address("0x" + "bb" * 20, "b"))
    task = b"\x01" * 32
    inbox = Inbox()
    assert inbox.take_unread(task) == []  # never opened: nothing held
    inbox.open_task(task, [a, b])
    inbox.put(task, b, "x", b"12")
    inbox.put(task, b, "y", b"345")
    assert inbox.take(task, b, "y", 1.0) == b"345"
    assert inbox.unread_bytes == 2
    assert inbox.take_unread(task, seal=True) == [(b, "x", b"12")]
    assert inbox.unread_bytes == 0
    with pytest.raises(AlreadyReceived):  # it counts as read now
        inbox.take(task, b, "x", 0.0)
    with pytest.raises(TaskClosed):
        inbox.put(task, b, "z", b"6")
    assert inbox.is_open(task)  # readers still waiting are woken by close_task only
    inbox.close_task(task)
    assert inbox.take_unread(task) == []
