"""Reproduces the paper's Figure 5: GD, signGD, Adam and RMSProp on the
three-dimensional signal model, simulated beside the closed forms.

    python sims/linear_dynamics.py            # the paper's setting
    python sims/linear_dynamics.py --help

Writes ``error_dynamics.png``, ``risks.png`` and ``summary.json`` to
``--out`` and prints a table of simulated against predicted values.
Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), section 4 and Figure 5.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import cli
from sims.linear.engine import make_simulation, seed_keys
from sims.linear.metrics import mean_std, risk_curves
from sims.common.optimizers import DEFAULT_HYPERPARAMS, OPTIMIZERS, make_optimizer
from sims.linear.oracles import make_oracle
from sims.common.plotting import LABELS, Band, plot_error_dynamics, plot_risks
from sims.linear.predictions import Prediction, fixed_set_hessians, predict
from sims.linear.recording import log_steps
from sims.linear.sampling import SAMPLERS
from sims.linear.seed_stats import CURVES, ERRORS, MEMORY_BUDGET, Moments, attack_check, simulate_stats
from theory.gd import gd_is_stable, gd_max_stable_lr
from theory.signal import Problem, make_problem
from theory.signgd import REASON_TEXT, Reason, signgd_phases, signgd_settled

PROG = "linear_dynamics.py"
PAPER = {"spectrum": (0.1, 0.05, 0.0), "w_star": (5.0, 10.0, 0.0), "w0": (0.01, -0.01, 0.02)}
# PGD for the empirical R_a: steps of eps/2 shrink the part of delta orthogonal to w by about
# 2/3 a step (Madry's 2.5 eps/steps would leave ~e^-2.5 of it, a ~0.5% loss deficit, whatever
# the step count); the best of 4 random starts avoids the local maximum at -sign(r) w.
PGD = {"restarts": 4, "random_start": True}
DENSE_STEPS_MAX = 20_000
#: The test data's stream: ``fold_in(key(seed), TEST_STREAM)``, disjoint from the seeds' streams
#: ``fold_in(key(seed), i)`` for every seed index ``i < TEST_STREAM``.
TEST_STREAM = 2**31 - 1  # every step is recorded up to ~2 t2, for the phase times


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="GD, signGD, Adam and RMSProp on the paper's linear signal model (Figure 5), "
        "with the closed forms beside the simulation. Defaults are the paper's setting.",
    )
    a = p.add_argument
    a("--steps", type=cli.positive_int, default=200_001, help="iterations (default: 200001)")
    a("--lr", type=cli.positive_float, default=0.01, help="learning rate, shared by all optimizers (default: 0.01)")
    a("--seeds", type=cli.positive_int, default=8, help="number of seeds (default: 8)")
    a("--seed", type=cli.nonnegative_int, default=0, help="base seed; seed i uses fold_in(key(seed), i) (default: 0)")
    a("--batch-size", type=cli.nonnegative_int, default=5000,
      help="samples per batch n; 0 uses the exact population gradient (default: 5000)")
    a("--mode", choices=("online", "fixed"), default="online",
      help="with --batch-size > 0: 'online' draws a fresh batch every step (the paper), "
      "'fixed' reuses one training set of n samples (default: online)")
    a("--sampler", choices=SAMPLERS, default="wishart",
      help="'wishart' samples the batch's sufficient statistics exactly in O(d^2); "
      "'explicit' draws the n samples (slow; the reference) (default: wishart)")
    a("--label-noise", type=cli.nonnegative_float, default=0.0,
      help="standard deviation of Gaussian label noise (default: 0, as in the paper)")
    a("--optimizers", type=cli.name_list(OPTIMIZERS), default=OPTIMIZERS,
      help=f"comma list from {','.join(OPTIMIZERS)} (default: all)")
    a("--hparam", action="append", default=[], metavar="OPT.NAME=VALUE",
      help="override an optimizer hyper-parameter, e.g. adam.b1=0 (repeatable); "
      "defaults match PyTorch: adam b1=0.9 b2=0.999 eps=1e-8, rmsprop decay=0.99 eps=1e-8 (outside the sqrt)")
    a("--spectrum", type=cli.float_list, default=PAPER["spectrum"],
      help="standard deviations of the frequencies, comma list; 0 marks an irrelevant one (default: 0.1,0.05,0)")
    a("--w-star", type=cli.float_list, default=PAPER["w_star"],
      help="target w~* in frequency coordinates (default: 5,10,0)")
    a("--w0", type=cli.float_list, default=PAPER["w0"],
      help="initial w~(0) in frequency coordinates (default: 0.01,-0.01,0.02)")
    a("--radius", type=cli.nonnegative_float, default=math.sqrt(2.0), help="l2 adversary budget (default: sqrt(2))")
    a("--out", default=cli.DEFAULT_OUT,
      help=f"output folder (default: {cli.DEFAULT_OUT}/; the README's figures are refreshed with --out figures)")
    a("--record-points", type=cli.positive_int, default=300,
      help="log-spaced record points (default: 300); every step up to ~2 t2 is recorded as well")
    a("--test-samples", type=cli.positive_int, default=10_000,
      help="fresh test samples for the empirical adversarial risk, whatever the number of seeds: sample j "
      "attacks the (j mod K)-th kept seed (default: 10000)")
    a("--pgd-steps", type=cli.positive_int, default=20, help="steps of the PGD attack (default: 20)")
    a("--x64", action="store_true", help="compute in float64 (default: float32)")
    a("--no-plots", action="store_true", help="write summary.json only")
    a("--quiet", action="store_true", help="no progress or stage lines on stderr")
    return p


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
    d = len(args.spectrum)
    for flag, v in (("--w-star", args.w_star), ("--w0", args.w0)):
        if len(v) != d:
            raise cli.UsageError(f"{flag}: has {len(v)} entries but --spectrum has {d} (the dimension)")
    if any(s < 0 for s in args.spectrum):
        raise cli.UsageError("--spectrum: entries must be >= 0 (they are standard deviations)")
    cli.check_gradient_flags(args)
    if args.batch_size == 0 and args.label_noise > 0:
        raise cli.UsageError("--label-noise: needs --batch-size > 0 (the population gradient has no noise)")
    if not any(s > 0 for s in args.spectrum):
        raise cli.UsageError("--spectrum: needs at least one relevant (non-zero) frequency; "
                             "with none there is nothing to learn and every risk is constant")
    args.hparams = cli.parse_hparams(args.hparam, args.optimizers)
    for flag, need, what in memory_estimates(args):
        cli.require_fits(flag, need, what)
    # A lower bound on the attack check's time: every PGD step of every restart is at least
    # one fused gradient of a d-vector per sample and optimizer (>= 1 ns on any device).
    attack_ns = args.test_samples * len(args.optimizers) * PGD["restarts"] * args.pgd_steps * len(args.spectrum)
    cli.require_time("--pgd-steps", attack_ns * 1e-9, f"PGD with {args.pgd_steps} steps on {args.test_samples} samples")
    cli.check_out_dir(args.out)


def memory_estimates(args) -> list[tuple[str, float, str]]:
    """``(flag, bytes, what)`` for each part of the run that grows with a flag.

    Statistics over seeds are reduced on the device chunk by chunk
    (:mod:`sims.linear.seed_stats`), so the seeds cost only their final state; one
    chunk costs at least ``SEED_MULTIPLE`` seeds' records.
    """
    d, k = len(args.spectrum), len(args.optimizers)
    points = args.record_points + min(args.steps, DENSE_STEPS_MAX) + 1
    per_seed_records = points * k * 4 * (5 * d + 10)  # sims.linear.seed_stats.chunk_size's accounting
    chunk = max(MEMORY_BUDGET, 16 * per_seed_records)
    stats = points * k * 8 * (4 * d + 4) * 5  # float64 moments of e~, |e~|, norms and curves, host
    finals = args.seeds * k * (d * 4 + 1 + 3 * 8)  # final weights, flags, signGD phase times
    batch = 0 if args.batch_size == 0 or args.sampler == "wishart" else 16 * args.batch_size * d * 4 * 3
    attack = args.test_samples * k * (d * 4 * 2 + 8 * 2)  # weights used and losses, two attacks
    return [("--record-points", chunk + stats, f"{points} record points x {k} optimizers x d = {d}"),
            ("--seeds", finals, f"the final state of {args.seeds} seeds"),
            ("--batch-size", batch, f"explicit batches of {args.batch_size} samples"),
            ("--test-samples", attack, f"{args.test_samples} test samples")]


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


def record_grid(steps: int, points: int, dense_until: int) -> np.ndarray:
    """Log-spaced points, plus every step up to ``dense_until``."""
    dense = np.arange(0, min(steps, dense_until) + 1)
    return np.union1d(log_steps(steps, points), dense).astype(np.int64)


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


def run(args, t_start: float) -> int:
    dtype = jnp.float64 if args.x64 else jnp.float32
    problem = make_problem(*(jnp.asarray(v, dtype) for v in (args.spectrum, args.w_star, args.w0)))
    spectrum = np.asarray(args.spectrum)
    optimizers = {n: make_optimizer(n, args.lr, **args.hparams.get(n, {})) for n in args.optimizers}
    mode = "population" if args.batch_size == 0 else args.mode
    oracle = make_oracle(mode, problem.spectrum, args.batch_size, args.sampler, args.label_noise)

    stable = bool(gd_is_stable(problem.spectrum, args.lr))
    max_lr = float(gd_max_stable_lr(problem.spectrum))
    gd_reason = (f"GD is stable iff 0 < lr * max(spectrum^2) < 2, i.e. lr < {max_lr:.6g}; "
                 f"here lr * max(spectrum^2) = {args.lr * float(np.max(spectrum ** 2)):.6g}")
    sg = signgd_theory(problem, args.lr)
    dense_until = min(2 * sg["t2"] + 10, DENSE_STEPS_MAX) if sg["applicable"] else 2000
    grid = record_grid(args.steps, args.record_points, dense_until)

    # The predictions (float64 ODE and flow solves, mostly compilation) run in a thread beside the
    # simulation; x64 is thread-local, and the thread is a daemon so that an interrupt does not wait.
    fixed_h = fixed_set_hessians(oracle, seed_keys(args.seeds, args.seed), spectrum) if mode == "fixed" else None
    model64 = Problem(*(np.asarray(v, np.float64) for v in (args.spectrum, args.w_star, args.w0)))
    preds: dict = {}
    failed: list = []

    def solve_prediction(name):
        try:
            preds[name] = predict(name, mode, model64, args.lr, grid, hparams=args.hparams.get(name, {}),
                                  batch_size=args.batch_size, fixed_hessians=fixed_h, label_noise=args.label_noise)
        except BaseException as err:  # re-raised in the main thread
            failed.append(err)

    solvers = [threading.Thread(target=solve_prediction, args=(name,), daemon=True) for name in optimizers]
    for solver in solvers:  # XLA compiles outside the GIL: the four compilations overlap
        solver.start()

    t_sim = time.perf_counter()
    cli.stage(f"compiling and simulating {args.seeds} seeds x {len(optimizers)} optimizers, "
              f"{args.steps} steps ({mode} gradient); solving the predictions beside it", args.quiet)
    phases = bool(sg["applicable"]) and "signgd" in optimizers and spectrum.size == 3
    with cli.Progress("simulation", args.seeds * int(grid[-1]), args.quiet, unit="seed-step") as progress:
        stats = simulate_stats(make_simulation(optimizers, oracle), problem, args.seed, args.seeds, grid, args.radius,
                               progress=progress, phases=phases)
    t_sim = time.perf_counter() - t_sim
    steps = stats.steps

    t_pred = time.perf_counter()
    if any(solver.is_alive() for solver in solvers):
        cli.stage(f"waiting for the predictions ({mode} gradient, float64)", args.quiet)
    for solver in solvers:
        while solver.is_alive():  # join in slices, so that Ctrl-C is seen at once
            solver.join(0.2)
            cli.check_interrupted()
    if failed:
        raise failed[0]
    t_pred = time.perf_counter() - t_pred

    keep_all = ~stats.diverged  # (seeds, k): a seed is kept per optimizer
    results, errors, curves, pred_curves = {}, {}, {}, {}
    for i, name in enumerate(stats.names):
        keep = keep_all[:, i]
        errors[name] = {q: band_of(getattr(stats, q), i) for q in ERRORS}
        curves[name] = {q: band_of(getattr(stats, q), i) for q in CURVES}
        p = preds[name]
        pred_curves[name] = None if p.e_freq is None else predicted_curves(p.e_freq, problem, args.radius)
        results[name] = {
            "final": {
                **{q: final_stat(getattr(stats, q), i) for q in CURVES},
                "e_freq": [float(x) for x in stats.e_freq.mean[i, -1]] if keep.any() else None,
                "diverged": int((~keep).sum()),
            },
            "predicted": predicted_values(p, model64, args.radius),
        }

    theory = {"gd": {"stable": stable, "max_stable_lr": max_lr, "condition": gd_reason}, "signgd": sg}
    if phases:
        sg["observed"] = {k: mean_std(v[np.isfinite(v)], np.ones(np.isfinite(v).sum(), bool))
                          for k, v in stats.phases.items()}

    t_emp = time.perf_counter()
    cli.stage(f"empirical adversarial risk on {args.test_samples} fresh test samples (worst case and PGD)",
              args.quiet)
    key = jax.random.fold_in(jax.random.key(args.seed), TEST_STREAM)
    attacks = {attack: attack_check(key, stats.w_final, keep_all, problem, args.radius, args.test_samples, attack,
                                    **(PGD | {"steps": args.pgd_steps, "step_size": args.radius / 2}
                                       if attack.startswith("pgd") else {}))
               for attack in ("worst_l2", "pgd_l2")}
    empirical = {}
    for i, name in enumerate(stats.names):
        if keep_all[:, i].any():
            empirical[name] = {a: {"mean": float(e.mean[i]), "ci95": [float(x) for x in e.ci95[i]]}
                               for a, e in attacks.items()}
            empirical[name]["closed_form"] = float(attacks["worst_l2"].closed_form[i])
            empirical[name]["test_samples"] = args.test_samples
        else:
            empirical[name] = {}
    t_emp = time.perf_counter() - t_emp

    summary = {
        "config": config_dict(args, mode),
        "optimizers": results,
        "theory": theory,
        "empirical": empirical,
    }
    print_table(summary, args)

    with cli.OutputSet(args.out) as outputs:
        t_plot = 0.0
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            t_plot = time.perf_counter()
            title = (f"d = {spectrum.size}, lr {args.lr:g}, "
                     f"{'population gradient' if mode == 'population' else f'{mode} batches of {args.batch_size}'}, "
                     f"{args.seeds} seeds")
            marks = {"t1": sg["t1"], "t2": sg["t2"]} if phases else None
            plot_error_dynamics(outputs.path("error_dynamics.png"), steps, errors, spectrum,
                                {n: mean_prediction(p) for n, p in preds.items()}, marks, title)
            plot_risks(outputs.path("risks.png"), steps, curves, pred_curves, args.radius, title)
            t_plot = time.perf_counter() - t_plot
        summary["timing"] = {"predict_s": {name: p.solve_s for name, p in preds.items()}, "simulate_s": t_sim,
                             "predict_wait_s": t_pred, "empirical_s": t_emp, "plots_s": t_plot,
                             "total_s": time.perf_counter() - t_start}
        np.savez(outputs.path("seeds.npz"), names=np.array(stats.names), w_final=stats.w_final,
                 diverged=stats.diverged, **({} if stats.phases is None else
                                             {f"signgd_{k}": v for k, v in stats.phases.items()}))
        summary_path = outputs.path("summary.json")
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def band_of(m: Moments, i: int) -> Band:
    """Optimizer ``i``'s mean and min-max band over seeds (none if no seed was kept)."""
    if m.count[i] == 0:
        return Band(None, None, None)
    return Band(m.mean[i], m.min[i], m.max[i])


def final_stat(m: Moments, i: int) -> dict:
    """``{mean, std}`` over the kept seeds at the last record point (``None`` if none kept)."""
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


def config_dict(args, mode: str) -> dict:
    return {
        "steps": args.steps, "lr": args.lr, "seeds": args.seeds, "seed": args.seed,
        "batch_size": args.batch_size, "mode": mode, "sampler": args.sampler if mode != "population" else None,
        "label_noise": args.label_noise, "optimizers": list(args.optimizers),
        "hparams": {n: {**DEFAULT_HYPERPARAMS[n], **args.hparams.get(n, {})} for n in args.optimizers},
        "spectrum": list(args.spectrum), "w_star_freq": list(args.w_star), "w0_freq": list(args.w0),
        "radius": args.radius, "record_points": args.record_points, "test_samples": args.test_samples,
        "pgd_steps": args.pgd_steps, "x64": args.x64, "dtype": "float64" if args.x64 else "float32",
        **cli.environment(),
    }


def _pm(stat: dict) -> str:
    return "diverged" if stat["mean"] is None else f"{stat['mean']:.4g} ± {stat['std']:.2g}"


def print_table(summary: dict, args) -> None:
    """One row per optimizer: simulated (mean ± std over seeds), predicted, relative error."""
    irrelevant = [k for k, s in enumerate(args.spectrum) if s == 0]
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
        rows.append((name, _pm(f["standard_risk"]), _pm(f["weight_norm"]), _pm(f["adversarial_risk"]),
                     f"{p['adversarial_risk']:.5g}" if ok else "-", irrelevant_error(f["e_freq"]),
                     irrelevant_error(p.get("e_freq")) if ok else "-",
                     p["theory"] if ok else f"{p['theory']} (not applicable)",
                     f"{f['diverged']}/{args.seeds}" + (" !" if f["diverged"] else "")))
    cli.print_rows(rows)
    for name, r in summary["optimizers"].items():
        if not r["predicted"]["applicable"]:
            print(f"{name}: no prediction ({r['predicted']['reason']})")
    th = summary["theory"]
    if any(r["final"]["diverged"] for r in summary["optimizers"].values()):
        print(f"diverged seeds are left out of the means and plots. {th['gd']['condition']}")
    elif not th["gd"]["stable"]:
        print(th["gd"]["condition"])
    sg = th["signgd"]
    if "signgd" not in summary["optimizers"]:
        pass
    elif not sg["applicable"]:
        print(f"signGD closed form: not applicable ({sg['reason']})")
    elif "observed" in sg:
        o = sg["observed"]
        print("signGD phases (d = 3 closed form, population)   predicted   observed (mean ± std over seeds)")
        for k, fmt in (("t1", "{:.0f}"), ("t2", "{:.0f}"), ("irrelevant_drift", "{:.4g}")):
            obs = "-" if o[k]["mean"] is None else f"{fmt.format(o[k]['mean'])} ± {o[k]['std']:.2g}"
            print(f"  {k:<46}{fmt.format(sg[k]):<12}{obs}")
    emp = summary["empirical"]
    if any(emp.values()):
        print("empirical R_a on fresh test samples (95% CI): worst-case l2 | PGD l2 | closed form")
        for name, e in emp.items():
            if e:
                w, g = e["worst_l2"], e["pgd_l2"]
                print(f"  {name:<9}[{w['ci95'][0]:.6g}, {w['ci95'][1]:.6g}] | "
                      f"[{g['ci95'][0]:.6g}, {g['ci95'][1]:.6g}] | {e['closed_form']:.6g}")


def readme_block(summary: dict) -> str:
    """The README's table of the main job, rendered from its ``summary.json``."""
    cfg = summary["config"]
    irrelevant = [k for k, s in enumerate(cfg["spectrum"]) if s == 0]
    mode = cfg["mode"] if cfg["mode"] == "population" else f"{cfg['mode']} batches of {cfg['batch_size']}"
    lines = [f"`python sims/linear_dynamics.py`: {cfg['seeds']} seeds, {cfg['steps']} steps, lr {cfg['lr']:g}, "
             f"{mode}; mean ± std over seeds; predictions in float64 "
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


if __name__ == "__main__":
    cli.exit(main())
