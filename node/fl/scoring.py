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

import numpy as np

from node.channel import DEFAULT_TIMEOUT, Channel
from node.fl.models import FloatArray, sigmoid
from node.fl.vertical import VerticalError, VerticalShare

__all__ = ["STEP_PARTIAL", "partial_logits", "score_feature_holder", "score_label_holder"]

STEP_PARTIAL = "vfl-score/partial"


def partial_logits(weights: FloatArray, x: FloatArray, intercept: float = 0.0) -> FloatArray:
    """X w (+ the intercept, which only the label holder holds)."""
    if x.ndim != 2 or x.shape[1] != len(weights):
        raise VerticalError(f"rows must have {len(weights)} columns, got shape {x.shape}")
    out: FloatArray = x @ weights + intercept
    return out


def score_feature_holder(
    channel: Channel, label_holder: str, share: VerticalShare, x: FloatArray
) -> None:
    """Send this party's partial logits for the aligned rows ``x`` to the label holder."""
    logits = partial_logits(share.weights, x)
    channel.send(label_holder, STEP_PARTIAL, np.asarray(logits, dtype=">f8").tobytes())


def score_label_holder(
    channel: Channel,
    feature_holders: tuple[str, ...],
    share: VerticalShare,
    x: FloatArray,
    timeout: float = DEFAULT_TIMEOUT,
) -> FloatArray:
    """The scores (probabilities) of the aligned rows ``x``; A's share ends with c."""
    u = partial_logits(share.weights[:-1], x, float(share.weights[-1]))
    for peer in feature_holders:
        payload = channel.receive(peer, STEP_PARTIAL, timeout)
        if len(payload) != 8 * len(u):
            raise VerticalError(
                f"{STEP_PARTIAL!r} from {peer}: {len(payload)} bytes for {len(u)} rows"
            )
        part = np.frombuffer(payload, dtype=">f8").astype(np.float64)
        if not np.all(np.isfinite(part)):
            raise VerticalError(f"{STEP_PARTIAL!r} from {peer}: non-finite partial logits")
        u = u + part
    return sigmoid(u)
