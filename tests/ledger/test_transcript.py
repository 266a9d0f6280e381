from __future__ import annotations

import dataclasses

import pytest

from ledger import merkle
from ledger.canonical import digest
from ledger.transcript import Entry, Transcript, chain_intact, transcript_root


def sample() -> Transcript:
    t = Transcript()
    t.append("input", "input", digest("test", b"in"))
    t.append("sent", "round-1", digest("test", b"m1"), peer="0xB")
    t.append("received", "round-1", digest("test", b"m2"), peer="0xB")
    t.append("output", "result", digest("test", b"out"))
    return t


def test_root_is_rfc9162_root_over_encoded_entries() -> None:
    t = sample()
    assert t.root() == merkle.root([merkle.leaf_hash(e.encoded()) for e in t.entries])
    assert chain_intact(t.entries)


def test_json_round_trip() -> None:
    t = sample()
    again = [Entry.from_json(e.to_json()) for e in t.entries]
    assert again == t.entries and transcript_root(again) == t.root()


def test_dropping_reordering_or_editing_breaks_the_chain() -> None:
    entries = sample().entries
    assert not chain_intact(entries[1:])
    assert not chain_intact([entries[0], entries[2], entries[1], entries[3]])
    edited = [*entries]
    edited[1] = dataclasses.replace(edited[1], digest=digest("test", b"other"))
    assert not chain_intact(edited)
    assert transcript_root(edited) != transcript_root(entries)


def test_bad_entries_are_rejected() -> None:
    t = Transcript()
    with pytest.raises(ValueError, match="kind"):
        t.append("gossip", "s", bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        t.append("input", "s", bytes(31))
    assert t.entries == []
