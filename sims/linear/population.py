"""Population-gradient training as a pure function of the model and the lr.

:mod:`sims.linear.engine` compiles one program per model (the model and the lr are
constants in it) and runs many *seeds*. Sweeps over *configurations*
(spectra, targets, learning rates) need the opposite: the model and the lr
as traced arguments, so that one compiled program runs a whole grid of
them under ``vmap``. With the exact population gradient

    g = C^T diag(spectrum^2) (C w - w~*)

there is no randomness, and one step of any optax optimizer is

    e <- e + optimizer.update(g)      (e = w - w*, input coordinates)

as in the engine (iterating on the error keeps float32 rounding relative
to ``|e|``). The optimizer is rebuilt inside the traced function from its
name, so the learning rate can be a tracer.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.common.optimizers import make_optimizer
from theory.signal import Problem, dct_basis

Array = jax.Array


def population_run(
    name: str,
    problem: Problem,
    lr: Array,
    grid: Sequence[int],
    hparams: Mapping[str, Any] | None = None,
) -> Array:
    """Weights ``w~(t)`` of one optimizer on the population gradient.

    Pure and traceable in ``model`` and ``lr``: ``jax.vmap`` it over a grid
    of configurations (``name``, ``grid`` and ``hparams`` are static).

    Args:
      name: an optimizer of :data:`sims.common.optimizers.OPTIMIZERS`.
      model: the signal model (any ``d``).
      lr: learning rate (a scalar, possibly traced).
      grid: increasing record steps starting at 0 (static).
      hparams: hyper-parameter overrides for :func:`make_optimizer`.

    Returns:
      ``(len(grid), d)`` weights in frequency coordinates at the grid steps.
    """
    grid = np.asarray(grid, np.int64)
    d, dtype = problem.dim, problem.spectrum.dtype
    c = dct_basis(d, dtype)
    s2 = jnp.square(problem.spectrum)
    opt = make_optimizer(name, lr, **dict(hparams or {}))

    w_star = c.T @ problem.w_star_freq

    def step(_, carry):
        e, state = carry
        g = c.T @ (s2 * (c @ e))
        upd, state = opt.update(g, state, e + w_star)  # params: w (unused by gd, signgd, adam, rmsprop)
        return optax.apply_updates(e, upd), state

    def segment(carry, length):
        carry = jax.lax.fori_loop(0, length, step, carry)
        return carry, c @ carry[0]

    e0 = c.T @ problem.e0_freq
    _, e_freq = jax.lax.scan(segment, (e0, opt.init(e0)), jnp.asarray(np.diff(grid), jnp.int32))
    return problem.w_star_freq + jnp.concatenate([problem.e0_freq[None], e_freq])
