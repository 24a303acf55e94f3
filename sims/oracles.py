"""Gradient oracles: population, online and fixed-dataset gradients.

An oracle is a pair of pure functions, in the style of
``optax.GradientTransformation``:

* ``init(data_key) -> OracleState``: any data fixed for the whole run;
* ``grad(state, step_key, e_freq) -> g_freq``: the gradient of the risk (or
  of a batch) in frequency coordinates at error ``e~ = w~ - w~*``. ``e_freq``
  may be ``(..., d)``: every row sees the same batch.

Modes:

* ``population``: ``g~ = diag(spectrum^2) e~``, the exact expected gradient.
* ``online``: a fresh batch of ``n`` samples every step (the paper's setting).
* ``fixed``: one training set of ``n`` samples, reused every step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from sims.sampling import BatchStats, batch_gradient, sample_batch

Array = jax.Array
OracleState = Any

MODES = ("population", "online", "fixed")


class GradientOracle(NamedTuple):
    init: Callable[[Array], OracleState]
    grad: Callable[[OracleState, Array, Array], Array]


def population_oracle(spectrum: Array) -> GradientOracle:
    """``g~ = diag(spectrum^2) e~``."""
    s2 = jnp.square(spectrum)
    return GradientOracle(init=lambda key: (), grad=lambda state, key, e: s2 * e)


def online_oracle(spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> GradientOracle:
    """A fresh ``n``-sample batch every step, drawn from ``step_key``."""

    def grad(state, key, e):
        return batch_gradient(sample_batch(key, spectrum, n, sampler, label_noise), e)

    return GradientOracle(init=lambda key: (), grad=grad)


def fixed_oracle(spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> GradientOracle:
    """One ``n``-sample training set drawn from ``data_key``, reused every step.

    The state keeps ``S = X~^T X~ / n`` (``d x d``), so a step costs ``O(d^2)``.
    """

    def init(key) -> BatchStats:
        stats = sample_batch(key, spectrum, n, sampler, label_noise)
        return BatchStats(stats.factor @ stats.factor.T, stats.label_grad)

    def grad(state: BatchStats, key, e):
        return e @ state.factor - state.label_grad  # S is symmetric

    return GradientOracle(init=init, grad=grad)


def make_oracle(
    mode: str, spectrum: Array, n: int = 0, sampler: str = "wishart", label_noise: float = 0.0
) -> GradientOracle:
    """Builds the oracle for ``mode`` (one of :data:`MODES`).

    ``n`` is the batch size (online) or training-set size (fixed); it must be
    positive for those modes and is ignored for ``population``.
    """
    if mode == "population":
        return population_oracle(spectrum)
    if mode not in MODES:
        raise ValueError(f"unknown gradient mode {mode!r}; choose from {', '.join(MODES)}")
    if n <= 0:
        raise ValueError(f"mode {mode!r} needs a positive batch size, got {n}")
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    make = online_oracle if mode == "online" else fixed_oracle
    return make(spectrum, n, sampler, label_noise)
