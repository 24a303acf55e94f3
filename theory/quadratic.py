"""The quadratic every small-learning-rate prediction runs on.

With noise-free labels the risk of the linear model is a quadratic in the
error ``e = w - w*``: ``R(e) = 1/2 e~^T H~ e~`` with ``H~ = E[x~ x~^T]``.

* Population (THEORY.md section 8): ``H~ = diag(sigma^2)``.
* A fixed training set of ``n`` samples (section 8.4): ``H~_S = X~^T X~ / n``,
  with ``w*`` unchanged, so every population prediction applies per seed
  with ``H~ -> H~_S``.

The optimizers act in input coordinates, where the gradient is
``g = H e = C^T H~ e~`` (``H = C^T H~ C``). Following THEORY.md section 8,
predictions keep the state in frequency coordinates and form ``g`` from
``H~ e~``: rounding in ``g`` is then relative to the relevant error, which
goes to 0, not to the weights.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from theory.signal import Problem, dct_basis, to_input

Array = jax.Array


class Quadratic(NamedTuple):
    """A quadratic risk and a start, in frequency coordinates (a pytree).

    Attributes:
      hessian_freq: ``(d, d)`` ``H~``, symmetric positive semi-definite.
      e0_freq: ``(d,)`` start error ``e~(0) = w~(0) - w~*``.
    """

    hessian_freq: Array
    e0_freq: Array

    @property
    def dim(self) -> int:
        return self.e0_freq.shape[-1]


def population_quadratic(problem: Problem) -> Quadratic:
    """``H~ = diag(spectrum^2)`` and ``e~(0)`` of ``model`` (section 8)."""
    s2 = jnp.square(problem.spectrum)
    return Quadratic(s2[..., :, None] * jnp.eye(problem.dim, dtype=s2.dtype), problem.e0_freq)


def empirical_quadratic(x_freq: Array, e0_freq: Array) -> Quadratic:
    """``H~_S = X~^T X~ / n`` of a training set ``x_freq`` ``(n, d)`` (section 8.4)."""
    return Quadratic(x_freq.T @ x_freq / x_freq.shape[0], e0_freq)


def input_hessian(hessian_freq: Array) -> Array:
    """``H = C^T H~ C`` in input coordinates."""
    c = dct_basis(hessian_freq.shape[-1], hessian_freq.dtype)
    return c.T @ hessian_freq @ c


def gradient_input(hessian_freq: Array, e_freq: Array) -> Array:
    """The input-coordinate gradient ``g = C^T (H~ e~)`` (``e_freq`` ``(..., d)``)."""
    return to_input(jnp.einsum("...ij,...j->...i", hessian_freq, e_freq))


def batch_gradient_variance(hessian_freq: Array, e_freq: Array, n) -> Array:
    """``Var(g_B,i) = (H_ii e^T H e + g_i^2) / n`` (THEORY.md section 8.3).

    The gradient of a fresh batch of ``n`` Gaussian samples,
    ``g_B = X^T X e / n``, in input coordinate ``i``: each sample contributes
    ``x_i (x^T e)``, a product of two correlated normals with variances
    ``H_ii`` and ``e^T H e`` and covariance ``g_i``, whose variance is
    ``H_ii e^T H e + g_i^2``.

    Args:
      hessian_freq: ``(d, d)`` population ``H~`` (the samples' covariance).
      e_freq: ``(..., d)`` error.
      n: batch size.

    Returns:
      ``(..., d)`` variances, input coordinates.
    """
    h_in = input_hessian(hessian_freq)
    g = gradient_input(hessian_freq, e_freq)
    ehe = jnp.einsum("...i,ij,...j->...", e_freq, hessian_freq, e_freq)
    return (jnp.diagonal(h_in) * ehe[..., None] + jnp.square(g)) / n
