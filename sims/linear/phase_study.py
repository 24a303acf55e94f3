"""The phase-diagram study: population signGD in d = 3 over ``q`` and ``lr``.

``python sims/phase_diagram.py`` is the command; this module is the study.
Spectrum ``(sigma_0, sigma_0 sqrt(q), 0)``, ``q = sigma_1^2 / sigma_0^2``.
Every cell is iterated with the exact frequency recursion (``sims.linear.grid``),
in float64, to a per-cell horizon past :func:`theory.phase_bounds.settle_bound`,
and its final ``e~_2`` is compared with:

* the **sign flow** (THEORY.md section 8.1, :func:`theory.sign_flow.sign_flow`):
  the ``lr -> 0`` limit, defined for every cell, including ``q > 1/3`` where
  the flow slides on ``|A| = |B|`` and the drift saturates at
  ``|e~_1(0)| / sqrt3`` (:func:`theory.sign_flow.sign_flow_final_d3`). The
  flow does not depend on ``lr`` (time ``tau = lr t``), so it is solved once
  per ``(init scale, q)`` row, all rows in one compiled program;
* the exact discrete closed form (:func:`theory.signgd.signgd_phases`)
  where it applies (``q <= 1/3``): ``t1``, ``t2`` and ``e~(t2)`` to rounding,
  and the final drift within :data:`theory.phase_bounds.DRIFT_LR_BOUND` lr.

GD needs no iteration: ``theory.gd.gd_error`` is exact at any step, and
:func:`theory.phase_bounds.gd_time_at_risk` finds the step at which GD's
``R_s`` equals signGD's final one, for the ``R_a`` gap.
"""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sims.linear.grid import signgd_grid
from theory.gd import gd_error, gd_limit
from theory.phase_bounds import DRIFT_LR_BOUND, gd_time_at_risk, settle_bound
from theory.quadratic import population_quadratic
from theory.risks import adversarial_risk_l2, standard_risk
from theory.sign_flow import FlowReason, sign_flow, sign_flow_final_d3
from theory.signal import Problem
from theory.signgd import SQRT_2_3, Reason, SignGDPhases, signgd_drift_first_order, signgd_phases

#: The paper's setting (THEORY.md section 1) and its cell.
PAPER = {"sigma0": 0.1, "w_star": (5.0, 10.0, 0.0), "w0": (0.01, -0.01, 0.02), "q": 0.25, "lr": 0.01}
Q_BOUNDARY = 1.0 / 3.0  # signgd_phases needs sigma_1^2 <= sigma_0^2 / 3
#: Segments of the sign flow: d = 3 takes at most 3 (phase 1, phase 2 or sliding, sliding on g_1).
FLOW_EVENTS = 8
#: Fonts that stay readable with the figures shown about 800 px wide (README).
FIGURE_STYLE = {"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "figure.titlesize": 15}


class Grid(NamedTuple):
    """The axes; cells are ordered ``(scale, q, lr)``, ``lr`` fastest."""

    q: np.ndarray  # (nq,)
    lr: np.ndarray  # (nl,)
    scales: np.ndarray  # (ns,)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.scales), len(self.q), len(self.lr)


def make_grid(ratios, lrs, size, scales) -> Grid:
    """Log-spaced ``q`` and ``lr`` axes (``size = (nq, nl)``) and the init scales."""
    return Grid(q=np.geomspace(*ratios, size[0]), lr=np.geomspace(*lrs, size[1]),
                scales=np.asarray(scales, np.float64))


def cell_models(q: np.ndarray, scale: np.ndarray, sigma0: float, w_star, w0) -> Problem:
    """Models with spectrum ``(sigma_0, sigma_0 sqrt(q), 0)`` and ``w~(0) = scale w0``
    (float64 numpy; one row per entry of ``q``)."""
    n = q.shape[0]
    spectrum = np.stack([np.full(n, sigma0), sigma0 * np.sqrt(q), np.zeros(n)], axis=-1)
    return Problem(spectrum, np.tile(np.asarray(w_star, np.float64), (n, 1)),
                       scale[:, None] * np.asarray(w0, np.float64))


class FlowEnd(NamedTuple):
    """Where the sign flow ends, per model (leading axis: models)."""

    e_freq: jax.Array  # (N, 3) e~(tau_converged); NaN where it did not converge
    tau_converged: jax.Array
    n_segments: jax.Array
    reason: jax.Array  # FlowReason
    e_freq_closed_d3: jax.Array  # sign_flow_final_d3, an independent closed form


@jax.jit
def flow_ends(problems: Problem) -> FlowEnd:
    """The sign flow of every model, one compiled program (vmap over models)."""
    flow = jax.vmap(lambda m: sign_flow(population_quadratic(m), max_events=FLOW_EVENTS))(problems)
    last = jnp.take_along_axis(flow.e_freq, flow.n_segments[:, None, None], axis=1)[:, 0]
    return FlowEnd(e_freq=jnp.where(flow.converged[:, None], last, jnp.nan), tau_converged=flow.tau_converged,
                   n_segments=flow.n_segments, reason=flow.reason,
                   e_freq_closed_d3=jax.vmap(sign_flow_final_d3)(problems).e_freq_final)


class ClosedForms(NamedTuple):
    """The discrete closed form, the first-order drift and the horizons, per cell."""

    phases: SignGDPhases
    drift_first_order: jax.Array
    steps: jax.Array  # per-cell horizon
    t_window: jax.Array  # the settling window is [t_window, steps]


@jax.jit
def closed_forms(problems: Problem, lr: jax.Array, horizon) -> ClosedForms:
    """Per cell: ``signgd_phases``, the first-order drift, the horizon
    ``ceil(horizon * settle_bound)`` and the settling window's start."""
    bound = jax.vmap(settle_bound)(problems, lr)
    return ClosedForms(phases=jax.vmap(signgd_phases)(problems, lr),
                       drift_first_order=jax.vmap(signgd_drift_first_order)(problems),
                       steps=jnp.ceil(horizon * bound).astype(jnp.int64), t_window=bound.astype(jnp.int64))


@jax.jit
def risks(problems: Problem, lr: jax.Array, e_final: jax.Array, steps: jax.Array, radius) -> dict:
    """``R_s`` and l2 ``R_a`` of signGD's final weights; GD's ``R_a`` at equal
    ``R_s``, at the same step and in the limit."""
    ra = lambda w, m: adversarial_risk_l2(w, m, radius)
    gd_w = lambda m, l, t: m.w_star_freq + gd_error(m, l)(t)
    w_sign = problems.w_star_freq + e_final
    r_s = jax.vmap(standard_risk)(w_sign, problems)
    t_eq = jax.vmap(gd_time_at_risk)(problems, lr, r_s)
    w_same = jax.vmap(gd_w)(problems, lr, steps.astype(e_final.dtype))
    return {
        "signgd_standard_risk": r_s,
        "signgd_adversarial_risk": jax.vmap(ra)(w_sign, problems),
        "gd_equal_risk_step": t_eq,
        "gd_adversarial_risk_equal_risk": jax.vmap(ra)(jax.vmap(gd_w)(problems, lr, t_eq), problems),
        "gd_adversarial_risk_same_step": jax.vmap(ra)(w_same, problems),
        "gd_standard_risk_same_step": jax.vmap(standard_risk)(w_same, problems),
        "gd_adversarial_risk_limit": jax.vmap(ra)(jax.vmap(gd_limit)(problems), problems),
    }


class PhaseResults(NamedTuple):
    """Per-cell numpy arrays of shape ``(ns, nq, nl)`` (``+ (3,)`` for vectors),
    the paper's reference cell, and timings."""

    cells: dict
    reference: dict
    compile_s: float
    run_s: float
    flow_s: float


def simulate(grid: Grid, sigma0: float, w_star, w0, horizon: float, radius: float) -> PhaseResults:
    """The grid plus one reference cell (``q = 0.25``, ``lr = 0.01``, first
    scale) as one iteration program, and the sign flow per ``(scale, q)`` row."""
    ns, nq, nl = grid.shape
    s_idx, q_idx, l_idx = (a.ravel() for a in np.meshgrid(np.arange(ns), np.arange(nq), np.arange(nl),
                                                          indexing="ij"))
    q = np.append(grid.q[q_idx], PAPER["q"])
    lr = np.append(grid.lr[l_idx], PAPER["lr"])
    scale = np.append(grid.scales[s_idx], grid.scales[0])
    row = np.append(s_idx * nq + q_idx, ns * nq)  # the flow row of each cell; the reference is its own row
    rs, rq = (a.ravel() for a in np.meshgrid(np.arange(ns), np.arange(nq), indexing="ij"))
    with jax.enable_x64(True):
        problems = jax.tree.map(jnp.asarray, cell_models(q, scale, sigma0, w_star, w0))
        rows = jax.tree.map(jnp.asarray, cell_models(np.append(grid.q[rq], PAPER["q"]),
                                                     np.append(grid.scales[rs], grid.scales[0]), sigma0, w_star, w0))
        lr_j = jnp.asarray(lr)
        t0 = time.perf_counter()
        flow = jax.tree.map(lambda x: np.asarray(x)[row], jax.block_until_ready(flow_ends(rows)))
        t1 = time.perf_counter()
        th = closed_forms(problems, lr_j, horizon)
        call = (problems, lr_j, th.steps, th.phases.t2, th.t_window)
        program = signgd_grid.lower(*call).compile()
        t2 = time.perf_counter()
        run_ = jax.block_until_ready(program(*call))
        t3 = time.perf_counter()
        rk = risks(problems, lr_j, run_.e_freq_final, th.steps, radius)
        flat = _flatten(problems, lr_j, th, flow, run_, rk)
    shaped = {k: v[:-1].reshape(grid.shape + v.shape[1:]) for k, v in flat.items()}
    return PhaseResults(shaped, {k: v[-1] for k, v in flat.items()}, t2 - t1, t3 - t2, t1 - t0)


def _flatten(problems: Problem, lr, th: ClosedForms, flow: FlowEnd, run_, rk: dict) -> dict:
    """The per-cell arrays as numpy, under short names."""
    ph = th.phases
    e0 = np.asarray(problems.e0_freq)
    out = {
        "lr": np.asarray(lr), "e0_freq": e0, "applicable": np.asarray(ph.applicable),
        "reason": np.asarray(ph.reason), "t1_closed": np.asarray(ph.t1), "t2_closed": np.asarray(ph.t2),
        "e_freq_t2_closed": np.asarray(ph.e_freq_t2), "drift_first_order": np.asarray(th.drift_first_order),
        "steps": np.asarray(th.steps), "t_window": np.asarray(th.t_window),
        "flow_e_freq": flow.e_freq, "flow_e_freq_closed_d3": flow.e_freq_closed_d3,
        "flow_reason": flow.reason, "flow_tau_converged": flow.tau_converged, "flow_segments": flow.n_segments,
        **{k: np.asarray(v) for k, v in run_._asdict().items()},
        **{k: np.asarray(v) for k, v in rk.items()},
    }
    out["e2_final"] = out["e_freq_final"][:, 2]
    out["drift"] = out["e2_final"] - e0[:, 2]  # observed e~_2(T) - e~_2(0)
    out["flow_drift"] = flow.e_freq[:, 2] - e0[:, 2]
    out["flow_err_over_lr"] = np.abs(out["e2_final"] - flow.e_freq[:, 2]) / out["lr"]
    out["first_order_err_over_lr"] = np.abs(out["drift"] - out["drift_first_order"]) / out["lr"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rel_err"] = np.abs(out["drift"] - out["flow_drift"]) / np.abs(out["flow_drift"])
    out["gap_equal_risk"] = out["signgd_adversarial_risk"] - out["gd_adversarial_risk_equal_risk"]
    return out


# --- the summary --------------------------------------------------------------------------------


def _num(x) -> Optional[float]:
    """A float, or ``None`` for NaN (JSON has no NaN)."""
    return float(x) if np.isfinite(x) else None


def _stats(x) -> Optional[dict]:
    """``{min, median, max}`` of the finite entries (``None`` if none)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return None if x.size == 0 else {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())}


def _fmax(x) -> Optional[float]:
    """The largest finite entry (``None`` if none)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else None


def _frac(mask: np.ndarray, region: np.ndarray) -> Optional[float]:
    n = int(region.sum())
    return float((mask & region).sum() / n) if n else None


def flow_region(c: dict, grid: Grid, region: np.ndarray, tol: float) -> dict:
    """How well the sign flow predicts the final ``e~_2`` on ``region``, and where it is worst."""
    err = np.where(region, c["flow_err_over_lr"], np.nan)
    out = {"cells": int(region.sum()), "err_over_lr": _stats(err),
           "frac_rel_err_below_tol": _frac(c["rel_err"] < tol, region & np.isfinite(c["rel_err"])),
           "frac_within_drift_lr_bound": _frac(c["flow_err_over_lr"] <= DRIFT_LR_BOUND, region),
           "first_order_err_over_lr": _stats(c["first_order_err_over_lr"][region]),
           "e2_final": _stats(c["e2_final"][region])}
    if np.isfinite(err).any():
        s, i, j = np.unravel_index(np.nanargmax(err), err.shape)
        out["worst_cell"] = {"q": float(grid.q[i]), "lr": float(grid.lr[j]), "init_scale": float(grid.scales[s]),
                             "err_over_lr": float(err[s, i, j])}
    return out


def lr_dependence(c: dict, grid: Grid, tol: float) -> dict:
    """Per ``lr`` over all cells: the median ``|final - flow|``, its log-log
    slope in ``lr`` (1 for ``O(lr)``), and the fraction within ``tol``."""
    err = np.abs(c["e2_final"] - c["flow_e_freq"][..., 2])
    med = np.array([np.median(err[:, :, j]) for j in range(len(grid.lr))])
    ok = np.isfinite(med) & (med > 0)
    slope = float(np.polyfit(np.log(grid.lr[ok]), np.log(med[ok]), 1)[0]) if ok.sum() >= 2 else None
    picks = sorted(set(np.linspace(0, len(grid.lr) - 1, 5).round().astype(int).tolist()))
    return {"median_abs_err_slope_in_lr": slope,
            "by_lr": [{"lr": float(grid.lr[j]), "median_abs_err": _num(med[j]),
                       "frac_rel_err_below_tol": _frac(c["rel_err"][:, :, j] < tol, np.ones_like(c["rel_err"][:, :, j], bool))}
                      for j in picks]}


def tolerance_frontier(c: dict, grid: Grid, tol: float) -> np.ndarray:
    """Per ``q`` row (first scale): the largest grid ``lr`` such that every
    cell with a smaller or equal ``lr`` has relative error below ``tol``
    (NaN if not even the smallest). Monotone in ``lr`` by construction."""
    good = c["rel_err"][0] < tol
    first_bad = np.where(good.all(axis=1), len(grid.lr), np.argmin(good, axis=1))
    return np.where(first_bad > 0, grid.lr[np.maximum(first_bad - 1, 0)], np.nan)


def summarize(res: PhaseResults, grid: Grid, radius: float, tol: float) -> dict:
    c, ref = res.cells, res.reference
    q = np.broadcast_to(grid.q[None, :, None], grid.shape)
    inside, appl = q <= Q_BOUNDARY, c["applicable"]
    d_e = np.abs(c["e_freq_probe"] - c["e_freq_t2_closed"]).max(axis=-1)
    settled = (c["t2"] >= 0) & (c["t2"] <= c["t_window"])
    gap_pred = 0.5 * radius**2 * (c["flow_e_freq"][..., 2] ** 2 - c["e0_freq"][..., 2] ** 2)
    frontier = tolerance_frontier(c, grid, tol)
    lr_over_q = frontier / grid.q
    lr_over_q = lr_over_q[np.isfinite(lr_over_q) & (frontier < grid.lr[-1])]
    ph3 = c["phase3_dev"] / c["lr"]
    return {
        "grid": {"cells": int(q.size), "q": grid.q.tolist(), "lr": grid.lr.tolist(),
                 "init_scales": grid.scales.tolist(), "max_steps": int(c["steps"].max()),
                 "total_cell_steps": int(c["steps"].sum())},
        "flow": {
            "reasons": {FlowReason(int(r)).name: int((c["flow_reason"] == r).sum()) for r in np.unique(c["flow_reason"])},
            "max_segments": int(c["flow_segments"].max()),
            "tau_converged": _stats(c["flow_tau_converged"]),
            "max_abs_diff_closed_form_d3": _fmax(np.abs(c["flow_e_freq"] - c["flow_e_freq_closed_d3"])),
            "tol": tol, "drift_lr_bound": DRIFT_LR_BOUND,
            "all": flow_region(c, grid, np.ones(grid.shape, bool), tol),
            "q_le_1_3": flow_region(c, grid, inside, tol),
            "q_gt_1_3": flow_region(c, grid, ~inside, tol),
            "lr_dependence": lr_dependence(c, grid, tol),
            "tolerance_frontier": {"q": grid.q.tolist(), "lr_max": [_num(v) for v in frontier],
                                   "lr_max_over_q": _stats(lr_over_q)},
            "saturated_e2_final": sorted({round(float(v), 12) for v in c["flow_e_freq"][..., 2][~inside]}),
            "note": "err_over_lr = |final e~_2 - sign flow e~_2| / lr; drift_lr_bound is the derived bound "
                    "(theory.phase_bounds.DRIFT_LR_BOUND) where the discrete closed form applies; the flow "
                    "equals the first-order drift there and saturates at |e~_1(0)|/sqrt3 for q > 1/3",
        },
        "closed_form_vs_iteration": {
            "cells": int(appl.sum()),
            "reasons": {Reason(int(r)).name: int((c["reason"] == r).sum()) for r in np.unique(c["reason"])},
            "t1_equal": int((c["t1"] == c["t1_closed"])[appl].sum()),
            "t2_equal": int((c["t2"] == c["t2_closed"])[appl].sum()),
            "max_abs_e_freq_t2_diff": _fmax(d_e[appl]),
            "max_rel_e_freq_t2_diff": _fmax((d_e / np.abs(c["e_freq_t2_closed"]).max(-1))[appl]),
        },
        "settling": {
            "cells_settled": int(settled.sum()),
            "e1_window_range_over_lr_max": _fmax(c["e1_window_range"] / c["lr"]),
            "phase3_dev_over_lr_max_applicable": _fmax(ph3[appl]),
            "phase3_dev_over_lr_max_q_gt_1_3": _fmax(ph3[~inside]),
            "phase3_bound_over_lr": SQRT_2_3,
            "note": "settled: e~_0 changed sign (t2 observed) before the window [settle_bound, horizon]",
        },
        "adversarial_gap": {
            "radius": radius,
            "equal_standard_risk": _stats(c["gap_equal_risk"]),
            "equal_standard_risk_minus_flow_drift_only": {
                "all_lr": _stats(c["gap_equal_risk"] - gap_pred),
                f"lr_le_{PAPER['lr']:g}": _stats((c["gap_equal_risk"] - gap_pred)[c["lr"] <= PAPER["lr"]])},
            "signgd_standard_risk": _stats(c["signgd_standard_risk"]),
            "same_step": _stats(c["signgd_adversarial_risk"] - c["gd_adversarial_risk_same_step"]),
            "gd_standard_risk_same_step": _stats(c["gd_standard_risk_same_step"]),
            "gd_limit": _stats(c["signgd_adversarial_risk"] - c["gd_adversarial_risk_limit"]),
            "gd_steps_to_equal_risk": _stats(c["gd_equal_risk_step"]),
            "note": "R_a(signGD, final) - R_a(GD at the step where its R_s equals signGD's final R_s); "
                    "flow_drift_only = eps^2/2 (flow e~_2^2 - e~_2(0)^2)",
        },
        "reference_cell": {
            "q": PAPER["q"], "lr": PAPER["lr"], "init_scale": float(grid.scales[0]),
            "t1": int(ref["t1"]), "t2": int(ref["t2"]), "t1_closed": int(ref["t1_closed"]),
            "t2_closed": int(ref["t2_closed"]), "e2_t2": _num(ref["e_freq_t2"][2]),
            "e2_final": _num(ref["e2_final"]), "flow_e2": _num(ref["flow_e_freq"][2]),
            "flow_err_over_lr": _num(ref["flow_err_over_lr"]), "flow_tau_converged": _num(ref["flow_tau_converged"]),
            "signgd_adversarial_risk": _num(ref["signgd_adversarial_risk"]),
            "gd_adversarial_risk_equal_risk": _num(ref["gd_adversarial_risk_equal_risk"]),
            "gd_adversarial_risk_limit": _num(ref["gd_adversarial_risk_limit"]),
        },
    }


def table_rows(s: dict) -> list[tuple[str, ...]]:
    """The flow's accuracy per region, for :func:`sims.common.cli.print_rows`."""
    f = s["flow"]
    rows = [("region", "cells", f"rel err < {f['tol']:g}", "max |final - flow|/lr", "median", "worst at (q, lr)",
             "final e~_2")]
    for name, key in (("all", "all"), ("q <= 1/3", "q_le_1_3"), ("q > 1/3", "q_gt_1_3")):
        r = f[key]
        if not r["cells"]:
            continue
        err, w, e2, frac = r["err_over_lr"], r.get("worst_cell"), r["e2_final"], r["frac_rel_err_below_tol"]
        rows.append((name, str(r["cells"]), "-" if frac is None else f"{frac:.1%}",
                     "-" if err is None else f"{err['max']:.3g}", "-" if err is None else f"{err['median']:.3g}",
                     "no flow" if w is None else f"({w['q']:.3g}, {w['lr']:.3g})",
                     f"[{e2['min']:.4g}, {e2['max']:.4g}]"))
    return rows


def _text(x: Optional[float], fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def table_notes(s: dict) -> list[str]:
    """The lines printed under the table."""
    f, c, st, a, r = (s[k] for k in ("flow", "closed_form_vs_iteration", "settling", "adversarial_gap",
                                     "reference_cell"))
    slope = f["lr_dependence"]["median_abs_err_slope_in_lr"]
    diff = f["max_abs_diff_closed_form_d3"]
    lines = [f"sign flow: {f['reasons']}, at most {f['max_segments']} segments, matches sign_flow_final_d3 to "
             f"{'-' if diff is None else format(diff, '.2g')}; |final - flow| ~ lr^"
             f"{'-' if slope is None else format(slope, '.2f')}; derived bound for q <= 1/3: "
             f"{f['drift_lr_bound']:.3g} lr"]
    if c["cells"]:
        lines.append(f"closed form vs iteration ({c['cells']} applicable cells): t1 equal {c['t1_equal']}, t2 equal "
                     f"{c['t2_equal']}, max relative |e~(t2) diff| {c['max_rel_e_freq_t2_diff']:.3g}")
    lines.append(f"settled: {st['cells_settled']}/{s['grid']['cells']} cells")
    eq = a["equal_standard_risk"]
    lines.append(f"R_a(signGD) - R_a(GD at equal R_s), eps = {a['radius']:.4g}: min {eq['min']:.4g}, median "
                 f"{eq['median']:.4g}, max {eq['max']:.4g}")
    lines.append(f"paper cell q = {r['q']:g}, lr = {r['lr']:g}: t1 {r['t1']} (closed {r['t1_closed']}), t2 {r['t2']} "
                 f"(closed {r['t2_closed']}), final e~_2 {r['e2_final']:.4g} vs flow {_text(r['flow_e2'], '.6g')} "
                 f"({_text(r['flow_err_over_lr'], '.3g')} lr); R_a {r['signgd_adversarial_risk']:.4g} vs GD "
                 f"{r['gd_adversarial_risk_equal_risk']:.4g} (equal R_s)")
    return lines


def paper_lr_slice(c: dict, grid: Grid) -> dict:
    """Final ``e~_2`` and the flow against ``q`` at the grid ``lr`` nearest 0.01 (first scale)."""
    j = int(np.argmin(np.abs(np.log(grid.lr / PAPER["lr"]))))
    return {"lr": float(grid.lr[j]), "q": grid.q.tolist(), "e2_final": [_num(v) for v in c["e2_final"][0, :, j]],
            "e2_flow": [_num(v) for v in c["flow_e_freq"][0, :, j, 2]]}


# --- figures ------------------------------------------------------------------------------------


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges of a log-spaced axis: geometric midpoints, extended by half a step."""
    r = np.sqrt(x[1] / x[0])
    return np.concatenate([[x[0] / r], np.sqrt(x[1:] * x[:-1]), [x[-1] * r]])


def _axes(ax, qe, le, title: str) -> None:
    """Log axes, a short title, and ``q = 1/3`` as a dash-dot line with a top tick (never covered)."""
    ax.set(xscale="log", yscale="log", xlim=(qe[0], qe[-1]), ylim=(le[0], le[-1]), xlabel="q")
    ax.set_ylabel("lr")
    ax.set_title(title)
    if qe[0] < Q_BOUNDARY < qe[-1]:
        ax.axvline(Q_BOUNDARY, color="k", ls="-.", lw=1.0, zorder=4)
        top = ax.secondary_xaxis("top")
        top.set_xticks([Q_BOUNDARY], labels=["1/3"])
        top.tick_params(length=3, pad=1)


def _levels(values: np.ndarray, n: int = 5) -> np.ndarray:
    """Round contour levels inside the central 84% of the range of ``values``
    (a level at an end would outline single noisy cells)."""
    from matplotlib.ticker import MaxNLocator

    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.array([])
    lo, hi = finite.min(), finite.max()
    ticks = MaxNLocator(n).tick_values(lo, hi)
    return ticks[(ticks > lo + 0.08 * (hi - lo)) & (ticks < hi - 0.08 * (hi - lo))]


def _contours(ax, colorbar, q, lr, values, levels, color: str, style: str) -> None:
    """Contours of ``values`` ``(nq, nl)`` at ``levels``, marked on ``colorbar``
    (labels on the lines would be unreadable at README size)."""
    field = np.ma.masked_invalid(values.T)
    if len(levels) and field.count() > 3:
        cs = ax.contour(q, lr, field, levels=levels, colors=color, linewidths=1.3, linestyles=style, zorder=5)
        colorbar.add_lines(cs)


def plot_phase_diagram(path: str, grid: Grid, c: dict, tol: float, radius: float, sigma0: float) -> None:
    """One row per init scale: (a) final ``e~_2`` (black contours) with the
    sign flow's (red dashed, same levels, marked on the colour bar); (b) ``|final - flow| / lr`` with
    the ``tol`` frontier of the relative error (one monotone staircase, first
    scale); (c) the ``R_a`` gap to GD at equal ``R_s``, with the gap the
    flow's drift alone gives, ``eps^2/2 (e~_2^2 - e~_2(0)^2)`` (blue dashed).
    Colour scales span the data (sequential maps)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(FIGURE_STYLE):
        _draw_phase_diagram(plt, path, grid, c, tol, radius, sigma0)


def _draw_phase_diagram(plt, path, grid, c, tol, radius, sigma0) -> None:
    from matplotlib.colors import Normalize

    from sims.common.plotting import save_figure

    qe, le = _edges(grid.q), _edges(grid.lr)
    ns = len(grid.scales)
    fig, axes = plt.subplots(ns, 3, figsize=(15, 4.6 * ns + 0.5), squeeze=False)
    for row in range(ns):
        e20 = float(c["e0_freq"][row, 0, 0, 2])
        flow_e2 = c["flow_e_freq"][row, ..., 2]
        suffix = f", scale {grid.scales[row]:g}" if ns > 1 else ""

        ax = axes[row, 0]
        e2 = c["e2_final"][row]
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(e2).T, cmap="cividis",
                          norm=Normalize(np.nanmin(e2), np.nanmax(e2)))
        cb = fig.colorbar(m, ax=ax, label="final e~_2")
        levels = _levels(e2)
        _contours(ax, cb, grid.q, grid.lr, e2, levels, "k", "-")
        _contours(ax, cb, grid.q, grid.lr, flow_e2, levels, "r", "--")
        _axes(ax, qe, le, f"(a) final e~_2 (red: flow){suffix}")

        ax = axes[row, 1]
        err = c["flow_err_over_lr"][row]
        top = _fmax(err) or 1.0  # all NaN: no flow converged (say so in gray)
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(err).T, norm=Normalize(0.0, top),
                          cmap=plt.get_cmap("viridis").with_extremes(bad="0.8"))
        cb = fig.colorbar(m, ax=ax, label="|final - flow| / lr")
        if DRIFT_LR_BOUND <= top:
            cb.ax.axhline(DRIFT_LR_BOUND, color="r", lw=1.5)
        if row == 0:
            good = c["rel_err"][0] < tol
            first_bad = np.where(good.all(axis=1), len(grid.lr), np.argmin(good, axis=1))
            ax.stairs(le[first_bad], qe, baseline=None, color="r", lw=1.6, zorder=5,
                      label=f"rel. error < {tol:.0%} below")
            ax.legend(loc="lower right", fontsize=10, framealpha=0.85)
        _axes(ax, qe, le, f"(b) error of the flow{suffix}")

        ax = axes[row, 2]
        gap = c["gap_equal_risk"][row]
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(gap).T, cmap="magma_r",
                          norm=Normalize(np.nanmin(gap), np.nanmax(gap)))
        cb = fig.colorbar(m, ax=ax, label=f"R_a(signGD) - R_a(GD), eps = {radius:.3g}")
        gap_flow = 0.5 * radius**2 * (flow_e2**2 - e20**2)
        _contours(ax, cb, grid.q, grid.lr, gap_flow, _levels(gap), "deepskyblue", "--")
        _axes(ax, qe, le, f"(c) R_a gap to GD (blue: flow){suffix}")
    fig.suptitle(f"population signGD, spectrum (sigma_0, sigma_0 sqrt(q), 0), sigma_0 = {sigma0:g}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_slices(path: str, grid: Grid, c: dict, sigma0: float) -> None:
    """Left: final ``e~_2`` against ``q`` at a few ``lr``, with the sign flow and
    the first-order drift. Right: ``|final - flow|`` against ``lr`` at a few
    ``q``, with the derived ``O(lr)`` bound for ``q <= 1/3`` (first scale)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(FIGURE_STYLE):
        _draw_slices(plt, path, grid, c, sigma0)


def _draw_slices(plt, path, grid, c, sigma0) -> None:
    from sims.common.plotting import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    e20 = c["e0_freq"][0, 0, 0, 2]
    for k, j in enumerate(sorted(set(np.linspace(0, len(grid.lr) - 1, 4).round().astype(int).tolist()))):
        left.plot(grid.q, c["e2_final"][0, :, j], "o", ms=2.5, color=f"C{k}", label=f"signGD, lr = {grid.lr[j]:.3g}")
    left.plot(grid.q, c["flow_e_freq"][0, :, 0, 2], "k-", lw=1.5, label="sign flow (lr -> 0)")
    left.plot(grid.q, e20 + c["drift_first_order"][0, :, 0], color="0.5", ls="--", lw=1.2,
              label="first-order drift, sqrt3 q |e~_1(0)|")
    left.axvline(Q_BOUNDARY, color="k", ls="-.", lw=0.8)
    left.set(xscale="log", xlabel="q = sigma_1^2/sigma_0^2", ylabel="final e~_2")
    left.set_title("final e~_2 against q")
    left.legend(fontsize=10)
    left.grid(True, alpha=0.3)

    err = np.abs(c["e2_final"] - c["flow_e_freq"][..., 2])[0]
    for k, i in enumerate(sorted(set(np.linspace(0, len(grid.q) - 1, 5).round().astype(int).tolist()))):
        right.plot(grid.lr, np.ma.masked_less_equal(err[i], 0), "o-", ms=2.5, lw=1, color=f"C{k}",
                   label=f"q = {grid.q[i]:.3g}")
    right.plot(grid.lr, DRIFT_LR_BOUND * grid.lr, "k--", lw=1.5, label=f"{DRIFT_LR_BOUND:.3g} lr (bound, q <= 1/3)")
    right.set(xscale="log", yscale="log", xlabel="lr", ylabel="|final e~_2 - flow|")
    right.set_title("error of the sign flow against lr")
    right.legend(fontsize=10, ncol=2)
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"population signGD, sigma_0 = {sigma0:g}, init scale {grid.scales[0]:g}")
    fig.tight_layout()
    save_figure(fig, path)


def readme_block(s: dict) -> str:
    """The README's phase-diagram findings, rendered from ``phase_summary.json``."""
    g, f, ref = s["grid"], s["flow"], s["reference_cell"]
    le, gt = f["q_le_1_3"], f["q_gt_1_3"]
    gap = s["adversarial_gap"]["equal_standard_risk"]
    lines = [
        f"`python sims/phase_diagram.py`: {g['cells']} cells, up to {g['max_steps']} steps each; the sign flow "
        f"(THEORY.md 8.1) converged in {f['reasons'].get('CONVERGED', 0)} of them (at most {f['max_segments']} "
        f"segments) and equals the d = 3 closed form to {f['max_abs_diff_closed_form_d3']:.1e}.",
        "",
        "| region | cells | max \\|final e~_2 - flow\\| / lr | median | within 4.08 lr | relative error < 10% |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (("q <= 1/3", le), ("q > 1/3", gt), ("all", f["all"])):
        lines.append(f"| {label} | {r['cells']} | {r['err_over_lr']['max']:.2f} | {r['err_over_lr']['median']:.2f} "
                     f"| {r['frac_within_drift_lr_bound']:.0%} | {r['frac_rel_err_below_tol']:.0%} |")
    lines += [
        "",
        f"- The error scales as lr^{f['lr_dependence']['median_abs_err_slope_in_lr']:.2f} (median cell): `O(lr)`.",
        f"- Beyond q = 1/3 the drift saturates: the final e~_2 stays in [{gt['e2_final']['min']:.3f}, "
        f"{gt['e2_final']['max']:.3f}] against the flow's {np.ravel(f['saturated_e2_final'])[0]:.4f}."
        if "saturated_e2_final" in f else
        f"- Beyond q = 1/3 the final e~_2 stays in [{gt['e2_final']['min']:.3f}, {gt['e2_final']['max']:.3f}].",
        f"- The paper's cell (q = {ref['q']:g}, lr = {ref['lr']:g}): signGD ends at e~_2 = {ref['e2_final']:.4f}, "
        f"the flow at {ref['flow_e2']:.4f} ({ref['flow_err_over_lr']:.2f} lr); R_a {ref['signgd_adversarial_risk']:.1f} "
        f"against {ref['gd_adversarial_risk_equal_risk']:.1f} for GD at equal R_s.",
        f"- At equal R_s, signGD's R_a exceeds GD's by a median {gap['median']:.2f} over the grid "
        f"(up to {gap['max']:.1f}).",
    ]
    return "\n".join(lines)
