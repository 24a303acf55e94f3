"""Statistics of the deep study: intervals over seeds, Pareto fronts, matched-accuracy comparisons.

Two kinds of interval, each stated where it is used:

* **Per learning rate**, a metric over ``S`` seeds: mean ``+-`` the 95%
  Student-t half width ``t_{0.975, S-1} sd / sqrt(S)`` (``sd`` with
  ``ddof=1``) (:func:`t_interval`).
* **Between optimizers**, at matched clean accuracy (:func:`compare`): a
  paired percentile bootstrap over seeds. Seed ``s`` has the same
  initialisation and mini-batch order for every optimizer and learning rate
  (common random numbers), so a resample draws seed indices once and applies
  them to both optimizers.

The comparison reads each optimizer's robustness off its accuracy-robustness
**Pareto front**: the learning rates (mean clean accuracy ``A_l``, mean
robustness ``R_l``) that no other point beats in both, joined by straight
lines (:func:`front_value`). Both optimizers are read at the highest clean
accuracy that both reach, ``a* = min(max_l A_l, max_l A'_l)``, so neither is
credited for a learning rate that buys robustness with accuracy the other
keeps. A learning rate that diverged (a non-finite metric) is left out.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

#: Coverage of every interval of the study.
LEVEL = 0.95
#: Bootstrap resamples per comparison.
RESAMPLES = 2000
#: The three verdicts on a directional claim "A is more robust than B".
VERDICTS = ("holding", "not holding", "not resolved")


class Interval(NamedTuple):
    """A mean and its interval (arrays of one shape)."""

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def t_interval(a, level: float = LEVEL) -> Interval:
    """Mean over axis 0 with the Student-t interval of the mean.

    ``mean +- t_{(1+level)/2, S-1} sd / sqrt(S)``, ``sd`` with ``ddof=1``; a
    single seed gives a zero-width interval (no spread to estimate). NaN
    (a diverged run) propagates.

    Args:
      a: ``(S, ...)`` values per seed.
      level: coverage.
    """
    from scipy.stats import t

    a = np.asarray(a, np.float64)
    s = a.shape[0]
    mean = a.mean(0)
    if s < 2:
        return Interval(mean, mean.copy(), mean.copy())
    half = t.ppf((1 + level) / 2, s - 1) * a.std(0, ddof=1) / np.sqrt(s)
    return Interval(mean, mean - half, mean + half)


def pareto_front(acc: np.ndarray, rob: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates, by increasing accuracy.

    Point ``j`` dominates ``i`` when ``acc_j >= acc_i`` and ``rob_j >= rob_i``
    with one strict. Non-finite points are left out. Along the returned
    order accuracy increases and robustness decreases.
    """
    acc, rob = np.asarray(acc, np.float64), np.asarray(rob, np.float64)
    ok = np.flatnonzero(np.isfinite(acc) & np.isfinite(rob))
    keep = [i for i in ok
            if not any((acc[j] >= acc[i]) and (rob[j] >= rob[i]) and (acc[j] > acc[i] or rob[j] > rob[i])
                       for j in ok)]
    # Equal points: keep one of them.
    out, seen = [], set()
    for i in sorted(keep, key=lambda i: (acc[i], -rob[i])):
        if (acc[i], rob[i]) not in seen:
            seen.add((acc[i], rob[i]))
            out.append(i)
    return np.asarray(out, int)


def front_value(acc: np.ndarray, rob: np.ndarray, a: float) -> float:
    """Robustness of the Pareto front at clean accuracy ``a``.

    Linear interpolation between front points; below the front's lowest
    accuracy it is the front's highest robustness (a model at least that
    accurate exists); above its highest accuracy it is NaN (none exists).
    """
    idx = pareto_front(acc, rob)
    if idx.size == 0:
        return float("nan")
    fa, fr = np.asarray(acc, np.float64)[idx], np.asarray(rob, np.float64)[idx]
    if a > fa[-1]:
        return float("nan")
    return float(np.interp(a, fa, fr))


def _matched(acc_a, rob_a, acc_b, rob_b) -> tuple[float, float, float, float]:
    """``(a*, R_a(a*), R_b(a*), R_a - R_b)`` from mean curves ``(L,)``."""
    best = [np.nanmax(np.where(np.isfinite(r), x, np.nan)) if np.isfinite(r).any() else np.nan
            for x, r in ((acc_a, rob_a), (acc_b, rob_b))]
    a_star = float(min(best))
    if not np.isfinite(a_star):
        return a_star, np.nan, np.nan, np.nan
    ra, rb = front_value(acc_a, rob_a, a_star), front_value(acc_b, rob_b, a_star)
    return a_star, ra, rb, ra - rb


class Comparison(NamedTuple):
    """``A`` against ``B`` at matched clean accuracy (:func:`compare`).

    Attributes:
      accuracy: ``a*`` and its bootstrap interval ``(value, lo, hi)``.
      robustness_a, robustness_b: each front's robustness at ``a*``.
      difference: ``R_A(a*) - R_B(a*)`` and its bootstrap interval ``(value, lo, hi)``.
      verdict: on the claim "A is more robust than B": ``holding`` (the
        interval is above 0), ``not holding`` (below 0) or ``not resolved``.
      undefined: fraction of resamples where the difference was undefined.
    """

    accuracy: tuple
    robustness_a: float
    robustness_b: float
    difference: tuple
    verdict: str
    undefined: float


def verdict(lo: float, hi: float) -> str:
    """``holding`` if ``lo > 0``, ``not holding`` if ``hi < 0``, else ``not resolved``."""
    if np.isfinite(lo) and lo > 0:
        return "holding"
    if np.isfinite(hi) and hi < 0:
        return "not holding"
    return "not resolved"


def compare(acc_a, rob_a, acc_b, rob_b, rng: np.random.Generator, resamples: int = RESAMPLES,
            level: float = LEVEL) -> Comparison:
    """Robustness of ``A`` minus that of ``B`` at the highest clean accuracy both reach.

    Args:
      acc_a, rob_a: ``(L_A, S)`` clean accuracy and robustness (larger is
        more robust) of optimizer ``A`` per learning rate and seed.
      acc_b, rob_b: ``(L_B, S)``, the same seeds in the same order.
      rng: source of the bootstrap resamples.
      resamples: bootstrap resamples.
      level: coverage of the percentile intervals.

    Returns:
      :class:`Comparison`; the point values come from the means over all
      seeds, the intervals from the paired percentile bootstrap.
    """
    acc_a, rob_a, acc_b, rob_b = (np.asarray(v, np.float64) for v in (acc_a, rob_a, acc_b, rob_b))
    s = acc_a.shape[1]
    a_star, ra, rb, diff = _matched(acc_a.mean(1), rob_a.mean(1), acc_b.mean(1), rob_b.mean(1))
    idx = rng.integers(0, s, size=(resamples, s))
    boot = np.array([_matched(acc_a[:, i].mean(1), rob_a[:, i].mean(1), acc_b[:, i].mean(1), rob_b[:, i].mean(1))
                     for i in idx])
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    finite = np.isfinite(boot[:, 3])
    undefined = float(1 - finite.mean())
    if finite.sum() < 2 or not np.isfinite(diff):
        lo = hi = alo = ahi = float("nan")
    else:
        lo, hi = np.percentile(boot[finite, 3], q)
        alo, ahi = np.percentile(boot[finite, 0], q)
    return Comparison((a_star, float(alo), float(ahi)), ra, rb, (diff, float(lo), float(hi)),
                      verdict(lo, hi) if undefined <= 1 - level else "not resolved", undefined)


class Stability(NamedTuple):
    """How stable the one-standard-error choice of learning rate is under a change of seeds.

    Attributes:
      lr: the choice on all seeds.
      bootstrap_agreement: fraction of seed resamples that choose the same rate.
      halves: the choices on the first and on the second half of the seeds
        (``None`` for fewer than 4 seeds).
    """

    lr: float
    bootstrap_agreement: float
    halves: Optional[tuple]


def selection_stability(lrs, val, select, rng: np.random.Generator, resamples: int = RESAMPLES) -> Stability:
    """Re-runs ``select(lrs, val[:, seeds])`` on seed resamples and on the two halves of the seeds.

    Args:
      lrs: ``(L,)``; val: ``(L, S)`` validation accuracy.
      select: the rule, e.g. :func:`sims.deep.training.select_lr`.
      rng: source of the resamples.
      resamples: number of resamples.
    """
    val = np.asarray(val, np.float64)
    s = val.shape[1]
    lr = select(lrs, val).lr
    idx = rng.integers(0, s, size=(resamples, s))
    agree = float(np.mean([select(lrs, val[:, i]).lr == lr for i in idx]))
    halves = (select(lrs, val[:, : s // 2]).lr, select(lrs, val[:, s // 2:]).lr) if s >= 4 else None
    return Stability(lr, agree, halves)
