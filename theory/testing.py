"""The reference iteration the theorem checks compare predictions with.

:func:`reference_run` is :func:`theory.dynamics.run` of
:func:`theory.dynamics.optax_step` on a :class:`Quadratic`, plainly (no
seeds-last layout, no blocked draws, no sufficient statistics):

    g = C^T S~ C e      S~ = H~ (population) or X~_t^T X~_t / n (online)
    e <- e + optimizer.update(g)

with the error ``e`` in input coordinates (the optimizers act there) and
``e~ = C e`` recorded. Online batches are drawn explicitly,
``X~_t = Z_t diag(sqrt(diag H~))`` with ``Z_t`` standard normal from
``fold_in(key, t)`` (:func:`theory.dynamics.online_gradient`), so they are
independent of how many runs are vmapped beside this one. A fixed training
set is a population problem on its own ``H~_S`` (THEORY.md section 8.4).

``sims``' fast engine is checked against this core in ``tests/``; the
theorem checks use it, so a bug in the optimised kernel fails a software
test, not a theorem.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from theory.dynamics import init_state, online_gradient, optax_step, population_gradient, run, save_e_freq
from theory.quadratic import Quadratic
from theory.signal import Problem, dct_basis

Array = jax.Array


#: :func:`theory.signal.dct_basis` compiled once per ``(d, dtype)``.
jit_dct_basis = jax.jit(dct_basis, static_argnums=(0, 1))


@functools.lru_cache(maxsize=None)
def padded_basis(d: int, d_max: int) -> Array:
    """``C_d`` in the top-left block of a zero ``(d_max, d_max)`` matrix (float64).

    A ``d``-dimensional problem padded with zeros to ``d_max``
    (:func:`pad_problem`) runs as itself with this basis: the padding stays
    exactly 0 and adds exact zeros to every product, so one compile serves
    every ``d <= d_max``.
    """
    c = np.zeros((d_max, d_max))
    c[:d, :d] = np.asarray(jit_dct_basis(d, jnp.float64))
    return jnp.asarray(c)


def pad_problem(problem: Problem, d_max: int) -> Problem:
    """The problem's vectors padded with zeros to ``d_max`` (float64; in NumPy, which compiles nothing)."""
    return Problem(*(jnp.asarray(np.pad(np.asarray(v, np.float64), (0, d_max - len(v)))) for v in problem))


def reference_run(
    optimizer: optax.GradientTransformation,
    quad: Quadratic,
    record_steps,
    *,
    batch_size: int = 0,
    key: Optional[Array] = None,
) -> Array:
    """``e~(t)`` of one run at the steps ``record_steps``.

    Args:
      optimizer: any optax transformation (input coordinates).
      quad: the quadratic and the start ``e~(0)``.
      record_steps: increasing non-negative integers (static).
      batch_size: 0 for the exact gradient ``H~ e~``; ``n > 0`` for a fresh
        batch of ``n`` Gaussian samples with covariance ``diag(diag H~)``
        each step (``H~`` must then be diagonal: the population).
      key: PRNG key of the batches (needed when ``batch_size > 0``).

    Returns:
      ``(len(record_steps), d)`` errors in frequency coordinates.
    """
    steps = np.asarray(record_steps, np.int64)
    if steps.ndim != 1 or np.any(np.diff(steps) < 0) or (steps.size and steps[0] < 0):
        raise ValueError("record_steps must be increasing non-negative integers")
    if batch_size > 0 and key is None:
        raise ValueError("online batches need a key")
    h = quad.hessian_freq
    c = dct_basis(quad.dim, quad.e0_freq.dtype)
    if batch_size == 0:
        gradient = population_gradient(h)
    else:
        gradient = online_gradient(jnp.sqrt(jnp.diagonal(h)), batch_size, key)
    step = optax_step(optimizer, gradient, c)
    _, e_freq, _ = run(step, init_state(optimizer, c.T @ quad.e0_freq), steps, save_e_freq(c))
    return e_freq
