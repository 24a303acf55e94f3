"""The spectrum sweep: GD, signGD, Adam and RMSProp on power-law spectra in ``d`` dimensions.

The spectrum is ``sigma_k = sigma0 (k + 1)^-alpha`` for ``k < cutoff`` and 0
above (:func:`theory.spectra.powerlaw_spectrum`): the ``d - cutoff`` high
frequencies are irrelevant, as in natural images. Targets ``w~*`` are drawn
on the relevant band and starts ``w~(0)`` from a small isotropic Gaussian
(:func:`draw_problem`). :func:`run_study` makes two studies:

* **dynamics**: one point ``(dim, alpha, cutoff)`` through the engine
  (:func:`sims.linear.engine.simulate`; any gradient source, over seeds):
  ``||e~_I(t)||``, ``R_s(t)`` and ``R_a(t)`` per optimizer, and the final
  ``|e~_k|``;
* **sweep**: the final ``||e~_I||``, ``||w||`` and ``R_a`` along three axes
  (:func:`sweep_points`), over drawn targets, on the population gradient;
  the points of one ``d`` run as one vmapped program per optimizer
  (:func:`theory.dynamics.optax_trajectory`).

Beside both, every optimizer's small-learning-rate limit (THEORY.md sections
3 and 8: GD's closed form, the sign flow, the fixed-``c`` Adam and RMSProp
ODEs) is solved for the same problems, in float64, one vmapped solve per
optimizer and dimension (:func:`sims.linear.predictions.predict_many`), and
compared with the simulated final weights (:func:`compare`):

* ``irrelevant_norm_abs``: ``| ||e~_I||_sim - ||e~_I||_pred |`` per target;
* ``adversarial_risk_rel``: ``|R_a,sim - R_a,pred| / R_a,pred`` per target;

each as mean, std and max over the targets that have both a simulation
(not diverged) and a prediction. The limits are ``lr -> 0`` limits at fixed
``tau = lr t`` (and, for Adam and RMSProp, fixed ``c = (1 - b)/lr``); a
finite-lr run differs from them by ``O(lr)``, and for signGD in general
``d`` the constant grows with ``d`` (THEORY.md 8.1: 157 to 320 lr at
``d = 16``, cutoff 8). The figures are :mod:`sims.linear.sweep_figures`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import cli
from sims.common.optimizers import OPTIMIZERS, hyperparams, make_optimizer
from sims.common.streams import TARGET_STREAM
from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.linear.metrics import diverged, format_mean_std, mean_std, risk_curves
from sims.linear.oracles import make_oracle
from sims.linear.predictions import BatchPrediction, predict_many
from sims.linear.recording import log_steps
from theory.dynamics import optax_trajectory
from theory.gd import gd_error, gd_is_stable, gd_max_stable_lr
from theory.signal import PaperTraining, Problem, irrelevant_mask
from theory.spectra import draw_w_star_freq, powerlaw_spectrum

#: The sweep's axes, in the order of the JSON, tables and figure rows.
SWEEP_AXES = ("cutoff", "alpha", "dim")
#: The default cutoffs as fractions of ``dim``.
DEFAULT_CUTOFF_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 15 / 16)
#: Log-spaced record steps on which sweep runs are checked for divergence.
DIVERGENCE_POINTS = 24
#: Optimizers with an ODE or flow prediction (GD's is its closed form, solved apart).
PREDICTED = ("signgd", "adam", "rmsprop")
#: The prediction key of the dynamics problem alone (target 0), beside the sweep's points.
DYNAMICS = "dynamics"
#: The caveat printed wherever a limit is drawn beside a finite-lr run.
FLOW_CAVEAT = ("limits lr -> 0 at fixed tau = lr t (Adam/RMSProp: fixed c = (1-b)/lr); a run differs by O(lr), "
               "for signGD with a constant growing with d (THEORY.md 8.1: 157-320 lr at d = 16)")


@dataclasses.dataclass(frozen=True)
class Config:
    """The study's settings (the flags of ``sims/spectrum_sweep.py``, dumped as the JSON's ``config``).

    Attributes:
      dim, alpha, cutoff: the dynamics point; the sweep's axes pass through it.
      sigma0: ``sigma_0``, the largest standard deviation (``lr sigma0^2 = 0.9`` for GD by default).
      alphas, cutoffs, dims: the sweep's axes; ``cutoffs=None`` is :data:`DEFAULT_CUTOFF_FRACTIONS` of
        ``dim``, rounded. Along ``dims`` the cutoff keeps the ratio ``cutoff / dim``.
      targets: targets (and starts) drawn per sweep point; the dynamics use the first.
      target_scale: ``w~*_k ~ N(0, target_scale^2)`` on the relevant band, 0 on the irrelevant one.
      w0_std: ``w~(0)_k ~ N(0, w0_std^2)`` on every frequency.
      steps, lr: iterations and the learning rate, shared by all optimizers.
      optimizers, hparams: names, and per name every hyper-parameter (defaults merged in).
      seeds, seed: seeds of the dynamics run, and the base seed of targets, starts and batches.
      gradient, batch_size, sampler, label_noise: the dynamics run's gradient source
        (:func:`sims.linear.oracles.make_oracle`); ``batch_size`` and ``sampler`` are ``None`` with
        the population gradient. The sweep always uses the population gradient.
      radius: the l2 adversary's budget.
      record_points: log-spaced record steps of the dynamics run.
      predict: what gets the signGD, Adam and RMSProp predictions: ``"dynamics"`` and sweep axes.
      x64: float64 instead of float32.
    """

    dim: int = 64
    alpha: float = 1.0
    cutoff: int = 16
    sigma0: float = 30.0
    alphas: tuple = (0.0, 0.5, 1.0, 1.5, 2.0)
    cutoffs: Optional[tuple] = None
    dims: tuple = (16, 32, 64, 128, 256)
    targets: int = 8
    target_scale: float = 1.0
    w0_std: float = 0.01
    steps: int = 10_000
    lr: float = 1e-3
    optimizers: tuple = OPTIMIZERS
    hparams: Mapping = dataclasses.field(default_factory=dict)
    seeds: int = 4
    seed: int = 0
    gradient: str = "population"
    batch_size: Optional[int] = PaperTraining().batch_size
    sampler: Optional[str] = "wishart"
    label_noise: float = 0.0
    radius: float = PaperTraining().radius
    record_points: int = 200
    predict: tuple = (DYNAMICS,)
    x64: bool = False

    def __post_init__(self):
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen
        if self.cutoffs is None:
            fix("cutoffs", tuple(sorted({min(self.dim, max(1, round(self.dim * f)))
                                         for f in DEFAULT_CUTOFF_FRACTIONS})))
        fix("hparams", {n: hyperparams(n, dict(self.hparams).get(n)) for n in self.optimizers})
        if self.gradient == "population":  # no batches
            fix("batch_size", None)
            fix("sampler", None)

    @property
    def dtype(self):
        return jnp.float64 if self.x64 else jnp.float32

    @property
    def predict_axes(self) -> tuple[str, ...]:
        return tuple(a for a in SWEEP_AXES if a in self.predict)

    @property
    def predict_dynamics(self) -> bool:
        return DYNAMICS in self.predict and self.gradient == "population"


class Point(NamedTuple):
    """One problem of the sweep: the power-law spectrum's ``(dim, alpha, cutoff)``."""

    dim: int
    alpha: float
    cutoff: int


class AxisPoint(NamedTuple):
    """A point on a sweep axis: the axis, the ``value`` it takes there, and the :class:`Point`."""

    axis: str
    value: float
    point: Point


def sweep_points(config: Config) -> list[AxisPoint]:
    """The cutoff axis at ``alpha``; the alpha axis at ``cutoff``; the dimension axis at ``alpha``
    with ``cutoff / dim`` kept (rounded, at least 1)."""
    c = config
    frac = c.cutoff / c.dim
    return ([AxisPoint("cutoff", k, Point(c.dim, c.alpha, k)) for k in c.cutoffs]
            + [AxisPoint("alpha", a, Point(c.dim, a, c.cutoff)) for a in c.alphas]
            + [AxisPoint("dim", d, Point(d, c.alpha, max(1, round(frac * d)))) for d in c.dims])


def memory_bytes(config: Config) -> tuple[float, str]:
    """A bound on the sweep's memory, and what it is for.

    One vmapped program per dimension keeps the weights of every point and
    target on the divergence record steps, ``(targets, T, d)``, twice (the
    scan's output and its copy), plus a ``d x d`` DCT per target.
    """
    per_dim = len(config.cutoffs) + len(config.alphas) + 1
    biggest = max(max(config.dims), config.dim)
    need = config.targets * per_dim * DIVERGENCE_POINTS * biggest * 4 * 2 + config.targets * biggest**2 * 8
    return need, f"{config.targets} targets x {per_dim} points at d = {biggest}"


def flops(config: Config) -> float:
    """A lower bound on the sweep's work: two dense ``d x d`` products per step, target and optimizer."""
    return sum(config.targets * len(config.optimizers) * config.steps * 4.0 * d * d for d in config.dims)


# --------------------------------------------------------------------------
# Problems.


def target_keys(seed: int, targets: int) -> list:
    """Key of target ``j``: ``fold_in(fold_in(key(seed), 2^31 - 2), j)`` (apart from the batches' seeds)."""
    base = jax.random.fold_in(jax.random.key(seed), TARGET_STREAM)
    return [jax.random.fold_in(base, j) for j in range(targets)]


def draw_problem(key, point: Point, config: Config) -> Problem:
    """A power-law problem with ``w~*`` drawn on its relevant band and a Gaussian start.

    The draws depend on ``key`` only, not on ``alpha`` or ``cutoff``, so the
    sweep compares spectra on the same targets (nested across cutoffs).
    """
    k_star, k_w0 = jax.random.split(key)
    spectrum = powerlaw_spectrum(point.dim, point.alpha, point.cutoff, config.sigma0, config.dtype)
    w0 = config.w0_std * jax.random.normal(k_w0, (point.dim,), config.dtype)
    return Problem(spectrum, draw_w_star_freq(k_star, spectrum, config.target_scale), w0)


def stack_problems(problems: Sequence[Problem]) -> Problem:
    """Problems of one ``d`` stacked along a leading axis."""
    return Problem(*(jnp.stack(leaves) for leaves in zip(*problems)))


def irrelevant_norm(e_freq, spectrum) -> np.ndarray:
    """``||e~_I||``, the error's norm on the irrelevant band (``sigma_k = 0``), over the last axis, in float64."""
    irr = np.asarray(irrelevant_mask(jnp.asarray(spectrum)))
    return np.linalg.norm(np.where(irr, np.asarray(e_freq, np.float64), 0.0), axis=-1)


def _f64(curves) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in curves._asdict().items()}


# --------------------------------------------------------------------------
# The sweep: every point of one dimension in one compiled program per optimizer.


class SweepRuns(NamedTuple):
    """Final weights of one point, over its targets.

    Attributes:
      problems: the ``targets`` problems, stacked.
      w_freq: optimizer -> ``(targets, d)`` final weights.
      diverged: optimizer -> ``(targets,)``.
      gd_closed_form: ``(targets, d)`` GD's closed form at the final step.
    """

    problems: Problem
    w_freq: dict
    diverged: dict
    gd_closed_form: np.ndarray


def run_sweep(points: Sequence[Point], keys, config: Config, quiet: bool = False) -> dict:
    """Runs every point and target on the population gradient: ``{point: SweepRuns}``.

    One compiled program per optimizer and dimension, vmapped over the
    points and targets of that dimension (a point on several axes runs once).
    """
    record_steps = log_steps(config.steps, DIVERGENCE_POINTS)
    runs: dict = {}
    dims = sorted({p.dim for p in points})
    bar = cli.Progress("sweep", len(dims) * len(config.optimizers), quiet, unit="program")
    for d in dims:
        group = list(dict.fromkeys(p for p in points if p.dim == d))
        problems = stack_problems([draw_problem(k, p, config) for p in group for k in keys])
        w_final, bad = {}, {}
        for name in config.optimizers:
            hp = config.hparams[name]
            run = jax.jit(jax.vmap(lambda m: optax_trajectory(make_optimizer(name, config.lr, **hp), m, record_steps)))
            w = run(problems)  # (points x targets, T, d)
            bad[name] = diverged(w, problems)
            w_final[name] = np.asarray(w[:, -1], np.float64)
            bar.update(1)
        gd = np.asarray(jax.vmap(lambda m: gd_error(m, config.lr)(config.steps))(problems) + problems.w_star_freq,
                        np.float64)
        n = len(keys)
        for j, p in enumerate(group):
            sl = slice(j * n, (j + 1) * n)
            runs[p] = SweepRuns(Problem(*(leaf[sl] for leaf in problems)), {k: v[sl] for k, v in w_final.items()},
                                {k: v[sl] for k, v in bad.items()}, gd[sl])
    bar.close()
    return runs


def final_stats(w_final: np.ndarray, keep: np.ndarray, problems: Problem, radius: float) -> dict:
    """Mean and std over targets of the final values of one point.

    ``weight_norm_ratio`` is ``||w|| / ||w~*||`` and ``adversarial_risk_ratio``
    is ``R_a(w) / R_a(w~*)``. Diverged runs (``~keep``) are left out; with
    every run diverged the values are ``None``.
    """
    values = final_values(w_final, problems, radius)
    return {**{k: mean_std(v, keep) for k, v in values.items()}, "diverged": int((~keep).sum())}


def final_values(w: np.ndarray, problems: Problem, radius: float) -> dict:
    """``R_s``, ``||w||``, ``R_a``, ``||e~_I||`` and the two ratios to the target, per target, in float64."""
    values = _f64(risk_curves(jnp.asarray(w), problems, radius))
    values["irrelevant_norm"] = irrelevant_norm(w - np.asarray(problems.w_star_freq), problems.spectrum)
    # Relative to the target itself (R_s = 0, so R_a(w~*) = radius^2 ||w~*||^2 / 2): targets of
    # different norms (across cutoffs and dimensions) become comparable.
    target = risk_curves(problems.w_star_freq, problems, radius)
    values["weight_norm_ratio"] = values["weight_norm"] / np.asarray(target.weight_norm, np.float64)
    values["adversarial_risk_ratio"] = values["adversarial_risk"] / np.asarray(target.adversarial_risk, np.float64)
    return values


def _per_key(stats: Sequence[dict]) -> dict:
    """Per-point ``{key: {mean, std}}`` as ``{key: {mean: [...], std: [...]}}`` (other values: lists)."""
    out = {}
    for key, first in stats[0].items():
        if isinstance(first, dict):
            out[key] = {"mean": [s[key]["mean"] for s in stats], "std": [s[key]["std"] for s in stats]}
        else:
            out[key] = [s[key] for s in stats]
    return out


def sweep_summary(points: Sequence[AxisPoint], runs: Mapping[Point, SweepRuns], config: Config, gd_stable: bool,
                  preds: Mapping) -> dict:
    """``{axis: {values, dim, alpha, cutoff, irrelevant, optimizers: {name: {key: {mean: [], std: []}}},
    gd_closed_form, predictions: {name: ...}}}``: per-point lists along each axis.

    ``predictions.<name>`` is :func:`transpose` of the per-point :func:`compare`
    (``gd``: its closed form; the others from ``preds``, ``{point: {name: PointPrediction}}``).
    """
    out = {}
    for axis in SWEEP_AXES:
        sel = [(p, runs[p.point]) for p in points if p.axis == axis]
        entry = {"values": [p.value for p, _ in sel], "dim": [p.point.dim for p, _ in sel],
                 "alpha": [p.point.alpha for p, _ in sel], "cutoff": [p.point.cutoff for p, _ in sel],
                 "irrelevant": [p.point.dim - p.point.cutoff for p, _ in sel]}
        entry["optimizers"] = {
            name: _per_key([final_stats(r.w_freq[name], ~r.diverged[name], r.problems, config.radius) for _, r in sel])
            for name in config.optimizers}
        entry["gd_closed_form"] = _per_key([
            final_stats(r.gd_closed_form, np.ones(len(r.gd_closed_form), bool), r.problems, config.radius)
            for _, r in sel]) if gd_stable else None
        predictions = {}
        if gd_stable and "gd" in config.optimizers:
            predictions["gd"] = transpose([compare(r.w_freq["gd"], ~r.diverged["gd"], PointPrediction(
                "closed_form", (r.gd_closed_form - np.asarray(r.problems.w_star_freq, np.float64))[:, None],
                np.ones(len(r.gd_closed_form), bool), ""), r.problems, config.radius) for _, r in sel])
        for name in PREDICTED:
            if name in config.optimizers:
                predictions[name] = transpose([
                    compare(r.w_freq[name], ~r.diverged[name], preds[p.point][name], r.problems, config.radius)
                    if p.point in preds else None for p, r in sel])
        entry["predictions"] = predictions
        out[axis] = entry
    return out


# --------------------------------------------------------------------------
# Predictions and their distance from the runs.


class PointPrediction(NamedTuple):
    """One optimizer's prediction for the targets of one point.

    Attributes:
      theory: the formula.
      e_freq: ``(targets, T, d)`` predicted ``e~`` at the record steps (NaN without one).
      applicable: ``(targets,)`` bool.
      reason: why some targets have none (``""`` if all have one).
    """

    theory: str
    e_freq: np.ndarray
    applicable: np.ndarray
    reason: str


def solve_predictions(problems: Mapping[Union[Point, str], Problem], names: Sequence[str], lr: float,
                      record_steps: np.ndarray, hparams: Mapping[str, Mapping]) -> tuple[dict, dict]:
    """Predictions of every problem batch, one vmapped solve per optimizer and dimension.

    Args:
      problems: key (a :class:`Point`, or :data:`DYNAMICS`) -> its targets' problems, stacked.
      names: optimizers to predict (those of :data:`PREDICTED`).
      lr: the learning rate.
      record_steps: ``(T,)`` the steps at which to predict.
      hparams: per optimizer, its hyper-parameters.

    Returns:
      ``({key: {name: PointPrediction}}, {name: solve seconds})``.
    """
    keys = list(problems)
    out = {k: {} for k in keys}
    seconds = {}
    dim = lambda k: problems[k].spectrum.shape[-1]  # noqa: E731
    for d in sorted({dim(k) for k in keys}):
        group = [k for k in keys if dim(k) == d]
        sizes = [len(problems[k].spectrum) for k in group]
        stacked = Problem(*(np.concatenate([np.asarray(problems[k][j], np.float64) for k in group]) for j in range(3)))
        for name in names:
            p: BatchPrediction = predict_many(name, stacked, lr, record_steps, hparams=hparams.get(name, {}))
            seconds[name] = seconds.get(name, 0.0) + p.solve_s
            start = 0
            for k, n in zip(group, sizes):
                ok = p.applicable[start:start + n]
                out[k][name] = PointPrediction(p.theory, p.e_freq[start:start + n], ok, "" if ok.all() else p.reason)
                start += n
    return out, seconds


def _stats(values: np.ndarray, keep: np.ndarray) -> dict:
    """:func:`~sims.linear.metrics.mean_std` and the ``max`` over kept entries (``None`` with none kept)."""
    out = mean_std(values, keep)
    return {**out, "max": None if out["mean"] is None else float(np.asarray(values, np.float64)[keep].max())}


def compare(w_sim: np.ndarray, kept: np.ndarray, pred: PointPrediction, problems: Problem, radius: float) -> dict:
    """Predicted final values of one point and their distance from the simulation.

    Args:
      w_sim: ``(targets, d)`` simulated final ``w~``.
      kept: ``(targets,)`` bool, simulations that did not diverge.
      pred: the point's :class:`PointPrediction`.
      problems: the point's targets' problems (stacked).
      radius: the l2 adversary's budget.

    Returns:
      ``{theory, applicable (count), reason (None if all apply), predicted: {key: {mean, std}},
      distance: {irrelevant_norm_abs, adversarial_risk_rel: {mean, std, max}}}``; with no
      target predicted, ``predicted`` and ``distance`` values are ``None``.
    """
    ok = pred.applicable
    w_star = np.asarray(problems.w_star_freq, np.float64)
    spectrum = np.asarray(problems.spectrum, np.float64)
    e_pred = np.where(ok[:, None], np.nan_to_num(pred.e_freq[:, -1]), 0.0)
    curves = final_values(w_star + e_pred, problems, radius)
    sim_ra = np.asarray(risk_curves(jnp.asarray(w_sim), problems, radius).adversarial_risk, np.float64)
    sim_irr = irrelevant_norm(w_sim - w_star, spectrum)
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
           "reason": [("not solved at this point (see config.predict)" if p is None else p["reason"])
                      for p in per_point]}
    for group in ("predicted", "distance"):
        out[group] = {}
        for key, stat in first[group].items():
            vals = [none_stat(stat) if p is None else p[group][key] for p in per_point]
            out[group][key] = {s: [v[s] for v in vals] for s in stat}
    return out


# --------------------------------------------------------------------------
# The dynamics point.


class Dynamics(NamedTuple):
    """The dynamics run, for the JSON and the figure.

    Attributes:
      record_steps: ``(T,)``.
      summary: optimizer -> ``{final: {key: {mean, std}, diverged}}``.
      curves: optimizer -> ``{key: (kept seeds, T)}`` with ``abs_e_freq`` ``(kept seeds, d)`` at the end.
      kept_final: optimizer -> ``(kept seeds, d)`` final ``w~``.
      gd_curves: GD's closed form, ``{key: (T,)}`` and ``abs_e_freq`` ``(d,)``.
    """

    record_steps: np.ndarray
    summary: dict
    curves: dict
    kept_final: dict
    gd_curves: dict


def run_dynamics(config: Config, problem: Problem, quiet: bool = False) -> Dynamics:
    """The engine's run of every optimizer at the dynamics point, over ``config.seeds`` seeds."""
    optimizers = {n: make_optimizer(n, config.lr, **config.hparams[n]) for n in config.optimizers}
    batches = {} if config.gradient == "population" else dict(
        n=config.batch_size, sampler=config.sampler, label_noise=config.label_noise)
    oracle = make_oracle(config.gradient, problem.spectrum, **batches)
    record_steps = log_steps(config.steps, config.record_points)
    cli.stage(f"compiling and running the dynamics (d = {config.dim}, {config.steps} steps)", quiet)
    with cli.Progress("dynamics", int(record_steps[-1]), quiet) as progress:
        traj = simulate(make_simulation(optimizers, oracle), problem, seed_keys(config.seeds, config.seed),
                        record_steps, progress=progress)
    w_freq = np.asarray(traj.w_freq, np.float64)  # (seeds, k, T, d)
    keep_all = ~diverged(jnp.asarray(w_freq), problem)  # (seeds, k)
    e_freq = w_freq - np.asarray(problem.w_star_freq, np.float64)
    summary, curves, kept_final = {}, {}, {}
    for i, name in enumerate(traj.names):
        keep = keep_all[:, i]
        c = _f64(risk_curves(jnp.asarray(w_freq[:, i], config.dtype), problem, config.radius))
        c["irrelevant_norm"] = irrelevant_norm(e_freq[:, i], problem.spectrum)
        curves[name] = {k: v[keep] for k, v in c.items()}
        curves[name]["abs_e_freq"] = np.abs(e_freq[keep, i, -1])
        kept_final[name] = w_freq[keep, i, -1]
        summary[name] = {"final": {**{k: mean_std(v[:, -1], keep) for k, v in c.items()},
                                   "diverged": int((~keep).sum())}}
    gd_e = np.asarray(gd_error(problem, config.lr)(jnp.asarray(record_steps, config.dtype)), np.float64)
    gd_curves = _f64(risk_curves(jnp.asarray(gd_e + np.asarray(problem.w_star_freq), config.dtype), problem,
                                 config.radius))
    gd_curves["irrelevant_norm"] = irrelevant_norm(gd_e, problem.spectrum)
    gd_curves["abs_e_freq"] = np.abs(gd_e[-1])
    return Dynamics(record_steps, summary, curves, kept_final, gd_curves)


def _gd_prediction(dyn: Dynamics, problem: Problem) -> dict:
    """GD's closed form at the dynamics point and its distance from the kept seeds' mean."""
    gd, final = dyn.gd_curves, dyn.kept_final["gd"]
    distance = None
    if len(final):
        sim_irr = irrelevant_norm(final - np.asarray(problem.w_star_freq, np.float64), problem.spectrum).mean()
        sim_ra = dyn.summary["gd"]["final"]["adversarial_risk"]["mean"]
        ra = gd["adversarial_risk"][-1]
        distance = {"irrelevant_norm_abs": float(abs(sim_irr - gd["irrelevant_norm"][-1])),
                    "adversarial_risk_rel": float(abs(sim_ra - ra) / ra)}
    return {"theory": "closed_form", "applicable": True, "reason": None,
            **{k: float(v[-1]) for k, v in gd.items() if k != "abs_e_freq"}, "distance": distance}


def _dynamics_prediction(dyn: Dynamics, name: str, p: PointPrediction, problem: Problem, config: Config):
    """A limit at the dynamics point: its JSON entry (against the kept seeds' mean) and its curves
    (``None`` when it is NaN from the start)."""
    one = PointPrediction(p.theory, p.e_freq[:1], p.applicable[:1], p.reason)
    w_mean = dyn.kept_final[name]
    cmp = compare(w_mean.mean(0, keepdims=True), np.array([len(w_mean) > 0]), one,
                  Problem(*(jnp.asarray(v)[None] for v in problem)), config.radius)
    entry = {"theory": p.theory, "applicable": bool(p.applicable[0]), "reason": p.reason or None,
             **{k: v["mean"] for k, v in cmp["predicted"].items() if k in dyn.gd_curves},
             "distance": {k: v["mean"] for k, v in cmp["distance"].items()}}
    if not np.isfinite(p.e_freq[0]).all(axis=-1).any():
        return entry, None
    # A sign flow out of events is drawn as far as it goes.
    e = p.e_freq[0]
    c = _f64(risk_curves(jnp.asarray(e + np.asarray(problem.w_star_freq, np.float64), config.dtype), problem,
                         config.radius))
    c["irrelevant_norm"] = irrelevant_norm(e, problem.spectrum)
    c["abs_e_freq"] = np.abs(e[-1])
    return entry, c


# --------------------------------------------------------------------------
# The study.


class Study(NamedTuple):
    """What :func:`run_study` returns.

    Attributes:
      summary: the JSON body (``dynamics``, ``sweep``, ``theory``, ``timing``), without ``config``.
      dynamics: the dynamics run (:class:`Dynamics`), for the figure.
      pred_curves: optimizer -> its prediction's curves at the dynamics point (GD: its closed form).
    """

    summary: dict
    dynamics: Dynamics
    pred_curves: dict


def run_study(config: Config, quiet: bool = False) -> Study:
    """The dynamics point, the sweep and the predictions (see the module docstring).

    Args:
      config: the settings.
      quiet: no stage lines or progress bars.

    Returns:
      A :class:`Study`.
    """
    keys = target_keys(config.seed, config.targets)
    here = Point(config.dim, config.alpha, config.cutoff)
    problem = draw_problem(keys[0], here, config)
    stable = bool(gd_is_stable(problem.spectrum, config.lr))
    max_lr = float(gd_max_stable_lr(problem.spectrum))
    condition = (f"GD is stable iff 0 < lr * sigma0^2 < 2, i.e. lr < {max_lr:.6g}; "
                 f"here lr * sigma0^2 = {config.lr * config.sigma0 ** 2:.6g}")

    t0 = time.perf_counter()
    dyn = run_dynamics(config, problem, quiet)
    t1 = time.perf_counter()
    dynamics = dyn.summary
    if "gd" in dynamics and stable and config.gradient == "fixed":
        # Each seed's training set has its own H~_S: GD follows (I - lr H~_S)^t, whose mean over
        # training sets is not the population closed form.
        dynamics["gd"]["predicted"] = {"theory": None, "applicable": False, "reason": (
            "a fixed training set: GD follows (I - lr H~_S)^t of each seed's set "
            "(python sims/linear_dynamics.py --gradient fixed predicts it per seed)")}
    elif "gd" in dynamics and stable:  # population, or online: E[e~(t)] is the closed form (unbiased, linear)
        dynamics["gd"]["predicted"] = _gd_prediction(dyn, problem)
    points = sweep_points(config)
    cli.stage(f"sweeping {len(points)} points x {config.targets} targets x {len(config.optimizers)} optimizers",
              quiet)
    runs = run_sweep([p.point for p in points], keys, config, quiet)
    t2 = time.perf_counter()

    # The predictions: the dynamics problem (population gradient only) and the points of the predicted axes.
    names = [n for n in PREDICTED if n in config.optimizers]
    wanted = {p.point: runs[p.point].problems for p in points if p.axis in config.predict_axes}
    if config.predict_dynamics and here not in wanted:
        wanted[DYNAMICS] = Problem(*(jnp.asarray(v)[None] for v in problem))
    cli.stage(f"solving {','.join(names) or 'no'} predictions for {len(wanted)} points (float64)", quiet)
    preds, solve_s = solve_predictions(wanted, names, config.lr, dyn.record_steps, config.hparams) \
        if names and wanted else ({}, {})
    sweep = sweep_summary(points, runs, config, stable, preds)
    pred_curves = {}
    for name in names:
        if not config.predict_dynamics:
            why = (f"the run uses {config.gradient} batches; the limits here are population ones"
                   if config.gradient != "population" else "not requested (--predict)")
            dynamics[name]["predicted"] = {"theory": None, "applicable": False, "reason": why}
            continue
        p = preds[here if here in preds else DYNAMICS][name]
        dynamics[name]["predicted"], curves = _dynamics_prediction(dyn, name, p, problem, config)
        if curves is not None:
            pred_curves[name] = curves
    if stable:
        pred_curves["gd"] = dyn.gd_curves
    summary = {
        "dynamics": {"optimizers": dynamics,
                     "w_star_norm": float(np.linalg.norm(np.asarray(problem.w_star_freq, np.float64)))},
        "sweep": sweep,
        "theory": {"gd": {"stable": stable, "max_stable_lr": max_lr, "condition": condition},
                   "predict_axes": list(config.predict_axes), "predicted_points": len(wanted),
                   "solve_s": solve_s, "caveat": FLOW_CAVEAT},
        "timing": {"dynamics_s": t1 - t0, "sweep_s": t2 - t1, "predictions_s": time.perf_counter() - t2},
    }
    return Study(summary, dyn, pred_curves)


# --------------------------------------------------------------------------
# Tables.


def axis_label(s: dict, axis: str, config: Config) -> tuple[str, list]:
    """The x-axis label of a sweep axis and its values (the irrelevant count for the cutoff)."""
    if axis == "cutoff":
        return f"irrelevant frequencies d - cutoff (d = {config.dim}, alpha = {config.alpha:g})", s["irrelevant"]
    if axis == "alpha":
        return f"alpha (d = {config.dim}, cutoff = {config.cutoff})", s["values"]
    return f"dimension d (cutoff = d/{config.dim / config.cutoff:g}, alpha = {config.alpha:g})", s["values"]


def print_report(summary: dict, config: Config) -> None:
    """The dynamics point's final values, then per sweep axis ``R_a`` and the prediction distances."""
    d = summary["dynamics"]
    rows = [("optimizer", "R_s", "||w||", "R_a", "R_a predicted", "||e~_I||", "||e~_I|| predicted", "theory",
             "diverged")]
    for name, r in d["optimizers"].items():
        f, p = r["final"], r.get("predicted")
        ok = p is not None and p["applicable"]
        rows.append((name, *(format_mean_std(f[k]) for k in ("standard_risk", "weight_norm", "adversarial_risk")),
                     f"{p['adversarial_risk']:.4g}" if ok else "-", format_mean_std(f["irrelevant_norm"]),
                     f"{p['irrelevant_norm']:.4g}" if ok else "-", (p or {}).get("theory") or "-",
                     f"{f['diverged']}/{config.seeds}" + (" !" if f["diverged"] else "")))
    cli.print_rows(rows)
    for name, r in d["optimizers"].items():
        p = r.get("predicted")
        if p is not None and not p["applicable"]:
            print(f"{name}: no prediction: {p['reason']}")
    print(f"predictions: {FLOW_CAVEAT}")
    print(f"||w~*|| = {d['w_star_norm']:.4g}; ||e~_I|| is the error on the {config.dim - config.cutoff} irrelevant "
          "frequencies")
    if not summary["theory"]["gd"]["stable"]:
        print(summary["theory"]["gd"]["condition"])
    for axis in SWEEP_AXES:
        s = summary["sweep"][axis]
        label, xs = axis_label(s, axis, config)
        print(f"sweep: {label}; mean over {config.targets} targets of final R_a / R_a(w~*) | R_s")
        head = (axis if axis != "cutoff" else "irrelevant",) + tuple(f"{x:g}" for x in xs)
        named = list(s["optimizers"].items()) + ([("GD closed", s["gd_closed_form"])] if s["gd_closed_form"] else [])
        cli.print_rows([head] + [(name,) + tuple("-" if m is None else f"{m:.3f} | {r:.2g}" for m, r in zip(
            o["adversarial_risk_ratio"]["mean"], o["standard_risk"]["mean"])) for name, o in named])
        preds = {n: p for n, p in s.get("predictions", {}).items() if "distance" in p}
        if preds:
            print("prediction distance per point, mean ± std over targets: "
                  "| ||e~_I|| sim - pred |  ;  |R_a sim - pred| / R_a pred")
            cli.print_rows([head] + [(f"{name} ({p['theory']})",) + tuple(_distance_cell(p, j) for j in range(len(xs)))
                                     for name, p in preds.items()])


def _distance_cell(p: dict, j: int) -> str:
    """Point ``j``'s mean ± std of both distances, or why there is none."""
    di, dr = p["distance"]["irrelevant_norm_abs"], p["distance"]["adversarial_risk_rel"]
    if not p["solved"][j]:
        return "not solved"
    if di["mean"][j] is None:
        return "none: " + (p["reason"][j] or "no target kept")
    return f"{di['mean'][j]:.2g}±{di['std'][j]:.1g} ; {dr['mean'][j]:.2g}±{dr['std'][j]:.1g}"


def readme_block(s: dict) -> str:
    """The README's spectrum-sweep findings, rendered from ``spectrum_summary.json``."""
    from sims.common.plotting import LABELS

    cfg, dyn = s["config"], s["dynamics"]["optimizers"]
    lines = [
        f"`python sims/spectrum_sweep.py`: d = {cfg['dim']}, `sigma_k = {cfg['sigma0']:g} (k+1)^-{cfg['alpha']:g}` "
        f"for k < {cfg['cutoff']} ({cfg['dim'] - cfg['cutoff']} irrelevant frequencies), lr {cfg['lr']:g}, "
        f"{cfg['steps']} steps, {cfg['gradient']} gradient; the sweeps use {cfg['targets']} targets "
        "per point. Final values at the dynamics point, simulated beside predicted (THEORY.md 8; "
        f"{s['theory']['caveat']}):",
        "",
        "| optimizer | R_s | `\\|\\|e~_I\\|\\|` | predicted | R_a | predicted | theory |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in dyn.items():
        f, p = r["final"], r.get("predicted") or {}
        head = f"| {LABELS.get(name, name)} | {f['standard_risk']['mean']:.2g} | {f['irrelevant_norm']['mean']:.3f} | "
        if p.get("applicable", False):
            lines.append(head + f"{p['irrelevant_norm']:.3f} | {f['adversarial_risk']['mean']:.2f} | "
                         f"{p['adversarial_risk']:.2f} | `{p['theory']}` |")
        else:
            lines.append(head + f"- | {f['adversarial_risk']['mean']:.2f} | - | `{p.get('theory', '-')}`: "
                         f"{p.get('reason', '')} |")
    return "\n".join(lines)
