"""Standard and adversarial risks of a linear model ``f(x) = <w, x>``.

All functions take weights in frequency coordinates, ``w_freq`` with shape
``(..., d)``, and are batched over the leading axes. Because the DCT is
orthonormal, ``<w, x> = <w_freq, x_freq>`` and ``||w||_2 = ||w_freq||_2``.

Reference: Ma, Pan and Farahmand (TMLR 2023), section 4; THEORY.md section 2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from theory.signal import Problem, to_input

Array = jax.Array


def standard_risk(w_freq: Array, problem: Problem) -> Array:
    """``R_s(w) = E[1/2 (<w,x> - y)^2] = 1/2 sum_k spectrum_k^2 e~_k^2``.

    Irrelevant coordinates (``spectrum_k = 0``) do not enter.
    """
    e_freq = w_freq - problem.w_star_freq
    return 0.5 * jnp.sum(jnp.square(problem.spectrum * e_freq), axis=-1)


def weight_norm(w_freq: Array) -> Array:
    """``||w||_2 = ||w_freq||_2``, which is also the l2 Lipschitz constant."""
    return jnp.linalg.norm(w_freq, axis=-1)


def lipschitz_constant(w_freq: Array) -> Array:
    """The l2 Lipschitz constant of ``x -> <w, x>``: ``||w||_2``."""
    return weight_norm(w_freq)


def _adversarial_risk(r_s: Array, dual_norm: Array, radius) -> Array:
    # E[1/2 (|r| + eps ||w||_*)^2] with r ~ N(0, 2 R_s), E|r| = sqrt(2 R_s) sqrt(2/pi).
    return r_s + 2.0 * radius * jnp.sqrt(r_s / jnp.pi) * dual_norm + 0.5 * radius**2 * dual_norm**2


def adversarial_risk_l2(w_freq: Array, problem: Problem, radius) -> Array:
    """l2 adversarial risk ``E[max_{||delta||_2 <= eps} 1/2 (<w, x+delta> - y)^2]``.

    The worst perturbation is ``delta = eps sign(r) w/||w||`` with residual
    ``r = <e~, x~> ~ N(0, 2 R_s)``, so

        R_a = R_s + 2 eps sqrt(R_s / pi) ||w||_2 + eps^2/2 ||w||_2^2.

    At equal ``R_s`` it grows with the weight norm.
    """
    return _adversarial_risk(standard_risk(w_freq, problem), weight_norm(w_freq), radius)


def irrelevant_drift_gap(radius, e_final, e_start) -> Array:
    """The change of ``R_a`` (l2) that moving an irrelevant frequency's error
    from ``e_start`` to ``e_final`` gives when ``R_s = 0``:
    ``radius^2/2 (e_final^2 - e_start^2)``, the ``radius^2/2 ||w||^2`` term of
    :func:`adversarial_risk_l2` (``R_s`` does not see irrelevant frequencies)."""
    return 0.5 * radius**2 * (e_final**2 - e_start**2)  # NumPy or JAX arrays, in their own dtype


def adversarial_risk_linf(w_freq: Array, problem: Problem, radius) -> Array:
    """l_inf adversarial risk: the l2 formula with the dual norm ``||w||_1``.

        R_a = R_s + 2 eps sqrt(R_s / pi) ||w||_1 + eps^2/2 ||w||_1^2,

    with ``||w||_1`` taken in input (spatial) coordinates, ``w = C^T w_freq``.
    """
    l1 = jnp.sum(jnp.abs(to_input(w_freq)), axis=-1)
    return _adversarial_risk(standard_risk(w_freq, problem), l1, radius)
