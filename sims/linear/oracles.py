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

Irrelevant frequencies (``spectrum_k = 0``) have no data: every sample has
``x~_k = 0``, so the batch statistics (``S`` and ``X~^T xi / n``) vanish
there. The ``online`` and ``fixed`` oracles therefore draw them on the
relevant band only (:func:`on_relevant_band`), which makes a power-law
spectrum with ``m`` relevant of ``d`` frequencies cost ``O(m^2)`` a step,
not ``O(d^2)``; the gradient is exactly 0 on the irrelevant band.

Batched fast path (optional, used by :mod:`sims.linear.engine` when present):

* ``draw(kw) -> stats``: the step's randomness for a batch of step keys given
  as threefry key words ``kw`` ``(2, *batch)`` (:func:`sims.linear.sampling.key_words`),
  with trailing ``batch`` axes. ``None`` when the oracle needs no randomness.
* ``apply(state, stats, e_freq) -> g_freq``: the gradient with the *coordinate axis
  first*: ``e_freq`` is ``(d, *lead, *batch)``; ``state`` and ``stats`` leaves carry
  the trailing ``batch`` axes (``stats`` is ``None`` without ``draw``).

When both are given, ``grad(state, key, e_freq)`` is exactly
``apply(state, draw(key_words(key)), e_freq.T)`` moved back to ``(..., d)``; an
oracle without ``apply`` is run through ``grad``, vmapped over seeds.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sims.linear.sampling import (
    SAMPLERS,
    BatchStats,
    align_leading,
    draw_gradient,
    factor_matvec,
    gram,
    key_words,
    sample_batch,
    wishart_draw,
)

Array = jax.Array
OracleState = Any

#: Where a step's gradient comes from (the ``--gradient`` flag and the ``gradient`` JSON key).
GRADIENTS = ("population", "online", "fixed")


class GradientOracle(NamedTuple):
    init: Callable[[Array], OracleState]
    grad: Callable[[OracleState, Array, Array], Array]
    draw: Optional[Callable[[Array], Any]] = None
    apply: Optional[Callable[[OracleState, Any, Array], Array]] = None


def _coords_last(apply: Callable[[Array], Array], e_freq: Array) -> Array:
    """Runs a coordinate-first ``apply`` on ``e`` ``(..., d)``."""
    return jnp.moveaxis(apply(jnp.moveaxis(e_freq, -1, 0)), 0, -1)


def population_oracle(spectrum: Array) -> GradientOracle:
    """``g~ = diag(spectrum^2) e~``."""
    s2 = jnp.square(spectrum)

    def apply(state, stats, e_freq):
        return align_leading(s2, e_freq.ndim) * e_freq

    return GradientOracle(init=lambda key: (), grad=lambda state, key, e_freq: s2 * e_freq, apply=apply)


def online_oracle(spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> GradientOracle:
    """A fresh ``n``-sample batch every step, drawn from ``step_key``.

    The ``wishart`` sampler has the batched fast path; ``explicit`` (the
    ``O(n d)`` reference) only ``grad``.
    """
    if sampler == "wishart":

        def draw(kw):
            return wishart_draw(kw, spectrum, n, label_noise)

        def apply(state, stats, e_freq):
            return draw_gradient(stats, spectrum, n, e_freq)

        def grad(state, key, e_freq):
            return _coords_last(lambda e_freq_c: apply(state, draw(key_words(key)), e_freq_c), e_freq)

        return GradientOracle(init=lambda key: (), grad=grad, draw=draw, apply=apply)

    def grad_explicit(state, key, e_freq):
        stats = sample_batch(key, spectrum, n, sampler, label_noise)
        return (e_freq @ stats.factor) @ stats.factor.T - stats.label_grad

    return GradientOracle(init=lambda key: (), grad=grad_explicit)


def fixed_oracle(spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> GradientOracle:
    """One ``n``-sample training set drawn from ``data_key``, reused every step.

    The state keeps ``S = X~^T X~ / n`` (``d x d``), so a step costs ``O(d^2)``.
    """

    def init(key) -> BatchStats:
        stats = sample_batch(key, spectrum, n, sampler, label_noise)
        return BatchStats(gram(stats.factor), stats.label_grad)

    def grad(state: BatchStats, key, e_freq):
        return e_freq @ state.factor - state.label_grad  # S is symmetric

    def apply(state: BatchStats, stats, e_freq):
        g = factor_matvec(state.factor, e_freq, lower=False)
        return g - align_leading(state.label_grad, g.ndim)

    return GradientOracle(init=init, grad=grad, apply=apply)


def _rows(spectrum: Array) -> Optional[np.ndarray]:
    """Indices of the relevant frequencies, or ``None`` if all are relevant
    (or the spectrum is traced, so that its zeros are unknown)."""
    if isinstance(spectrum, jax.core.Tracer):
        return None
    rel = np.flatnonzero(np.asarray(spectrum) != 0)
    return None if len(rel) == spectrum.shape[-1] else rel


def _take(x: Array, rel: np.ndarray, axis: int) -> Array:
    """The ``rel`` entries of ``x`` along ``axis`` (a slice when they lead)."""
    if np.array_equal(rel, np.arange(len(rel))):
        return jax.lax.slice_in_dim(x, 0, len(rel), axis=axis)
    return jnp.take(x, rel, axis=axis)


def _put(g_rel: Array, rel: np.ndarray, d: int, axis: int) -> Array:
    """``g_rel`` placed at ``rel`` along ``axis`` of length ``d``, zeros elsewhere."""
    g_rel = jnp.moveaxis(g_rel, axis, 0)
    if np.array_equal(rel, np.arange(len(rel))):
        g = jnp.concatenate([g_rel, jnp.zeros((d - len(rel),) + g_rel.shape[1:], g_rel.dtype)])
    else:
        g = jnp.zeros((d,) + g_rel.shape[1:], g_rel.dtype).at[rel].set(g_rel)
    return jnp.moveaxis(g, 0, axis)


def on_relevant_band(make: Callable[..., GradientOracle], spectrum: Array, *args) -> GradientOracle:
    """``make(spectrum[rel], *args)`` lifted back to all ``d`` frequencies.

    ``rel`` are the relevant frequencies; ``e`` is restricted to them and
    the gradient is exactly 0 on the others (no sample has energy there).
    """
    rel = _rows(spectrum)
    if rel is None or len(rel) == 0:
        return make(spectrum, *args)
    d = spectrum.shape[-1]
    inner = make(_take(spectrum, rel, -1), *args)

    def grad(state, key, e_freq):
        return _put(inner.grad(state, key, _take(e_freq, rel, -1)), rel, d, -1)

    def apply(state, stats, e_freq):
        return _put(inner.apply(state, stats, _take(e_freq, rel, 0)), rel, d, 0)

    return GradientOracle(inner.init, grad, inner.draw, apply if inner.apply is not None else None)


def make_oracle(
    mode: str, spectrum: Array, n: int = 0, sampler: str = "wishart", label_noise: float = 0.0
) -> GradientOracle:
    """Builds the oracle for ``mode`` (one of :data:`GRADIENTS`).

    ``n`` is the batch size (online) or training-set size (fixed); it must be
    positive for those modes and is ignored for ``population``.
    """
    if mode == "population":
        return population_oracle(spectrum)
    if mode not in GRADIENTS:
        raise ValueError(f"unknown gradient mode {mode!r}; choose from {', '.join(GRADIENTS)}")
    if n <= 0:
        raise ValueError(f"mode {mode!r} needs a positive batch size, got {n}")
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    make = online_oracle if mode == "online" else fixed_oracle
    return on_relevant_band(make, jnp.asarray(spectrum), n, sampler, label_noise)
