"""Norm balls for perturbations: projection, uniform samples, steepest ascent.

Shared by the PGD attacks on the linear model (:mod:`sims.attacks`) and on
the networks (:mod:`sims.robustness`). ``norm`` is ``"l2"`` or ``"linf"``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

NORMS = ("l2", "linf")


def project_ball(delta: Array, eps, norm: str) -> Array:
    """Euclidean projection of one vector onto ``{||delta|| <= eps}``.

    l2 rescales a vector outside the ball onto its surface; l_inf clips each
    coordinate to ``[-eps, eps]``.
    """
    if norm == "l2":
        n = jnp.linalg.norm(delta)
        return delta * jnp.minimum(1.0, eps / jnp.where(n > 0, n, 1.0))
    return jnp.clip(delta, -eps, eps)


def uniform_ball(key: Array, shape: tuple[int, ...], eps, norm: str, dtype=jnp.float32) -> Array:
    """One point uniform in the ball of radius ``eps`` (``shape`` is the vector's shape).

    l2: uniform direction times radius ``eps U^(1/d)``; l_inf: uniform in the cube.
    """
    if norm == "l2":
        k_dir, k_rad = jax.random.split(key)
        z = jax.random.normal(k_dir, shape, dtype)
        d = math.prod(shape)
        return eps * jax.random.uniform(k_rad, (), dtype) ** (1.0 / d) * z / jnp.linalg.norm(z)
    return eps * jax.random.uniform(key, shape, dtype, -1.0, 1.0)


def steepest_direction(g: Array, norm: str) -> Array:
    """``argmax_{||u|| <= 1} <g, u>``: ``g / ||g||_2`` (l2; 0 at ``g = 0``) or ``sign(g)`` (l_inf)."""
    if norm == "l2":
        n = jnp.linalg.norm(g)
        return g / jnp.where(n > 0, n, 1.0)
    return jnp.sign(g)
