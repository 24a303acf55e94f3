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

from theory.signal import SignalModel, irrelevant_mask

Array = jax.Array


def gd_error(model: SignalModel, lr) -> Callable[[Array], Array]:
    """Returns ``t -> e~(t)`` for population GD.

    Args:
      model: the signal model (its ``e0_freq`` is the starting error).
      lr: learning rate.

    Returns:
      A function of an array of (integer or real) times ``t`` with shape
      ``T`` returning ``e~(t)`` of shape ``T + (d,)``:
      ``e~_k(t) = (1 - lr spectrum_k^2)^t e~_k(0)``. Irrelevant coordinates
      are constant.
    """
    contraction = 1.0 - lr * jnp.square(model.spectrum)

    def e_freq_at(t: Array) -> Array:
        t = jnp.asarray(t)[..., None]
        return jnp.power(contraction, t) * model.e0_freq

    return e_freq_at


def gd_weights(model: SignalModel, lr) -> Callable[[Array], Array]:
    """Returns ``t -> w~(t) = w~* + e~(t)`` for population GD."""
    e_freq_at = gd_error(model, lr)
    return lambda t: model.w_star_freq + e_freq_at(t)


def gd_max_stable_lr(spectrum: Array) -> Array:
    """The stability threshold ``2 / max_k spectrum_k^2`` (inf if all are zero).

    GD is stable iff ``0 < lr < gd_max_stable_lr(spectrum)``, i.e.
    ``|1 - lr spectrum_k^2| < 1`` for every relevant ``k``.
    """
    return 2.0 / jnp.max(jnp.square(spectrum))


def gd_is_stable(spectrum: Array, lr) -> Array:
    """``0 < lr spectrum_max^2 < 2``."""
    top = lr * jnp.max(jnp.square(spectrum))
    return (lr > 0) & (top < 2.0)


def gd_limit(model: SignalModel) -> Array:
    """``lim_{t->inf} w~(t)`` for stable GD: ``w~*`` on relevant frequencies,
    ``w~*_k + e~_k(0)`` (i.e. ``w~_k(0)``) on irrelevant ones."""
    return jnp.where(irrelevant_mask(model.spectrum), model.w0_freq, model.w_star_freq)


def gd_limit_weight_norm_sq(model: SignalModel) -> Array:
    """``||w(inf)||^2 = ||w~*||^2 + sum_{irrelevant k} e~_k(0)^2`` when
    ``w~*`` vanishes on irrelevant frequencies; in general ``||gd_limit||^2``."""
    return jnp.sum(jnp.square(gd_limit(model)))
