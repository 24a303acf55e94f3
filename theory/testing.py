"""The reference iteration the theorem checks compare predictions with.

One definition, deliberately plain (no seeds-last layout, no blocked draws,
no sufficient statistics): any optax optimizer on a :class:`Quadratic`,

    g   = C^T S~ e~        S~ = H~ (population) or X~_t^T X~_t / n (online)
    e~ <- e~ + C optimizer.update(g)

with the state ``e~`` kept in frequency coordinates (THEORY.md section 8:
rounding in ``g`` then stays relative to the relevant error). Online batches
are drawn explicitly, ``X~_t = Z_t diag(sqrt(diag H~))`` with ``Z_t`` standard
normal from ``fold_in(key, t)``, so they are independent of how many runs are
vmapped beside this one. A fixed training set is a population problem on its
own ``H~_S`` (section 8.4).

``sims``' fast engine is checked against this iteration in ``tests/``; the
theorem checks use this one, so a bug in the optimised kernel fails a
software test, not a theorem.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from theory.quadratic import Quadratic
from theory.signal import to_freq, to_input

Array = jax.Array


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
    sigma = jnp.sqrt(jnp.diagonal(h))

    def grad_freq(e, t):
        if batch_size == 0:
            return h @ e
        z = jax.random.normal(jax.random.fold_in(key, t), (batch_size, quad.dim), e.dtype)
        x = z * sigma
        return x.T @ (x @ e) / batch_size

    def step(t, carry):
        e, state = carry
        g = to_input(grad_freq(e, t))
        upd, state = optimizer.update(g, state, g)  # params unused by gd, signgd, adam, rmsprop
        return e + to_freq(upd), state

    def segment(carry, bounds):
        start, stop = bounds
        carry = jax.lax.fori_loop(start, stop, step, carry)
        return carry, carry[0]

    e0 = quad.e0_freq
    starts = np.concatenate([[0], steps[:-1]])
    carry0 = (e0, optimizer.init(to_input(e0)))
    _, traj = jax.lax.scan(segment, carry0, jnp.asarray(np.stack([starts, steps], 1), jnp.int32))
    return traj
