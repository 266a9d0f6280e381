"""A key holder of an anonymous-lookup epoch: evaluates blinded elements under its share.

Why this module exists: in the double-blind lookup (DESIGN §6) every provider holds one
Shamir share ``k_i`` of the epoch's OPRF key and answers ``k_i * B`` for blinded elements
``B``, for queriers (behind the relay) and for other providers publishing their entries
alike. A holder must answer only for its current epoch (old epochs stop answering when
the key rotates), must refuse anything that is not a batch of valid ristretto255
elements, and must prove every answer (a batched DLEQ proof against its anchored public
share) so a wrong answer is caught and the holder named.

What a holder sees is deliberately narrow: the epoch number and the blinded elements.
No identifier (the blind hides the input information-theoretically), no querier
identity (the relay strips it and mixes batches), no list or query kind (those are
inside the OPRF input). The optional ``on_batch`` hook receives exactly that, after the
batch was evaluated, so a query log (``node/lookup/query_log.py``) can record what the
holder saw and nothing more; a refused batch never reaches the hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from node.crypto import oprf, threshold_oprf
from node.crypto.oprf import OprfError
from node.crypto.threshold_oprf import KeyShare, ShareEvaluation
from node.lookup.epoch import (
    MAX_BATCH,
    EpochError,
    EpochKeys,
    EpochKeysMismatch,
    StaleEpochError,
)

__all__ = [
    "BatchHook",
    "KeyHolder",
    "MalformedBatchError",
]

BatchHook = Callable[[int, tuple[bytes, ...]], None]
"""``(epoch, blinded elements)`` of one evaluated batch; all a holder ever sees."""


class MalformedBatchError(EpochError):
    """A batch that is empty, too large, or holds a non-element; nothing was evaluated."""


class KeyHolder:
    """Holder ``share.index`` of epoch ``epoch_keys.epoch``.

    The share must match the epoch's anchored public share: a holder configured with the
    wrong share would only produce answers every querier drops.
    """

    def __init__(
        self, share: KeyShare, epoch_keys: EpochKeys, on_batch: BatchHook | None = None
    ) -> None:
        expected = epoch_keys.public_shares.get(share.index)
        if expected is None or expected != share.public:
            raise EpochKeysMismatch(
                f"key share of holder {share.index} does not match epoch {epoch_keys.epoch}'s "
                "public share for that index; load the share from this epoch's DKG"
            )
        self._share = share
        self.epoch_keys = epoch_keys
        self.on_batch = on_batch

    @property
    def index(self) -> int:
        return self._share.index

    @property
    def epoch(self) -> int:
        return self.epoch_keys.epoch

    def evaluate(self, epoch: int, blinded_elements: Sequence[bytes]) -> ShareEvaluation:
        """``k_i * B`` for every element, with one batched DLEQ proof.

        Raises :class:`StaleEpochError` for any epoch but the current one and
        :class:`MalformedBatchError` for a bad batch, before any work and before the hook.
        """
        if epoch != self.epoch:
            raise StaleEpochError(epoch, self.epoch)
        batch = tuple(blinded_elements)
        if not 1 <= len(batch) <= MAX_BATCH:
            raise MalformedBatchError(
                f"a batch holds 1..{MAX_BATCH} blinded elements, got {len(batch)}"
            )
        for position, element in enumerate(batch):
            try:
                oprf.check_element(element, f"blinded element {position}")
            except OprfError as exc:
                raise MalformedBatchError(f"{exc}; send ristretto255 encodings only") from None
        evaluation = threshold_oprf.evaluate_share(self._share, batch)
        if self.on_batch is not None:
            self.on_batch(epoch, batch)
        return evaluation
