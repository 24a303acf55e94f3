"""Phase diagram of population signGD's irrelevant drift over the spectrum
ratio ``q = sigma_1^2 / sigma_0^2`` and the learning rate.

    python sims/phase_diagram.py              # 64 x 64 grid, the paper's w~* and w~(0)
    python sims/phase_diagram.py --help

In ``d = 3`` with spectrum ``(sigma_0, sigma_1, 0)`` (THEORY.md section 4)
signGD moves the irrelevant error ``e~_2`` during phase 2 and then keeps it:
to first order in ``lr`` the drift ``e~_2(t2) - e~_2(0)`` is
``sign(e~_0(0)) sqrt3 q |e~_1(0)|`` (``theory.signgd.signgd_drift_first_order``;
``sqrt2 |e~_0(0)|`` if the run starts in phase 2), and the exact discrete
closed form (``signgd_phases``) needs ``q <= 1/3``. Every cell of the grid is
iterated with the exact frequency recursion, all cells in one compiled
program (``sims.grid``), in float64, to a per-cell horizon past the step by
which the run has settled; the final ``e~_2`` is compared with the first-order
drift and the exact closed form, and the l2 adversarial risk with GD's.

*Derived here* for ``q > 1/3`` (checked on the grid, not in ``theory/``):
phase 2 no longer reaches ``e~_0 = 0`` on its own, because ``|B|`` falls by
``q h`` a step and ``|A|`` by ``h/3`` (``h = sigma_0^2 lr``). Once ``|A| = |B|``
the run slides along that boundary, a fraction ``f`` of the steps in phase 2,
with ``f`` set by ``d|A| = d|B|``: ``1 - 2f/3 = q f``. ``A`` and ``B`` then
reach 0 together after ``|A| / (h q f)`` steps, moving ``e~_2`` by
``sqrt(2/3) lr`` on each phase-2 step: the drift is ``sqrt(2/3) |B| / (sigma_0^2 q)``,
i.e. ``|e~_1(0)| / sqrt3`` from either side, independent of ``q``. Together:

    drift ~ sign(e~_0(0)) min(sqrt3 min(q, 1/3) |e~_1(0)|, sqrt2 |e~_0(0)|),

which is ``signgd_drift_first_order`` with ``sigma_1`` capped at
``sigma_0 / sqrt3`` (the *saturated* prediction below).

Writes ``phase_summary.json``, ``phase_diagram.png`` and ``phase_slices.png``
to ``--out`` and prints a table. Ma, Pan and Farahmand, TMLR 2023
(arXiv:2308.06703), section 4.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import cli
from sims.grid import GridRun, settle_bound, signgd_grid
from theory.gd import gd_error, gd_limit
from theory.risks import adversarial_risk_l2, standard_risk
from theory.signal import SignalModel
from theory.signgd import Reason, SignGDPhases, signgd_drift_first_order, signgd_phases

PROG = "phase_diagram.py"
SUMMARY = "phase_summary.json"
FIGURES = ("phase_diagram.png", "phase_slices.png")
PAPER = {"sigma0": 0.1, "w_star": (5.0, 10.0, 0.0), "w0": (0.01, -0.01, 0.02), "q": 0.25, "lr": 0.01}
Q_BOUNDARY = 1.0 / 3.0  # the closed form needs sigma_1^2 <= sigma_0^2 / 3
SQRT2, SQRT3, SQRT_2_3 = math.sqrt(2.0), math.sqrt(3.0), math.sqrt(2.0 / 3.0)
#: |final drift - first-order drift| <= this * lr where the closed form applies: sqrt(2/3) + sqrt6
#: at t2 (theory.signgd.signgd_drift_first_order) plus sqrt(2/3) of phase-3 wobble.
DRIFT_LR_BOUND = 2.0 * SQRT_2_3 + math.sqrt(6.0)
MAX_CELL_STEPS = 1e10  # ~50M cell-steps/s on 2 CPU cores: a few minutes
#: Memory per cell, host and device together: the cell's model, carry and
#: observations, its sign flow (events x d), the summary arrays and figure
#: data (measured: about 2.5 KB at 4096 cells; doubled for headroom).
BYTES_PER_CELL = 5_000
MAX_SCALES = 6  # one figure row each
GD_T_MAX = 1e18  # GD at t = 1e18 is its limit to float64 precision for any spectrum here


# --- command line -------------------------------------------------------------------------------


def _range(text: str) -> tuple[float, float]:
    """``MIN,MAX`` with ``0 < MIN < MAX`` (argparse ``type``)."""
    values = cli.float_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form MIN,MAX")
    lo, hi = values
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"{text!r}: needs 0 < MIN < MAX")
    return lo, hi


def _grid_shape(text: str) -> tuple[int, int]:
    """``NQ,NLR``, each an integer >= 2 (the log-spaced cell edges need two points)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form NQ,NLR")
    values = tuple(cli.positive_int(p) for p in parts)
    if min(values) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each size must be >= 2")
    return values


def _vector3(text: str) -> tuple[float, float, float]:
    values = cli.float_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} has {len(values)} entries; d = 3 needs 3")
    return values


def _scales(text: str) -> tuple[float, ...]:
    values = cli.float_list(text)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value")
    if len(values) > MAX_SCALES:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SCALES} values (one figure row each)")
    return values


def _fraction(text: str) -> float:
    value = cli.positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be < 1")
    return value


def _horizon(text: str) -> float:
    value = cli.finite_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="Phase diagram of population signGD in d = 3 over q = sigma_1^2/sigma_0^2 and the learning "
        "rate: the final irrelevant error e~_2, the first-order drift prediction and where it breaks, and the l2 "
        "adversarial-risk gap to GD. The whole grid runs as one compiled program, in float64.",
    )
    a = p.add_argument
    a("--ratios", type=_range, default=(0.01, 1.0), metavar="MIN,MAX",
      help="range of q = sigma_1^2/sigma_0^2, log-spaced (default: 0.01,1; the closed form needs q <= 1/3)")
    a("--lrs", type=_range, default=(1e-3, 0.1), metavar="MIN,MAX",
      help="range of the learning rate lr, log-spaced (default: 0.001,0.1; the paper's 0.01 is inside)")
    a("--grid", type=_grid_shape, default=(64, 64), metavar="NQ,NLR", help="grid size (default: 64,64)")
    a("--sigma0", type=cli.positive_float, default=PAPER["sigma0"],
      help="sigma_0, standard deviation of frequency 0; sigma_1 = sigma_0 sqrt(q) (default: 0.1)")
    a("--w-star", type=_vector3, default=PAPER["w_star"], help="target w~* in frequency coordinates (default: 5,10,0)")
    a("--w0", type=_vector3, default=PAPER["w0"],
      help="initial w~(0) in frequency coordinates (default: 0.01,-0.01,0.02)")
    a("--init-scale", type=_scales, default=(1.0,), metavar="S[,S...]",
      help=f"factors multiplying --w0, one grid (and figure row) each, at most {MAX_SCALES} (default: 1)")
    a("--eps", type=cli.nonnegative_float, default=math.sqrt(2.0), help="l2 adversary budget (default: sqrt(2))")
    a("--tol", type=_fraction, default=0.1,
      help="relative-error tolerance of the drift prediction, in (0, 1) (default: 0.1)")
    a("--horizon", type=_horizon, default=1.25,
      help="each cell runs to ceil(HORIZON * b) steps, b = sqrt3 |e~_0(0)|/lr + |e~_1(0)|/(sqrt2 lr) + 2 the "
      "step by which it has settled; >= 1 (default: 1.25)")
    a("--out", default=cli.DEFAULT_OUT,
      help=f"output folder for {SUMMARY} and phase_*.png (default: {cli.DEFAULT_OUT}/; "
      "the README's figures are refreshed with --out figures)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no progress or 'wrote ...' lines on stderr")
    return p


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
    q_hi, lr_hi = args.ratios[1], args.lrs[1]
    top = lr_hi * args.sigma0**2 * max(1.0, q_hi)
    if top >= 2:
        raise cli.UsageError(f"--lrs: GD is unstable at lr = {lr_hi:g} (lr * max(sigma^2) = {top:.3g} >= 2), "
                             "so the risk gap to GD is undefined; lower MAX or --sigma0")
    steps = max(_settle_bound_host(args.w0, s, args.w_star, args.lrs[0]) for s in args.init_scale) * args.horizon
    cell_steps = steps * args.grid[0] * args.grid[1] * len(args.init_scale)
    if cell_steps > MAX_CELL_STEPS:
        raise cli.UsageError(f"--grid/--lrs: the grid needs about {cell_steps:.2g} cell-steps "
                             f"(> {MAX_CELL_STEPS:.0e}, minutes of CPU); raise the smallest lr or shrink the grid")
    cells = args.grid[0] * args.grid[1] * len(args.init_scale)
    cli.require_fits("--grid", cells * BYTES_PER_CELL, f"a grid of {cells} cells")
    cli.check_out_dir(args.out)


def _settle_bound_host(w0, scale, w_star, lr) -> float:
    """:func:`sims.grid.settle_bound` in plain floats, before JAX is set up."""
    e0 = [scale * a - b for a, b in zip(w0, w_star)]
    return SQRT3 * abs(e0[0]) / lr + abs(e0[1]) / (SQRT2 * lr) + 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


# --- the grid -----------------------------------------------------------------------------------


class Grid(NamedTuple):
    """The axes; cells are ordered ``(scale, q, lr)``, ``lr`` fastest."""

    q: np.ndarray  # (nq,)
    lr: np.ndarray  # (nl,)
    scales: np.ndarray  # (ns,)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.scales), len(self.q), len(self.lr)


def make_grid(args) -> Grid:
    return Grid(q=np.geomspace(*args.ratios, args.grid[0]), lr=np.geomspace(*args.lrs, args.grid[1]),
                scales=np.asarray(args.init_scale, np.float64))


def cell_models(q: np.ndarray, scale: np.ndarray, sigma0: float, w_star, w0) -> SignalModel:
    """A batch of models with spectrum ``(sigma_0, sigma_0 sqrt(q), 0)`` and
    ``w~(0) = scale * w0`` (float64 numpy; one row per cell)."""
    n = q.shape[0]
    spectrum = np.stack([np.full(n, sigma0), sigma0 * np.sqrt(q), np.zeros(n)], axis=-1)
    return SignalModel(spectrum, np.tile(np.asarray(w_star, np.float64), (n, 1)),
                       scale[:, None] * np.asarray(w0, np.float64))


class Theory(NamedTuple):
    """Closed forms per cell (leading axis: cells)."""

    phases: SignGDPhases
    drift_first_order: jax.Array
    drift_saturated: jax.Array
    steps: jax.Array  # per-cell horizon
    t_window: jax.Array  # settle bound: the window [t_window, steps] checks the run has settled


@jax.jit
def closed_forms(models: SignalModel, lr: jax.Array, horizon) -> Theory:
    """The signGD closed form, both drift predictions and the horizons."""
    ph = jax.vmap(signgd_phases)(models, lr)
    capped = models.spectrum.at[:, 1].min(models.spectrum[:, 0] / SQRT3)  # sigma_1^2 <= sigma_0^2 / 3
    bound = jax.vmap(settle_bound)(models, lr)
    return Theory(
        phases=ph,
        drift_first_order=jax.vmap(signgd_drift_first_order)(models),
        drift_saturated=jax.vmap(signgd_drift_first_order)(models._replace(spectrum=capped)),
        steps=jnp.ceil(horizon * bound).astype(jnp.int64),
        t_window=bound.astype(jnp.int64),
    )


def gd_time_at_risk(model: SignalModel, lr, target) -> jax.Array:
    """The (real) step ``t`` at which population GD's ``R_s`` falls to ``target``.

    ``R_s(t) = 1/2 sum_k sigma_k^2 (1 - lr sigma_k^2)^(2t) e~_k(0)^2`` is
    non-increasing for stable GD, so bisection on ``u = log(1 + t)`` over
    ``[0, log(1 + GD_T_MAX)]`` finds the first ``t`` with ``R_s(t) <= target``
    (100 halvings: below float64 resolution). Returns 0 if
    ``target >= R_s(0)``; for ``target = 0``, the first ``t`` at which GD's
    weights round to its limit (``w~*`` on the relevant frequencies).
    """
    e_at = gd_error(model, lr)
    risk = lambda u: standard_risk(model.w_star_freq + e_at(jnp.expm1(u)), model)

    def halve(_, lo_hi):
        lo, hi = lo_hi
        mid = 0.5 * (lo + hi)
        above = risk(mid) > target  # still too early
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 100, halve, (jnp.zeros(()), jnp.log1p(jnp.asarray(GD_T_MAX))))
    return jnp.where(risk(jnp.zeros(())) <= target, 0.0, jnp.expm1(hi))


@jax.jit
def risks(models: SignalModel, lr: jax.Array, e_final: jax.Array, steps: jax.Array, eps) -> dict:
    """``R_s`` and the l2 ``R_a`` of signGD's final weights, and GD's ``R_a``
    (a) at equal ``R_s``, (b) at the same step, (c) in the limit ``t -> inf``."""
    ra = lambda w, m: adversarial_risk_l2(w, m, eps)
    w_sign = models.w_star_freq + e_final
    r_s = jax.vmap(standard_risk)(w_sign, models)
    t_eq = jax.vmap(gd_time_at_risk)(models, lr, r_s)
    gd_w = lambda m, l, t: m.w_star_freq + gd_error(m, l)(t)
    w_eq = jax.vmap(gd_w)(models, lr, t_eq)
    w_same = jax.vmap(gd_w)(models, lr, steps.astype(e_final.dtype))
    return {
        "signgd_standard_risk": r_s,
        "signgd_adversarial_risk": jax.vmap(ra)(w_sign, models),
        "gd_equal_risk_step": t_eq,
        "gd_adversarial_risk_equal_risk": jax.vmap(ra)(w_eq, models),
        "gd_adversarial_risk_same_step": jax.vmap(ra)(w_same, models),
        "gd_standard_risk_same_step": jax.vmap(standard_risk)(w_same, models),
        "gd_adversarial_risk_limit": jax.vmap(ra)(jax.vmap(gd_limit)(models), models),
    }


class PhaseResults(NamedTuple):
    """Everything per cell, as float64/int numpy arrays of shape ``(ns, nq, nl)``
    (``(ns, nq, nl, 3)`` for ``e~`` vectors), plus the reference cell."""

    cells: dict
    reference: dict
    compile_s: float
    run_s: float


def simulate(grid: Grid, args) -> PhaseResults:
    """Runs the grid plus one reference cell (the paper's ``q = 0.25``,
    ``lr = 0.01``, first init scale) as one program, in float64."""
    ns, nq, nl = grid.shape
    s_idx, q_idx, l_idx = (a.ravel() for a in np.meshgrid(np.arange(ns), np.arange(nq), np.arange(nl),
                                                          indexing="ij"))
    q = np.append(grid.q[q_idx], PAPER["q"])
    lr = np.append(grid.lr[l_idx], PAPER["lr"])
    scale = np.append(grid.scales[s_idx], grid.scales[0])
    with jax.enable_x64(True):
        models = jax.tree.map(jnp.asarray, cell_models(q, scale, args.sigma0, args.w_star, args.w0))
        lr_j = jnp.asarray(lr)
        th = closed_forms(models, lr_j, args.horizon)
        call = (models, lr_j, th.steps, th.phases.t2, th.t_window)
        t0 = time.perf_counter()
        program = signgd_grid.lower(*call).compile()
        t1 = time.perf_counter()
        run_ = jax.block_until_ready(program(*call))
        t2 = time.perf_counter()
        rk = risks(models, lr_j, run_.e_freq_final, th.steps, args.eps)
        flat = _flatten(models, lr_j, th, run_, rk)
    shaped = {k: v[:-1].reshape(grid.shape + v.shape[1:]) for k, v in flat.items()}
    reference = {k: v[-1] for k, v in flat.items()}
    return PhaseResults(shaped, reference, t1 - t0, t2 - t1)


def _flatten(models: SignalModel, lr, th: Theory, run_: GridRun, rk: dict) -> dict:
    """The per-cell arrays as numpy, under short names."""
    ph = th.phases
    e0 = np.asarray(models.e0_freq)
    out = {
        "lr": np.asarray(lr),
        "e0_freq": e0,
        "applicable": np.asarray(ph.applicable),
        "reason": np.asarray(ph.reason),
        "t1_closed": np.asarray(ph.t1),
        "t2_closed": np.asarray(ph.t2),
        "e_freq_t2_closed": np.asarray(ph.e_freq_t2),
        "drift_first_order": np.asarray(th.drift_first_order),
        "drift_saturated": np.asarray(th.drift_saturated),
        "steps": np.asarray(th.steps),
        "t_window": np.asarray(th.t_window),
        **{k: np.asarray(v) for k, v in run_._asdict().items()},
        **{k: np.asarray(v) for k, v in rk.items()},
    }
    out["e2_final"] = out["e_freq_final"][:, 2]
    out["drift"] = out["e2_final"] - e0[:, 2]  # e~_2(T) - e~_2(0), observed
    pred = out["drift_first_order"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rel_err"] = np.where(pred != 0, np.abs(out["drift"] - pred) / np.abs(pred), np.nan)
    out["gap_equal_risk"] = out["signgd_adversarial_risk"] - out["gd_adversarial_risk_equal_risk"]
    return out


# --- the summary --------------------------------------------------------------------------------


def _stats(x: np.ndarray) -> Optional[dict]:
    """``{min, median, max}`` of the finite entries (``None`` if none)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())}


def _frac(mask: np.ndarray, region: np.ndarray) -> Optional[float]:
    n = int(region.sum())
    return float((mask & region).sum() / n) if n else None


def _num(x) -> Optional[float]:
    """A float, or ``None`` for NaN (JSON has no NaN)."""
    return float(x) if np.isfinite(x) else None


def _fmax(x: np.ndarray) -> Optional[float]:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else None


def region_stats(c: dict, region: np.ndarray, tol: float) -> dict:
    """How well the first-order and the saturated drift predict the observed drift on ``region``."""
    err1 = np.abs(c["drift"] - c["drift_first_order"]) / c["lr"]
    errs = np.abs(c["drift"] - c["drift_saturated"]) / c["lr"]
    sat = c["drift_saturated"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_sat = np.where(sat != 0, np.abs(c["drift"] - sat) / np.abs(sat), np.nan)
    defined = np.isfinite(c["rel_err"])
    return {
        "cells": int(region.sum()),
        "cells_without_prediction": int((region & ~defined).sum()),
        "first_order": {
            "frac_rel_err_below_tol": _frac(c["rel_err"] < tol, region & defined),
            "rel_err": _stats(c["rel_err"][region]),
            "max_abs_err_over_lr": _fmax(err1[region]),
            "frac_within_lr_bound": _frac(err1 <= DRIFT_LR_BOUND, region),
        },
        "saturated": {
            "frac_rel_err_below_tol": _frac(rel_sat < tol, region & np.isfinite(rel_sat)),
            "max_abs_err_over_lr": _fmax(errs[region]),
            "frac_within_lr_bound": _frac(errs <= DRIFT_LR_BOUND, region),
        },
        "e2_final": _stats(c["e2_final"][region]),
        "phase3_dev_over_lr_max": _fmax((c["phase3_dev"] / c["lr"])[region]),
    }


def lr_dependence(c: dict, grid: Grid, region: np.ndarray, tol: float) -> dict:
    """Per learning rate (over the ``q`` of ``region``, all scales): the median
    absolute error of the first-order drift, its log-log slope in ``lr``, and
    the fraction of cells within ``tol``; for a few learning rates."""
    err = np.abs(c["drift"] - c["drift_first_order"])
    med, frac = [], []
    for j in range(len(grid.lr)):
        r = region[:, :, j]
        med.append(float(np.median(err[:, :, j][r])) if r.any() else np.nan)
        frac.append(_frac(c["rel_err"][:, :, j] < tol, r))
    med = np.asarray(med)
    ok = np.isfinite(med) & (med > 0)
    slope = float(np.polyfit(np.log(grid.lr[ok]), np.log(med[ok]), 1)[0]) if ok.sum() >= 2 else None
    picks = sorted(set(np.linspace(0, len(grid.lr) - 1, 5).round().astype(int).tolist()))
    return {
        "median_abs_err_slope_in_lr": slope,
        "by_lr": [{"lr": float(grid.lr[j]), "median_abs_err": None if not np.isfinite(med[j]) else float(med[j]),
                   "frac_rel_err_below_tol": frac[j]} for j in picks],
    }


def tolerance_frontier(c: dict, grid: Grid, region: np.ndarray, tol: float) -> dict:
    """Where the first-order drift is within ``tol`` on ``region`` (first
    scale): per ``q`` row entirely in ``region``, the largest grid ``lr`` below
    which every cell is within ``tol`` (``None`` if not even the smallest), and
    ``lr_max / q`` (about constant if the error is ``O(lr)`` while the drift is
    ``~ sqrt3 q |e~_1(0)|``)."""
    rel, reg = c["rel_err"][0], region[0]
    rows = []
    for i, q in enumerate(grid.q):
        if reg[i].all():
            bad = ~(rel[i] < tol)
            first_bad = int(np.argmax(bad)) if bad.any() else len(grid.lr)
            rows.append((float(q), float(grid.lr[first_bad - 1]) if first_bad else None))
    ratios = np.array([lr / q for q, lr in rows if lr is not None and lr < grid.lr[-1]])
    return {
        "q_rows": len(rows),
        "rows_all_lr_within_tol": int(sum(lr is not None and lr >= grid.lr[-1] for _, lr in rows)),
        "rows_no_lr_within_tol": int(sum(lr is None for _, lr in rows)),
        "lr_max_over_q": _stats(ratios),
        "note": "per q row: lr_max = largest grid lr with every smaller lr within tol; lr_max_over_q over the rows "
                "where the frontier lies inside the lr range",
    }


def summarize(res: PhaseResults, grid: Grid, args) -> dict:
    c = res.cells
    q = np.broadcast_to(grid.q[None, :, None], grid.shape)
    inside = q <= Q_BOUNDARY
    appl = c["applicable"]
    reasons = {Reason(int(r)).name: int((c["reason"] == r).sum()) for r in np.unique(c["reason"])}
    d_e = np.abs(c["e_freq_probe"] - c["e_freq_t2_closed"]).max(axis=-1)
    scale_d = np.abs(c["e_freq_t2_closed"]).max(axis=-1)
    settled = (c["t2"] >= 0) & (c["t2"] <= c["t_window"])
    gap_pred = 0.5 * args.eps**2 * ((c["e0_freq"][..., 2] + c["drift_first_order"]) ** 2 - c["e0_freq"][..., 2] ** 2)
    gap_diff = c["gap_equal_risk"] - gap_pred
    ref = res.reference
    sat_outside = np.unique(np.round(c["e0_freq"][..., 2] + c["drift_saturated"], 12)[~inside])
    return {
        "grid": {
            "cells": int(q.size), "q": [float(v) for v in grid.q], "lr": [float(v) for v in grid.lr],
            "init_scales": [float(v) for v in grid.scales],
            "max_steps": int(c["steps"].max()), "total_cell_steps": int(c["steps"].sum()),
        },
        "closed_form": {
            "applicable_cells": int(appl.sum()), "reasons": reasons,
            "note": "signgd_phases applies for q <= 1/3 unless phase 1 jumps over phase 2 (NO_PHASE2)",
        },
        "closed_form_vs_iteration": {
            "cells": int(appl.sum()),
            "t1_equal": int((c["t1"] == c["t1_closed"])[appl].sum()),
            "t2_equal": int((c["t2"] == c["t2_closed"])[appl].sum()),
            "max_abs_e_freq_t2_diff": _fmax(d_e[appl]),
            "max_rel_e_freq_t2_diff": _fmax((d_e / scale_d)[appl]),
            "note": "e~(t2) of the float64 iteration against signgd_phases' e_freq_t2; both are exact up to "
                    "rounding",
        },
        "drift": {
            "tol": args.tol,
            "lr_bound": DRIFT_LR_BOUND,
            "lr_bound_note": "|observed - first order| <= (2 sqrt(2/3) + sqrt6) lr where the closed form applies",
            "q_le_1_3_applicable": region_stats(c, inside & appl, args.tol),
            "q_le_1_3_not_applicable": region_stats(c, inside & ~appl, args.tol),
            "q_gt_1_3": region_stats(c, ~inside, args.tol),
            "lr_dependence_q_le_1_3": lr_dependence(c, grid, inside & appl, args.tol),
            "tolerance_frontier_q_le_1_3": tolerance_frontier(c, grid, inside & appl, args.tol),
            "saturated_e2_final_q_gt_1_3": [float(v) for v in sat_outside[:MAX_SCALES]],
        },
        "settling": {
            "cells_settled": int(settled.sum()),
            "note": "settled: e~_0 changed sign (t2 observed) before the window [settle bound, horizon]",
            "e1_window_range_over_lr_max": _fmax(c["e1_window_range"] / c["lr"]),
            "phase3_dev_over_lr_max_applicable": _fmax((c["phase3_dev"] / c["lr"])[appl]),
            "phase3_dev_over_lr_max_q_gt_1_3": _fmax((c["phase3_dev"] / c["lr"])[~inside]),
            "phase3_bound_over_lr": SQRT_2_3,
        },
        "adversarial_gap": {
            "eps": args.eps,
            "equal_standard_risk": _stats(c["gap_equal_risk"]),
            "equal_standard_risk_minus_drift_only": {
                "all_lr": _stats(gap_diff[appl]),
                f"lr_le_{PAPER['lr']:g}": _stats(gap_diff[appl & (c["lr"] <= PAPER["lr"])]),
            },
            "signgd_standard_risk": _stats(c["signgd_standard_risk"]),
            "same_step": _stats(c["signgd_adversarial_risk"] - c["gd_adversarial_risk_same_step"]),
            "gd_standard_risk_same_step": _stats(c["gd_standard_risk_same_step"]),
            "gd_limit": _stats(c["signgd_adversarial_risk"] - c["gd_adversarial_risk_limit"]),
            "gd_steps_to_equal_risk": _stats(c["gd_equal_risk_step"]),
            "note": "plotted: R_a(signGD, final) - R_a(GD at the step where its R_s equals signGD's final R_s). "
                    "At the same step GD has barely moved (R_s large, ||w|| small); against GD's limit, "
                    "signGD's frozen e~_1 (small q, large lr) lowers its norm. drift_only = eps^2/2 "
                    "((e~_2(0) + first-order drift)^2 - e~_2(0)^2).",
        },
        "reference_cell": {
            "q": PAPER["q"], "lr": PAPER["lr"], "init_scale": float(grid.scales[0]),
            "t1": int(ref["t1"]), "t2": int(ref["t2"]), "t1_closed": int(ref["t1_closed"]),
            "t2_closed": int(ref["t2_closed"]), "e2_t2": _num(ref["e_freq_t2"][2]),
            "e2_final": _num(ref["e2_final"]), "drift_first_order": _num(ref["drift_first_order"]),
            "signgd_adversarial_risk": _num(ref["signgd_adversarial_risk"]),
            "gd_adversarial_risk_equal_risk": _num(ref["gd_adversarial_risk_equal_risk"]),
            "gd_adversarial_risk_limit": _num(ref["gd_adversarial_risk_limit"]),
        },
        "slice_paper_lr": paper_lr_slice(c, grid),
    }


def paper_lr_slice(c: dict, grid: Grid) -> dict:
    """Final ``e~_2`` against ``q`` at the grid ``lr`` nearest the paper's 0.01 (first scale)."""
    j = int(np.argmin(np.abs(np.log(grid.lr / PAPER["lr"]))))
    return {"lr": float(grid.lr[j]), "q": [float(v) for v in grid.q],
            "e2_final": [_num(v) for v in c["e2_final"][0, :, j]],
            "e2_first_order": [_num(v) for v in (c["e0_freq"][0, :, j, 2] + c["drift_first_order"][0, :, j])]}


def config_dict(args) -> dict:
    return {
        "ratios": list(args.ratios), "lrs": list(args.lrs), "grid": list(args.grid), "sigma0": args.sigma0,
        "w_star_freq": list(args.w_star), "w0_freq": list(args.w0), "init_scales": list(args.init_scale),
        "eps": args.eps, "tol": args.tol, "horizon": args.horizon, "dtype": "float64",
        "gradient": "population", "spacing": "log", **cli.environment(),
    }


def _g(x, fmt="{:.3g}") -> str:
    return "-" if x is None else fmt.format(x)


def _stats_text(st: Optional[dict]) -> str:
    return "-" if st is None else f"[{st['min']:.3g}, {st['max']:.3g}] (median {st['median']:.3g})"


def print_table(s: dict) -> None:
    """The prediction's accuracy per region, the closed-form check, q > 1/3 and the risk gap."""
    g, d = s["grid"], s["drift"]
    cfg = s["config"]
    print(f"phase diagram: {cfg['grid'][0]} x {cfg['grid'][1]} cells x {len(g['init_scales'])} init scale(s), "
          f"q in [{g['q'][0]:g}, {g['q'][-1]:g}], lr in [{g['lr'][0]:g}, {g['lr'][-1]:g}], "
          f"sigma_0 = {cfg['sigma0']:g}, population signGD in float64, up to {g['max_steps']} steps")
    rows = [("region", "cells", f"rel err < {d['tol']:g}", "median rel err", "max |err|/lr",
             "saturated: max |err|/lr", "final e~_2")]
    for name, key in (("q <= 1/3, closed form applies", "q_le_1_3_applicable"),
                      ("q <= 1/3, not applicable", "q_le_1_3_not_applicable"), ("q > 1/3", "q_gt_1_3")):
        r = d[key]
        if not r["cells"]:
            continue
        f1, sat, e2 = r["first_order"], r["saturated"], r["e2_final"]
        rows.append((name, str(r["cells"]), _g(f1["frac_rel_err_below_tol"], "{:.1%}"),
                     _g(f1["rel_err"] and f1["rel_err"]["median"]), _g(f1["max_abs_err_over_lr"]),
                     _g(sat["max_abs_err_over_lr"]), f"[{e2['min']:.3g}, {e2['max']:.3g}]"))
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    print("\n".join("  ".join(col.ljust(w) for col, w in zip(r, widths)) for r in rows))
    print(f"err = observed drift e~_2(T) - e~_2(0) minus the first-order drift sign(e~_0(0)) sqrt3 q |e~_1(0)| "
          f"(sqrt2 |e~_0(0)| from phase 2); bound where it applies: {d['lr_bound']:.3g} lr; saturated: q capped at 1/3")
    lrd = d["lr_dependence_q_le_1_3"]
    by = ", ".join(f"lr {b['lr']:.3g}: {_g(b['frac_rel_err_below_tol'], '{:.0%}')}" for b in lrd["by_lr"])
    print(f"error vs lr (q <= 1/3): median |err| ~ lr^{_g(lrd['median_abs_err_slope_in_lr'], '{:.2f}')}; "
          f"cells within tol: {by}")
    c = s["closed_form_vs_iteration"]
    print(f"closed form vs iteration ({c['cells']} applicable cells): t1 equal {c['t1_equal']}, t2 equal "
          f"{c['t2_equal']}, max |e~(t2) diff| {_g(c['max_abs_e_freq_t2_diff'])} "
          f"(relative {_g(c['max_rel_e_freq_t2_diff'])})")
    st = s["settling"]
    print(f"settled: {st['cells_settled']}/{g['cells']} cells; phase 3 max |e~_2(t) - e~_2(t2)|/lr: "
          f"{_g(st['phase3_dev_over_lr_max_applicable'], '{:.4g}')} where applicable (bound sqrt(2/3) = "
          f"{st['phase3_bound_over_lr']:.4g}), {_g(st['phase3_dev_over_lr_max_q_gt_1_3'], '{:.4g}')} for q > 1/3")
    if d["q_gt_1_3"]["cells"]:
        sat = ", ".join(f"{v:.4g}" for v in d["saturated_e2_final_q_gt_1_3"])
        print(f"q > 1/3: final e~_2 in [{d['q_gt_1_3']['e2_final']['min']:.4g}, "
              f"{d['q_gt_1_3']['e2_final']['max']:.4g}]; saturated prediction e~_2(0) + drift = {sat}")
    a = s["adversarial_gap"]
    eq = a["equal_standard_risk"]
    diff = [_stats_text(v) for v in a["equal_standard_risk_minus_drift_only"].values()]
    print(f"R_a(signGD) - R_a(GD at equal R_s), eps = {a['eps']:.4g}: min {eq['min']:.4g}, median "
          f"{eq['median']:.4g}, max {eq['max']:.4g}; minus eps^2/2 (e~_2^2 - e~_2(0)^2) predicted, where the "
          f"closed form applies: {diff[0]} ({diff[1]} for lr <= {PAPER['lr']:g})")
    r = s["reference_cell"]
    print(f"reference cell q = {r['q']:g}, lr = {r['lr']:g}: t1 {r['t1']} (closed {r['t1_closed']}), t2 {r['t2']} "
          f"(closed {r['t2_closed']}), e~_2 final {r['e2_final']:.4g}, R_a signGD {r['signgd_adversarial_risk']:.4g}"
          f" vs GD {r['gd_adversarial_risk_equal_risk']:.4g} (equal R_s)")


# --- figures ------------------------------------------------------------------------------------


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges of a log-spaced axis: geometric midpoints, extended by half a step."""
    r = math.sqrt(x[1] / x[0])
    return np.concatenate([[x[0] / r], np.sqrt(x[1:] * x[:-1]), [x[-1] * r]])


def _hatch_cells(ax, qe: np.ndarray, le: np.ndarray, mask: np.ndarray) -> None:
    """Hatches the cells where ``mask`` (``(nq, nl)``) holds."""
    from matplotlib.collections import PolyCollection

    i, j = np.nonzero(mask)
    boxes = [[(qe[a], le[b]), (qe[a + 1], le[b]), (qe[a + 1], le[b + 1]), (qe[a], le[b + 1])] for a, b in zip(i, j)]
    if boxes:
        ax.add_collection(PolyCollection(boxes, facecolors="none", edgecolors="0.55", linewidths=0, hatch="///",
                                         zorder=3), autolim=False)


def _axes(ax, qe, le, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(qe[0], qe[-1])
    ax.set_ylim(le[0], le[-1])
    ax.set_xlabel("q = sigma_1^2 / sigma_0^2")
    ax.set_ylabel("lr")
    ax.set_title(title, fontsize=10)
    if qe[0] < Q_BOUNDARY < qe[-1]:
        ax.axvline(Q_BOUNDARY, color="k", ls="-.", lw=1.2, zorder=4)
        ax.text(Q_BOUNDARY, 0.02, "q = 1/3 ", transform=ax.get_xaxis_transform(), ha="right", va="bottom",
                fontsize=8, zorder=6, bbox={"fc": "w", "ec": "none", "alpha": 0.7, "pad": 1})


def _contours(ax, q, lr, observed, predicted, fmt: str) -> None:
    """Black contours of ``observed`` (labelled) and white dashed ones of ``predicted`` at the same levels."""
    from matplotlib.ticker import MaxNLocator

    finite = observed[np.isfinite(observed)]
    if finite.size == 0 or finite.min() == finite.max():
        return
    levels = MaxNLocator(7).tick_values(finite.min(), finite.max())[1:-1]
    cs = ax.contour(q, lr, np.ma.masked_invalid(observed.T), levels=levels, colors="k", linewidths=0.8, zorder=5)
    ax.clabel(cs, fontsize=7, fmt=fmt)
    pred = np.ma.masked_invalid(predicted.T)
    if pred.count() > 3:
        ax.contour(q, lr, pred, levels=levels, colors="w", linewidths=1.4, linestyles="--", zorder=5)


def plot_phase_diagram(path: str, grid: Grid, c: dict, args) -> None:
    """One row per init scale: final ``e~_2`` of signGD; the relative error of
    the first-order drift; the ``R_a`` gap to GD at equal ``R_s``.

    Hatched cells are those where the closed form does not apply (``q > 1/3``
    or ``NO_PHASE2``); the predictions (white dashed contours) are drawn only
    where it applies. Missing values (no prediction) are gray, not numbers.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import CenteredNorm, LogNorm

    from sims.plotting import save_figure

    qe, le = _edges(grid.q), _edges(grid.lr)
    ns = len(grid.scales)
    fig, axes = plt.subplots(ns, 3, figsize=(17, 4.8 * ns + 0.9), squeeze=False)
    for row in range(ns):
        e0 = c["e0_freq"][row, 0, 0]
        na = ~c["applicable"][row]
        pred_e2 = np.where(na, np.nan, c["e0_freq"][row, ..., 2] + c["drift_first_order"][row])
        scale = f", init scale {grid.scales[row]:g}" if ns > 1 else ""

        ax = axes[row, 0]
        e2 = c["e2_final"][row]
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(e2).T, cmap="RdBu_r", norm=CenteredNorm(vcenter=float(e0[2])))
        fig.colorbar(m, ax=ax, label=f"final e~_2 (colours centred at e~_2(0) = {e0[2]:.3g})")
        _contours(ax, grid.q, grid.lr, e2, pred_e2, "%.2f")
        _hatch_cells(ax, qe, le, na)
        _axes(ax, qe, le, f"(a) signGD: final e~_2{scale}")

        ax = axes[row, 1]
        rel = np.ma.masked_invalid(c["rel_err"][row])
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.8")
        lo = max(float(rel.min()), 1e-6) if rel.count() else 1e-6
        hi = max(float(rel.max()), lo * 10) if rel.count() else 1.0
        m = ax.pcolormesh(qe, le, np.ma.maximum(rel, lo).T, cmap=cmap, norm=LogNorm(lo, hi))
        fig.colorbar(m, ax=ax, label="|observed - first-order drift| / |first-order drift|")
        if rel.count() and rel.min() < args.tol < rel.max():
            cs = ax.contour(grid.q, grid.lr, rel.T, levels=[args.tol], colors="r", linewidths=1.4, zorder=5)
            ax.clabel(cs, fontsize=8, fmt={args.tol: f"{args.tol:.0%}"})
        _hatch_cells(ax, qe, le, na)
        _axes(ax, qe, le, f"(b) relative error of the first-order drift{scale}")

        ax = axes[row, 2]
        gap = c["gap_equal_risk"][row]
        gap_pred = np.where(na, np.nan, 0.5 * args.eps**2 * (pred_e2**2 - e0[2] ** 2))
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(gap).T, cmap="RdBu_r", norm=CenteredNorm(vcenter=0.0))
        fig.colorbar(m, ax=ax, label=f"R_a(signGD) - R_a(GD), l2, eps = {args.eps:.3g}")
        _contours(ax, grid.q, grid.lr, gap, gap_pred, "%.3g")
        _hatch_cells(ax, qe, le, na)
        _axes(ax, qe, le, f"(c) adversarial-risk gap to GD at equal R_s{scale}")
    fig.suptitle(f"population signGD on spectrum (sigma_0, sigma_0 sqrt(q), 0), sigma_0 = {args.sigma0:g}, "
                 f"w~* = {tuple(args.w_star)}, w~(0) = scale x {tuple(args.w0)}, each cell run until settled")
    fig.text(0.5, 0.005, "hatched: the closed form does not apply (q > 1/3, or phase 1 skips phase 2).  "
             "(a) black: observed; white dashed: e~_2(0) + first-order drift (signgd_drift_first_order).  "
             f"(b) red: {args.tol:.0%}; gray: no prediction.  "
             "(c) GD taken at the step where its R_s equals signGD's final R_s; black: observed; "
             "white dashed: eps^2/2 ((e~_2(0) + drift)^2 - e~_2(0)^2).",
             ha="center", va="bottom", fontsize=8.5, wrap=True)
    fig.tight_layout(rect=(0, 0.035 / ns, 1, 1))
    save_figure(fig, path)


def plot_slices(path: str, grid: Grid, c: dict, args) -> None:
    """Left: final ``e~_2`` against ``q`` at a few ``lr`` with the first-order
    and the saturated predictions. Right: ``|observed - saturated drift|``
    against ``lr`` at a few ``q``, with the ``O(lr)`` bound (first scale)."""
    import matplotlib.pyplot as plt

    from sims.plotting import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    e0 = c["e0_freq"][0, 0, 0]
    picks = sorted(set(np.linspace(0, len(grid.lr) - 1, 4).round().astype(int).tolist()))
    for k, j in enumerate(picks):
        left.plot(grid.q, c["e2_final"][0, :, j], "o-", ms=2.5, lw=1, color=f"C{k}", label=f"signGD, lr = {grid.lr[j]:.3g}")
    first = e0[2] + c["drift_first_order"][0, :, 0]
    inside = grid.q <= Q_BOUNDARY
    left.plot(grid.q[inside], first[inside], "k--", lw=1.5, label="first order (closed form applies)")
    left.plot(grid.q[~inside], first[~inside], color="0.6", ls="--", lw=1.2, label="first order, extrapolated")
    left.plot(grid.q, e0[2] + c["drift_saturated"][0, :, 0], "k:", lw=2, label="saturated: q capped at 1/3")
    left.axvline(Q_BOUNDARY, color="k", ls="-.", lw=1)
    left.set_xscale("log")
    left.set_xlabel("q = sigma_1^2 / sigma_0^2")
    left.set_ylabel("final e~_2")
    left.set_title("final irrelevant error against q", fontsize=10)
    left.legend(fontsize=8)
    left.grid(True, alpha=0.3)

    err = np.abs(c["drift"] - c["drift_saturated"])[0]
    rows = sorted(set(np.linspace(0, len(grid.q) - 1, 5).round().astype(int).tolist()))
    for k, i in enumerate(rows):
        e = np.ma.masked_less_equal(err[i], 0)
        right.plot(grid.lr, e, "o-", ms=2.5, lw=1, color=f"C{k}", label=f"q = {grid.q[i]:.3g}")
    right.plot(grid.lr, DRIFT_LR_BOUND * grid.lr, "k--", lw=1.5, label=f"{DRIFT_LR_BOUND:.3g} lr (bound, q <= 1/3)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("lr")
    right.set_ylabel("|observed - predicted drift| (saturated)")
    right.set_title("error of the drift prediction against lr", fontsize=10)
    right.legend(fontsize=8)
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"population signGD, sigma_0 = {args.sigma0:g}, init scale {grid.scales[0]:g}")
    fig.tight_layout()
    save_figure(fig, path)


# --- run ----------------------------------------------------------------------------------------


def run(args, t_start: float) -> int:
    grid = make_grid(args)
    cells = grid.q.size * len(args.init_scale)
    cli.stage(f"compiling and running {cells} cells (float64, one program)", args.quiet)
    res = simulate(grid, args)
    summary = {"config": config_dict(args), **summarize(res, grid, args)}
    print_table(summary)
    with cli.OutputSet(args.out) as outputs:
        t_plot = 0.0
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            t_plot = time.perf_counter()
            plot_phase_diagram(outputs.path(FIGURES[0]), grid, res.cells, args)
            plot_slices(outputs.path(FIGURES[1]), grid, res.cells, args)
            t_plot = time.perf_counter() - t_plot
        summary["timing"] = {"compile_s": res.compile_s, "grid_s": res.run_s, "plots_s": t_plot,
                             "total_s": time.perf_counter() - t_start}
        summary_path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
