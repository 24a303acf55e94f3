"""Exact sufficient statistics of a batch of the signal model.

Labels are noise-free (or carry Gaussian noise ``xi``) and the model is
linear, so the gradient of an ``n``-sample batch,

    g~ = (1/n) X~^T (X~ e~ - xi) = S e~ - (1/n) X~^T xi,

depends on the data only through ``S = (1/n) X~^T X~`` and ``X~^T xi / n``.
``n S`` is Wishart(n, diag(spectrum^2)), which the Bartlett decomposition
samples in ``O(d^2)`` whatever ``n`` is:

    n S = D A A^T D,   D = diag(spectrum),
    A_ii = sqrt(chi^2_{n-i}),  A_ij ~ N(0, 1) (i > j),  A is d x min(n, d).

With ``n < d`` the same construction (``A`` lower trapezoidal, ``min(n, d)``
columns) is the QR factor of the ``n x d`` Gaussian matrix, so it is exact
there too. Given ``X~``, ``X~^T xi / n ~ N(0, noise^2 S / n)``, which is
``noise / sqrt(n) L z`` for any factor ``S = L L^T``; Bartlett hands us ``L``.
Irrelevant frequencies (``spectrum_k = 0``) get exactly zero rows.

Reference: M. S. Bartlett, *On the theory of statistical regression*, 1933.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

SAMPLERS = ("wishart", "explicit")


class BatchStats(NamedTuple):
    """Sufficient statistics of one batch in frequency coordinates.

    Attributes:
      factor: ``(d, m)`` with ``S = factor @ factor.T = X~^T X~ / n``.
      label_grad: ``(d,)``, ``X~^T xi / n`` (zeros without label noise).
    """

    factor: Array
    label_grad: Array


def batch_gradient(stats: BatchStats, e_freq: Array) -> Array:
    """``g~ = S e~ - X~^T xi / n`` in ``O(d m)``; ``e_freq`` is ``(..., d)``."""
    return (e_freq @ stats.factor) @ stats.factor.T - stats.label_grad


def bartlett_factor(key: Array, d: int, n: int, dtype=jnp.float32) -> Array:
    """Lower-trapezoidal ``A`` (``d x min(n, d)``) with ``A A^T ~ Wishart(n, I_d)``.

    ``A_ii = sqrt(chi^2_{n-i})`` on the diagonal, standard normals below it.
    """
    m = min(n, d)
    k_chi, k_norm = jax.random.split(key)
    dof = n - jnp.arange(m, dtype=dtype)
    # chi^2_k = 2 Gamma(k/2); jax.random.gamma is exact (Marsaglia-Tsang).
    diag = jnp.sqrt(2.0 * jax.random.gamma(k_chi, dof / 2.0, dtype=dtype))
    below = jnp.tril(jax.random.normal(k_norm, (d, m), dtype=dtype), k=-1)
    return below + jnp.eye(d, m, dtype=dtype) * diag


def sample_wishart(key: Array, spectrum: Array, n: int, label_noise: float = 0.0) -> BatchStats:
    """Exact batch statistics by the Bartlett decomposition, ``O(d^2)`` per call."""
    d = spectrum.shape[-1]
    k_a, k_xi = jax.random.split(key)
    factor = spectrum[:, None] * bartlett_factor(k_a, d, n, spectrum.dtype) / jnp.sqrt(n)
    if label_noise:
        z = jax.random.normal(k_xi, (factor.shape[1],), spectrum.dtype)
        label_grad = (label_noise / jnp.sqrt(n)) * (factor @ z)
    else:
        label_grad = jnp.zeros_like(spectrum)
    return BatchStats(factor, label_grad)


def sample_explicit(key: Array, spectrum: Array, n: int, label_noise: float = 0.0) -> BatchStats:
    """Batch statistics from ``n`` explicit samples, ``O(n d)`` per call: the reference."""
    d = spectrum.shape[-1]
    k_x, k_xi = jax.random.split(key)
    x_freq = jax.random.normal(k_x, (n, d), spectrum.dtype) * spectrum
    factor = x_freq.T / jnp.sqrt(n)
    if label_noise:
        xi = label_noise * jax.random.normal(k_xi, (n,), spectrum.dtype)
        label_grad = x_freq.T @ xi / n
    else:
        label_grad = jnp.zeros_like(spectrum)
    return BatchStats(factor, label_grad)


def sample_batch(key: Array, spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> BatchStats:
    """Dispatches to :func:`sample_wishart` or :func:`sample_explicit`."""
    if sampler == "wishart":
        return sample_wishart(key, spectrum, n, label_noise)
    if sampler == "explicit":
        return sample_explicit(key, spectrum, n, label_noise)
    raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
