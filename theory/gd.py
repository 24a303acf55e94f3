"""Gradient descent on the population risk, in closed form.

With the population gradient ``grad R_s(w) = C^T diag(spectrum^2) e~``, GD
decouples in frequency (THEORY.md section 3):

    e~_k(t) = (1 - lr spectrum_k^2)^t e~_k(0).

Like ``neural_tangents.predict``, the trajectory is returned as a function of
time that can be evaluated on any array of times without iterating.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from theory.quadratic import Quadratic
from theory.signal import Problem, irrelevant_mask

Array = jax.Array


def gd_error(problem: Problem, lr) -> Callable[[Array], Array]:
    """Returns ``t -> e~(t)`` for population GD.

    Args:
      problem: the signal model (its ``e0_freq`` is the starting error).
      lr: learning rate.

    Returns:
      A function of an array of (integer or real) times ``t`` with shape
      ``T`` returning ``e~(t)`` of shape ``T + (d,)``:
      ``e~_k(t) = (1 - lr spectrum_k^2)^t e~_k(0)``. Irrelevant coordinates
      are constant.
    """
    contraction = 1.0 - lr * jnp.square(problem.spectrum)

    def e_freq_at(t: Array) -> Array:
        t = jnp.asarray(t)[..., None]
        return jnp.power(contraction, t) * problem.e0_freq

    return e_freq_at


def gd_error_quadratic(quad: Quadratic, lr) -> Callable[[Array], Array]:
    """Returns ``t -> e~(t) = (I - lr H~) ^ t e~(0)`` for GD on any quadratic.

    The exact discrete trajectory of GD on ``R(e~) = 1/2 e~^T H~ e~``, e.g. on
    a fixed training set with ``H~ = H~_S = X~^T X~ / n`` (THEORY.md section
    8.4; ``theory.quadratic.empirical_quadratic``). With the eigendecomposition
    ``H~ = Q diag(lambda) Q^T`` (``eigh`` of the symmetric ``H~``),

        e~(t) = e~(0) + Q diag((1 - lr lambda)^t - 1) Q^T e~(0),

    written as a correction to ``e~(0)`` so that directions with
    ``lambda = 0`` contribute exactly nothing. A frequency with
    ``H~_kk = 0`` (an irrelevant one: every sample has ``x~_k = 0``, and a zero
    diagonal entry of a PSD matrix zeroes its row) is returned as ``e~_k(0)``
    exactly.

    Rounding: ``eigh`` is backward stable (the computed ``Q, lambda`` are
    exact for some ``H~ + E`` with ``||E|| <= p(d) U ||H~||`` and ``Q``
    orthonormal to ``p(d) U``), so for ``0 < lr ||H~|| <= 2`` the result is
    within about ``(2 t p(d) + 5 t + O(d)) U ||e~(0)||`` of exact (``U`` the
    unit roundoff).

    Args:
      quad: ``H~`` (symmetric PSD) and the start ``e~(0)``.
      lr: learning rate.

    Returns:
      A function of an array of times ``t`` (shape ``T``) returning ``e~(t)``
      of shape ``T + (d,)``. Real non-integer ``t`` needs every
      ``1 - lr lambda >= 0`` (``lr lambda_max <= 1``); otherwise powers of
      negative factors are NaN there.
    """
    h = quad.hessian_freq
    e0 = quad.e0_freq
    lam, q = jnp.linalg.eigh(h)
    contraction = 1.0 - lr * lam
    coef = q.T @ e0
    fixed = jnp.diagonal(h) == 0

    def e_freq_at(t: Array) -> Array:
        t = jnp.asarray(t)[..., None]
        moved = (jnp.power(contraction, t) - 1.0) * coef
        return jnp.where(fixed, e0, e0 + moved @ q.T)

    return e_freq_at


def gd_weights(problem: Problem, lr) -> Callable[[Array], Array]:
    """Returns ``t -> w~(t) = w~* + e~(t)`` for population GD."""
    e_freq_at = gd_error(problem, lr)
    return lambda t: problem.w_star_freq + e_freq_at(t)


def gd_max_stable_lr(spectrum: Array) -> Array:
    """The stability threshold ``2 / max_k spectrum_k^2`` (inf if all are zero).

    GD is stable iff ``0 < lr < gd_max_stable_lr(spectrum)``, i.e.
    ``|1 - lr spectrum_k^2| < 1`` for every relevant ``k``.
    """
    return 2.0 / jnp.max(jnp.square(spectrum))


def gd_max_monotone_lr(spectrum: Array) -> Array:
    """``1 / max_k spectrum_k^2``: below it every contraction ``1 - lr sigma_k^2``
    is positive, so GD's error keeps its sign and ``e~(t)`` is defined at real
    ``t`` (:func:`theory.phase_bounds.gd_time_at_risk` needs it)."""
    return 1.0 / jnp.max(jnp.square(spectrum))


def gd_is_stable(spectrum: Array, lr) -> Array:
    """``0 < lr spectrum_max^2 < 2``."""
    top = lr * jnp.max(jnp.square(spectrum))
    return (lr > 0) & (top < 2.0)


def gd_limit(problem: Problem) -> Array:
    """``lim_{t->inf} w~(t)`` for stable GD: ``w~*`` on relevant frequencies,
    ``w~*_k + e~_k(0)`` (i.e. ``w~_k(0)``) on irrelevant ones."""
    return jnp.where(irrelevant_mask(problem.spectrum), problem.w0_freq, problem.w_star_freq)


def gd_limit_weight_norm_sq(problem: Problem) -> Array:
    """``||w(inf)||^2 = ||w~*||^2 + sum_{irrelevant k} e~_k(0)^2`` when
    ``w~*`` vanishes on irrelevant frequencies; in general ``||gd_limit||^2``."""
    return jnp.sum(jnp.square(gd_limit(problem)))
