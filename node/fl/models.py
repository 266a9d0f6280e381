"""The models federated learning trains: logistic regression and a one-hidden-layer MLP.

Plain numpy, float64, parameters as one flat vector, so an update is one vector the
secure sum can carry and a model is one array that hashes the same everywhere.
Everything is deterministic given its seeds: a run can be replayed by an auditor and
two honest parties training the same data get bit-identical models.

Objective (both models): mean binary cross-entropy + (l2 / 2) * ||weights||^2 with the
biases unregularised, which is scikit-learn's ``LogisticRegression(C)`` objective
divided by C * n for l2 = 1 / (C * n).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ledger.canonical import canonical_json, digest

__all__ = [
    "MLP",
    "LocalTraining",
    "LogisticRegression",
    "Model",
    "ModelError",
    "local_update",
    "loss",
    "model_bytes",
    "model_digest",
    "predict_proba",
    "sigmoid",
]

FloatArray = npt.NDArray[np.float64]
MODEL_DIGEST_KIND = "fl-model"


class ModelError(ValueError):
    """Data or parameters that do not fit the model (shape, labels, values)."""


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, computed without overflow for large |z|."""
    out: FloatArray = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    ez = np.exp(z[~positive])
    out[~positive] = ez / (1.0 + ez)
    return out


class Model(Protocol):
    """What FedAvg needs from a model: a flat parameter vector and its gradient."""

    @property
    def name(self) -> str: ...

    @property
    def n_params(self) -> int: ...

    def init(self, seed: int) -> FloatArray: ...

    def logits(self, params: FloatArray, x: FloatArray) -> FloatArray: ...

    def gradient(
        self, params: FloatArray, x: FloatArray, y: FloatArray, l2: float
    ) -> FloatArray: ...

    def to_json(self) -> dict[str, object]: ...


def _check_data(x: FloatArray, y: FloatArray, features: int) -> None:
    if x.ndim != 2 or x.shape[1] != features:
        raise ModelError(f"features must be an (n, {features}) array, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ModelError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ModelError("labels must be 0 or 1")
    if not np.all(np.isfinite(x)):
        raise ModelError("features contain NaN or infinite values")


@dataclass(frozen=True)
class LogisticRegression:
    """params = (w_1..w_d, b)."""

    features: int
    name: str = "logistic-regression"

    @property
    def n_params(self) -> int:
        return self.features + 1

    def init(self, seed: int) -> FloatArray:
        """Zeros: the objective is convex, so no symmetry needs breaking (seed unused)."""
        del seed
        return np.zeros(self.n_params, dtype=np.float64)

    def logits(self, params: FloatArray, x: FloatArray) -> FloatArray:
        out: FloatArray = x @ params[:-1] + params[-1]
        return out

    def gradient(self, params: FloatArray, x: FloatArray, y: FloatArray, l2: float) -> FloatArray:
        _check_data(x, y, self.features)
        residual = sigmoid(self.logits(params, x)) - y
        grad = np.empty(self.n_params, dtype=np.float64)
        grad[:-1] = x.T @ residual / len(y) + l2 * params[:-1]
        grad[-1] = residual.mean()
        return grad

    def to_json(self) -> dict[str, object]:
        return {"model": self.name, "features": self.features}


@dataclass(frozen=True)
class MLP:
    """One hidden tanh layer, sigmoid output. params = (W1 (d x h) row-major, b1, w2, b2)."""

    features: int
    hidden: int = 8
    name: str = "mlp"

    @property
    def n_params(self) -> int:
        return self.features * self.hidden + 2 * self.hidden + 1

    def _split(self, params: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        d, h = self.features, self.hidden
        if params.shape != (self.n_params,):
            raise ModelError(f"expected {self.n_params} parameters, got shape {params.shape}")
        w1 = params[: d * h].reshape(d, h)
        b1 = params[d * h : d * h + h]
        w2 = params[d * h + h : d * h + 2 * h]
        return w1, b1, w2, float(params[-1])

    def init(self, seed: int) -> FloatArray:
        """Glorot-uniform weights from a seeded PCG64, zero biases: public and replayable
        (the initial model is agreed, not secret), and random so hidden units differ."""
        rng = np.random.Generator(np.random.PCG64(seed))
        d, h = self.features, self.hidden
        params = np.zeros(self.n_params, dtype=np.float64)
        limit1 = math.sqrt(6.0 / (d + h))
        params[: d * h] = rng.uniform(-limit1, limit1, d * h)
        limit2 = math.sqrt(6.0 / (h + 1))
        params[d * h + h : d * h + 2 * h] = rng.uniform(-limit2, limit2, h)
        return params

    def logits(self, params: FloatArray, x: FloatArray) -> FloatArray:
        w1, b1, w2, b2 = self._split(params)
        out: FloatArray = np.tanh(x @ w1 + b1) @ w2 + b2
        return out

    def gradient(self, params: FloatArray, x: FloatArray, y: FloatArray, l2: float) -> FloatArray:
        _check_data(x, y, self.features)
        w1, b1, w2, b2 = self._split(params)
        hidden = np.tanh(x @ w1 + b1)
        residual = (sigmoid(hidden @ w2 + b2) - y) / len(y)
        back = np.outer(residual, w2) * (1.0 - hidden**2)
        d, h = self.features, self.hidden
        grad = np.empty(self.n_params, dtype=np.float64)
        grad[: d * h] = (x.T @ back + l2 * w1).ravel()
        grad[d * h : d * h + h] = back.sum(axis=0)
        grad[d * h + h : d * h + 2 * h] = hidden.T @ residual + l2 * w2
        grad[-1] = residual.sum()
        return grad

    def to_json(self) -> dict[str, object]:
        return {"model": self.name, "features": self.features, "hidden": self.hidden}


def predict_proba(model: Model, params: FloatArray, x: FloatArray) -> FloatArray:
    return sigmoid(model.logits(params, x))


def loss(model: Model, params: FloatArray, x: FloatArray, y: FloatArray) -> float:
    """Mean binary cross-entropy (no penalty): what a report shows."""
    z = model.logits(params, x)
    # log(1 + e^z) - y z, stable for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass(frozen=True)
class LocalTraining:
    """A provider's local work in one round. ``batch_size`` None is full-batch gradient
    descent (no randomness at all); otherwise mini-batches in an order drawn from
    ``shuffle_seed``, the round and the provider's name, so a run replays exactly."""

    steps_or_epochs: int = 5
    learning_rate: float = 1.0
    l2: float = 0.0
    batch_size: int | None = None
    unit: Literal["steps", "epochs"] = "steps"
    shuffle_seed: int = 0

    def __post_init__(self) -> None:
        if self.steps_or_epochs < 1:
            raise ModelError("steps_or_epochs must be >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ModelError("learning_rate must be finite and > 0")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ModelError("l2 must be finite and >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise ModelError("batch_size must be >= 1")

    def to_json(self) -> dict[str, object]:
        return {
            "steps_or_epochs": self.steps_or_epochs,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "batch_size": self.batch_size,
            "unit": self.unit,
            "shuffle_seed": self.shuffle_seed,
        }


def _batch_rng(config: LocalTraining, round_number: int, party: str) -> np.random.Generator:
    party_key = int.from_bytes(hashlib.sha256(party.encode("utf-8")).digest()[:8], "big")
    seq = np.random.SeedSequence([config.shuffle_seed, round_number, party_key])
    return np.random.Generator(np.random.PCG64(seq))


def local_update(
    model: Model,
    params: FloatArray,
    x: FloatArray,
    y: FloatArray,
    config: LocalTraining,
    round_number: int = 0,
    party: str = "",
) -> FloatArray:
    """Train from the global ``params`` on local data; return the change (new - old),
    which is what FedAvg averages."""
    if len(y) == 0:
        raise ModelError("no local rows to train on")
    current = np.array(params, dtype=np.float64, copy=True)
    n = len(y)
    if config.batch_size is None or config.batch_size >= n:
        steps = config.steps_or_epochs
        for _ in range(steps):
            current -= config.learning_rate * model.gradient(current, x, y, config.l2)
    else:
        rng = _batch_rng(config, round_number, party)
        size = config.batch_size
        done = 0
        while True:
            order = rng.permutation(n)
            for start in range(0, n, size):
                idx = order[start : start + size]
                current -= config.learning_rate * model.gradient(current, x[idx], y[idx], config.l2)
                done += 1
                if config.unit == "steps" and done >= config.steps_or_epochs:
                    return current - params
            if config.unit == "epochs" and done >= config.steps_or_epochs * math.ceil(n / size):
                return current - params
    delta: FloatArray = current - params
    return delta


def model_bytes(model: Model, params: FloatArray) -> bytes:
    """Canonical bytes: RFC 8785 JSON of the architecture, NUL, then the parameters as
    big-endian IEEE-754 float64 (exact: no decimal formatting of floats)."""
    values = np.asarray(params, dtype=np.float64)
    if values.shape != (model.n_params,):
        raise ModelError(f"expected {model.n_params} parameters, got shape {values.shape}")
    header = canonical_json({**model.to_json(), "dtype": ">f8", "length": model.n_params})
    return header + b"\0" + values.astype(">f8").tobytes()


def model_digest(model: Model, params: FloatArray) -> bytes:
    """The model's 32-byte digest (domain ``fl-model``), what rounds and audits anchor."""
    return digest(MODEL_DIGEST_KIND, model_bytes(model, params))
