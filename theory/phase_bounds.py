"""Bounds and step rules for population signGD in d = 3, and GD's time to a risk.

THEORY.md sections 3, 4 and 8.1. The phase diagram (``sims/phase_diagram.py``)
runs every point to a step past :func:`settle_bound`, compares the final
``e~_2`` with the sign flow's end point (``theory.sign_flow``), and measures
GD at the step :func:`gd_time_at_risk` where its ``R_s`` equals signGD's.

Notation: spectrum ``(sigma_0, sigma_1, 0)``, ``q = sigma_1^2 / sigma_0^2``,
``A = sigma_0^2 e~_0 / sqrt3``, ``B = sigma_1^2 e~_1 / sqrt2``,
``h = sigma_0^2 lr`` (``theory.signgd``).

**The drift bound** (:data:`DRIFT_LR_BOUND`). Where the closed form applies
(``signgd_phases(...).applicable``: ``q <= 1/3`` and phase 2 is entered),
for every ``T >= t2``

    |e~_2(T) - e~_2(0) - drift_1| <= (2 sqrt(2/3) + sqrt6) lr,

``drift_1 = signgd_drift_first_order`` (which is also the sign flow's drift
there, ``sign_flow_final_d3``). Three terms:

* phase 1 stops at the first step with ``|A| < |B|``, and a phase-1 step
  lowers ``|A|`` by ``h``, so ``|A(t1)|`` lies in ``(|B(0)| - h, |B(0)|]``
  (``B`` does not move in phase 1): ``|e~_0(t1)|`` is within
  ``sqrt3 h / sigma_0^2 = sqrt3 lr`` of its first-order value, and the
  drift ``~ sqrt2 |e~_0(t1)|`` within ``sqrt6 lr``;
* phase 2 takes ``K = ceil(sqrt3 |e~_0(t1)| / lr)`` steps of
  ``sqrt(2/3) lr``: ``sqrt(2/3) lr K`` exceeds ``sqrt2 |e~_0(t1)|`` by less
  than ``sqrt(2/3) lr``;
* phase 3 keeps ``e~_2`` within ``sqrt(2/3) lr`` of ``e~_2(t2)``.

Starting in phase 2 (``t1 = 0``) the first term is 0.

**The settle bound** (:func:`settle_bound`). Where the closed form applies,
``signgd_settled``'s ``t_settled = t2 + ceil(|e~_1(t2)| / (sqrt2 lr))`` is at
most ``ceil(sqrt3 |e~_0(0)| / lr + |e~_1(0)| / (sqrt2 lr)) + 2``:

* ``t1 <= |A(0)| / h + 1`` and ``|e~_0(t1)| = |e~_0(0)| - sqrt3 lr t1``, so
  ``t2 = t1 + K <= sqrt3 |e~_0(0)| / lr - 2 t1 + 1 <= sqrt3 |e~_0(0)| / lr + 1``;
* phase 2 moves ``e~_1`` towards 0 by ``sqrt2 lr`` a step, so
  ``ceil(|e~_1(t2)| / (sqrt2 lr)) <= max(ceil(|e~_1(0)| / (sqrt2 lr)), 1)``;
* ``floor(x + 1) + ceil(y) <= ceil(x + y) + 2``.

For ``q > 1/3`` no discrete closed form exists; the same number is then a
heuristic horizon, which the phase diagram checks on every point (the run
has crossed ``e~_0 = 0`` before the window ``[settle_bound, T]``).

**Which signGD closed form applies at step T** (:func:`signgd_regime`):

* ``T <= t2``: ``signgd_error`` is exact (:attr:`Regime.EXACT`);
* ``t2 < T < t_settled``: only ``e~_2`` is predicted, within ``sqrt(2/3) lr``
  of ``e~_2(t2)`` (:attr:`Regime.PHASE3`);
* ``T >= t_settled``: ``signgd_settled`` (:attr:`Regime.SETTLED`);
* closed form not applicable (``q > 1/3``, no phase 2, bad input): only the
  sign flow predicts, to ``O(lr)`` (:attr:`Regime.FLOW`).

**GD's time to a risk** (:func:`gd_time_at_risk`): GD's
``R_s(t) = 1/2 sum_k sigma_k^2 (1 - lr sigma_k^2)^(2t) e~_k(0)^2`` is
decreasing in real ``t`` when ``lr sigma_k^2 < 1``, so bisection finds where
it crosses a target.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import jax.numpy as jnp

from theory.gd import gd_error
from theory.risks import standard_risk
from theory.signal import Problem
from theory.signgd import SQRT2, SQRT3, SQRT_2_3, signgd_error, signgd_phases, signgd_settled

Array = jax.Array

#: ``|e~_2(T) - e~_2(0) - drift_1| <= DRIFT_LR_BOUND lr`` for ``T >= t2`` where the
#: closed form applies: ``sqrt6`` (phase-1 stop) + ``sqrt(2/3)`` (ceil of K) +
#: ``sqrt(2/3)`` (phase 3). See the module docstring.
DRIFT_LR_BOUND = 2.0 * SQRT_2_3 + SQRT3 * SQRT2
#: GD at ``t = GD_T_MAX`` is its limit to float64 precision for ``lr sigma_k^2 >= 1e-15``.
GD_T_MAX = 1e18
#: Bisection halvings in ``u = log(1 + t)``: the interval ``[0, log(1 + GD_T_MAX)] ~ [0, 41.4]``
#: shrinks below float64 spacing (``41.4 / 2^100``).
GD_BISECTIONS = 100


def settle_bound(problem: Problem, lr) -> Array:
    """``ceil(sqrt3 |e~_0(0)| / lr + |e~_1(0)| / (sqrt2 lr)) + 2``: a step by which
    population signGD (d = 3) has settled.

    Where ``signgd_phases`` applies this is at least ``signgd_settled``'s
    ``t_settled`` (module docstring); elsewhere it is a horizon to check.

    Args:
      problem: a :class:`Problem` with ``d = 3`` (leading batch axes allowed).
      lr: learning rate ``> 0``.

    Returns:
      The bound as a float array (an integer value).
    """
    e0 = problem.e0_freq
    return jnp.ceil(SQRT3 * jnp.abs(e0[..., 0]) / lr + jnp.abs(e0[..., 1]) / (SQRT2 * lr)) + 2


class Regime(enum.IntEnum):
    """Which prediction of population signGD (d = 3) holds at a step ``T``."""

    EXACT = 0  # T <= t2: signgd_error, exact
    PHASE3 = 1  # t2 < T < t_settled: e~_2 within sqrt(2/3) lr of e~_2(t2)
    SETTLED = 2  # T >= t_settled: signgd_settled
    FLOW = 3  # closed form not applicable: the sign flow, O(lr)


class SignGDAtStep(NamedTuple):
    """The closed-form prediction of ``e~(T)`` and its guaranteed accuracy.

    Attributes:
      regime: a :class:`Regime` code.
      e_freq: ``(3,)`` predicted ``e~(T)``; NaN for components not predicted.
      bound: ``(3,)`` bound on ``|e~_k(T) - e_freq_k|`` (0: exact up to
        rounding; NaN: not predicted).
    """

    regime: Array
    e_freq: Array
    bound: Array


def signgd_regime(problem: Problem, lr, t) -> SignGDAtStep:
    """The signGD closed form that applies at step ``t`` (module docstring).

    Args:
      problem: a :class:`Problem` with ``d = 3``.
      lr: learning rate.
      t: integer step ``>= 0``.

    Returns:
      A :class:`SignGDAtStep`. In :attr:`Regime.FLOW` everything is NaN: the
      prediction is then the sign flow's (``theory.sign_flow``).
    """
    ph = signgd_phases(problem, lr)
    settled = signgd_settled(problem, lr)
    dtype = problem.e0_freq.dtype
    t = jnp.asarray(t)
    nan = jnp.full((3,), jnp.nan, dtype)
    regime = jnp.select(
        [~ph.applicable, t <= ph.t2, t < settled.t_settled],
        [Regime.FLOW, Regime.EXACT, Regime.PHASE3],
        Regime.SETTLED,
    ).astype(jnp.int32)
    exact = signgd_error(problem, lr)(jnp.minimum(t, jnp.maximum(ph.t2, 0)).astype(dtype))
    phase3 = jnp.stack([jnp.nan, jnp.nan, ph.e_freq_t2[2]]).astype(dtype)
    phase3_bound = jnp.stack([jnp.nan, jnp.nan, ph.phase3_bound]).astype(dtype)
    e_freq = jnp.select([regime == Regime.EXACT, regime == Regime.PHASE3, regime == Regime.SETTLED],
                        [exact, phase3, settled.e_freq], nan)
    bound = jnp.select([regime == Regime.EXACT, regime == Regime.PHASE3, regime == Regime.SETTLED],
                       [jnp.zeros((3,), dtype), phase3_bound, settled.bound.astype(dtype)], nan)
    return SignGDAtStep(regime=regime, e_freq=e_freq, bound=bound)


def gd_time_at_risk(problem: Problem, lr, target) -> Array:
    """The (real) step ``t`` at which population GD's ``R_s`` falls to ``target``.

    For ``0 < lr sigma_k^2 < 1`` every contraction ``1 - lr sigma_k^2`` is
    positive, so ``R_s(t)`` is defined at real ``t`` and decreasing, and
    :data:`GD_BISECTIONS` halvings on ``u = log(1 + t)`` over
    ``[0, log(1 + GD_T_MAX)]`` find the first ``t`` with ``R_s(t) <= target``
    to float64 resolution in ``u``.

    Args:
      problem: a :class:`Problem` (any ``d``).
      lr: a learning rate with ``lr sigma_k^2 < 1`` for every ``k`` (for
        ``1 <= lr sigma_k^2 < 2`` GD is stable but its error alternates in
        sign, and the real power is NaN).
      target: the standard risk to reach, ``>= 0``.

    Returns:
      ``t`` (float); 0 if ``target >= R_s(0)``. For ``target = 0``, the first
      ``t`` at which the computed ``R_s`` is 0: where ``sigma_k^2 e~_k^2``
      underflows or ``w~* + e~`` rounds to ``w~*`` on every relevant frequency
      (not necessarily where ``e~`` itself is 0).
    """
    e_at = gd_error(problem, lr)
    risk = lambda u: standard_risk(problem.w_star_freq + e_at(jnp.expm1(u)), problem)

    def halve(_, lo_hi):
        lo, hi = lo_hi
        mid = 0.5 * (lo + hi)
        above = risk(mid) > target  # still too early
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    dtype = problem.e0_freq.dtype
    lo_hi = (jnp.zeros((), dtype), jnp.log1p(jnp.asarray(GD_T_MAX, dtype)))
    _, hi = jax.lax.fori_loop(0, GD_BISECTIONS, halve, lo_hi)
    return jnp.where(risk(jnp.zeros((), dtype)) <= target, jnp.zeros((), dtype), jnp.expm1(hi))
