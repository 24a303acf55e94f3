"""Risks on the record steps, divergence, and statistics across seeds."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory.risks import adversarial_risk_l2, standard_risk, weight_norm
from theory.signal import Problem

Array = jax.Array

#: A run has diverged when its standard risk exceeds this multiple of the
#: larger of the risk at the start and the risk of the zero predictor, or
#: when any recorded value is not finite. A stable run never exceeds either.
DIVERGENCE_FACTOR = 100.0


class RiskCurves(NamedTuple):
    """Risks of recorded weights, each with the leading shape of ``w_freq``."""

    standard_risk: Array
    weight_norm: Array
    adversarial_risk: Array


def risk_curves(w_freq: Array, problem: Problem, radius) -> RiskCurves:
    """``R_s``, ``||w||`` and the l2 ``R_a`` of ``w_freq`` (``(..., d)``)."""
    return RiskCurves(
        standard_risk(w_freq, problem),
        weight_norm(w_freq),
        adversarial_risk_l2(w_freq, problem, radius),
    )


def diverged(w_freq: Array, problem: Problem) -> np.ndarray:
    """Which trajectories diverged, from ``w_freq`` of shape ``(..., T, d)``.

    ``model`` is one model, or a batch of them whose leading axes broadcast
    against ``w_freq.shape[:-2]`` (one model per trajectory).

    Returns a boolean array of shape ``w_freq.shape[:-2]``.
    """
    r_s = standard_risk(w_freq, jax.tree.map(lambda x: x[..., None, :], problem))
    reference = jnp.maximum(standard_risk(problem.w0_freq, problem), standard_risk(jnp.zeros_like(problem.w0_freq), problem))
    finite = jnp.all(jnp.isfinite(w_freq), axis=(-1, -2))
    blown = jnp.max(jnp.where(jnp.isfinite(r_s), r_s, jnp.inf), axis=-1) > DIVERGENCE_FACTOR * reference
    return np.asarray(~finite | blown)


def format_mean_std(stat: dict) -> str:
    """``mean ± std`` of a :func:`mean_std` result, or ``diverged`` when nothing was kept."""
    return "diverged" if stat["mean"] is None else f"{stat['mean']:.4g} ± {stat['std']:.2g}"


def mean_std(x, keep) -> dict:
    """``{mean, std}`` over the kept entries of axis 0 (``None`` if none kept)."""
    x = np.asarray(x, np.float64)[np.asarray(keep)]
    if x.shape[0] == 0:
        return {"mean": None, "std": None}
    return {"mean": float(x.mean()), "std": float(x.std())}
