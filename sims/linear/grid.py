"""Population signGD in d = 3 for a whole grid of configurations, in one program.

Each cell ``i`` is a :class:`~theory.signal.SignalModel` with spectrum
``(sigma_0, sigma_1, 0)``, a learning rate ``lr_i`` and its own step count
``steps_i``. A cell iterates the exact frequency recursion
:func:`theory.signgd.signgd_step_freq` (THEORY.md section 4),

    e~ <- e~ - lr (C s),   s = sign(A + B, A, A - B),
    A = sigma_0^2 e~_0 / sqrt3,   B = sigma_1^2 e~_1 / sqrt2,

which is the input-coordinate iteration ``w <- w - lr sign(grad R_s(w))``
(``theory/test_signgd.py`` checks that to rounding). The per-cell loop is a
``lax.fori_loop`` with a traced trip count; ``vmap`` over the cells turns it
into one ``while_loop`` that runs to the largest ``steps_i`` and keeps every
finished cell fixed (a select on ``t < steps_i``). The whole grid is one
jit-compiled program, whatever its size.

Along the way each cell records the phase times it observes, so that the
closed form (:func:`theory.signgd.signgd_phases`) can be checked against the
iteration without storing trajectories:

* ``t1``: the first ``t`` with ``|A(t)| < |B(t)|`` (phase 2 starts);
* ``t2``: the first ``t > t1`` at which ``e~_0`` has the sign opposite to
  ``e~_0(t1)`` (phase 3 starts);
* ``e~`` at a requested step ``t_probe`` (e.g. the closed form's ``t2``);
* ``max_{t >= t2} |e~_2(t) - e~_2(t2)|``, the phase-3 deviation, which the
  theory bounds by ``sqrt(2/3) lr`` for ``sigma_1^2 <= sigma_0^2 / 3``;
* the range of ``e~_1`` over ``t_window <= t <= steps``, to tell whether the
  run has settled (``t_window``: typically ``theory.phase_bounds.settle_bound``).

GD needs no iteration: ``theory.gd.gd_error`` is exact at any step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from theory.signal import Problem
from theory.signgd import signgd_gradient_parts, signgd_step_freq

Array = jax.Array


class GridRun(NamedTuple):
    """What :func:`signgd_grid` observes per cell (leading axis: cells).

    Attributes:
      e_freq_final: ``e~(steps_i)``, shape ``(N, 3)``.
      e_freq_probe: ``e~(t_probe_i)``, ``(N, 3)``; NaN where ``t_probe_i`` is
        not in ``[0, steps_i]``.
      t1: first step with ``|A| < |B|``, ``(N,)``; -1 if none by ``steps_i``.
      t2: first step after ``t1`` at which ``e~_0`` has the sign opposite to
        ``e~_0(t1)``; -1 if none by ``steps_i``.
      e_freq_t2: ``e~(t2)`` (NaN where ``t2 = -1``).
      phase3_dev: ``max_{t2 <= t <= steps_i} |e~_2(t) - e~_2(t2)|`` (NaN where
        ``t2 = -1``).
      e1_window_range: ``max - min`` of ``e~_1(t)`` over
        ``t_window_i <= t <= steps_i`` (NaN if the window is empty).
    """

    e_freq_final: Array
    e_freq_probe: Array
    t1: Array
    t2: Array
    e_freq_t2: Array
    phase3_dev: Array
    e1_window_range: Array


class _Carry(NamedTuple):
    e: Array  # e~(t)
    t1: Array
    sign_t1: Array  # sign e~_0(t1)
    t2: Array
    e_t2: Array
    e_probe: Array
    dev: Array
    e1_lo: Array
    e1_hi: Array


def _record(c: _Carry, t, spectrum, t_probe, t_window) -> _Carry:
    """Updates the observations with the state ``e~(t)`` (before step ``t``)."""
    e = c.e
    a, b = signgd_gradient_parts(e, spectrum)
    sign0 = jnp.sign(e[0])
    new_t1 = (c.t1 < 0) & (jnp.abs(a) < jnp.abs(b))
    t1 = jnp.where(new_t1, t, c.t1)
    sign_t1 = jnp.where(new_t1, sign0, c.sign_t1)
    new_t2 = (c.t2 < 0) & (t1 >= 0) & (t > t1) & (sign0 == -sign_t1)
    t2 = jnp.where(new_t2, t, c.t2)
    e_t2 = jnp.where(new_t2, e, c.e_t2)
    dev = jnp.where(t2 >= 0, jnp.maximum(c.dev, jnp.abs(e[2] - e_t2[2])), c.dev)
    in_window = t >= t_window
    return _Carry(
        e=e, t1=t1, sign_t1=sign_t1, t2=t2, e_t2=e_t2,
        e_probe=jnp.where(t == t_probe, e, c.e_probe),
        dev=dev,
        e1_lo=jnp.where(in_window, jnp.minimum(c.e1_lo, e[1]), c.e1_lo),
        e1_hi=jnp.where(in_window, jnp.maximum(c.e1_hi, e[1]), c.e1_hi),
    )


def _run_cell(problem: Problem, lr, steps, t_probe, t_window) -> GridRun:
    """One cell: ``steps`` signGD steps from ``e~(0)`` with the observations."""
    e0 = problem.e0_freq
    dtype = e0.dtype
    lr = jnp.asarray(lr, dtype)
    spectrum = problem.spectrum
    minus1 = jnp.asarray(-1, steps.dtype)
    nan3 = jnp.full((3,), jnp.nan, dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    init = _Carry(e=e0, t1=minus1, sign_t1=jnp.zeros((), dtype), t2=minus1, e_t2=nan3, e_probe=nan3,
                  dev=jnp.zeros((), dtype), e1_lo=inf, e1_hi=-inf)

    def body(t, c: _Carry) -> _Carry:
        c = _record(c, t, spectrum, t_probe, t_window)
        return c._replace(e=signgd_step_freq(c.e, spectrum, lr))

    c = jax.lax.fori_loop(jnp.zeros_like(steps), steps, body, init)
    c = _record(c, steps, spectrum, t_probe, t_window)  # the final state e~(steps)
    found2 = c.t2 >= 0
    return GridRun(
        e_freq_final=c.e,
        e_freq_probe=c.e_probe,
        t1=c.t1,
        t2=c.t2,
        e_freq_t2=c.e_t2,
        phase3_dev=jnp.where(found2, c.dev, jnp.nan),
        e1_window_range=jnp.where(c.e1_hi >= c.e1_lo, c.e1_hi - c.e1_lo, jnp.nan),
    )


@jax.jit
def signgd_grid(problems: Problem, lr: Array, steps: Array, t_probe: Array, t_window: Array) -> GridRun:
    """Population signGD for every cell of a grid, as one compiled program.

    Args:
      models: a :class:`SignalModel` whose arrays carry a leading cell axis
        ``N`` (``spectrum`` ``(N, 3)`` of the form ``(sigma_0, sigma_1, 0)``).
      lr: ``(N,)`` learning rates.
      steps: ``(N,)`` integer step counts (the run of cell ``i`` ends at
        ``e~(steps_i)``).
      t_probe: ``(N,)`` integer steps at which to record ``e~`` (-1: none).
      t_window: ``(N,)`` integer first step of the settling window.

    Returns:
      A :class:`GridRun` with leading axis ``N``. Cells are independent:
      a cell's result does not depend on the others (nor on the grid size).
    """
    return jax.vmap(_run_cell)(problems, lr, steps, t_probe, t_window)
