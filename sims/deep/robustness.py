"""Robustness of classifiers: noise, PGD attacks and Lipschitz bounds.

Everything is stated for one classifier (a logits function, or a parameter
pytree for the Lipschitz bounds) and one vector per sample; the caller
vmaps over seeds and settings. A sample counts as correct when its logit margin
``m(x) = z_y(x) - max_{j != y} z_j(x)`` is positive (:func:`sims.deep.training.margin`).

* **Noise**: Gaussian noise, white or restricted to a set of 2-D DCT
  frequencies; its power is fixed at ``E ||delta||_2^2 = 64 sigma^2``, the
  power of white noise of per-pixel standard deviation ``sigma``, so that
  bands of different sizes are compared at equal power.
* **PGD** (Madry et al., 2018) on the margin: ``delta <- P(delta - a u)``,
  ``u`` the steepest-descent direction of ``m`` for the norm (``g / ||g||_2``
  for l2, ``sign(g)`` for l_inf, ``g = grad_delta m`` by ``jax.grad``), ``P``
  the projection onto the ball, from a uniform random start in the ball.
  The step ``a = step_frac * radius`` does not depend on the number of steps,
  so a longer run extends a shorter one; the attack keeps the smallest
  margin met on the way, and every iterate is in the ball, so accuracy under
  attack can only fall with more steps. The accuracy after ``T/2`` and ``T``
  steps measures convergence. The iteration is :func:`sims.common.balls.pgd`, the
  project's one PGD, on ``-m``. Inputs are not clipped to ``[0, 1]``: the
  threat model is the norm ball, as in the paper's theory.
* **Lipschitz constant** ``L`` of the logits ``f: R^64 -> R^10`` in l2. Upper
  bound: ``prod_l ||A_l||_2`` over the linear layers (ReLU and max-pooling
  are 1-Lipschitz), each norm by power iteration. Lower estimate: for every
  ``x``, ``||grad m(x)||_2 = ||J(x)^T (e_y - e_j)||_2 <= sqrt2 ||J(x)||_2 <= sqrt2 L``,
  so ``max_x ||grad m(x)||_2 / sqrt2 <= L``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import balls
from sims.common.balls import NORMS
from sims.deep.digits import DIM, idct2
from sims.deep.networks import Params, apply, linear_maps
from sims.deep.training import margin

Array = jax.Array


# --- PGD ----------------------------------------------------------------------------------------


class AttackResult(NamedTuple):
    """The outcome of :func:`pgd` on ``n`` samples.

    Attributes:
      delta: ``(n, 64)`` the perturbation with the smallest margin met.
      margins: ``(n, steps + 1)`` smallest margin among the first ``k + 1``
        iterates ``delta_0 .. delta_k`` (non-increasing in ``k``).
    """

    delta: Array
    margins: Array


def pgd(key: Array, logits_fn: Callable[[Array], Array], x: Array, y: Array, radius, norm: str, steps: int,
        step_frac: float = 0.25) -> AttackResult:
    """Projected gradient descent on the logit margin, per sample.

    Args:
      key: PRNG key of the random starts (one subkey per sample).
      logits_fn: the classifier, ``(..., d) -> (..., classes)``, e.g.
        ``partial(networks.apply, params)``.
      x: ``(n, d)`` inputs; y: ``(n,)`` labels.
      radius: radius of the ball (may be traced).
      norm: ``"l2"`` or ``"linf"`` (static).
      steps: number of steps ``T`` (static).
      step_frac: step ``a = step_frac * radius``.

    Returns:
      :class:`AttackResult`; the sample is robustly correct after ``k`` steps
      iff ``margins[:, k] > 0``.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
    radius = jnp.asarray(radius, x.dtype)
    step_size = jnp.asarray(step_frac, x.dtype) * radius

    def one(k, xi, yi):
        # Ascent on -m(x + delta): its best iterate is the smallest margin met.
        out = balls.pgd(lambda d: -margin(logits_fn(xi + d), yi), k, xi.shape, radius, norm, steps, step_size,
                        True, xi.dtype)
        return AttackResult(out.best, -out.values)

    return jax.vmap(one)(jax.random.split(key, x.shape[0]), x, y)


# --- noise --------------------------------------------------------------------------------------


def band_noise(key: Array, n: int, mask: Array, sigma, dtype=jnp.float32) -> Array:
    """Gaussian noise restricted to the 2-D DCT frequencies in ``mask``.

    ``delta = idct2(s * mask * z)``, ``z ~ N(0, I_64)``, with
    ``s = sigma sqrt(64 / |mask|)`` so that ``E ||delta||_2^2 = 64 sigma^2``.
    With every frequency kept it is white noise ``N(0, sigma^2 I_64)``
    (``idct2`` is orthonormal).

    Args:
      key: PRNG key.
      n: number of noise vectors.
      mask: ``(64,)`` boolean, at least one frequency kept.
      sigma: equivalent per-pixel standard deviation.

    Returns:
      ``(n, 64)`` noise in pixel coordinates.
    """
    z = jax.random.normal(key, (n, DIM), dtype)
    scale = jnp.asarray(sigma, dtype) * jnp.sqrt(DIM / jnp.sum(mask)).astype(dtype)
    return idct2(jnp.where(mask, scale * z, 0.0))


def noise_accuracy(key: Array, logits_fn: Callable[[Array], Array], x: Array, y: Array, mask: Array, sigma,
                   draws: int) -> Array:
    """Accuracy under :func:`band_noise`, averaged over ``draws`` noise draws per sample.

    Args:
      key: PRNG key (the same key gives the same noise to every network).
      logits_fn: the classifier, ``(..., 64) -> (..., classes)``.
      x: ``(n, 64)``; y: ``(n,)``.
      mask: ``(64,)`` frequencies that carry the noise (all for white noise).
      sigma: equivalent per-pixel standard deviation.
      draws: noise draws per sample (static).

    Returns:
      Scalar accuracy.
    """
    n = x.shape[0]
    delta = band_noise(key, draws * n, mask, sigma, x.dtype).reshape(draws, n, DIM)
    return jnp.mean(margin(logits_fn(x + delta), y) > 0)


# --- Lipschitz bounds ---------------------------------------------------------------------------


def power_iteration(linear: Callable[[Array], Array], v0: Array, iters: int) -> Array:
    """Largest singular value of a linear map by power iteration on ``A^T A``.

    ``v <- A^T A v / ||A^T A v||`` from ``v0``, then ``||A v||``. ``A^T`` is
    ``jax.linear_transpose``. The estimate never exceeds the true norm (it
    is ``||A v||`` for a unit ``v``) and approaches it like
    ``(s_2 / s_1)^(4 iters)`` in relative terms.

    Args:
      linear: a linear function of one array shaped like ``v0``.
      v0: the start (any non-zero array; a Gaussian one has a component
        along the top singular vector with probability one).
      iters: iterations.

    Returns:
      Scalar estimate of ``||A||_2``.
    """
    transpose = jax.linear_transpose(linear, v0)
    unit = lambda v: v / jnp.linalg.norm(v)

    def body(_, v):
        return unit(transpose(linear(v))[0])

    v = jax.lax.fori_loop(0, iters, body, unit(v0))
    return jnp.linalg.norm(linear(v))


def power_starts(params: Params, key: Array) -> list[Array]:
    """Gaussian starts for :func:`spectral_norms`, one per layer, from one draw."""
    shapes = [shape for _, shape in linear_maps(params)]
    z = jax.random.normal(key, (sum(math.prod(s) for s in shapes),), params[0].w.dtype)
    cuts = np.cumsum([math.prod(s) for s in shapes])[:-1]
    return [part.reshape(s) for part, s in zip(jnp.split(z, cuts), shapes)]


def spectral_norms(params: Params, key: Array, iters: int = 1000) -> Array:
    """``(layers,)`` spectral norms of the linear layers by :func:`power_iteration`
    from the starts :func:`power_starts` ``(params, key)``."""
    maps = linear_maps(params)
    return jnp.stack([power_iteration(f, v0, iters) for (f, _), v0 in zip(maps, power_starts(params, key))])


def dense_spectral_norms(params: Params) -> Array:
    """``(layers,)`` spectral norms from the dense matrix of each linear layer.

    The matrix is the Jacobian of the layer's linear map (``w^T`` for a dense
    layer; the unrolled convolution otherwise), and its norm is
    ``jnp.linalg.norm(M, 2)`` (an SVD): the reference for :func:`spectral_norms`.
    """
    out = []
    for f, shape in linear_maps(params):
        zeros = jnp.zeros(shape, params[0].w.dtype)
        jac = jax.jacfwd(f)(zeros)
        out.append(jnp.linalg.norm(jac.reshape(-1, math.prod(shape)), 2))
    return jnp.stack(out)


def margin_gradient_norms(logits_fn: Callable[[Array], Array], x: Array, y: Array) -> Array:
    """``(n,)`` input-gradient norms ``||grad_x m(x)||_2`` of the logit margin."""
    grad = jax.vmap(jax.grad(lambda xi, yi: margin(logits_fn(xi), yi)))(x, y)
    return jnp.linalg.norm(grad, axis=-1)


class LipschitzBounds(NamedTuple):
    """Bounds on the l2 Lipschitz constant ``L`` of the logits.

    Attributes:
      upper: ``prod_l ||A_l||_2`` (power iteration).
      lower: ``max_x ||grad m(x)||_2 / sqrt2`` over the given samples.
      layer_norms: ``(layers,)`` the power-iteration norms.
    """

    upper: Array
    lower: Array
    layer_norms: Array


def lipschitz_bounds(params: Params, x: Array, y: Array, key: Array, iters: int = 1000) -> LipschitzBounds:
    """Upper and lower bounds on ``L`` (see the module docstring)."""
    norms = spectral_norms(params, key, iters)
    lower = jnp.max(margin_gradient_norms(partial(apply, params), x, y)) / math.sqrt(2.0)
    return LipschitzBounds(jnp.prod(norms), lower, norms)
