"""Norm balls for perturbations: projection, uniform samples, steepest ascent, and PGD.

:func:`pgd` is the one projected-gradient attack of the project; the linear
model (:mod:`sims.linear.attacks`) and the networks (:mod:`sims.deep.robustness`)
differ only in the objective they hand it. ``norm`` is ``"l2"`` or ``"linf"``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

NORMS = ("l2", "linf")


def project_ball(delta: Array, radius, norm: str) -> Array:
    """Euclidean projection of one vector onto ``{||delta|| <= eps}``.

    l2 rescales a vector outside the ball onto its surface; l_inf clips each
    coordinate to ``[-eps, eps]``.
    """
    if norm == "l2":
        n = jnp.linalg.norm(delta)
        return delta * jnp.minimum(1.0, radius / jnp.where(n > 0, n, 1.0))
    return jnp.clip(delta, -radius, radius)


def uniform_ball(key: Array, shape: tuple[int, ...], radius, norm: str, dtype=jnp.float32) -> Array:
    """One point uniform in the ball of radius ``eps`` (``shape`` is the vector's shape).

    l2: uniform direction times radius ``eps U^(1/d)``; l_inf: uniform in the cube.
    """
    if norm == "l2":
        k_dir, k_rad = jax.random.split(key)
        z = jax.random.normal(k_dir, shape, dtype)
        d = math.prod(shape)
        return radius * jax.random.uniform(k_rad, (), dtype) ** (1.0 / d) * z / jnp.linalg.norm(z)
    return radius * jax.random.uniform(key, shape, dtype, -1.0, 1.0)


def steepest_direction(g: Array, norm: str) -> Array:
    """``argmax_{||u|| <= 1} <g, u>``: ``g / ||g||_2`` (l2; 0 at ``g = 0``) or ``sign(g)`` (l_inf)."""
    if norm == "l2":
        n = jnp.linalg.norm(g)
        return g / jnp.where(n > 0, n, 1.0)
    return jnp.sign(g)


class PGDResult(NamedTuple):
    """The outcome of :func:`pgd` on one vector.

    Attributes:
      last: the final iterate ``delta_T``.
      best: the iterate with the largest objective among ``delta_0 .. delta_T``.
      values: ``(T + 1,)`` running maximum of the objective: ``values[k]`` is
        the largest of ``f(delta_0) .. f(delta_k)`` (non-decreasing in ``k``).
    """

    last: Array
    best: Array
    values: Array


def pgd(objective: Callable[[Array], Array], key: Array, shape: tuple[int, ...], radius, norm: str, steps: int,
        step_size, random_start: bool = True, dtype=jnp.float32) -> PGDResult:
    """Projected steepest ascent of ``objective`` over the ball ``{||delta|| <= eps}`` (Madry et al., 2018).

    ``delta_{k+1} = P(delta_k + a u_k)``, ``u_k`` = :func:`steepest_direction` of
    ``grad f(delta_k)`` (``g / ||g||_2`` for l2, ``sign(g)`` for l_inf), ``P`` =
    :func:`project_ball`. Every iterate lies in the ball, so each is a valid
    perturbation, and the best one met is kept: the attack can only get
    stronger with more steps. The one PGD of the project: the linear model's
    (:mod:`sims.linear.attacks`, ``f`` = the squared loss, last iterate) and the
    networks' (:mod:`sims.deep.robustness`, ``f`` = minus the logit margin,
    best iterate) both call it.

    Args:
      objective: ``f``, a scalar function of one perturbation of ``shape``.
      key: PRNG key of the random start.
      shape: the perturbation's shape.
      radius: radius (may be traced).
      norm: ``"l2"`` or ``"linf"`` (static).
      steps: ``T`` (static).
      step_size: ``a`` (may be traced).
      random_start: ``delta_0`` uniform in the ball (:func:`uniform_ball`), else 0.
      dtype: dtype of the perturbation.

    Returns:
      :class:`PGDResult`.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
    value_and_grad = jax.value_and_grad(objective)
    delta0 = uniform_ball(key, shape, radius, norm, dtype) if random_start else jnp.zeros(shape, dtype)

    def step(carry, _):
        delta, best_delta, best = carry
        value, g = value_and_grad(delta)
        better = value > best
        best_delta, best = jnp.where(better, delta, best_delta), jnp.where(better, value, best)
        delta = project_ball(delta + step_size * steepest_direction(g, norm), radius, norm)
        return (delta, best_delta, best), best

    start = (delta0, delta0, jnp.asarray(-jnp.inf, dtype))
    (last, best_delta, best), history = jax.lax.scan(step, start, None, length=steps)
    value = objective(last)
    better = value > best
    best_delta, best = jnp.where(better, last, best_delta), jnp.where(better, value, best)
    return PGDResult(last, best_delta, jnp.append(history, best))
