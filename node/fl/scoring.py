"""Batch scoring with a trained vertical model: only the label holder learns scores.

Each party computes the partial logits of its own columns with its own model share;
each feature holder sends its partial logits u_Bk = X_Bk w_Bk to the label holder *in
plaintext*, which adds them to its own u_A = X_A w_A + c and applies the sigmoid.

Why plaintext and not masked or encrypted: the label holder learns the score
sigmoid(u_A + sum_k u_Bk) and knows u_A, so with one feature holder it can recover u_B
from the score anyway; masking would hide nothing. (With several feature holders it
learns each u_Bk rather than only their sum: the same disclosure as in training,
where it sees every u_Bk per batch. Hiding the individual u_Bk would take the secure
sum of ``node/crypto/secagg.py`` among the feature holders; not done here.) Feature
holders receive nothing at all, so they learn no score.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from node.channel import DEFAULT_TIMEOUT, Channel
from node.fl.models import FloatArray, sigmoid
from node.fl.vertical import VerticalError

__all__ = [
    "CHUNK_ROWS",
    "STEP_PARTIAL",
    "partial_logits",
    "receive_logits",
    "score_feature_holder",
    "score_label_holder",
    "send_logits",
]

STEP_PARTIAL: Final = "vfl-score/partial"
CHUNK_ROWS: Final = 65536  # partial logits per message: 512 KiB, far inside 16 MB


def partial_logits(weights: FloatArray, x: FloatArray, intercept: float = 0.0) -> FloatArray:
    """X w (+ the intercept, which only the label holder holds)."""
    if x.ndim != 2 or x.shape[1] != len(weights):
        raise VerticalError(f"rows must have {len(weights)} columns, got shape {x.shape}")
    out: FloatArray = x @ weights + intercept
    return out


def _chunks(rows: int) -> range:
    return range(0, max(rows, 1), CHUNK_ROWS)


def send_logits(channel: Channel, peer: str, logits: FloatArray) -> None:
    """Logits of the aligned rows, in order, as big-endian float64 in chunks of
    :data:`CHUNK_ROWS` rows (steps ``vfl-score/partial/<i>``)."""
    wire = np.asarray(logits, dtype=">f8")
    for i, start in enumerate(_chunks(len(wire))):
        channel.send(peer, f"{STEP_PARTIAL}/{i}", wire[start : start + CHUNK_ROWS].tobytes())


def receive_logits(channel: Channel, peer: str, rows: int, timeout: float) -> FloatArray:
    """What :func:`send_logits` sent: exactly ``rows`` finite values."""
    out = np.empty(rows, dtype=np.float64)
    for i, start in enumerate(_chunks(rows)):
        step = f"{STEP_PARTIAL}/{i}"
        count = len(out[start : start + CHUNK_ROWS])
        payload = channel.receive(peer, step, timeout)
        if len(payload) != 8 * count:
            raise VerticalError(f"{step!r} from {peer}: {len(payload)} bytes for {count} rows")
        part = np.frombuffer(payload, dtype=">f8")
        if not np.all(np.isfinite(part)):
            raise VerticalError(f"{step!r} from {peer}: non-finite logits")
        out[start : start + count] = part
    return out


def score_feature_holder(
    channel: Channel, label_holder: str, weights: FloatArray, x: FloatArray
) -> None:
    """Send this party's partial logits of the aligned rows ``x`` (its share's
    ``weights``) to the label holder."""
    send_logits(channel, label_holder, partial_logits(weights, x))


def score_label_holder(
    channel: Channel,
    feature_holders: tuple[str, ...],
    weights: FloatArray,
    x: FloatArray,
    timeout: float = DEFAULT_TIMEOUT,
) -> FloatArray:
    """The scores (probabilities) of the aligned rows ``x``; A's ``weights`` end with
    the intercept."""
    u = partial_logits(weights[:-1], x, float(weights[-1]))
    for peer in feature_holders:
        u = u + receive_logits(channel, peer, len(u), timeout)
    return sigmoid(u)
