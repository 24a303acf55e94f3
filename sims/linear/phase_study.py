"""The phase-diagram study: population signGD in d = 3 over ``q`` and ``lr``.

``python sims/phase_diagram.py`` is the command; this module is the study and
:mod:`sims.linear.phase_figures` draws its figures.
Spectrum ``(sigma_0, sigma_0 sqrt(q), 0)``, ``q = sigma_1^2 / sigma_0^2``.
Every point ``(w0 scale, q, lr)`` is iterated with the exact frequency
recursion (:func:`theory.dynamics.signgd_freq_step`, observed at every step by
:func:`theory.dynamics.phase_times`), in float64, to a per-point horizon past
:func:`theory.phase_bounds.settle_bound`, and its final ``e~_2`` is compared with:

* the **sign flow** (THEORY.md section 8.1, :func:`theory.sign_flow.sign_flow`):
  the ``lr -> 0`` limit, defined for every point, including ``q > 1/3`` where
  the flow slides on ``|A| = |B|`` and the drift saturates at
  ``|e~_1(0)| / sqrt3`` (:func:`theory.sign_flow.sign_flow_final_d3`). The
  flow does not depend on ``lr`` (time ``tau = lr t``), so it is solved once
  per ``(w0 scale, q)`` row, all rows in one compiled program;
* the exact discrete closed form (:func:`theory.signgd.signgd_phases`)
  where it applies (``q <= 1/3``): ``t1``, ``t2`` and ``e~(t2)`` to rounding,
  and the final drift within :data:`theory.phase_bounds.DRIFT_LR_BOUND` lr.

GD needs no iteration: ``theory.gd.gd_error`` is exact at any step, and
:func:`theory.phase_bounds.gd_time_at_risk` finds the step at which GD's
``R_s`` equals signGD's final one, for the ``R_a`` gap.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from theory import dynamics
from theory.gd import gd_error, gd_limit
from theory.phase_bounds import DRIFT_LR_BOUND, gd_time_at_risk, settle_bound
from theory.quadratic import population_quadratic
from theory.risks import adversarial_risk_l2, irrelevant_drift_gap, standard_risk
from theory.sign_flow import FlowReason, sign_flow, sign_flow_final_d3
from theory.signal import PAPER_SPECTRUM, PAPER_W0_FREQ, PAPER_W_STAR_FREQ, PaperTraining, Problem
from theory.signgd import Q_BOUNDARY, SQRT_2_3, Reason, SignGDPhases, signgd_drift_first_order, signgd_phases


def _paper() -> dict:
    """The paper's setting (:data:`theory.signal.PAPER_SPECTRUM` and the others, :class:`~theory.signal.PaperTraining`)
    as Python floats: ``sigma_0``, ``w~*``, ``w~(0)``, its ``q = (sigma_1 / sigma_0)^2``, ``lr`` and radius."""
    sigma = PAPER_SPECTRUM
    return {"sigma0": sigma[0], "q": (sigma[1] / sigma[0]) ** 2, "w_star_freq": PAPER_W_STAR_FREQ,
            "w0_freq": PAPER_W0_FREQ, "lr": PaperTraining().lr, "radius": PaperTraining().radius}


#: The paper's setting (THEORY.md section 1) and its point (``q = 0.25``, ``lr = 0.01``).
PAPER = _paper()
#: Segments of the sign flow: d = 3 takes at most 3 (phase 1, phase 2 or sliding, sliding on g_1).
FLOW_EVENTS = 8


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of a phase diagram (the flags of ``sims/phase_diagram.py``).

    Attributes:
      q_range: ``(min, max)`` of ``q = sigma_1^2 / sigma_0^2``, log-spaced.
      lr_range: ``(min, max)`` of the learning rate, log-spaced.
      shape: ``(nq, nlr)`` points along each axis.
      sigma0: ``sigma_0``; ``sigma_1 = sigma_0 sqrt(q)``.
      w_star_freq: the target ``w~*``.
      w0_freq: the start ``w~(0)``, multiplied by each of ``w0_scales``.
      w0_scales: one diagram (and figure row) per factor.
      radius: the l2 adversary's budget.
      tol: the relative-error tolerance of the sign flow's drift.
      horizon: each point runs ``ceil(horizon * settle_bound)`` steps.
      dtype, gradient, spacing, flow_events: fixed by the study (no flag).
    """

    q_range: tuple[float, float] = (0.01, 1.0)
    lr_range: tuple[float, float] = (1e-3, 0.1)
    shape: tuple[int, int] = (64, 64)
    sigma0: float = PAPER["sigma0"]
    w_star_freq: tuple[float, ...] = PAPER["w_star_freq"]
    w0_freq: tuple[float, ...] = PAPER["w0_freq"]
    w0_scales: tuple[float, ...] = (1.0,)
    radius: float = PAPER["radius"]
    tol: float = 0.1
    horizon: float = 1.25
    dtype: str = "float64"
    gradient: str = "population"
    spacing: str = "log"
    flow_events: int = FLOW_EVENTS


class Diagram(NamedTuple):
    """The axes; points are ordered ``(w0 scale, q, lr)``, ``lr`` fastest."""

    q: np.ndarray  # (nq,)
    lr: np.ndarray  # (nl,)
    scales: np.ndarray  # (ns,)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.scales), len(self.q), len(self.lr)


def make_diagram(config: Config) -> Diagram:
    """Log-spaced ``q`` and ``lr`` axes (``config.shape = (nq, nl)``) and the w0 scales."""
    return Diagram(q=np.geomspace(*config.q_range, config.shape[0]), lr=np.geomspace(*config.lr_range, config.shape[1]),
                scales=np.asarray(config.w0_scales, np.float64))


def point_problems(q: np.ndarray, scale: np.ndarray, sigma0: float, w_star, w0) -> Problem:
    """Problems with spectrum ``(sigma_0, sigma_0 sqrt(q), 0)`` and ``w~(0) = scale w0``
    (float64 numpy; one row per entry of ``q``)."""
    n = q.shape[0]
    spectrum = np.stack([np.full(n, sigma0), sigma0 * np.sqrt(q), np.zeros(n)], axis=-1)
    return Problem(spectrum, np.tile(np.asarray(w_star, np.float64), (n, 1)),
                   scale[:, None] * np.asarray(w0, np.float64))


def max_point_steps(config: Config) -> float:
    """The longest horizon of a point, ``horizon * settle_bound`` at the smallest ``lr``
    (before running anything: the scripts' size checks)."""
    w0 = np.outer(config.w0_scales, config.w0_freq)
    with jax.enable_x64(True):
        problems = Problem(np.zeros_like(w0), np.broadcast_to(config.w_star_freq, w0.shape), w0)
        bound = np.asarray(settle_bound(problems, config.lr_range[0]))
    return float(bound.max()) * config.horizon


@jax.jit
def iterate_points(problems: Problem, lr: jax.Array, steps: jax.Array, t_probe: jax.Array,
                   t_window: jax.Array) -> tuple[jax.Array, dynamics.PhaseTimes]:
    """Population signGD at every point, as one compiled program.

    Point ``i`` takes ``steps_i`` steps of the exact recursion
    :func:`theory.dynamics.signgd_freq_step` from ``e~(0)``, observed at
    every step by :func:`theory.dynamics.phase_times`. Under ``vmap`` the
    traced step counts make one loop to the largest, finished points kept
    fixed: a point's result does not depend on the others.

    Args:
      problems: a :class:`~theory.signal.Problem` with a leading point axis
        ``N`` (spectra ``(sigma_0, sigma_1, 0)``).
      lr: ``(N,)`` learning rates.
      steps: ``(N,)`` integer step counts, below ``2^31``.
      t_probe: ``(N,)`` steps at which to keep ``e~`` (-1: none).
      t_window: ``(N,)`` first steps of the settling windows.

    Returns:
      ``(e_freq_final, times)``: ``e~(steps_i)`` ``(N, 3)`` and a
      :class:`~theory.dynamics.PhaseTimes` with leading axis ``N``.
    """

    def one(problem, lr, steps, t_probe, t_window):
        state0 = dynamics.State(jnp.zeros((), jnp.int32), problem.e0_freq, ())
        final, _, times = dynamics.run(dynamics.signgd_freq_step(problem.spectrum, lr), state0, steps[None],
                                       observer=dynamics.phase_times(problem.spectrum, t_probe, t_window))
        return final.e, times

    return jax.vmap(one)(problems, lr, steps, t_probe, t_window)


class FlowEnd(NamedTuple):
    """Where the sign flow ends, per problem (leading axis: problems)."""

    e_freq: jax.Array  # (N, 3) e~(tau_converged); NaN where it did not converge
    tau_converged: jax.Array
    n_segments: jax.Array
    reason: jax.Array  # FlowReason
    e_freq_closed_d3: jax.Array  # sign_flow_final_d3, an independent closed form


@jax.jit
def flow_ends(problems: Problem) -> FlowEnd:
    """The sign flow of every problem, one compiled program (vmap over problems)."""
    flow = jax.vmap(lambda m: sign_flow(population_quadratic(m), max_events=FLOW_EVENTS))(problems)
    last = jnp.take_along_axis(flow.e_freq, flow.n_segments[:, None, None], axis=1)[:, 0]
    return FlowEnd(e_freq=jnp.where(flow.converged[:, None], last, jnp.nan), tau_converged=flow.tau_converged,
                   n_segments=flow.n_segments, reason=flow.reason,
                   e_freq_closed_d3=jax.vmap(sign_flow_final_d3)(problems).e_freq_final)


class ClosedForms(NamedTuple):
    """The discrete closed form, the first-order drift and the horizons, per point."""

    phases: SignGDPhases
    drift_first_order: jax.Array
    steps: jax.Array  # per-point horizon
    t_window: jax.Array  # the settling window is [t_window, steps]


@jax.jit
def closed_forms(problems: Problem, lr: jax.Array, horizon) -> ClosedForms:
    """Per point: ``signgd_phases``, the first-order drift, the horizon
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
    """Per-point numpy arrays of shape ``(ns, nq, nl)`` (``+ (3,)`` for vectors),
    the paper's reference point, the axes and timings."""

    points: dict
    reference: dict
    diagram: Diagram
    compile_s: float
    run_s: float
    flow_s: float


def phase_diagram(config: Config) -> PhaseResults:
    """The points plus one reference point (the paper's ``q`` and ``lr``, first
    w0 scale) as one iteration program, and the sign flow per ``(w0 scale, q)`` row."""
    diagram = make_diagram(config)
    ns, nq, nl = diagram.shape
    s_idx, q_idx, l_idx = (a.ravel() for a in np.meshgrid(np.arange(ns), np.arange(nq), np.arange(nl),
                                                          indexing="ij"))
    q = np.append(diagram.q[q_idx], PAPER["q"])
    lr = np.append(diagram.lr[l_idx], PAPER["lr"])
    scale = np.append(diagram.scales[s_idx], diagram.scales[0])
    row = np.append(s_idx * nq + q_idx, ns * nq)  # the flow row of each point; the reference is its own row
    rs, rq = (a.ravel() for a in np.meshgrid(np.arange(ns), np.arange(nq), indexing="ij"))
    at = (config.sigma0, config.w_star_freq, config.w0_freq)
    with jax.enable_x64(True):
        problems = jax.tree.map(jnp.asarray, point_problems(q, scale, *at))
        rows = jax.tree.map(jnp.asarray, point_problems(np.append(diagram.q[rq], PAPER["q"]),
                                                        np.append(diagram.scales[rs], diagram.scales[0]), *at))
        lr_j = jnp.asarray(lr)
        t0 = time.perf_counter()
        flow = jax.tree.map(lambda x: np.asarray(x)[row], jax.block_until_ready(flow_ends(rows)))
        t1 = time.perf_counter()
        th = closed_forms(problems, lr_j, config.horizon)
        call = (problems, lr_j, th.steps, th.phases.t2, th.t_window)
        program = iterate_points.lower(*call).compile()
        t2 = time.perf_counter()
        e_final, times = jax.block_until_ready(program(*call))
        t3 = time.perf_counter()
        rk = risks(problems, lr_j, e_final, th.steps, config.radius)
        flat = _flatten(problems, lr_j, th, flow, e_final, times, rk)
    shaped = {k: v[:-1].reshape(diagram.shape + v.shape[1:]) for k, v in flat.items()}
    return PhaseResults(shaped, {k: v[-1] for k, v in flat.items()}, diagram, t2 - t1, t3 - t2, t1 - t0)


def _flatten(problems: Problem, lr, th: ClosedForms, flow: FlowEnd, e_final, times: dynamics.PhaseTimes,
             rk: dict) -> dict:
    """The per-point arrays as numpy, under short names."""
    ph = th.phases
    e0 = np.asarray(problems.e0_freq)
    out = {
        "lr": np.asarray(lr), "e0_freq": e0, "applicable": np.asarray(ph.applicable),
        "reason": np.asarray(ph.reason), "t1_closed": np.asarray(ph.t1), "t2_closed": np.asarray(ph.t2),
        "e_freq_t2_closed": np.asarray(ph.e_freq_t2), "drift_first_order": np.asarray(th.drift_first_order),
        "steps": np.asarray(th.steps), "t_window": np.asarray(th.t_window),
        "flow_e_freq": flow.e_freq, "flow_e_freq_closed_d3": flow.e_freq_closed_d3,
        "flow_reason": flow.reason, "flow_tau_converged": flow.tau_converged, "flow_segments": flow.n_segments,
        "e_freq_final": np.asarray(e_final),
        **{k: np.asarray(v) for k, v in times._asdict().items()},
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


def fmax(x) -> Optional[float]:
    """The largest finite entry (``None`` if none)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else None


def _frac(mask: np.ndarray, region: np.ndarray) -> Optional[float]:
    n = int(region.sum())
    return float((mask & region).sum() / n) if n else None


def flow_region(c: dict, diagram: Diagram, region: np.ndarray, tol: float) -> dict:
    """How well the sign flow predicts the final ``e~_2`` on ``region``, and where it is worst."""
    err = np.where(region, c["flow_err_over_lr"], np.nan)
    out = {"points": int(region.sum()), "err_over_lr": _stats(err),
           "frac_rel_err_below_tol": _frac(c["rel_err"] < tol, region & np.isfinite(c["rel_err"])),
           "frac_within_drift_lr_bound": _frac(c["flow_err_over_lr"] <= DRIFT_LR_BOUND, region),
           "first_order_err_over_lr": _stats(c["first_order_err_over_lr"][region]),
           "e2_final": _stats(c["e2_final"][region])}
    if np.isfinite(err).any():
        s, i, j = np.unravel_index(np.nanargmax(err), err.shape)
        out["worst_point"] = {"q": float(diagram.q[i]), "lr": float(diagram.lr[j]), "w0_scale": float(diagram.scales[s]),
                              "err_over_lr": float(err[s, i, j])}
    return out


def lr_dependence(c: dict, diagram: Diagram, tol: float) -> dict:
    """Per ``lr`` over all points: the median ``|final - flow|``, its log-log
    slope in ``lr`` (1 for ``O(lr)``), and the fraction within ``tol``."""
    err = np.abs(c["e2_final"] - c["flow_e_freq"][..., 2])
    med = np.array([np.median(err[:, :, j]) for j in range(len(diagram.lr))])
    ok = np.isfinite(med) & (med > 0)
    slope = float(np.polyfit(np.log(diagram.lr[ok]), np.log(med[ok]), 1)[0]) if ok.sum() >= 2 else None
    picks = sorted(set(np.linspace(0, len(diagram.lr) - 1, 5).round().astype(int).tolist()))
    return {"median_abs_err_slope_in_lr": slope,
            "by_lr": [{"lr": float(diagram.lr[j]), "median_abs_err": _num(med[j]),
                       "frac_rel_err_below_tol": _frac(c["rel_err"][:, :, j] < tol,
                                                       np.ones_like(c["rel_err"][:, :, j], bool))}
                      for j in picks]}


def first_bad_lr(c: dict, tol: float) -> np.ndarray:
    """Per ``q`` row (first w0 scale): the index of the first ``lr`` whose relative
    error is not below ``tol`` (``nl`` if none); the staircase of the figure."""
    good = c["rel_err"][0] < tol
    return np.where(good.all(axis=1), good.shape[1], np.argmin(good, axis=1))


def tolerance_frontier(c: dict, diagram: Diagram, tol: float) -> np.ndarray:
    """Per ``q`` row (first w0 scale): the largest grid ``lr`` such that every
    point with a smaller or equal ``lr`` has relative error below ``tol``
    (NaN if not even the smallest). Monotone in ``lr`` by construction."""
    first_bad = first_bad_lr(c, tol)
    return np.where(first_bad > 0, diagram.lr[np.maximum(first_bad - 1, 0)], np.nan)


def summarize(res: PhaseResults, config: Config) -> dict:
    """The JSON summary (apart from ``config``, ``timing`` and ``files``)."""
    c, ref, diagram, tol, radius = res.points, res.reference, res.diagram, config.tol, config.radius
    q = np.broadcast_to(diagram.q[None, :, None], diagram.shape)
    inside, appl = q <= Q_BOUNDARY, c["applicable"]
    d_e = np.abs(c["e_freq_probe"] - c["e_freq_t2_closed"]).max(axis=-1)
    settled = (c["t2"] >= 0) & (c["t2"] <= c["t_window"])
    gap_pred = irrelevant_drift_gap(radius, c["flow_e_freq"][..., 2], c["e0_freq"][..., 2])
    frontier = tolerance_frontier(c, diagram, tol)
    lr_over_q = frontier / diagram.q
    lr_over_q = lr_over_q[np.isfinite(lr_over_q) & (frontier < diagram.lr[-1])]
    ph3 = c["phase3_dev"] / c["lr"]
    return {
        "diagram": {"points": int(q.size), "q": diagram.q.tolist(), "lr": diagram.lr.tolist(),
                 "w0_scales": diagram.scales.tolist(), "max_steps": int(c["steps"].max()),
                 "total_point_steps": int(c["steps"].sum())},
        "flow": {
            "reasons": {FlowReason(int(r)).name: int((c["flow_reason"] == r).sum()) for r in np.unique(c["flow_reason"])},
            "max_segments": int(c["flow_segments"].max()),
            "tau_converged": _stats(c["flow_tau_converged"]),
            "max_abs_diff_closed_form_d3": fmax(np.abs(c["flow_e_freq"] - c["flow_e_freq_closed_d3"])),
            "tol": tol, "drift_lr_bound": DRIFT_LR_BOUND,
            "all": flow_region(c, diagram, np.ones(diagram.shape, bool), tol),
            "q_le_1_3": flow_region(c, diagram, inside, tol),
            "q_gt_1_3": flow_region(c, diagram, ~inside, tol),
            "lr_dependence": lr_dependence(c, diagram, tol),
            "tolerance_frontier": {"q": diagram.q.tolist(), "lr_max": [_num(v) for v in frontier],
                                   "lr_max_over_q": _stats(lr_over_q)},
            "saturated_e2_final": sorted({round(float(v), 12) for v in c["flow_e_freq"][..., 2][~inside]}),
            "note": "err_over_lr = |final e~_2 - sign flow e~_2| / lr; drift_lr_bound is the derived bound "
                    "(theory.phase_bounds.DRIFT_LR_BOUND) where the discrete closed form applies; the flow "
                    "equals the first-order drift there and saturates at |e~_1(0)|/sqrt3 for q > 1/3",
        },
        "closed_form_vs_iteration": {
            "points": int(appl.sum()),
            "reasons": {Reason(int(r)).name: int((c["reason"] == r).sum()) for r in np.unique(c["reason"])},
            "t1_equal": int((c["t1"] == c["t1_closed"])[appl].sum()),
            "t2_equal": int((c["t2"] == c["t2_closed"])[appl].sum()),
            "max_abs_e_freq_t2_diff": fmax(d_e[appl]),
            "max_rel_e_freq_t2_diff": fmax((d_e / np.abs(c["e_freq_t2_closed"]).max(-1))[appl]),
        },
        "settling": {
            "points_settled": int(settled.sum()),
            "e1_window_range_over_lr_max": fmax(c["e1_window_range"] / c["lr"]),
            "phase3_dev_over_lr_max_applicable": fmax(ph3[appl]),
            "phase3_dev_over_lr_max_q_gt_1_3": fmax(ph3[~inside]),
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
                    "flow_drift_only = radius^2/2 (flow e~_2^2 - e~_2(0)^2)",
        },
        "reference_point": {
            "q": PAPER["q"], "lr": PAPER["lr"], "w0_scale": float(diagram.scales[0]),
            "t1": int(ref["t1"]), "t2": int(ref["t2"]), "t1_closed": int(ref["t1_closed"]),
            "t2_closed": int(ref["t2_closed"]), "e2_t2": _num(ref["e_freq_t2"][2]),
            "e2_final": _num(ref["e2_final"]), "flow_e2": _num(ref["flow_e_freq"][2]),
            "flow_err_over_lr": _num(ref["flow_err_over_lr"]), "flow_tau_converged": _num(ref["flow_tau_converged"]),
            "signgd_adversarial_risk": _num(ref["signgd_adversarial_risk"]),
            "gd_adversarial_risk_equal_risk": _num(ref["gd_adversarial_risk_equal_risk"]),
            "gd_adversarial_risk_limit": _num(ref["gd_adversarial_risk_limit"]),
        },
        "slice_paper_lr": paper_lr_slice(c, diagram),
    }


def paper_lr_slice(c: dict, diagram: Diagram) -> dict:
    """Final ``e~_2`` and the flow against ``q`` at the grid ``lr`` nearest the paper's (first w0 scale)."""
    j = int(np.argmin(np.abs(np.log(diagram.lr / PAPER["lr"]))))
    return {"lr": float(diagram.lr[j]), "q": diagram.q.tolist(), "e2_final": [_num(v) for v in c["e2_final"][0, :, j]],
            "e2_flow": [_num(v) for v in c["flow_e_freq"][0, :, j, 2]]}


# --- the printed table --------------------------------------------------------------------------


def headline(s: dict, config: Config) -> str:
    """The first printed line: the size of the diagram."""
    g = s["diagram"]
    return (f"phase diagram: {config.shape[0]} x {config.shape[1]} points x {len(g['w0_scales'])} w0 scale(s), q in "
            f"[{g['q'][0]:g}, {g['q'][-1]:g}], lr in [{g['lr'][0]:g}, {g['lr'][-1]:g}], sigma_0 = {config.sigma0:g}, "
            f"population signGD in float64, up to {g['max_steps']} steps")


def table_rows(s: dict) -> list[tuple[str, ...]]:
    """The flow's accuracy per region, for :func:`sims.common.cli.print_rows`."""
    f = s["flow"]
    rows = [("region", "points", f"rel err < {f['tol']:g}", "max |final - flow|/lr", "median", "worst at (q, lr)",
             "final e~_2")]
    for name, key in (("all", "all"), ("q <= 1/3", "q_le_1_3"), ("q > 1/3", "q_gt_1_3")):
        r = f[key]
        if not r["points"]:
            continue
        err, w, e2, frac = r["err_over_lr"], r.get("worst_point"), r["e2_final"], r["frac_rel_err_below_tol"]
        rows.append((name, str(r["points"]), "-" if frac is None else f"{frac:.1%}",
                     "-" if err is None else f"{err['max']:.3g}", "-" if err is None else f"{err['median']:.3g}",
                     "no flow" if w is None else f"({w['q']:.3g}, {w['lr']:.3g})",
                     f"[{e2['min']:.4g}, {e2['max']:.4g}]"))
    return rows


def _text(x: Optional[float], fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def table_notes(s: dict) -> list[str]:
    """The lines printed under the table."""
    f, c, st, a, r = (s[k] for k in ("flow", "closed_form_vs_iteration", "settling", "adversarial_gap",
                                     "reference_point"))
    slope = f["lr_dependence"]["median_abs_err_slope_in_lr"]
    lines = [f"sign flow: {f['reasons']}, at most {f['max_segments']} segments, matches sign_flow_final_d3 to "
             f"{_text(f['max_abs_diff_closed_form_d3'], '.2g')}; |final - flow| ~ lr^{_text(slope, '.2f')}; "
             f"derived bound for q <= 1/3: {f['drift_lr_bound']:.3g} lr"]
    if c["points"]:
        lines.append(f"closed form vs iteration ({c['points']} applicable points): t1 equal {c['t1_equal']}, t2 equal "
                     f"{c['t2_equal']}, max relative |e~(t2) diff| {c['max_rel_e_freq_t2_diff']:.3g}")
    lines.append(f"settled: {st['points_settled']}/{s['diagram']['points']} points")
    eq = a["equal_standard_risk"]
    lines.append(f"R_a(signGD) - R_a(GD at equal R_s), radius = {a['radius']:.4g}: min {eq['min']:.4g}, median "
                 f"{eq['median']:.4g}, max {eq['max']:.4g}")
    lines.append(f"paper point q = {r['q']:g}, lr = {r['lr']:g}: t1 {r['t1']} (closed {r['t1_closed']}), t2 {r['t2']} "
                 f"(closed {r['t2_closed']}), final e~_2 {r['e2_final']:.4g} vs flow {_text(r['flow_e2'], '.6g')} "
                 f"({_text(r['flow_err_over_lr'], '.3g')} lr); R_a {r['signgd_adversarial_risk']:.4g} vs GD "
                 f"{r['gd_adversarial_risk_equal_risk']:.4g} (equal R_s)")
    return lines


def readme_block(s: dict) -> str:
    """The README's phase-diagram findings, rendered from ``phase_summary.json``."""
    g, f, ref = s["diagram"], s["flow"], s["reference_point"]
    le, gt = f["q_le_1_3"], f["q_gt_1_3"]
    gap = s["adversarial_gap"]["equal_standard_risk"]
    lines = [
        f"`python sims/phase_diagram.py`: {g['points']} points, up to {g['max_steps']} steps each; the sign flow "
        f"(THEORY.md 8.1) converged in {f['reasons'].get('CONVERGED', 0)} of them (at most {f['max_segments']} "
        f"segments) and equals the d = 3 closed form to {f['max_abs_diff_closed_form_d3']:.1e}.",
        "",
        "| region | points | max \\|final e~_2 - flow\\| / lr | median | within 4.08 lr | relative error < 10% |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (("q <= 1/3", le), ("q > 1/3", gt), ("all", f["all"])):
        lines.append(f"| {label} | {r['points']} | {r['err_over_lr']['max']:.2f} | {r['err_over_lr']['median']:.2f} "
                     f"| {r['frac_within_drift_lr_bound']:.0%} | {r['frac_rel_err_below_tol']:.0%} |")
    lines += [
        "",
        f"- The error scales as lr^{f['lr_dependence']['median_abs_err_slope_in_lr']:.2f} (median point): `O(lr)`.",
        f"- Beyond q = 1/3 the drift saturates: the final e~_2 stays in [{gt['e2_final']['min']:.3f}, "
        f"{gt['e2_final']['max']:.3f}] against the flow's {np.ravel(f['saturated_e2_final'])[0]:.4f}."
        if "saturated_e2_final" in f else
        f"- Beyond q = 1/3 the final e~_2 stays in [{gt['e2_final']['min']:.3f}, {gt['e2_final']['max']:.3f}].",
        f"- The paper's point (q = {ref['q']:g}, lr = {ref['lr']:g}): signGD ends at e~_2 = {ref['e2_final']:.4f}, "
        f"the flow at {ref['flow_e2']:.4f} ({ref['flow_err_over_lr']:.2f} lr); R_a {ref['signgd_adversarial_risk']:.1f} "
        f"against {ref['gd_adversarial_risk_equal_risk']:.1f} for GD at equal R_s.",
        f"- At equal R_s, signGD's R_a exceeds GD's by a median {gap['median']:.2f} over the grid "
        f"(up to {gap['max']:.1f}).",
    ]
    return "\n".join(lines)
