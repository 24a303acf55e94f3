"""The main job (the paper's Figure 5): the optimizers simulated beside their predictions.

GD, signGD, Adam and RMSProp run on one signal problem over many seeds
(:func:`sims.linear.seed_stats.simulate_stats`); meanwhile each optimizer's
prediction for the run's gradient (:func:`sims.linear.predictions.predict`)
is solved in float64 in a thread of its own. The final weights then meet
fresh test samples under the worst-case and the PGD l2 attacks
(:func:`sims.linear.seed_stats.attack_check`). :func:`run_study` returns the
summary's numbers; :func:`table_rows`, :func:`table_notes`,
:func:`plot_study` and :func:`readme_block` present them.

Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), section 4 and Figure 5.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import cli
from sims.common.optimizers import OPTIMIZERS, hyperparams, make_optimizer
from sims.common.plotting import LABELS, Band, plot_error_dynamics, plot_risks
from sims.linear.engine import make_simulation, seed_keys
from sims.linear.metrics import format_mean_std, mean_std, risk_curves
from sims.linear.oracles import make_oracle
from sims.linear.predictions import Prediction, fixed_set_hessians, predict
from sims.linear.recording import log_steps
from sims.linear.seed_stats import CURVES, ERRORS, MEMORY_BUDGET, Moments, SeedStats, attack_check, simulate_stats
from sims.common.streams import TEST_STREAM
from theory.gd import gd_is_stable, gd_max_stable_lr
from theory.signal import PAPER_SPECTRUM, PAPER_W0_FREQ, PAPER_W_STAR_FREQ, PaperTraining, Problem, make_problem
from theory.signgd import REASON_TEXT, Reason, signgd_phases, signgd_settled

#: PGD for the empirical R_a: steps of radius/2 shrink the part of delta orthogonal to w by about
#: 2/3 a step (Madry's 2.5 radius/steps would leave ~e^-2.5 of it, a ~0.5% loss deficit, whatever
#: the step count); the best of 4 random starts avoids the local maximum at -sign(r) w.
PGD = {"restarts": 4, "random_start": True}
ATTACKS = ("worst_l2", "pgd_l2")
#: Every step up to ~2 t2 (signGD's closed form) is recorded, for the phase times; at most this many.
DENSE_STEPS_MAX = 20_000
#: Dense steps recorded when the signGD closed form does not apply.
DENSE_STEPS_DEFAULT = 2000


_TRAINING = PaperTraining()


@dataclasses.dataclass(frozen=True)
class Config:
    """The main job's settings; the defaults are the paper's (``theory.signal``).

    Attributes:
      steps, lr: iterations and the learning rate shared by all optimizers.
      seeds, seed: number of seeds; seed ``i`` uses ``fold_in(key(seed), i)``.
      gradient: ``population``, ``online`` or ``fixed`` (:data:`sims.linear.oracles.GRADIENTS`).
      batch_size: samples per batch (online) or in the training set (fixed); ``None`` for population.
      sampler: how batches are drawn (:data:`sims.linear.sampling.SAMPLERS`); ``None`` for population.
      label_noise: standard deviation of Gaussian label noise.
      optimizers: names from :data:`sims.common.optimizers.OPTIMIZERS`.
      hparams: every optimizer's hyper-parameters, defaults included.
      spectrum, w_star_freq, w0_freq: the :class:`theory.signal.Problem`.
      radius: the adversary's l2 budget.
      record_points: log-spaced record steps (every step up to ~2 t2 is recorded too).
      test_samples: fresh test samples of the empirical adversarial risk.
      pgd_steps: steps of the PGD attack.
      x64: simulate in float64 (the predictions are float64 always).
    """

    steps: int = _TRAINING.steps
    lr: float = _TRAINING.lr
    seeds: int = 8
    seed: int = 0
    gradient: str = "online"
    batch_size: Optional[int] = _TRAINING.batch_size
    sampler: Optional[str] = "wishart"
    label_noise: float = 0.0
    optimizers: tuple[str, ...] = OPTIMIZERS
    hparams: Mapping[str, Mapping[str, float]] = dataclasses.field(
        default_factory=lambda: {n: hyperparams(n) for n in OPTIMIZERS})
    spectrum: tuple[float, ...] = PAPER_SPECTRUM
    w_star_freq: tuple[float, ...] = PAPER_W_STAR_FREQ
    w0_freq: tuple[float, ...] = PAPER_W0_FREQ
    radius: float = _TRAINING.radius
    record_points: int = 300
    test_samples: int = 10_000
    pgd_steps: int = 20
    x64: bool = False

    def problem(self, dtype=None) -> Problem:
        """The problem in ``dtype`` (default: the run's, float32 or float64)."""
        dtype = dtype or (jnp.float64 if self.x64 else jnp.float32)
        return make_problem(*(jnp.asarray(v, dtype) for v in (self.spectrum, self.w_star_freq, self.w0_freq)))

    def problem64(self) -> Problem:
        """The problem as float64 NumPy arrays, for the predictions."""
        return Problem(*(np.asarray(v, np.float64) for v in (self.spectrum, self.w_star_freq, self.w0_freq)))


def full_hparams(optimizers, overrides: Mapping[str, Mapping[str, float]]) -> dict:
    """Each optimizer's hyper-parameters: :data:`DEFAULT_HYPERPARAMS` updated by ``overrides``."""
    return {n: hyperparams(n, overrides.get(n)) for n in optimizers}


def describe_gradient(gradient: str, batch_size: Optional[int]) -> str:
    """``population gradient``, ``online batches of n`` or ``one training set of n``."""
    return {"population": "population gradient", "online": f"online batches of {batch_size}",
            "fixed": f"one training set of {batch_size}"}[gradient]


def record_steps_for(config: Config, signgd: dict) -> np.ndarray:
    """Log-spaced record steps, plus every step up to ``2 t2 + 10`` (signGD's closed form)."""
    dense_until = min(2 * signgd["t2"] + 10, DENSE_STEPS_MAX) if signgd["applicable"] else DENSE_STEPS_DEFAULT
    dense = np.arange(0, min(config.steps, dense_until) + 1)
    return np.union1d(log_steps(config.steps, config.record_points), dense).astype(np.int64)


def memory_estimates(config: Config) -> list[tuple[str, float, str]]:
    """``(flag, bytes, what)`` for each part of the run that grows with a flag.

    Statistics over seeds are reduced on the device chunk by chunk
    (:mod:`sims.linear.seed_stats`), so the seeds cost only their final state; one
    chunk costs at least ``SEED_MULTIPLE`` seeds' records.
    """
    d, k = len(config.spectrum), len(config.optimizers)
    points = config.record_points + min(config.steps, DENSE_STEPS_MAX) + 1
    per_seed_records = points * k * 4 * (5 * d + 10)  # sims.linear.seed_stats.chunk_size's accounting
    chunk = max(MEMORY_BUDGET, 16 * per_seed_records)
    stats = points * k * 8 * (4 * d + 4) * 5  # float64 moments of e~, |e~|, norms and curves, host
    finals = config.seeds * k * (d * 4 + 1 + 3 * 8)  # final weights, flags, signGD phase times
    explicit = config.gradient != "population" and config.sampler == "explicit"
    batch = 16 * config.batch_size * d * 4 * 3 if explicit else 0
    attack = config.test_samples * k * (d * 4 * 2 + 8 * 2)  # weights used and losses, two attacks
    return [("--record-points", chunk + stats, f"{points} record points x {k} optimizers x d = {d}"),
            ("--seeds", finals, f"the final state of {config.seeds} seeds"),
            ("--batch-size", batch, f"explicit batches of {config.batch_size} samples"),
            ("--test-samples", attack, f"{config.test_samples} test samples")]


def attack_seconds(config: Config) -> float:
    """A lower bound on the attack check's time: every PGD step of every restart is at least one
    fused gradient of a d-vector per sample and optimizer (>= 1 ns on any device)."""
    ns = config.test_samples * len(config.optimizers) * PGD["restarts"] * config.pgd_steps * len(config.spectrum)
    return ns * 1e-9


def gd_theory(config: Config) -> dict:
    """GD's stability condition here: the bound in the run's precision, the product from the flags' values."""
    spectrum = config.problem().spectrum
    max_lr = float(gd_max_stable_lr(spectrum))
    top = config.lr * float(np.max(np.square(np.asarray(config.spectrum, np.float64))))
    return {"stable": bool(gd_is_stable(spectrum, config.lr)), "max_stable_lr": max_lr,
            "condition": f"GD is stable iff 0 < lr * max(spectrum^2) < 2, i.e. lr < {max_lr:.6g}; "
            f"here lr * max(spectrum^2) = {top:.6g}"}


def signgd_theory(problem: Problem, lr: float) -> dict:
    """The signGD closed form, or why it does not apply."""
    if problem.dim != 3:
        return {"applicable": False, "reason": "the closed form needs d = 3"}
    ph, settled = signgd_phases(problem, lr), signgd_settled(problem, lr)
    if not bool(ph.applicable):
        return {"applicable": False, "reason": REASON_TEXT[Reason(int(ph.reason))]}
    return {
        "applicable": True,
        "reason": REASON_TEXT[Reason.APPLICABLE],
        "t1": int(ph.t1),
        "t2": int(ph.t2),
        "irrelevant_drift": float(ph.irrelevant_drift),
        "e_freq_t2": [float(v) for v in ph.e_freq_t2],
        "phase3_bound": float(ph.phase3_bound),
        "t_settled": int(settled.t_settled),
        "e_freq_settled": [float(v) for v in settled.e_freq],
        "settled_bound": [float(v) for v in settled.bound],
    }


def attack_kwargs(config: Config, attack: str) -> dict:
    """:func:`attack_check`'s PGD settings (none for the worst case)."""
    return PGD | {"steps": config.pgd_steps, "step_size": config.radius / 2} if attack.startswith("pgd") else {}


class DynamicsRun(NamedTuple):
    """What :func:`run_study` returns.

    Attributes:
      summary: the JSON's ``optimizers``, ``theory`` and ``empirical`` blocks.
      stats: the statistics over seeds (:class:`sims.linear.seed_stats.SeedStats`).
      predictions: optimizer -> :class:`sims.linear.predictions.Prediction`.
      timing: seconds of each stage (``predict_s`` per optimizer, ``simulate_s``,
        ``predict_wait_s``, ``empirical_s``).
    """

    summary: dict
    stats: SeedStats
    predictions: dict
    timing: dict


def solve_prediction(config: Config, name: str, record_steps: np.ndarray,
                     fixed_hessians: Optional[np.ndarray] = None) -> Prediction:
    """Optimizer ``name``'s prediction for the run ``config`` on ``record_steps`` (float64).

    ``fixed_hessians``: each seed's ``H~_S`` (fixed gradient only).
    """
    return predict(name, config.gradient, config.problem64(), config.lr, record_steps,
                   hparams=config.hparams[name], batch_size=config.batch_size or 0,
                   fixed_hessians=fixed_hessians, label_noise=config.label_noise)


def _start_predictions(config: Config, oracle, record_steps: np.ndarray):
    """One daemon thread per optimizer solving its prediction; returns ``(threads, predictions, errors)``.

    x64 is thread-local, and XLA compiles outside the GIL, so the compilations
    overlap with each other and with the simulation; daemon threads, so that
    an interrupt does not wait for them.
    """
    fixed_h = (fixed_set_hessians(oracle, seed_keys(config.seeds, config.seed), np.asarray(config.spectrum))
               if config.gradient == "fixed" else None)
    predictions, errors = {}, []

    def solve(name):
        try:
            predictions[name] = solve_prediction(config, name, record_steps, fixed_h)
        except BaseException as err:  # re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=solve, args=(name,), daemon=True) for name in config.optimizers]
    for thread in threads:
        thread.start()
    return threads, predictions, errors


def run_study(config: Config, quiet: bool = False) -> DynamicsRun:
    """Simulates ``config`` over its seeds, solves the predictions beside it, attacks the final weights.

    Args:
      config: the settings.
      quiet: no stage or progress lines on stderr.

    Returns:
      A :class:`DynamicsRun`.
    """
    problem = config.problem()
    optimizers = {n: make_optimizer(n, config.lr, **config.hparams[n]) for n in config.optimizers}
    oracle = make_oracle(config.gradient, problem.spectrum, config.batch_size or 0, config.sampler or "wishart",
                         config.label_noise)
    sg = signgd_theory(problem, config.lr)
    record_steps = record_steps_for(config, sg)
    threads, predictions, errors = _start_predictions(config, oracle, record_steps)

    t_sim = time.perf_counter()
    cli.stage(f"compiling and simulating {config.seeds} seeds x {len(optimizers)} optimizers, {config.steps} steps "
              f"({config.gradient} gradient); solving the predictions beside it", quiet)
    phases = bool(sg["applicable"]) and "signgd" in optimizers
    with cli.Progress("simulation", config.seeds * int(record_steps[-1]), quiet, unit="seed-step") as progress:
        stats = simulate_stats(make_simulation(optimizers, oracle), problem, config.seed, config.seeds, record_steps,
                               config.radius, progress=progress, phases=phases)
    t_sim = time.perf_counter() - t_sim

    t_wait = time.perf_counter()
    if any(thread.is_alive() for thread in threads):
        cli.stage(f"waiting for the predictions ({config.gradient} gradient, float64)", quiet)
    for thread in threads:
        while thread.is_alive():  # join in slices, so that Ctrl-C is seen at once
            thread.join(0.2)
            cli.check_interrupted()
    if errors:
        raise errors[0]
    t_wait = time.perf_counter() - t_wait

    keep = ~stats.diverged  # (seeds, k): a seed is kept per optimizer
    results = {name: {"final": _final(stats, i),
                      "predicted": predicted_values(predictions[name], config.problem64(), config.radius)}
               for i, name in enumerate(stats.names)}
    theory = {"gd": gd_theory(config), "signgd": sg}
    if phases:
        sg["observed"] = {k: mean_std(v[np.isfinite(v)], np.ones(np.isfinite(v).sum(), bool))
                          for k, v in stats.phases.items()}

    t_emp = time.perf_counter()
    cli.stage(f"empirical adversarial risk on {config.test_samples} fresh test samples (worst case and PGD)", quiet)
    key = jax.random.fold_in(jax.random.key(config.seed), TEST_STREAM)
    attacks = {a: attack_check(key, stats.w_final, keep, problem, config.radius, config.test_samples, a,
                               **attack_kwargs(config, a)) for a in ATTACKS} if keep.any() else {}
    empirical = {name: _empirical(attacks, i, config.test_samples) if keep[:, i].any() else {}
                 for i, name in enumerate(stats.names)}
    t_emp = time.perf_counter() - t_emp

    timing = {"predict_s": {name: p.solve_s for name, p in predictions.items()}, "simulate_s": t_sim,
              "predict_wait_s": t_wait, "empirical_s": t_emp}
    summary = {"optimizers": results, "theory": theory, "empirical": empirical}
    return DynamicsRun(summary, stats, predictions, timing)


def _final(stats: SeedStats, i: int) -> dict:
    """Optimizer ``i``'s final ``R_s``, ``||w||``, ``R_a`` and mean ``e~`` over the kept seeds."""
    kept = not stats.diverged[:, i].all()
    return {**{q: final_stat(getattr(stats, q), i) for q in CURVES},
            "e_freq": [float(x) for x in stats.e_freq.mean[i, -1]] if kept else None,
            "diverged": int(stats.diverged[:, i].sum())}


def _empirical(attacks: dict, i: int, test_samples: int) -> dict:
    """Optimizer ``i``'s attack estimates: mean and 95% interval per attack, and the closed form."""
    out = {a: {"mean": float(e.mean[i]), "ci95": [float(x) for x in e.ci95[i]]} for a, e in attacks.items()}
    return {**out, "closed_form": float(attacks["worst_l2"].closed_form[i]), "test_samples": test_samples}


def band_of(m: Moments, i: int) -> Band:
    """Optimizer ``i``'s mean and min-max band over seeds (none if no seed was kept)."""
    if m.count[i] == 0:
        return Band(None, None, None)
    return Band(m.mean[i], m.min[i], m.max[i])


def final_stat(m: Moments, i: int) -> dict:
    """``{mean, std}`` over the kept seeds at the last record step (``None`` if none kept)."""
    if m.count[i] == 0:
        return {"mean": None, "std": None}
    return {"mean": float(m.mean[i, -1]), "std": float(m.std[i, -1])}


def mean_prediction(p: Prediction) -> Optional[np.ndarray]:
    """``(T, d)`` predicted ``e~`` (the mean over seeds for a fixed set)."""
    if p.e_freq is None:
        return None
    return p.e_freq.mean(0) if p.theory == "fixed_set" else p.e_freq


def predicted_curves(e_freq: np.ndarray, problem: Problem, radius: float) -> dict:
    """R_s, ||w|| and R_a of a predicted ``e~`` ``([seeds,] T, d)`` (a fixed set: mean over seeds)."""
    w = jnp.asarray(e_freq + np.asarray(problem.w_star_freq, np.float64), problem.spectrum.dtype)
    c = {k: np.asarray(v, np.float64) for k, v in risk_curves(w, problem, radius)._asdict().items()}
    return {k: v.mean(0) if v.ndim == 2 else v for k, v in c.items()}


def predicted_values(p: Prediction, problem: Problem, radius: float) -> dict:
    """The final predicted ``R_s``, ``||w||``, ``R_a`` and ``e~``, with the formula used."""
    out = {"theory": p.theory, "applicable": p.applicable}
    if not p.applicable:
        return {**out, "reason": p.reason}
    final = p.e_freq[..., -1, :]
    w = final + np.asarray(problem.w_star_freq, np.float64)
    with jax.enable_x64(True):
        m64 = make_problem(*(np.asarray(v, np.float64) for v in problem))
        c = {k: np.asarray(v, np.float64) for k, v in risk_curves(jnp.asarray(w), m64, radius)._asdict().items()}
    out.update({k: float(v.mean()) for k, v in c.items()})
    out["e_freq"] = [float(x) for x in np.atleast_2d(final).mean(0)]
    if p.theory == "fixed_set":  # one prediction per seed's training set
        out["seeds_std"] = {k: float(v.std()) for k, v in c.items()}
    return out


def plot_study(error_path: str, risks_path: str, run: DynamicsRun, config: Config) -> None:
    """The error dynamics and the risks figures, each optimizer's prediction dashed beside it."""
    stats, sg = run.stats, run.summary["theory"]["signgd"]
    problem = config.problem()
    errors = {name: {q: band_of(getattr(stats, q), i) for q in ERRORS} for i, name in enumerate(stats.names)}
    curves = {name: {q: band_of(getattr(stats, q), i) for q in CURVES} for i, name in enumerate(stats.names)}
    pred_curves = {name: None if p.e_freq is None else predicted_curves(p.e_freq, problem, config.radius)
                   for name, p in run.predictions.items()}
    title = (f"d = {len(config.spectrum)}, lr {config.lr:g}, "
             f"{describe_gradient(config.gradient, config.batch_size)}, {config.seeds} seeds")
    marks = {"t1": sg["t1"], "t2": sg["t2"]} if "observed" in sg else None
    plot_error_dynamics(error_path, stats.steps, errors, np.asarray(config.spectrum),
                        {n: mean_prediction(p) for n, p in run.predictions.items()}, marks, title)
    plot_risks(risks_path, stats.steps, curves, pred_curves, config.radius, title)


def table_rows(summary: dict) -> list[tuple[str, ...]]:
    """One row per optimizer: simulated (mean ± std over seeds), predicted, the irrelevant error, diverged."""
    cfg = summary["config"]
    irrelevant = [k for k, s in enumerate(cfg["spectrum"]) if s == 0]
    irr = "e~_" + ",".join(map(str, irrelevant)) if len(irrelevant) <= 3 else "||e~_I||"

    def irrelevant_error(e):
        if not e or not irrelevant:
            return "-"
        if len(irrelevant) > 3:
            return f"{np.linalg.norm([e[k] for k in irrelevant]):.4g}"
        return ",".join(f"{e[k]:.4g}" for k in irrelevant)

    rows = [("optimizer", "R_s", "||w||", "R_a", "R_a predicted", irr, f"{irr} predicted", "theory", "diverged")]
    for name, r in summary["optimizers"].items():
        f, p = r["final"], r["predicted"]
        ok = p["applicable"]
        rows.append((name, *(format_mean_std(f[k]) for k in ("standard_risk", "weight_norm", "adversarial_risk")),
                     f"{p['adversarial_risk']:.5g}" if ok else "-", irrelevant_error(f["e_freq"]),
                     irrelevant_error(p.get("e_freq")) if ok else "-",
                     p["theory"] if ok else f"{p['theory']} (not applicable)",
                     f"{f['diverged']}/{cfg['seeds']}" + (" !" if f["diverged"] else "")))
    return rows


def table_notes(summary: dict) -> list[str]:
    """The lines under the table: missing predictions, divergence, signGD's phases, the attacks."""
    lines = [f"{name}: no prediction ({r['predicted']['reason']})"
             for name, r in summary["optimizers"].items() if not r["predicted"]["applicable"]]
    th = summary["theory"]
    if any(r["final"]["diverged"] for r in summary["optimizers"].values()):
        lines.append(f"diverged seeds are left out of the means and plots. {th['gd']['condition']}")
    elif not th["gd"]["stable"]:
        lines.append(th["gd"]["condition"])
    sg = th["signgd"]
    if "signgd" in summary["optimizers"] and not sg["applicable"]:
        lines.append(f"signGD closed form: not applicable ({sg['reason']})")
    elif "signgd" in summary["optimizers"] and "observed" in sg:
        o = sg["observed"]
        lines.append("signGD phases (d = 3 closed form, population)   predicted   observed (mean ± std over seeds)")
        for k, fmt in (("t1", "{:.0f}"), ("t2", "{:.0f}"), ("irrelevant_drift", "{:.4g}")):
            obs = "-" if o[k]["mean"] is None else f"{fmt.format(o[k]['mean'])} ± {o[k]['std']:.2g}"
            lines.append(f"  {k:<46}{fmt.format(sg[k]):<12}{obs}")
    emp = summary["empirical"]
    if any(emp.values()):
        lines.append("empirical R_a on fresh test samples (95% CI): worst-case l2 | PGD l2 | closed form")
        for name, e in emp.items():
            if e:
                w, g = e["worst_l2"], e["pgd_l2"]
                lines.append(f"  {name:<9}[{w['ci95'][0]:.6g}, {w['ci95'][1]:.6g}] | "
                             f"[{g['ci95'][0]:.6g}, {g['ci95'][1]:.6g}] | {e['closed_form']:.6g}")
    return lines


def readme_block(summary: dict) -> str:
    """The README's table of the main job, rendered from its ``summary.json``."""
    cfg = summary["config"]
    irrelevant = [k for k, s in enumerate(cfg["spectrum"]) if s == 0]
    lines = [f"`python sims/linear_dynamics.py`: {cfg['seeds']} seeds, {cfg['steps']} steps, lr {cfg['lr']:g}, "
             f"{describe_gradient(cfg['gradient'], cfg['batch_size'])}; mean ± std over seeds; predictions in float64 "
             f"(`theory` names the formula, `sims/linear/predictions.py`).", "",
             "| optimizer | R_s | weight norm | R_a | R_a predicted | "
             + " | ".join(f"e~_{k} | e~_{k} predicted" for k in irrelevant) + " | theory |",
             "|---" * (6 + 2 * len(irrelevant)) + "|"]
    for name, r in summary["optimizers"].items():
        f, p = r["final"], r["predicted"]
        ok = p["applicable"]
        cells = [LABELS.get(name, name), f"{f['standard_risk']['mean']:.2g}", f"{f['weight_norm']['mean']:.4g}",
                 f"{f['adversarial_risk']['mean']:.5g} ± {f['adversarial_risk']['std']:.2g}",
                 f"{p['adversarial_risk']:.5g}" if ok else "-"]
        for k in irrelevant:
            cells += [f"{f['e_freq'][k]:.4f}", f"{p['e_freq'][k]:.4f}" if ok else "-"]
        cells.append(f"`{p['theory']}`" if ok else f"`{p['theory']}` (not applicable)")
        lines.append("| " + " | ".join(cells) + " |")
    sg = summary["theory"]["signgd"]
    if sg.get("applicable") and "observed" in sg:
        o = sg["observed"]
        lines += ["", f"signGD phases (d = 3 closed form of the population dynamics, `theory/signgd.py`): "
                  f"`t1` = {sg['t1']} predicted, {o['t1']['mean']:.0f} ± {o['t1']['std']:.2g} observed; "
                  f"`t2` = {sg['t2']} predicted, {o['t2']['mean']:.0f} ± {o['t2']['std']:.2g} observed."]
    timing = summary.get("timing", {})
    if timing.get("predict_s"):
        lines += ["", "The predictions are solved in threads beside the simulation (compilation included, each "
                  "sharing the cores with the others): "
                  + ", ".join(f"{LABELS.get(n, n)} {v:.2g} s" for n, v in timing["predict_s"].items())
                  + f"; the run then waited {timing['predict_wait_s']:.2g} s for them after its "
                  f"{timing['simulate_s']:.2g} s simulation, of {timing['total_s']:.2g} s in all."]
    return "\n".join(lines)
