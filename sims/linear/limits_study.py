"""Discrete optimizers against their small-learning-rate limits (THEORY.md section 8).

For each optimizer, gradient source and problem, the discrete iteration is run
with the engine (float64) at several learning rates to the same time
``tau = lr t``, and its final error is compared with the limit at that time:

| optimizer | population | online (batch ``n``) | compared |
|---|---|---|---|
| signgd | sign flow (8.1) | averaged ODE, exact ``E[sign g_B]`` (8.3) | ``e~_I`` |
| adam | fixed-``c`` ODE (8.2) | the ODE with ``g^2 + Var`` (8.3) | ``e~_I`` |
| rmsprop | fixed-``c`` ODE from the start shift (8.2) | likewise (8.3) | ``e~_I`` |
| rmsprop_no_shift | the plain ODE, no start shift | likewise | ``e~_I`` |
| gd | gradient flow ``exp(-tau H~) e~(0)`` | - | full ``e~`` |

``e~_I`` is the irrelevant band (``spectrum_k = 0``), which has settled by
``tau`` (checked: the limit's ``e~_I`` at ``tau/2`` and ``tau`` are compared);
GD never moves it, so GD, the reference, is compared on the whole ``e~``,
where its discrete closed form ``(1 - lr sigma^2)^t = exp(-tau sigma^2 (1 +
lr sigma^2/2 + ...))`` gives an exact ``O(lr)`` gap. GD is run with the
population gradient only: online, its seed mean follows the same closed form and the
``O(lr)`` gap sits far below the seed noise.

Adam and RMSProp hold ``c1 = (1 - b1)/lr`` and ``c2 = (1 - b2)/lr`` fixed at
the paper's values (PyTorch's defaults at ``lr = 1e-2``), so the b's change
with ``lr`` and the limit is the same ODE at every ``lr``; only RMSProp's
start shift ``-sign(g(0)) zeta(1/2) sqrt(lr/c2)`` depends on ``lr``.

Expected (section 8): ``|discrete - limit| = O(lr)`` for signGD, Adam and
RMSProp with the shift, ``O(sqrt(lr))`` without it. Online, the seed mean is
compared (with its standard error) and the seed spread shrinks like
``sqrt(lr)``; where the gap is below about two standard errors, the mean's
noise, not the bias, is measured.

Cost: one compiled solve per problem dimension for each limit, vmapped over
the gradient sources (a zero ``Var`` Hessian is the population) and over
RMSProp's shifts; one engine compilation per (problem, gradient, lr).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.common.optimizers import DEFAULT_HYPERPARAMS, make_optimizer
from sims.linear.oracles import make_oracle
from sims.linear.predictions import predict
from theory.adaptive_ode import adam_ode, rmsprop_ode
from theory.quadratic import population_quadratic
from theory.signal import Problem, make_problem, paper_problem
from theory.spectra import draw_w_star_freq, powerlaw_spectrum

PROBLEMS = ("paper", "powerlaw")
#: The gradient sources compared (``sims.linear.oracles.GRADIENTS`` but ``fixed``).
GRADIENTS = ("population", "online")
OPTIMIZERS = ("gd", "signgd", "adam", "rmsprop")
#: The compared series: each optimizer against its limit; RMSProp twice.
SERIES = ("gd", "signgd", "adam", "rmsprop", "rmsprop_no_shift")
LABELS = {"gd": "GD (gradient flow, full e~)", "signgd": "signGD", "adam": "Adam",
          "rmsprop": "RMSProp, start shift", "rmsprop_no_shift": "RMSProp, no shift"}
SHORT = {"gd": "GD", "signgd": "signGD", "adam": "Adam", "rmsprop": "RMSProp (shift)",
         "rmsprop_no_shift": "RMSProp (no shift)"}
COLORS = {"gd": "tab:blue", "signgd": "tab:red", "adam": "tab:green", "rmsprop": "tab:purple",
          "rmsprop_no_shift": "tab:orange"}
#: Section 8's rates: the exponent of ``lr`` in ``|discrete - limit|``.
EXPECTED_SLOPE = {"gd": 1.0, "signgd": 1.0, "adam": 1.0, "rmsprop": 1.0, "rmsprop_no_shift": 0.5}
#: The paper's ODE constants (PyTorch's defaults at lr = 1e-2), held fixed.
C1_ADAM, C2_ADAM, C2_RMSPROP = 10.0, 0.1, 1.0
#: The power-law problem: d = 8, sigma_k = (k + 1)^-1 for k < 4 (lr sigma_0^2 = lr),
#: target N(0, 5^2) on the relevant band from key 0, start at 0.
POWERLAW = {"d": 8, "alpha": 1.0, "cutoff": 4, "scale": 1.0, "target_scale": 5.0, "target_key": 0}
#: Confidence level of the slope intervals.
LEVEL = 0.95
#: Settings fixed by the study (not flags), written beside the :class:`Config` in the JSON's ``config``.
FIXED = {"c1_adam": C1_ADAM, "c2_adam": C2_ADAM, "c2_rmsprop": C2_RMSPROP, "powerlaw": POWERLAW, "dtype": "float64"}


@dataclasses.dataclass(frozen=True)
class Config:
    """What to run: the script's flags fill it (same names) and its JSON's ``config`` is dumped from it.

    Attributes:
      lrs: learning rates, decreasing.
      tau: the horizon ``lr t``, one per problem (the irrelevant error must
        have settled by ``tau / 2``: the paper's Adam ODE settles near 50, the
        power law's limits by 25).
      seeds: online seeds (population runs are deterministic: one seed).
      seed: base seed.
      batch_size: online batch ``n``.
      problems: from :data:`PROBLEMS`.
      gradients: from :data:`GRADIENTS`.
      optimizers: from :data:`OPTIMIZERS` (``rmsprop`` gives both RMSProp series).
    """

    lrs: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4)
    tau: tuple[float, ...] = (100.0, 50.0)
    seeds: int = 16
    seed: int = 0
    batch_size: int = 5000
    problems: tuple[str, ...] = PROBLEMS
    gradients: tuple[str, ...] = GRADIENTS
    optimizers: tuple[str, ...] = OPTIMIZERS


class PowerFit(NamedTuple):
    """``y = a x^slope`` fitted by least squares in ``log y`` against ``log x``.

    Attributes:
      slope: the fitted exponent.
      intercept: ``log a``.
      lo, hi: the ``LEVEL`` interval ``slope -+ t_{k-2} se`` (``nan`` for
        fewer than 3 points).
      stderr: the slope's standard error from the residuals.
      points: the number of points used (``y > 0``, finite).
    """

    slope: float
    intercept: float
    lo: float
    hi: float
    stderr: float
    points: int


def fit_power_law(x, y, level: float = LEVEL) -> PowerFit:
    """Least-squares slope of ``log y`` on ``log x``, with a t interval.

    With ``k`` points, ``s^2 = sum r^2 / (k - 2)`` from the residuals ``r``
    and ``se = s / sqrt(sum (log x - mean)^2)``; the interval is
    ``slope -+ t_{(1 + level)/2, k - 2} se`` (exact for independent Gaussian
    errors in ``log y``). Points with ``y <= 0`` or non-finite are dropped.

    Args:
      x, y: ``(k,)`` positive abscissae and the values.
      level: confidence level of the interval.

    Returns:
      A :class:`PowerFit` (all ``nan`` for fewer than 2 usable points).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    k = int(ok.sum())
    if k < 2:
        return PowerFit(math.nan, math.nan, math.nan, math.nan, math.nan, k)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    xc = lx - lx.mean()
    slope = float(xc @ (ly - ly.mean()) / (xc @ xc))
    intercept = float(ly.mean() - slope * lx.mean())
    if k < 3:
        return PowerFit(slope, intercept, math.nan, math.nan, math.nan, k)
    resid = ly - (intercept + slope * lx)
    se = float(math.sqrt(resid @ resid / (k - 2) / (xc @ xc)))
    half = float(scipy.stats.t.ppf((1 + level) / 2, k - 2)) * se
    return PowerFit(slope, intercept, slope - half, slope + half, se, k)


def problem_model(name: str) -> Problem:
    """The paper's setting (THEORY.md section 1) or the :data:`POWERLAW` problem, in float64."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}")
    p = POWERLAW
    with jax.enable_x64(True):  # the paper's 0.1 and 0.05 as float64, whatever the caller's default
        if name == "paper":
            return make_problem(*(np.asarray(v, np.float64) for v in paper_problem()))
        s = powerlaw_spectrum(p["d"], p["alpha"], p["cutoff"], p["scale"], jnp.float64)
        w_star = draw_w_star_freq(jax.random.key(p["target_key"]), s, p["target_scale"])
        return make_problem(*(np.asarray(v, np.float64) for v in (s, w_star, np.zeros(p["d"]))))


def fixed_c_hparams(lr: float) -> dict:
    """Adam's and RMSProp's b's at ``lr`` with ``c1``, ``c2`` held at the paper's values."""
    return {"gd": {}, "signgd": {},
            "adam": {"b1": 1.0 - C1_ADAM * lr, "b2": 1.0 - C2_ADAM * lr, "eps": DEFAULT_HYPERPARAMS["adam"]["eps"]},
            "rmsprop": {"decay": 1.0 - C2_RMSPROP * lr, "eps": DEFAULT_HYPERPARAMS["rmsprop"]["eps"]}}


def horizon_steps(lr: float, tau: float) -> int:
    """``t = round(tau / lr)``, at least 2 (the record steps also hold ``t // 2``)."""
    return max(2, int(round(tau / lr)))


def discrete_errors(problem: Problem, gradient: str, lr: float, tau: float, names: Sequence[str],
                    seeds: int, seed: int, batch_size: int) -> dict[str, np.ndarray]:
    """``e~`` of each optimizer at steps ``t // 2`` and ``t = round(tau / lr)``.

    Returns:
      name -> ``(seeds, 2, d)`` float64 (run in float64: at ``lr = 1e-3``
      float32 rounding already moves signGD's ``e~_2`` by ``3e-4``, more than
      the ``O(lr)`` gap measured).
    """
    t = horizon_steps(lr, tau)
    hp = fixed_c_hparams(lr)
    opts = {n: make_optimizer(n, lr, **hp[n]) for n in names}
    oracle = make_oracle(gradient, jnp.asarray(problem.spectrum), batch_size if gradient == "online" else 0)
    m = make_problem(*(jnp.asarray(v, jnp.float64) for v in problem))
    traj = simulate(make_simulation(opts, oracle), m, seed_keys(seeds, seed), np.array([0, t // 2, t]), chunks=1)
    e = np.asarray(traj.w_freq, np.float64)[:, :, 1:] - np.asarray(problem.w_star_freq, np.float64)
    return {n: e[:, i] for i, n in enumerate(traj.names)}


# --- limits ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _adam_solver(batch_size: int):
    """Adam's ODE, vmapped over the ``Var`` Hessian (zeros: population; ``H~``: online)."""

    def solve(quad, var_h, c1, c2, eps, tau):
        return adam_ode(quad, c1, c2, eps, batch_size=batch_size, population_hessian_freq=var_h,
                        saveat_tau=tau, tau_max=tau[-1]).e_freq

    return jax.jit(jax.vmap(solve, in_axes=(None, 0, None, None, None, None)))


@functools.lru_cache(maxsize=None)
def _rmsprop_solver(batch_size: int):
    """RMSProp's ODE, vmapped over the ``Var`` Hessian and over the start shift's ``lr``
    (``shift_lr = 0`` is the plain ODE: the shift is ``zeta(1/2) sqrt(shift_lr / c2)``)."""

    def solve(quad, var_h, c2, eps, shift_lr, tau):
        return rmsprop_ode(quad, c2, eps, shift_lr=shift_lr, batch_size=batch_size,
                           population_hessian_freq=var_h, saveat_tau=tau, tau_max=tau[-1]).e_freq

    over_shift = jax.vmap(solve, in_axes=(None, None, None, None, 0, None))
    return jax.jit(jax.vmap(over_shift, in_axes=(None, 0, None, None, None, None)))


def gradient_flow_error(problem: Problem, tau) -> np.ndarray:
    """GD's limit ``e~_k(tau) = exp(-sigma_k^2 tau) e~_k(0)`` (section 3 as ``lr -> 0``).

    Returns:
      ``tau.shape + (d,)`` float64.
    """
    s2 = np.square(np.asarray(problem.spectrum, np.float64))
    tau = np.asarray(tau, np.float64)[..., None]
    return np.exp(-s2 * tau) * (np.asarray(problem.w0_freq, np.float64) - np.asarray(problem.w_star_freq, np.float64))


def limit_errors(problem: Problem, gradients: Sequence[str], lrs: Sequence[float], tau: float,
                 names: Sequence[str], batch_size: int) -> dict[tuple[str, str], np.ndarray]:
    """Each series' limit at ``tau/2`` and ``tau``.

    Returns:
      ``(gradient, series) -> (len(lrs), 2, d)`` float64; only RMSProp's (the
      start shift) differs between learning rates.
    """
    times = np.array([tau / 2, tau])
    n_lr = len(lrs)
    out = {}
    hp = DEFAULT_HYPERPARAMS
    if "gd" in names and "population" in gradients:
        # GD's limit moves until the end: evaluated at each run's own t lr (t = round(tau / lr)).
        t = np.array([[horizon_steps(lr, tau) // 2, horizon_steps(lr, tau)] for lr in lrs])
        out[("population", "gd")] = gradient_flow_error(problem, t * np.asarray(lrs)[:, None])
    if "signgd" in names:
        # The limit does not depend on lr: one solve per gradient source, on the record steps of lrs[0].
        steps = np.round(times / lrs[0]).astype(np.int64)
        for gradient in gradients:
            p = predict("signgd", gradient, problem, lrs[0], np.concatenate([[0], steps]), batch_size=batch_size)
            e = p.e_freq[1:] if p.applicable else np.full((2, problem.dim), np.nan)
            out[(gradient, "signgd")] = np.broadcast_to(e, (n_lr, 2, problem.dim))
    if not {"adam", "rmsprop"} & set(names):
        return out
    with jax.enable_x64(True):
        quad = population_quadratic(make_problem(*(jnp.asarray(v, jnp.float64) for v in problem)))
        var_h = jnp.stack([jnp.zeros_like(quad.hessian_freq) if g == "population" else quad.hessian_freq
                           for g in gradients])
        tau_j = jnp.asarray(times)
        if "adam" in names:
            e = np.asarray(_adam_solver(batch_size)(quad, var_h, C1_ADAM, C2_ADAM, hp["adam"]["eps"], tau_j))
            for i, gradient in enumerate(gradients):
                out[(gradient, "adam")] = np.broadcast_to(e[i], (n_lr, 2, problem.dim))
        if "rmsprop" in names:
            shifts = jnp.asarray([0.0, *lrs])
            e = np.asarray(_rmsprop_solver(batch_size)(quad, var_h, C2_RMSPROP, hp["rmsprop"]["eps"], shifts, tau_j))
            for i, gradient in enumerate(gradients):
                out[(gradient, "rmsprop_no_shift")] = np.broadcast_to(e[i, 0], (n_lr, 2, problem.dim))
                out[(gradient, "rmsprop")] = e[i, 1:]
    return out


# --- statistics -----------------------------------------------------------------------------------


class Gap(NamedTuple):
    """``|discrete - limit|`` over seeds at one lr.

    Attributes:
      value: ``||mean_s D_s||_2``, ``D_s`` seed ``s``'s compared error minus the limit's.
      stderr: its standard error, ``sqrt(u^T Sigma u / S)`` with ``u = mean / ||mean||``
        and ``Sigma`` the seeds' covariance (delta method; 0 for one seed).
      spread: the seeds' RMS distance from their mean, ``sqrt(trace Sigma)``
        (the standard deviation for one compared coordinate; ``nan`` for one seed).
    """

    value: float
    stderr: float
    spread: float


def gap(discrete: np.ndarray, limit: np.ndarray) -> Gap:
    """:class:`Gap` of ``discrete`` ``(seeds, m)`` against ``limit`` ``(m,)``."""
    diff = np.asarray(discrete, np.float64) - np.asarray(limit, np.float64)
    mean = diff.mean(0)
    value = float(np.linalg.norm(mean))
    s = diff.shape[0]
    if s < 2:
        return Gap(value, 0.0, math.nan)
    cov = np.atleast_2d(np.cov(diff, rowvar=False))
    u = mean / value if value > 0 else np.ones_like(mean) / math.sqrt(mean.size)
    return Gap(value, float(math.sqrt(max(u @ cov @ u, 0.0) / s)), float(math.sqrt(np.trace(cov))))


def fit_dict(f: PowerFit) -> dict:
    return {"slope": f.slope, "interval": [f.lo, f.hi], "stderr": f.stderr, "points": f.points,
            "level": LEVEL}


# --- the study ------------------------------------------------------------------------------------


def series_of(optimizers: Sequence[str]) -> tuple[str, ...]:
    """The compared series of the chosen optimizers, in :data:`SERIES` order."""
    chosen = set(optimizers) | ({"rmsprop_no_shift"} if "rmsprop" in optimizers else set())
    return tuple(s for s in SERIES if s in chosen)


def run_study(config: Config, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Runs every (problem, gradient, lr) and compares with the limits.

    Args:
      config: a :class:`Config`.
      progress: called with a one-line description before each stage.

    Returns:
      ``{problem: {"model", "tau", "settled", "timing", gradient: {series: {...}}}}``;
      ``settled`` holds ``||e~_I(tau) - e~_I(tau / 2)||`` of each limit (the
      largest over lrs) and of each discrete seed mean (per lr),
      with, per series: ``lrs``, ``difference``, ``stderr``, ``spread``,
      ``limit_e_freq``, ``compared`` (``irrelevant`` or ``full``), ``fit``,
      ``spread_fit`` (online), ``expected_slope`` and ``noise_limited``.
    """
    say = progress or (lambda msg: None)
    lrs = tuple(config.lrs)
    series = series_of(config.optimizers)
    out = {}
    with jax.enable_x64(True):
        for name, tau in zip(config.problems, config.tau):
            problem = problem_model(name)
            irr = np.asarray(problem.spectrum) == 0
            say(f"{name}: solving the limits (float64)")
            clock = time.perf_counter()
            limits = limit_errors(problem, config.gradients, lrs, tau, config.optimizers, config.batch_size)
            timing = {"limits_s": time.perf_counter() - clock}
            res = {"model": {"spectrum": problem.spectrum.tolist(), "w_star_freq": problem.w_star_freq.tolist(),
                             "w0_freq": problem.w0_freq.tolist()}, "tau": tau}
            settled, settled_discrete = {}, {}
            for gradient in config.gradients:
                names = [n for n in OPTIMIZERS if n in config.optimizers and (n != "gd" or gradient == "population")]
                seeds = 1 if gradient == "population" else config.seeds
                runs = []
                clock = time.perf_counter()
                for lr in lrs:
                    say(f"{name}, {gradient}: {seeds} seed(s) x {horizon_steps(lr, tau)} steps at lr {lr:g}")
                    runs.append(discrete_errors(problem, gradient, lr, tau, names, seeds, config.seed,
                                                config.batch_size))
                timing[f"{gradient}_s"] = time.perf_counter() - clock
                per = {}
                for s in series:
                    if (gradient, s) not in limits:
                        continue
                    opt = "rmsprop" if s == "rmsprop_no_shift" else s
                    mask = np.ones_like(irr) if s == "gd" else irr
                    gaps = [gap(runs[j][opt][:, -1][:, mask], limits[(gradient, s)][j, -1][mask])
                            for j in range(len(lrs))]
                    g = Gap(*map(np.array, zip(*gaps)))
                    if s != "gd":  # GD's compared e~ is its relevant error, which moves until the end
                        lim = limits[(gradient, s)][:, :, irr]
                        settled[f"{gradient}.{s}"] = float(np.max(np.linalg.norm(lim[:, 1] - lim[:, 0], axis=-1)))
                        disc = np.stack([runs[j][opt].mean(0)[:, irr] for j in range(len(lrs))])
                        settled_discrete[f"{gradient}.{s}"] = np.linalg.norm(disc[:, 1] - disc[:, 0], axis=-1).tolist()
                    entry = {
                        "lrs": list(lrs), "steps": [horizon_steps(lr, tau) for lr in lrs],
                        "compared": "full" if s == "gd" else "irrelevant",
                        "difference": g.value.tolist(), "stderr": g.stderr.tolist(),
                        "limit_e_freq": limits[(gradient, s)][:, -1].tolist(),
                        "discrete_mean_e_freq": [runs[j][opt][:, -1].mean(0).tolist() for j in range(len(lrs))],
                        "fit": fit_dict(fit_power_law(lrs, g.value)),
                        "expected_slope": EXPECTED_SLOPE[s],
                    }
                    if gradient == "online":
                        entry["spread"] = g.spread.tolist()
                        entry["spread_fit"] = fit_dict(fit_power_law(lrs, g.spread))
                        entry["noise_limited"] = (g.value < 2 * g.stderr).tolist()
                    per[s] = entry
                res[gradient] = per
            res["settled"] = {"limit": settled, "discrete": settled_discrete}
            res["timing"] = timing
            out[name] = res
    return out


def table_rows(results: Mapping) -> list[tuple[str, ...]]:
    """Header and one row per (problem, gradient, series): the fitted slopes."""
    rows = [("problem", "gradient", "optimizer", "compared", "slope", f"{LEVEL:.0%} interval", "expected",
             "spread slope", "gap at largest / smallest lr")]
    for problem, res in results.items():
        for gradient in GRADIENTS:
            for s, e in res.get(gradient, {}).items():
                f = e["fit"]
                iv = "-" if not np.isfinite(f["interval"][0]) else f"[{f['interval'][0]:.2f}, {f['interval'][1]:.2f}]"
                sp = e.get("spread_fit")
                rows.append((problem, gradient, SHORT[s], "e~" if e["compared"] == "full" else "e~_I",
                             _num(f["slope"]), iv, f"{e['expected_slope']:g}",
                             "-" if sp is None else _num(sp["slope"]),
                             f"{e['difference'][0]:.3g} / {e['difference'][-1]:.3g}"))
    return rows


# --- figure ---------------------------------------------------------------------------------------


def _reference_slopes(ax, lrs: np.ndarray, anchor: float) -> None:
    """Dotted ``O(lr)`` and dashed ``O(sqrt(lr))`` lines through ``anchor`` at the largest lr."""
    x = np.array([lrs.min(), lrs.max()])
    ax.plot(x, anchor * x / x[1], ":", color="0.4", lw=1.5, label="O(lr)")
    ax.plot(x, anchor * np.sqrt(x / x[1]), "--", color="0.6", lw=1.5, label="O(sqrt lr)")


def plot_study(path: str, results: Mapping, config: Config) -> None:
    """One figure: rows are problems; columns population gap, online gap (seed mean
    with standard-error bars) and online seed spread, all against lr on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sims.common.plotting import save_figure

    panels = [(gradient, what) for gradient, what in (("population", "difference"), ("online", "difference"),
                                                      ("online", "spread")) if gradient in config.gradients]
    problems = list(results)
    fig, axes = plt.subplots(len(problems), len(panels), figsize=(4.6 * len(panels), 3.9 * len(problems)),
                             squeeze=False, constrained_layout=True)
    for r, problem in enumerate(problems):
        res = results[problem]
        d = len(res["model"]["spectrum"])
        for c, (gradient, what) in enumerate(panels):
            ax = axes[r, c]
            top = []
            for s, e in res.get(gradient, {}).items():
                lrs, y = np.asarray(e["lrs"]), np.asarray(e[what], np.float64)
                f = e["fit"] if what == "difference" else e["spread_fit"]
                label = f"{SHORT[s]}: {f['slope']:.2f}"
                yerr = np.asarray(e["stderr"]) if (what == "difference" and gradient == "online") else None
                ax.errorbar(lrs, y, yerr=yerr, fmt="o-", color=COLORS[s], ms=4, lw=1.3, capsize=3, label=label)
                top.append(y[np.argmax(lrs)])
            if top:
                _reference_slopes(ax, np.asarray(config.lrs), float(np.nanmax(top)))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            ax.set_xlabel("learning rate")
            name = "paper, d = 3" if problem == "paper" else f"power law, d = {d}"
            title = {("population", "difference"): "population: |discrete - limit|",
                     ("online", "difference"): f"online n={config.batch_size}: |seed mean - limit|",
                     ("online", "spread"): "online: seed spread"}[(gradient, what)]
            ax.set_title(f"{name}, tau = {res['tau']:g}\n{title}", fontsize=11)
            if c == 0:
                ax.set_ylabel("error in e~_I (GD: in e~)")
            ax.legend(fontsize=8, loc="lower right", title="fitted slope", title_fontsize=8)
    fig.suptitle(f"Discrete optimizers against their small-lr limits at tau = lr t "
                 f"(Adam c1 = {C1_ADAM:g}, c2 = {C2_ADAM:g}; RMSProp c2 = {C2_RMSPROP:g}; "
                 f"online: {config.seeds} seeds, bars = standard error)", fontsize=11)
    save_figure(fig, path)


# --- README ---------------------------------------------------------------------------------------


def _num(x) -> str:
    """A slope to 2 decimals; ``-`` for ``None`` (JSON null) or ``nan``."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def readme_block(summary: dict) -> str:
    """The README's table of fitted slopes, rendered from ``small_lr_limit.json``.

    Args:
      summary: the study's JSON (``config`` and ``results``).

    Returns:
      Markdown: the command, then one row per (problem, gradient, optimizer).
    """
    cfg = summary["config"]
    lrs = ", ".join(f"{lr:g}" for lr in cfg["lrs"])
    taus = ", ".join(f"{t:g} ({p})" for p, t in zip(cfg["problems"], cfg["tau"]))
    lines = [f"`python sims/small_lr_limit.py`: lr = {lrs} to tau = lr t = {taus}; online batches of "
             f"{cfg['batch_size']}, {cfg['seeds']} seeds (seed mean); Adam c1 = {C1_ADAM:g}, c2 = {C2_ADAM:g}, "
             f"RMSProp c2 = {C2_RMSPROP:g} held fixed. Slope of log |discrete - limit| against log lr, "
             f"with its {LEVEL:.0%} interval from the residuals (`sims/linear/limits_study.py`).", "",
             "| problem | gradient | optimizer | compared | slope | interval | expected | seed spread slope |",
             "|---|---|---|---|---|---|---|---|"]
    for problem, res in summary["results"].items():
        for gradient in GRADIENTS:
            for s, e in sorted(res.get(gradient, {}).items(), key=lambda kv: SERIES.index(kv[0])):  # JSON sorts keys
                f, sp = e["fit"], e.get("spread_fit")
                lo, hi = f["interval"]
                iv = "-" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"
                lines.append(f"| {problem} | {gradient} | {SHORT[s]} | {'e~' if e['compared'] == 'full' else 'e~_I'} "
                             f"| {_num(f['slope'])} | {iv} | {e['expected_slope']:g} | "
                             f"{'-' if sp is None else _num(sp['slope'])} |")
    return "\n".join(lines)
