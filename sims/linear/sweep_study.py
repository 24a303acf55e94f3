"""Predictions beside the spectrum sweep's runs, and how far they are from them.

:mod:`sims.spectrum_sweep` runs GD, signGD, Adam and RMSProp on the population
gradient over sweep points (spectra) and targets. Here every optimizer's
small-learning-rate limit (THEORY.md sections 3 and 8: GD's closed form,
the sign flow, the fixed-``c`` Adam and RMSProp ODEs) is solved for the same
models, in float64, one vmapped compiled solve per optimizer and dimension
(:func:`sims.linear.predictions.predict_many`), and compared with the simulated
final weights:

* ``irrelevant_norm_abs``: ``| ||e~_I||_sim - ||e~_I||_pred |`` per target;
* ``adversarial_risk_rel``: ``|R_a,sim - R_a,pred| / R_a,pred`` per target;

each as mean, std and max over the targets that have both a simulation
(not diverged) and a prediction.

The limits are ``lr -> 0`` limits at fixed ``tau = lr t`` (and, for Adam and
RMSProp, fixed ``c = (1 - b)/lr``); a finite-lr run differs from them by
``O(lr)``, and for signGD in general ``d`` the constant grows with ``d``
(THEORY.md 8.1: 157 to 320 lr at ``d = 16``, cutoff 8).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from sims.linear.metrics import mean_std, risk_curves
from sims.linear.predictions import BatchPrediction, predict_many
from theory.signal import Problem, irrelevant_mask

#: Optimizers with a prediction here (GD's closed form is the sweep's ``gd_closed_form``).
PREDICTED = ("signgd", "adam", "rmsprop")
#: The caveat printed wherever a limit is drawn beside a finite-lr run.
FLOW_CAVEAT = ("limits lr -> 0 at fixed tau = lr t (Adam/RMSProp: fixed c = (1-b)/lr); a run differs by O(lr), "
               "for signGD with a constant growing with d (THEORY.md 8.1: 157-320 lr at d = 16)")


class PointPrediction(NamedTuple):
    """One optimizer's prediction for the targets of one sweep point.

    Attributes:
      theory: the formula.
      e_freq: ``(targets, T, d)`` predicted ``e~`` on the record grid (NaN without one).
      applicable: ``(targets,)`` bool.
      reason: why some targets have none (``""`` if all have one).
    """

    theory: str
    e_freq: np.ndarray
    applicable: np.ndarray
    reason: str


def solve_predictions(configs: Sequence[tuple], problems: Sequence[Problem], names: Sequence[str], lr: float,
                      grid: np.ndarray, hparams: Mapping[str, Mapping]) -> tuple[dict, dict]:
    """Predictions of every configuration, one vmapped solve per optimizer and dimension.

    Args:
      configs: distinct ``(d, alpha, cutoff)`` configurations.
      models: per configuration, its targets' models stacked (``SignalModel`` with a leading axis).
      names: optimizers to predict (those of :data:`PREDICTED`).
      lr: the learning rate.
      grid: ``(T,)`` record steps.
      hparams: per optimizer, hyper-parameter overrides.

    Returns:
      ``({config: {name: PointPrediction}}, {name: solve seconds})``.
    """
    out = {c: {} for c in configs}
    seconds = {}
    for d in sorted({c[0] for c in configs}):
        group = [i for i, c in enumerate(configs) if c[0] == d]
        sizes = [len(problems[i].spectrum) for i in group]
        stacked = Problem(*(np.concatenate([np.asarray(problems[i][j], np.float64) for i in group])
                                for j in range(3)))
        for name in names:
            p: BatchPrediction = predict_many(name, stacked, lr, grid, hparams=hparams.get(name, {}))
            seconds[name] = seconds.get(name, 0.0) + p.solve_s
            start = 0
            for i, n in zip(group, sizes):
                ok = p.applicable[start:start + n]
                out[configs[i]][name] = PointPrediction(p.theory, p.e_freq[start:start + n], ok,
                                                        "" if ok.all() else p.reason)
                start += n
    return out, seconds


def _irrelevant_norm(e_freq: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    irr = np.asarray(irrelevant_mask(jnp.asarray(spectrum)))
    return np.linalg.norm(np.where(irr, e_freq, 0.0), axis=-1)


def _stats(values: np.ndarray, keep: np.ndarray) -> dict:
    """``{mean, std, max}`` over kept entries (``None`` with none kept)."""
    if not keep.any():
        return {"mean": None, "std": None, "max": None}
    v = values[keep]
    return {"mean": float(v.mean()), "std": float(v.std()), "max": float(v.max())}


def compare(w_sim: np.ndarray, kept: np.ndarray, pred: PointPrediction, problems: Problem, radius: float) -> dict:
    """Predicted final values of one point and their distance from the simulation.

    Args:
      w_sim: ``(targets, d)`` simulated final ``w~``.
      kept: ``(targets,)`` bool, simulations that did not diverge.
      pred: the point's :class:`PointPrediction`.
      models: the point's targets' models (stacked).
      radius: the l2 adversary budget.

    Returns:
      ``{theory, applicable (count), reason (None if all apply), predicted: {key: {mean, std}},
      distance: {irrelevant_norm_abs, adversarial_risk_rel: {mean, std, max}}}``; with no
      target predicted, ``predicted`` and ``distance`` values are ``None``.
    """
    ok = pred.applicable
    w_star = np.asarray(problems.w_star_freq, np.float64)
    spectrum = np.asarray(problems.spectrum, np.float64)
    e_pred = np.where(ok[:, None], np.nan_to_num(pred.e_freq[:, -1]), 0.0)
    w_pred = w_star + e_pred
    curves = {k: np.asarray(v, np.float64) for k, v in risk_curves(jnp.asarray(w_pred), problems, radius)._asdict().items()}
    target = risk_curves(problems.w_star_freq, problems, radius)
    curves["irrelevant_norm"] = _irrelevant_norm(e_pred, spectrum)
    curves["weight_norm_ratio"] = curves["weight_norm"] / np.asarray(target.weight_norm, np.float64)
    curves["adversarial_risk_ratio"] = curves["adversarial_risk"] / np.asarray(target.adversarial_risk, np.float64)
    sim_ra = np.asarray(risk_curves(jnp.asarray(w_sim), problems, radius).adversarial_risk, np.float64)
    sim_irr = _irrelevant_norm(w_sim - w_star, spectrum)
    both = ok & kept
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(sim_ra - curves["adversarial_risk"]) / curves["adversarial_risk"]
    return {
        "theory": pred.theory,
        "applicable": int(ok.sum()),
        "reason": pred.reason or None,
        "predicted": {k: mean_std(v, ok) for k, v in curves.items()},
        "distance": {"irrelevant_norm_abs": _stats(np.abs(sim_irr - curves["irrelevant_norm"]), both),
                     "adversarial_risk_rel": _stats(rel, both)},
    }


def transpose(per_point: Sequence[Optional[dict]]) -> dict:
    """Per-point :func:`compare` results (``None``: not solved) as per-key lists along an axis."""
    first = next((p for p in per_point if p is not None), None)
    if first is None:
        return {"solved": [False] * len(per_point)}
    none_stat = lambda keys: {k: None for k in keys}  # noqa: E731
    out = {"theory": first["theory"], "solved": [p is not None for p in per_point],
           "applicable": [None if p is None else p["applicable"] for p in per_point],
           "reason": [("not solved at this point (see config.predict_axes)" if p is None else p["reason"])
                      for p in per_point]}
    for group in ("predicted", "distance"):
        out[group] = {}
        for key, stat in first[group].items():
            vals = [none_stat(stat) if p is None else p[group][key] for p in per_point]
            out[group][key] = {s: [v[s] for v in vals] for s in stat}
    return out


def readme_block(s: dict) -> str:
    """The README's spectrum-sweep findings, rendered from ``spectrum_summary.json``."""
    from sims.common.plotting import LABELS

    cfg, dyn = s["config"], s["dynamics"]["optimizers"]
    lines = [
        f"`python sims/spectrum_sweep.py`: d = {cfg['dim']}, `sigma_k = {cfg['scale']:g} (k+1)^-{cfg['alpha']:g}` "
        f"for k < {cfg['cutoff']} ({cfg['dim'] - cfg['cutoff']} irrelevant frequencies), lr {cfg['lr']:g}, "
        f"{cfg['steps']} steps, {cfg.get('mode', 'population')} gradient; the sweeps use {cfg['targets']} targets "
        "per point. Final values at the dynamics point, simulated beside predicted (THEORY.md 8; "
        f"{s['theory']['caveat']}):",
        "",
        "| optimizer | R_s | `\\|\\|e~_I\\|\\|` | predicted | R_a | predicted | theory |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in dyn.items():
        f, p = r["final"], r.get("predicted") or {}
        ok = p.get("applicable", False)
        lines.append(
            f"| {LABELS.get(name, name)} | {f['standard_risk']['mean']:.2g} | {f['irrelevant_norm']['mean']:.3f} | "
            f"{p['irrelevant_norm']:.3f} | " if ok else
            f"| {LABELS.get(name, name)} | {f['standard_risk']['mean']:.2g} | {f['irrelevant_norm']['mean']:.3f} | - | ")
        lines[-1] += (f"{f['adversarial_risk']['mean']:.2f} | {p['adversarial_risk']:.2f} | `{p['theory']}` |" if ok else
                      f"{f['adversarial_risk']['mean']:.2f} | - | `{p.get('theory', '-')}`: {p.get('reason', '')} |")
    return "\n".join(lines)
