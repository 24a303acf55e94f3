"""GD, signGD, Adam and RMSProp on a power-law signal in ``d`` dimensions.

    python sims/spectrum_sweep.py            # d = 64, alpha = 1, cutoff = 16
    python sims/spectrum_sweep.py --help

The spectrum is ``sigma_k = scale (k + 1)^-alpha`` for ``k < cutoff`` and 0
above (:func:`theory.spectra.powerlaw_spectrum`): the ``d - cutoff`` high
frequencies are irrelevant, as in natural images. Targets ``w~*`` are drawn
from the relevant band and starts ``w~(0)`` from a small isotropic Gaussian.

Two studies, written to ``--out``:

* ``spectrum_dynamics.png``: one configuration through the sims engine
  (population gradient by default; ``--batch-size`` for online or fixed
  batches, over ``--seeds``): the irrelevant-band error ``||e~_I(t)||``,
  ``R_s(t)`` and ``R_a(t)`` per optimizer, and the final ``|e~_k|`` per
  frequency, with GD's closed form dashed.
* ``spectrum_sweep.png``: the final ``||e~_I||``, ``||w||`` and ``R_a``
  against the number of irrelevant frequencies ``d - cutoff`` (at
  ``--alpha``) and against ``alpha`` (at ``--cutoff``), mean and spread over
  ``--targets`` drawn targets, population gradient, every configuration
  vmapped into one compiled program per optimizer
  (:func:`sims.linear.population.population_run`).

Beside both, dashed in each optimizer's colour, the small-learning-rate
limits of THEORY.md sections 3 and 8 (:mod:`sims.linear.sweep_study`): GD's closed
form, the sign flow (signGD) and the fixed-``c`` Adam and RMSProp ODEs, solved
in float64 and vmapped over the models of one dimension. They are solved for
the dynamics run and for the sweep axes named in ``--predict`` (default:
``dynamics`` only: one Adam or RMSProp ODE solve in ``d = 64`` takes minutes
on a loaded 2-core machine, and the sign flow needs more than its event
budget there), and the JSON says, per point and optimizer, how far each is
from the simulation, or why there is no prediction.

``spectrum_summary.json`` holds the numbers, with the conventions of the
main job's ``summary.json``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import cli
from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.linear.metrics import diverged, mean_std, risk_curves
from sims.common.optimizers import DEFAULT_HYPERPARAMS, OPTIMIZERS, make_optimizer
from sims.linear.oracles import make_oracle
from sims.linear.population import population_run
from sims.linear.recording import log_steps
from sims.linear.sampling import SAMPLERS
from sims.linear.sweep_study import FLOW_CAVEAT, PREDICTED, PointPrediction, compare, solve_predictions, transpose
from theory.gd import gd_error, gd_is_stable, gd_max_stable_lr
from theory.signal import Problem, irrelevant_mask
from theory.spectra import draw_w_star_freq, powerlaw_spectrum

PROG = "spectrum_sweep.py"
SUMMARY = "spectrum_summary.json"
FIGURES = ("spectrum_dynamics.png", "spectrum_sweep.png")
#: The default --cutoffs as fractions of --dim.
DEFAULT_CUTOFF_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 15 / 16)
MAX_DIM = 4096  # the DCT is a dense d x d product: d^2 work per step and configuration
SWEEP_AXES = ("cutoff", "alpha", "dim")
DIVERGENCE_POINTS = 24
LOG_FLOOR = 1e-12  # R_s below this is rounding (or exactly 0, e.g. GD's closed form at cutoff 2)  # log-spaced checkpoints on which sweep runs are checked for divergence


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="GD, signGD, Adam and RMSProp on a power-law spectrum sigma_k = scale (k+1)^-alpha "
        "(k < cutoff; 0 above, the irrelevant band) in d dimensions: the irrelevant-band error over time, "
        "and the final weight norm and R_a against the cutoff and alpha, beside GD's closed form.",
    )
    a = p.add_argument
    a("--dim", type=cli.positive_int, default=64, help="dimension d (default: 64)")
    a("--alpha", type=cli.nonnegative_float, default=1.0, help="power-law exponent (default: 1)")
    a("--cutoff", type=cli.positive_int, default=16,
      help="relevant frequencies k < cutoff; the other d - cutoff are irrelevant (default: 16)")
    a("--scale", type=cli.positive_float, default=30.0,
      help="sigma_0, the largest standard deviation (default: 30, so that lr sigma_0^2 = 0.9 for GD)")
    a("--alphas", type=cli.float_list, default=(0.0, 0.5, 1.0, 1.5, 2.0),
      help="alpha values of the sweep, at --cutoff (default: 0,0.5,1,1.5,2)")
    a("--cutoffs", type=cli.float_list, default=None,
      help="cutoffs of the sweep, at --alpha (default: d/32, d/16, d/8, d/4, d/2, 3d/4 and 15d/16 "
      "rounded, which is 2,4,8,16,32,48,60 at d = 64)")
    a("--dims", type=cli.float_list, default=(16, 32, 64, 128, 256),
      help="dimensions of the sweep, at --alpha with cutoff/d as --cutoff/--dim (default: 16,32,64,128,256)")
    a("--targets", type=cli.positive_int, default=8,
      help="targets and starts drawn per sweep point; the dynamics use the first (default: 8)")
    a("--target-scale", type=cli.positive_float, default=1.0,
      help="w~*_k ~ N(0, target_scale^2) on the relevant band, 0 on the irrelevant one (default: 1)")
    a("--init-scale", type=cli.nonnegative_float, default=0.01,
      help="w~(0)_k ~ N(0, init_scale^2) on every frequency (default: 0.01)")
    a("--steps", type=cli.positive_int, default=10_000, help="iterations (default: 10000)")
    a("--lr", type=cli.positive_float, default=1e-3, help="learning rate, shared by all optimizers (default: 0.001)")
    a("--optimizers", type=cli.name_list(OPTIMIZERS), default=OPTIMIZERS,
      help=f"comma list from {','.join(OPTIMIZERS)} (default: all)")
    a("--hparam", action="append", default=[], metavar="OPT.NAME=VALUE",
      help="override an optimizer hyper-parameter, e.g. adam.b1=0 (repeatable); defaults match PyTorch")
    a("--seeds", type=cli.positive_int, default=4,
      help="seeds of the dynamics run (batches; identical with the population gradient) (default: 4)")
    a("--seed", type=cli.nonnegative_int, default=0,
      help="base seed: targets, starts and batches derive from it (default: 0)")
    a("--batch-size", type=cli.nonnegative_int, default=0,
      help="samples per batch n for the dynamics run; 0 uses the exact population gradient (default: 0)")
    a("--mode", choices=("online", "fixed"), default="online",
      help="with --batch-size > 0: fresh batches every step, or one reused training set (default: online)")
    a("--sampler", choices=SAMPLERS, default="wishart", help="batch sampler (default: wishart)")
    a("--radius", type=cli.nonnegative_float, default=math.sqrt(2.0), help="l2 adversary budget (default: sqrt(2))")
    a("--record-points", type=cli.positive_int, default=200, help="log-spaced record points (default: 200)")
    a("--predict", default="dynamics",
      help="what gets the signGD, Adam and RMSProp predictions: a comma list from dynamics,cutoff,alpha,dim "
      "(the dynamics run and sweep axes), or none; GD's closed form is always drawn (default: dynamics; "
      "each d = 64 ODE solve takes minutes on a loaded 2-core machine)")
    a("--x64", action="store_true", help="compute in float64 (default: float32)")
    a("--out", default=cli.DEFAULT_OUT,
      help=f"output folder for {SUMMARY} and spectrum_*.png (default: {cli.DEFAULT_OUT}/; "
      "the README's figures are refreshed with --out figures)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no progress line")
    return p


def _int_list(values: Sequence[float], flag: str, lo: int, hi: int) -> tuple[int, ...]:
    """Distinct integers in ``[lo, hi]``, sorted."""
    out = []
    for v in values:
        if v != int(v) or not lo <= v <= hi:
            raise cli.UsageError(f"{flag}: {v:g} is not an integer in [{lo}, {hi}]")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise cli.UsageError(f"{flag}: repeats a value")
    return tuple(sorted(out))


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
    if args.dim < 2:
        raise cli.UsageError("--dim: must be >= 2")
    if args.dim > MAX_DIM:
        raise cli.UsageError(f"--dim: at most {MAX_DIM}")
    args.cutoff = _int_list([args.cutoff], "--cutoff", 1, args.dim)[0]
    if args.cutoffs is None:  # fractions of d, so that the default follows --dim
        args.cutoffs = sorted({min(args.dim, max(1, round(args.dim * f))) for f in DEFAULT_CUTOFF_FRACTIONS})
    args.cutoffs = _int_list(args.cutoffs, "--cutoffs", 1, args.dim)
    args.dims = _int_list(args.dims, "--dims", 2, MAX_DIM)
    if any(a < 0 for a in args.alphas):
        raise cli.UsageError("--alphas: entries must be >= 0")
    if len(set(args.alphas)) != len(args.alphas):
        raise cli.UsageError("--alphas: repeats a value")
    args.alphas = tuple(sorted(args.alphas))
    what = tuple(a.strip() for a in args.predict.split(","))
    what = () if what == ("none",) else what
    if any(a not in ("dynamics",) + SWEEP_AXES for a in what) or len(set(what)) != len(what):
        raise cli.UsageError(f"--predict: a comma list from dynamics,{','.join(SWEEP_AXES)} without repeats, or none")
    args.predict_dynamics = "dynamics" in what
    args.predict_axes = tuple(a for a in SWEEP_AXES if a in what)
    cli.check_gradient_flags(args)
    args.hparams = cli.parse_hparams(args.hparam, args.optimizers)
    # Every sweep configuration (targets x points of one d) is one vmapped program that keeps its
    # weights on the record grid: (targets, T, d) float32, twice (the scan output and its copy).
    points_per_dim = len(args.cutoffs) + len(args.alphas) + 1
    biggest = max(max(args.dims), args.dim)
    need = args.targets * points_per_dim * DIVERGENCE_POINTS * biggest * 4 * 2 + args.targets * biggest**2 * 8
    cli.require_fits("--targets", need, f"{args.targets} targets x {points_per_dim} points at d = {biggest}")
    # A lower bound on the sweep's time: two dense d x d products per step, per target and optimizer,
    # at 1e11 flop/s (more than 2 CPU cores do).
    flops = sum(args.targets * len(args.optimizers) * args.steps * 4.0 * d * d for d in args.dims)
    cli.require_time("--dims", flops / 1e11, f"the sweep over d = {','.join(map(str, args.dims))}")
    cli.check_out_dir(args.out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


# --------------------------------------------------------------------------
# Configurations.


def draw_model(key, d: int, alpha: float, cutoff: int, scale: float, target_scale: float, init_scale: float,
               dtype) -> Problem:
    """A power-law model with ``w~*`` drawn on its relevant band and a Gaussian start.

    The draws depend on ``key`` only, not on ``alpha`` or ``cutoff``, so the
    sweep compares spectra on the same targets (nested across cutoffs).
    """
    k_star, k_init = jax.random.split(key)
    spectrum = powerlaw_spectrum(d, alpha, cutoff, scale, dtype)
    w0 = init_scale * jax.random.normal(k_init, (d,), dtype)
    return Problem(spectrum, draw_w_star_freq(k_star, spectrum, target_scale), w0)


def target_keys(seed: int, targets: int):
    """Key of target ``j``: ``fold_in(key(seed), j)`` (disjoint from the batch stream's seeds' use)."""
    base = jax.random.fold_in(jax.random.key(seed), 2**31 - 2)
    return [jax.random.fold_in(base, j) for j in range(targets)]


def stack_models(problems: Sequence[Problem]) -> Problem:
    return Problem(*(jnp.stack(leaves) for leaves in zip(*problems)))


def irrelevant_norm(e_freq, spectrum) -> np.ndarray:
    """``||e~_I||``, the error's norm on the irrelevant band, over the last axis."""
    irr = np.asarray(irrelevant_mask(jnp.asarray(spectrum)))
    return np.linalg.norm(np.where(irr, np.asarray(e_freq, np.float64), 0.0), axis=-1)


# --------------------------------------------------------------------------
# The sweep: every configuration of an optimizer in one compiled program.


class SweepPoint(NamedTuple):
    """One point of a sweep axis: its ``value`` and the configuration it runs."""

    axis: str
    value: float
    dim: int
    alpha: float
    cutoff: int


def sweep_points(args) -> list[SweepPoint]:
    """The cutoff axis at ``--alpha``; the alpha axis at ``--cutoff``; the
    dimension axis at ``--alpha`` with ``cutoff / d`` as in ``--cutoff / --dim``."""
    frac = args.cutoff / args.dim
    return ([SweepPoint("cutoff", c, args.dim, args.alpha, c) for c in args.cutoffs]
            + [SweepPoint("alpha", a, args.dim, a, args.cutoff) for a in args.alphas]
            + [SweepPoint("dim", d, d, args.alpha, max(1, round(frac * d))) for d in args.dims])


class SweepRuns(NamedTuple):
    """Final weights of one sweep point, over its targets.

    Attributes:
      models: the ``targets`` models, stacked.
      w_freq: optimizer -> ``(targets, d)`` final weights.
      diverged: optimizer -> ``(targets,)``.
      gd_closed_form: ``(targets, d)`` GD's closed form at the final step.
    """

    problems: Problem
    w_freq: dict
    diverged: dict
    gd_closed_form: np.ndarray


def run_sweep(points: Sequence[SweepPoint], make, keys, args) -> list[SweepRuns]:
    """Runs every point and target; one compiled program per optimizer and dimension.

    Points of different axes that share a configuration (the default point
    lies on all three axes) run once.
    """
    grid = log_steps(args.steps, DIVERGENCE_POINTS)
    config = lambda p: (p.dim, p.alpha, p.cutoff)
    runs: dict = {}
    dims = sorted({p.dim for p in points})
    bar = cli.Progress("sweep", len(dims) * len(args.optimizers), args.quiet, unit="program")
    for d in dims:
        configs = list(dict.fromkeys(config(p) for p in points if p.dim == d))
        problems = stack_models([make(k, *c) for c in configs for k in keys])
        w_final, bad = {}, {}
        for name in args.optimizers:
            hp = args.hparams.get(name, {})
            w = jax.jit(jax.vmap(lambda m: population_run(name, m, args.lr, grid, hp)))(problems)  # (n, T, d)
            bad[name] = diverged(w, problems)
            w_final[name] = np.asarray(w[:, -1], np.float64)
            bar.update(1)
        gd = np.asarray(jax.vmap(lambda m: gd_error(m, args.lr)(args.steps))(problems) + problems.w_star_freq,
                        np.float64)
        n = len(keys)
        for j, c in enumerate(configs):
            sl = slice(j * n, (j + 1) * n)
            runs[c] = SweepRuns(Problem(*(leaf[sl] for leaf in problems)),
                                {k: v[sl] for k, v in w_final.items()}, {k: v[sl] for k, v in bad.items()}, gd[sl])
    bar.close()
    return [runs[config(p)] for p in points]


def final_stats(w_final: np.ndarray, keep: np.ndarray, problems: Problem, radius: float) -> dict:
    """Mean and std over targets of the final values of one point.

    ``weight_norm_ratio`` is ``||w|| / ||w~*||`` and ``adversarial_risk_ratio``
    is ``R_a(w) / R_a(w~*)``. Diverged runs (``~keep``) are left out; with
    every run diverged the values are ``None``.
    """
    c = risk_curves(jnp.asarray(w_final), problems, radius)
    values = {k: np.asarray(v, np.float64) for k, v in c._asdict().items()}
    values["irrelevant_norm"] = irrelevant_norm(w_final - np.asarray(problems.w_star_freq), problems.spectrum)
    # Relative to the target itself (R_s = 0, so R_a(w~*) = eps^2 ||w~*||^2 / 2): targets of
    # different norms (across cutoffs and dimensions) become comparable.
    target = risk_curves(problems.w_star_freq, problems, radius)
    values["weight_norm_ratio"] = values["weight_norm"] / np.asarray(target.weight_norm, np.float64)
    values["adversarial_risk_ratio"] = values["adversarial_risk"] / np.asarray(target.adversarial_risk, np.float64)
    return {**{k: mean_std(v, keep) for k, v in values.items()}, "diverged": int((~keep).sum())}


def sweep_summary(points: Sequence[SweepPoint], runs: Sequence[SweepRuns], args, gd_stable: bool,
                  preds: Optional[dict] = None) -> dict:
    """``{axis: {values, dim, alpha, cutoff, irrelevant, optimizers: {name: {key: {mean: [], std: []}}},
    gd_closed_form, predictions: {name: ...}}}``: per-point lists along each axis.

    ``predictions.<name>`` is :func:`sims.linear.sweep_study.transpose` of the
    per-point :func:`sims.linear.sweep_study.compare` (``gd``: its closed form;
    others: from ``preds``, ``{(d, alpha, cutoff): {name: PointPrediction}}``).
    """
    preds = preds or {}
    out = {}
    for axis in SWEEP_AXES:
        sel = [(p, r) for p, r in zip(points, runs) if p.axis == axis]
        entry = {"values": [p.value for p, _ in sel], "dim": [p.dim for p, _ in sel],
                 "alpha": [p.alpha for p, _ in sel], "cutoff": [p.cutoff for p, _ in sel],
                 "irrelevant": [p.dim - p.cutoff for p, _ in sel]}
        per_point = {name: [final_stats(r.w_freq[name], ~r.diverged[name], r.problems, args.radius) for _, r in sel]
                     for name in args.optimizers}
        if gd_stable:
            per_point["gd_closed_form"] = [final_stats(r.gd_closed_form, np.ones(len(r.gd_closed_form), bool),
                                                       r.problems, args.radius) for _, r in sel]
        entry["optimizers"] = {name: _transpose(stats) for name, stats in per_point.items() if name != "gd_closed_form"}
        entry["gd_closed_form"] = _transpose(per_point["gd_closed_form"]) if gd_stable else None
        predictions = {}
        if gd_stable and "gd" in args.optimizers:
            predictions["gd"] = transpose([compare(r.w_freq["gd"], ~r.diverged["gd"], PointPrediction(
                "closed_form", (r.gd_closed_form - np.asarray(r.problems.w_star_freq, np.float64))[:, None],
                np.ones(len(r.gd_closed_form), bool), ""), r.problems, args.radius) for _, r in sel])
        for name in PREDICTED:
            if name in args.optimizers:
                predictions[name] = transpose([
                    compare(r.w_freq[name], ~r.diverged[name], preds[c][name], r.problems, args.radius)
                    if (c := (p.dim, p.alpha, p.cutoff)) in preds else None for p, r in sel])
        entry["predictions"] = predictions
        out[axis] = entry
    return out


def _transpose(stats: Sequence[dict]) -> dict:
    """A list of per-point ``{key: {mean, std}}`` as ``{key: {mean: [...], std: [...]}}``."""
    out = {}
    for key, first in stats[0].items():
        if isinstance(first, dict):
            out[key] = {"mean": [s[key]["mean"] for s in stats], "std": [s[key]["std"] for s in stats]}
        else:
            out[key] = [s[key] for s in stats]
    return out


# --------------------------------------------------------------------------
# The run.


def run(args, t_start: float) -> int:
    dtype = jnp.float64 if args.x64 else jnp.float32
    keys = target_keys(args.seed, args.targets)
    make = lambda key, d, alpha, cutoff: draw_model(key, d, alpha, cutoff, args.scale, args.target_scale,
                                                    args.init_scale, dtype)
    problem = make(keys[0], args.dim, args.alpha, args.cutoff)
    mode = "population" if args.batch_size == 0 else args.mode
    stable = bool(gd_is_stable(problem.spectrum, args.lr))
    max_lr = float(gd_max_stable_lr(problem.spectrum))
    gd_condition = (f"GD is stable iff 0 < lr * scale^2 < 2, i.e. lr < {max_lr:.6g}; "
                    f"here lr * scale^2 = {args.lr * args.scale ** 2:.6g}")

    # Dynamics of one configuration, through the engine.
    t_sim = time.perf_counter()
    optimizers = {n: make_optimizer(n, args.lr, **args.hparams.get(n, {})) for n in args.optimizers}
    oracle = make_oracle(mode, problem.spectrum, args.batch_size, args.sampler)
    grid = log_steps(args.steps, args.record_points)
    cli.stage(f"compiling and running the dynamics (d = {args.dim}, {args.steps} steps)", args.quiet)
    with cli.Progress("dynamics", int(grid[-1]), args.quiet) as progress:
        traj = simulate(make_simulation(optimizers, oracle), problem, seed_keys(args.seeds, args.seed), grid,
                        progress=progress)
    w_freq = np.asarray(traj.w_freq, np.float64)  # (seeds, k, T, d)
    keep_all = ~diverged(jnp.asarray(w_freq), problem)  # (seeds, k)
    t_sim = time.perf_counter() - t_sim
    e_freq = w_freq - np.asarray(problem.w_star_freq, np.float64)
    gd_e = np.asarray(gd_error(problem, args.lr)(jnp.asarray(grid, dtype)), np.float64)

    dynamics, curves = {}, {}
    for i, name in enumerate(traj.names):
        keep = keep_all[:, i]
        c = {k: np.asarray(v, np.float64) for k, v in risk_curves(jnp.asarray(w_freq[:, i], dtype), problem,
                                                                  args.radius)._asdict().items()}
        c["irrelevant_norm"] = irrelevant_norm(e_freq[:, i], problem.spectrum)
        curves[name] = {k: v[keep] for k, v in c.items()}
        curves[name]["abs_e_freq"] = np.abs(e_freq[keep, i, -1])
        dynamics[name] = {
            "final": {**{k: mean_std(v[:, -1], keep) for k, v in c.items()}, "diverged": int((~keep).sum())},
        }
    gd_curves = {k: np.asarray(v, np.float64) for k, v in risk_curves(
        jnp.asarray(gd_e + np.asarray(problem.w_star_freq), dtype), problem, args.radius)._asdict().items()}
    gd_curves["irrelevant_norm"] = irrelevant_norm(gd_e, problem.spectrum)
    gd_curves["abs_e_freq"] = np.abs(gd_e[-1])
    if "gd" in dynamics and stable:
        gd_final = w_freq[keep_all[:, list(traj.names).index("gd")], list(traj.names).index("gd"), -1]
        dynamics["gd"]["predicted"] = {
            "theory": "closed_form", "applicable": True, "reason": None,
            **{k: float(v[-1]) for k, v in gd_curves.items() if k != "abs_e_freq"},
            "distance": {"irrelevant_norm_abs": float(abs(irrelevant_norm(gd_final - np.asarray(
                problem.w_star_freq, np.float64), problem.spectrum).mean() - gd_curves["irrelevant_norm"][-1])),
                "adversarial_risk_rel": float(abs(dynamics["gd"]["final"]["adversarial_risk"]["mean"]
                                                  - gd_curves["adversarial_risk"][-1])
                                              / gd_curves["adversarial_risk"][-1])} if len(gd_final) else None,
        }

    # The sweeps.
    t_sweep = time.perf_counter()
    points = sweep_points(args)
    cli.stage(f"sweeping {len(points)} points x {args.targets} targets x {len(args.optimizers)} optimizers", args.quiet)
    runs = run_sweep(points, make, keys, args)
    t_sweep = time.perf_counter() - t_sweep

    # The predictions: the dynamics run (population only) and the points of the --predict axes.
    t_pred = time.perf_counter()
    names = [n for n in PREDICTED if n in args.optimizers]
    config = lambda p: (p.dim, p.alpha, p.cutoff)
    dyn_key = (args.dim, args.alpha, args.cutoff, "dynamics")  # the dynamics model alone (target 0)
    wanted = list(dict.fromkeys(config(p) for p in points if p.axis in args.predict_axes))
    problems = [runs[[config(p) for p in points].index(c)].problems for c in wanted]
    if args.predict_dynamics and mode == "population" and dyn_key[:3] not in wanted:
        wanted.append(dyn_key)
        problems.append(Problem(*(jnp.asarray(v)[None] for v in problem)))
    cli.stage(f"solving {','.join(names) or 'no'} predictions for {len(wanted)} configurations (float64)",
              args.quiet)
    preds, solve_s = solve_predictions(wanted, problems, names, args.lr, grid, args.hparams) if names and wanted \
        else ({}, {})
    t_pred = time.perf_counter() - t_pred
    sweep = sweep_summary(points, runs, args, stable, preds)
    pred_curves = {}
    for name in names:
        p = None
        if args.predict_dynamics and mode == "population":
            p = preds[dyn_key[:3] if dyn_key[:3] in preds else dyn_key][name]
        if p is None:
            why = (f"the run uses {mode} batches; the limits here are population ones" if mode != "population"
                   else "not requested (--predict)")
            dynamics[name]["predicted"] = {"theory": None, "applicable": False, "reason": why}
            continue
        one = PointPrediction(p.theory, p.e_freq[:1], p.applicable[:1], p.reason)
        m1 = Problem(*(jnp.asarray(v)[None] for v in problem))
        w_mean = w_freq[keep_all[:, list(traj.names).index(name)], list(traj.names).index(name), -1]
        cmp = compare(w_mean.mean(0, keepdims=True), np.array([len(w_mean) > 0]), one, m1, args.radius)
        dynamics[name]["predicted"] = {
            "theory": p.theory, "applicable": bool(p.applicable[0]), "reason": p.reason or None,
            **{k: v["mean"] for k, v in cmp["predicted"].items() if k in gd_curves},
            "distance": {k: v["mean"] for k, v in cmp["distance"].items()},
        }
        if np.isfinite(p.e_freq[0]).all(axis=-1).any():  # a sign flow out of events: drawn as far as it goes
            c = {k: np.asarray(v, np.float64) for k, v in risk_curves(
                jnp.asarray(p.e_freq[0] + np.asarray(problem.w_star_freq, np.float64), dtype), problem,
                args.radius)._asdict().items()}
            c["irrelevant_norm"] = irrelevant_norm(p.e_freq[0], problem.spectrum)
            c["abs_e_freq"] = np.abs(p.e_freq[0, -1])
            pred_curves[name] = c
    if stable:
        pred_curves["gd"] = gd_curves

    summary = {
        "config": config_dict(args, mode),
        "dynamics": {"optimizers": dynamics,
                     "w_star_norm": float(np.linalg.norm(np.asarray(problem.w_star_freq, np.float64)))},
        "sweep": sweep,
        "theory": {"gd": {"stable": stable, "max_stable_lr": max_lr, "condition": gd_condition},
                   "predict_axes": list(args.predict_axes), "predicted_configs": len(wanted),
                   "solve_s": solve_s, "caveat": FLOW_CAVEAT},
    }
    print_table(summary, args)

    with cli.OutputSet(args.out) as outputs:
        t_plot = time.perf_counter()
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            plot_dynamics(outputs.path(FIGURES[0]), grid, curves, pred_curves, args,
                          np.asarray(problem.spectrum), mode, dynamics)
            plot_sweep(outputs.path(FIGURES[1]), sweep, args)
        t_plot = time.perf_counter() - t_plot
        summary["timing"] = {"dynamics_s": t_sim, "sweep_s": t_sweep, "predictions_s": t_pred, "plots_s": t_plot,
                             "total_s": time.perf_counter() - t_start}
        summary_path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def config_dict(args, mode: str) -> dict:
    return {
        "dim": args.dim, "spectrum": "powerlaw", "alpha": args.alpha, "cutoff": args.cutoff, "scale": args.scale,
        "alphas": list(args.alphas), "cutoffs": list(args.cutoffs), "dims": list(args.dims), "targets": args.targets,
        "target_scale": args.target_scale, "init_scale": args.init_scale, "steps": args.steps, "lr": args.lr,
        "optimizers": list(args.optimizers),
        "hparams": {n: {**DEFAULT_HYPERPARAMS[n], **args.hparams.get(n, {})} for n in args.optimizers},
        "seeds": args.seeds, "seed": args.seed, "batch_size": args.batch_size, "mode": mode,
        "sampler": args.sampler if mode != "population" else None, "radius": args.radius,
        "record_points": args.record_points, "predict": (["dynamics"] if args.predict_dynamics else [])
        + list(args.predict_axes), "x64": args.x64, "dtype": "float64" if args.x64 else "float32",
        **cli.environment(),
    }


def _pm(stat: dict) -> str:
    return "diverged" if stat["mean"] is None else f"{stat['mean']:.4g} ± {stat['std']:.2g}"


def print_table(summary: dict, args) -> None:
    """The dynamics run's final values, then the sweep's ``R_a`` per point."""
    d = summary["dynamics"]
    rows = [("optimizer", "R_s", "||w||", "R_a", "R_a predicted", "||e~_I||", "||e~_I|| predicted", "theory",
             "diverged")]
    for name, r in d["optimizers"].items():
        f, p = r["final"], r.get("predicted")
        ok = p is not None and p["applicable"]
        rows.append((name, _pm(f["standard_risk"]), _pm(f["weight_norm"]), _pm(f["adversarial_risk"]),
                     f"{p['adversarial_risk']:.4g}" if ok else "-", _pm(f["irrelevant_norm"]),
                     f"{p['irrelevant_norm']:.4g}" if ok else "-", (p or {}).get("theory") or "-",
                     f"{f['diverged']}/{args.seeds}" + (" !" if f["diverged"] else "")))
    _print_rows(rows)
    for name, r in d["optimizers"].items():
        p = r.get("predicted")
        if p is not None and not p["applicable"]:
            print(f"{name}: no prediction: {p['reason']}")
    print(f"predictions: {FLOW_CAVEAT}")
    print(f"||w~*|| = {d['w_star_norm']:.4g}; ||e~_I|| is the error on the {args.dim - args.cutoff} irrelevant "
          "frequencies")
    if not summary["theory"]["gd"]["stable"]:
        print(summary["theory"]["gd"]["condition"])
    for axis in SWEEP_AXES:
        s = summary["sweep"][axis]
        label, xs = axis_label(s, axis, args)
        print(f"sweep: {label}; mean over {args.targets} targets of final R_a / R_a(w~*) | R_s")
        rows = [(axis if axis != "cutoff" else "irrelevant",) + tuple(f"{x:g}" for x in xs)]
        named = list(s["optimizers"].items())
        if s["gd_closed_form"] is not None:
            named.append(("GD closed", s["gd_closed_form"]))
        for name, o in named:
            rows.append((name,) + tuple("-" if m is None else f"{m:.3f} | {r:.2g}" for m, r in
                                        zip(o["adversarial_risk_ratio"]["mean"], o["standard_risk"]["mean"])))
        _print_rows(rows)
        _print_distances(s, axis, xs, args)


def _print_distances(s: dict, axis: str, xs, args) -> None:
    """Per point: mean ± std over targets of ``| ||e~_I||_sim - ||e~_I||_pred |`` and of the relative
    ``R_a`` error, or why there is no prediction."""
    preds = {n: p for n, p in s.get("predictions", {}).items() if "distance" in p}
    if not preds:
        return
    print("prediction distance per point, mean ± std over targets: "
          "| ||e~_I|| sim - pred |  ;  |R_a sim - pred| / R_a pred")
    rows = [(axis if axis != "cutoff" else "irrelevant",) + tuple(f"{x:g}" for x in xs)]
    for name, p in preds.items():
        di, dr = p["distance"]["irrelevant_norm_abs"], p["distance"]["adversarial_risk_rel"]
        cells = []
        for j in range(len(xs)):
            if not p["solved"][j]:
                cells.append("not solved")
            elif di["mean"][j] is None:
                cells.append("none: " + (p["reason"][j] or "no target kept"))
            else:
                cells.append(f"{di['mean'][j]:.2g}±{di['std'][j]:.1g} ; {dr['mean'][j]:.2g}±{dr['std'][j]:.1g}")
        rows.append((f"{name} ({p['theory']})",) + tuple(cells))
    _print_rows(rows)


def axis_label(s: dict, axis: str, args) -> tuple[str, list]:
    """The x-axis label of a sweep axis and its values (irrelevant count for the cutoff)."""
    if axis == "cutoff":
        return f"irrelevant frequencies d - cutoff (d = {args.dim}, alpha = {args.alpha:g})", s["irrelevant"]
    if axis == "alpha":
        return f"alpha (d = {args.dim}, cutoff = {args.cutoff})", s["values"]
    return f"dimension d (cutoff = d/{args.dim / args.cutoff:g}, alpha = {args.alpha:g})", s["values"]


def _print_rows(rows) -> None:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))


# --------------------------------------------------------------------------
# Figures.


def plot_dynamics(path, steps, curves, pred_curves, args, spectrum, mode, dynamics) -> None:
    """Four panels; each optimizer's prediction (``pred_curves``) dashed in its colour."""
    from sims.common.plotting import LABELS, band, optimizer_color as color, plt, save_figure, time_axis

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = axes.ravel()
    panels = (("irrelevant_norm", "irrelevant-band error ||e~_I(t)||", "log"),
              ("standard_risk", "standard risk R_s", "log"),
              ("adversarial_risk", f"l2 adversarial risk R_a (eps = {args.radius:.3g})", "linear"))
    for ax, (key, title, yscale) in zip(axes, panels):
        for i, (name, c) in enumerate(curves.items()):
            band(ax, steps, c[key], color(name, i), LABELS.get(name, name))
            if name in pred_curves:
                y = pred_curves[name][key]
                ax.plot(steps, np.maximum(y, LOG_FLOOR) if yscale == "log" else y, "--", lw=1.3,
                        color=color(name, i), alpha=0.9)
        ax.set_title(title)
        ax.set_yscale(yscale)
        time_axis(ax, steps)
    ax = axes[3]
    k = np.arange(len(spectrum))
    for i, (name, c) in enumerate(curves.items()):
        if c["abs_e_freq"].shape[0]:
            ax.plot(k, c["abs_e_freq"].mean(0), ".-", ms=3, lw=0.8, color=color(name, i), label=LABELS.get(name, name))
        if name in pred_curves:
            ax.plot(k, np.maximum(pred_curves[name]["abs_e_freq"], LOG_FLOOR), "--", lw=1.1, color=color(name, i))
    ax.plot([], [], "k--", lw=1.2, label="prediction (dashed, same colour)")
    ax.axvspan(args.cutoff - 0.5, len(spectrum) - 0.5, color="0.9", zorder=0, label="irrelevant band")
    ax.set_yscale("log")
    top = max(float(np.max(c["abs_e_freq"], initial=0.0)) for c in curves.values())
    if top > 0:  # converged frequencies reach 0 or 1e-30: show eight decades below the largest
        ax.set_ylim(bottom=1e-8 * top)
    ax.set_xlabel("frequency k")
    ax.set_title(f"final |e~_k| at t = {args.steps}")
    ax.grid(True, alpha=0.3)
    axes[0].plot([], [], "k--", lw=1.2, label="prediction")
    axes[0].legend(fontsize=8, loc="best")
    axes[3].legend(fontsize=8, loc="lower left")
    source = "population gradient" if mode == "population" else f"batch {args.batch_size} ({mode})"
    missing = [f"{LABELS.get(n, n)}: {p['reason']}" for n, p in
               ((n, r.get("predicted")) for n, r in dynamics.items()) if p is not None and not p["applicable"]]
    fig.suptitle(f"d = {args.dim}, sigma_k = {args.scale:g} (k+1)^-{args.alpha:g} for k < {args.cutoff}, 0 above; "
                 f"lr {args.lr:g}, {source}, {args.seeds} seeds (band = min-max)\n"
                 "dashed: GD closed form, sign flow, Adam/RMSProp fixed-c ODEs (lr -> 0 limits; a run differs by "
                 "O(lr),\nfor signGD with a constant that grows with d: THEORY.md 8.1)"
                 + ("\nno prediction at the end: " + "; ".join(missing) + " (drawn as far as it goes)"
                    if missing else ""), fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def plot_sweep(path, sweep, args) -> None:
    from sims.common.plotting import LABELS, optimizer_color as color, plt, save_figure

    keys = (("irrelevant_norm", "final ||e~_I||", "log"),
            ("standard_risk", f"final R_s (mean; drawn at least {LOG_FLOOR:g})", "log"),
            ("weight_norm_ratio", "final ||w|| / ||w~*||", "linear"),
            ("adversarial_risk_ratio", f"final R_a / R_a(w~*)   (eps = {args.radius:.3g})", "linear"))
    fig, axes = plt.subplots(3, 4, figsize=(20, 12))
    for row, axis in enumerate(SWEEP_AXES):
        s = sweep[axis]
        label, xs = axis_label(s, axis, args)
        xs = np.asarray(xs, np.float64)
        for ax, (key, title, yscale) in zip(axes[row], keys):
            for i, (name, o) in enumerate(s["optimizers"].items()):
                m = np.array([np.nan if v is None else v for v in o[key]["mean"]])
                style = dict(fmt="o-", ms=3, lw=1.2, capsize=2, color=color(name, i), label=LABELS.get(name, name))
                if yscale == "log":  # a std band would cross 0; the floor keeps exact zeros visible
                    ax.errorbar(xs, np.maximum(m, LOG_FLOOR), **style)
                else:
                    ax.errorbar(xs, m, yerr=[np.nan if v is None else v for v in o[key]["std"]], **style)
            for i, (name, p) in enumerate(s.get("predictions", {}).items()):
                if "predicted" not in p:
                    continue
                m = np.array([np.nan if v is None else v for v in p["predicted"][key]["mean"]], np.float64)
                ax.plot(xs, np.maximum(m, LOG_FLOOR) if yscale == "log" else m, "--", marker="x", ms=5, lw=1.1,
                        color=color(name, list(s["optimizers"]).index(name)))
            ax.set_yscale(yscale)
            if axis == "dim":
                ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
            ax.set_xlabel(label)
            ax.set_title(title)
    axes[0, 0].plot([], [], "k--", marker="x", lw=1.1, label="prediction (mean)")
    axes[0, 0].legend(fontsize=8)
    solved = (f"sign flow and Adam/RMSProp ODEs on the {', '.join(args.predict_axes)} axes, where they apply"
              if args.predict_axes else "signGD, Adam and RMSProp not solved here (--predict), see the dynamics figure")
    fig.suptitle(f"sigma_k = {args.scale:g} (k+1)^-alpha for k < cutoff, 0 above; population gradient, lr {args.lr:g}, "
                 f"t = {args.steps}; mean (± std on linear axes) over {args.targets} targets\n"
                 f"dashed x: predictions (GD closed form; {solved}); lr -> 0 limits, a run differs by O(lr)",
                 fontsize=14)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    cli.exit(main())
