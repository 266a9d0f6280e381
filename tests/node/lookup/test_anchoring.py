"""Lookup epochs on a real EVM: the builder anchors, providers accept, queriers need both.

Written the way a builder that drops a provider's entries, or replays an old union,
would try to get a querier to use its union.
"""

from __future__ import annotations

import pytest

from ledger.ids import name_id
from node.lookup.anchoring import (
    EpochConflictError,
    EpochNotAnchoredError,
    StaleEpochAnchorError,
    UnionNotAcceptedError,
    accept_epoch,
    anchor_epoch,
    current_epoch,
)
from tests.conftest import Consortium

LIST = "blacklist"


def _digest(label: str) -> bytes:
    return name_id("descriptor", label)


def test_a_union_is_current_only_once_the_quorum_accepted_it(consortium: Consortium) -> None:
    c = consortium
    builder = c.orgs["regulator"].node_clients.anchors
    a, b = c.orgs["bank-a"].node_clients.anchors, c.orgs["bank-b"].node_clients.anchors
    providers = [c.orgs["bank-a"].node.address, c.orgs["bank-b"].node.address]
    builder_address = c.orgs["regulator"].node.address
    with pytest.raises(EpochNotAnchoredError, match="lookup publish"):
        current_epoch(builder, LIST, builder_address, providers, 2)

    assert anchor_epoch(builder, LIST, 1, _digest("e1")) is True
    assert anchor_epoch(builder, LIST, 1, _digest("e1")) is False  # a retry writes nothing
    with pytest.raises(UnionNotAcceptedError, match="0 of 2"):
        current_epoch(a, LIST, builder_address, providers, 1)
    accept_epoch(a, LIST, 1, _digest("e1"))
    assert current_epoch(a, LIST, builder_address, providers, 1).accepted_by == (providers[0],)
    with pytest.raises(UnionNotAcceptedError, match="1 of 2"):
        current_epoch(a, LIST, builder_address, providers, 2)
    accept_epoch(b, LIST, 1, _digest("e1"))
    now = current_epoch(b, LIST, builder_address, providers, 2)
    assert (now.epoch, now.descriptor_digest) == (1, _digest("e1"))


def test_a_provider_missing_its_entries_withholds_acceptance(consortium: Consortium) -> None:
    """The builder anchors epoch 2 with a union that dropped bank-b's entries; bank-b
    never accepts it, so under a quorum of all providers the epoch is never used, and
    bank-b accepting some other digest does not help the builder either."""
    c = consortium
    builder = c.orgs["regulator"].node_clients.anchors
    a, b = c.orgs["bank-a"].node_clients.anchors, c.orgs["bank-b"].node_clients.anchors
    providers = [c.orgs["bank-a"].node.address, c.orgs["bank-b"].node.address]
    builder_address = c.orgs["regulator"].node.address
    anchor_epoch(builder, LIST, 2, _digest("dropped-b"))
    accept_epoch(a, LIST, 2, _digest("dropped-b"))
    accept_epoch(b, LIST, 2, _digest("what-b-built-itself"))
    with pytest.raises(UnionNotAcceptedError):
        current_epoch(a, LIST, builder_address, providers, 2)


def test_an_anchored_epoch_cannot_be_replaced_or_rolled_back(consortium: Consortium) -> None:
    c = consortium
    builder = c.orgs["regulator"].node_clients.anchors
    anchor_epoch(builder, LIST, 3, _digest("e3"))
    with pytest.raises(EpochConflictError, match="epoch 3"):
        anchor_epoch(builder, LIST, 3, _digest("other"))
    with pytest.raises(StaleEpochAnchorError, match="epoch 2 cannot follow"):
        anchor_epoch(builder, LIST, 2, _digest("old"))
    anchor_epoch(builder, LIST, 4, _digest("e4"))
    providers = [c.orgs["bank-a"].node.address]
    a = c.orgs["bank-a"].node_clients.anchors
    accept_epoch(a, LIST, 4, _digest("e4"))
    assert current_epoch(a, LIST, c.orgs["regulator"].node.address, providers, 1).epoch == 4
    # lists are separate logs: the graylist has no epoch yet
    with pytest.raises(EpochNotAnchoredError):
        current_epoch(a, "graylist", c.orgs["regulator"].node.address, providers, 1)


def test_another_account_cannot_pose_as_the_builder(consortium: Consortium) -> None:
    """bank-a anchors a union under the same list name in its own log: queriers that ask
    for the builder's log never see it."""
    c = consortium
    a = c.orgs["bank-a"].node_clients.anchors
    anchor_epoch(a, LIST, 9, _digest("forged"))
    accept_epoch(a, LIST, 9, _digest("forged"))
    with pytest.raises(EpochNotAnchoredError):
        current_epoch(a, LIST, c.orgs["regulator"].node.address, [c.orgs["bank-a"].node.address], 1)


def test_bad_arguments_are_named(consortium: Consortium) -> None:
    a = consortium.orgs["bank-a"].node_clients.anchors
    with pytest.raises(ValueError, match="epoch must be"):
        anchor_epoch(a, LIST, 0, _digest("x"))
    with pytest.raises(ValueError, match="non-zero"):
        anchor_epoch(a, LIST, 1, bytes(32))
    with pytest.raises(ValueError, match="quorum"):
        current_epoch(a, LIST, consortium.orgs["regulator"].node.address, [], 1)
