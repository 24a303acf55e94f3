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
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import cli
from sims.engine import make_simulation, seed_keys, simulate
from sims.metrics import diverged, mean_std, observed_signgd_phases, risk_curves
from sims.optimizers import DEFAULT_HYPERPARAMS, OPTIMIZERS, make_optimizer
from sims.oracles import make_oracle
from sims.plotting import Band, plot_error_dynamics, plot_risks
from sims.predictions import Prediction, fixed_set_hessians, predict
from sims.recording import log_grid
from sims.sampling import SAMPLERS
from theory.gd import gd_is_stable, gd_max_stable_lr
from theory.signal import SignalModel, make_model
from theory.signgd import REASON_TEXT, Reason, signgd_phases, signgd_settled

PROG = "linear_dynamics.py"
PAPER = {"spectrum": (0.1, 0.05, 0.0), "w_star": (5.0, 10.0, 0.0), "w0": (0.01, -0.01, 0.02)}
# PGD for the empirical R_a: steps of eps/2 shrink the part of delta orthogonal to w by about
# 2/3 a step (Madry's 2.5 eps/steps would leave ~e^-2.5 of it, a ~0.5% loss deficit, whatever
# the step count); the best of 4 random starts avoids the local maximum at -sign(r) w.
PGD = {"restarts": 4, "random_start": True}
DENSE_STEPS_MAX = 20_000  # every step is recorded up to ~2 t2, for the phase times


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
    a("--eps", type=cli.nonnegative_float, default=math.sqrt(2.0), help="l2 adversary budget (default: sqrt(2))")
    a("--out", default=cli.DEFAULT_OUT,
      help=f"output folder (default: {cli.DEFAULT_OUT}/; the README's figures are refreshed with --out figures)")
    a("--record-points", type=cli.positive_int, default=300,
      help="log-spaced record points (default: 300); every step up to ~2 t2 is recorded as well")
    a("--test-samples", type=cli.positive_int, default=10_000,
      help="fresh test samples per seed for the empirical adversarial risk (default: 10000)")
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
    cli.check_out_dir(args.out)


def memory_estimates(args) -> list[tuple[str, float, str]]:
    """``(flag, bytes, what)`` for each part of the run that grows with a flag."""
    d, k = len(args.spectrum), len(args.optimizers)
    points = args.record_points + min(args.steps, DENSE_STEPS_MAX) + 1
    seeds = -(-args.seeds // 16) * 16
    # float32 on the device, float64 copies of weights, errors and risk curves on the host
    traj = seeds * k * points * d * (4 + 3 * 8)
    flag = "--record-points" if args.record_points > args.seeds else "--seeds"
    batch = 0 if args.batch_size == 0 or args.sampler == "wishart" else seeds * args.batch_size * d * 4 * 3
    attack = seeds * args.test_samples * d * 4 * (PGD["restarts"] + 3) * k
    return [(flag, traj, f"{args.seeds} seeds x {k} optimizers x {points} record points"),
            ("--batch-size", batch, f"explicit batches of {args.batch_size} samples"),
            ("--test-samples", attack, f"{args.test_samples} test samples per seed")]


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


def record_grid(steps: int, points: int, dense_until: int) -> np.ndarray:
    """Log-spaced points, plus every step up to ``dense_until``."""
    dense = np.arange(0, min(steps, dense_until) + 1)
    return np.union1d(log_grid(steps, points), dense).astype(np.int64)


def signgd_theory(model: SignalModel, lr: float) -> dict:
    """The signGD closed form, or why it does not apply."""
    if model.dim != 3:
        return {"applicable": False, "reason": "the closed form needs d = 3"}
    ph, settled = signgd_phases(model, lr), signgd_settled(model, lr)
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


def final_values(w_freq, model: SignalModel, eps: float) -> dict:
    """R_s, ||w||, R_a and e~ of one predicted weight vector."""
    c = risk_curves(jnp.asarray(w_freq), model, eps)
    return {
        "standard_risk": float(c.standard_risk),
        "weight_norm": float(c.weight_norm),
        "adversarial_risk": float(c.adversarial_risk),
        "e_freq": [float(v) for v in np.asarray(w_freq) - np.asarray(model.w_star_freq)],
    }


def empirical_risks(key, w_final: np.ndarray, keep: np.ndarray, model: SignalModel, eps: float, n: int,
                    pgd_steps: int) -> list[dict]:
    """R_a on fresh test samples under the worst-case and the PGD l2 attack.

    Seed ``i`` draws ``n`` test samples from ``fold_in(key, i)``, shared by
    the optimizers (common random numbers). The mean over the kept seeds has
    a 95% interval ``1.96 sqrt(sum_i se_i^2) / k`` from the per-seed standard
    errors, since the seeds' samples are independent.

    Args:
      w_final: ``(seeds, k, d)`` final weights; ``keep``: ``(seeds, k)``.

    Returns:
      One dict per optimizer (empty if no seed was kept).
    """
    from sims.attacks import monte_carlo_risk

    @jax.jit
    def estimate(w):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(w.shape[0]))
        return {attack: jax.vmap(lambda k, wi: monte_carlo_risk(
            k, wi, model, eps, n, attack,
            **(PGD | {"steps": pgd_steps, "step_size": eps / 2} if attack.startswith("pgd") else {})))(
            keys, w) for attack in ("worst_l2", "pgd_l2")}

    est = estimate(jnp.asarray(np.where(keep[..., None], w_final, 0.0), model.spectrum.dtype))
    out = []
    for j in range(w_final.shape[1]):
        kept = keep[:, j]
        res = {}
        if kept.any():
            for attack, e in est.items():
                m, se = np.asarray(e.mean, np.float64)[kept, j], np.asarray(e.stderr, np.float64)[kept, j]
                half = 1.96 * float(np.sqrt(np.sum(se**2))) / kept.sum()
                res[attack] = {"mean": float(m.mean()), "ci95": [float(m.mean() - half), float(m.mean() + half)]}
        out.append(res)
    return out


def run(args, t_start: float) -> int:
    dtype = jnp.float64 if args.x64 else jnp.float32
    model = make_model(*(jnp.asarray(v, dtype) for v in (args.spectrum, args.w_star, args.w0)))
    spectrum = np.asarray(args.spectrum)
    optimizers = {n: make_optimizer(n, args.lr, **args.hparams.get(n, {})) for n in args.optimizers}
    mode = "population" if args.batch_size == 0 else args.mode
    oracle = make_oracle(mode, model.spectrum, args.batch_size, args.sampler, args.label_noise)

    stable = bool(gd_is_stable(model.spectrum, args.lr))
    max_lr = float(gd_max_stable_lr(model.spectrum))
    gd_reason = (f"GD is stable iff 0 < lr * max(spectrum^2) < 2, i.e. lr < {max_lr:.6g}; "
                 f"here lr * max(spectrum^2) = {args.lr * float(np.max(spectrum ** 2)):.6g}")
    sg = signgd_theory(model, args.lr)
    dense_until = min(2 * sg["t2"] + 10, DENSE_STEPS_MAX) if sg["applicable"] else 2000
    grid = record_grid(args.steps, args.record_points, dense_until)
    keys = seed_keys(args.seeds, args.seed)

    t_sim = time.perf_counter()
    cli.stage(f"compiling and simulating {args.seeds} seeds x {len(optimizers)} optimizers, "
              f"{args.steps} steps ({mode} gradient)", args.quiet)
    with cli.Progress("simulation", int(grid[-1]), args.quiet) as progress:
        traj = simulate(make_simulation(optimizers, oracle), model, keys, grid, progress=progress)
    w_freq = np.asarray(traj.w_freq, np.float64)  # (seeds, k, T, d)
    t_sim = time.perf_counter() - t_sim
    w_star = np.asarray(args.w_star, np.float64)
    e_freq = w_freq - w_star
    steps = traj.steps

    t_pred = time.perf_counter()
    cli.stage(f"solving the predictions ({mode} gradient, float64)", args.quiet)
    fixed_h = fixed_set_hessians(oracle, keys, spectrum) if mode == "fixed" else None
    preds = {name: predict(name, mode, model, args.lr, steps, hparams=args.hparams.get(name, {}),
                           batch_size=args.batch_size, fixed_hessians=fixed_h, label_noise=args.label_noise)
             for name in traj.names}
    t_pred = time.perf_counter() - t_pred

    keep_all = ~diverged(jnp.asarray(w_freq), model)  # (seeds, k): a seed is kept per optimizer
    results, errors, curves, pred_curves = {}, {}, {}, {}
    for i, name in enumerate(traj.names):
        keep = keep_all[:, i]
        c = {k: np.asarray(v, np.float64) for k, v in risk_curves(jnp.asarray(w_freq[:, i], dtype), model,
                                                                  args.eps)._asdict().items()}
        errors[name] = error_bands(e_freq[keep, i], spectrum)
        curves[name] = {k: Band.of(v[keep]) for k, v in c.items()}
        p = preds[name]
        pred_curves[name] = None if p.e_freq is None else predicted_curves(p.e_freq, model, args.eps)
        results[name] = {
            "final": {
                **{k: mean_std(v[:, -1], keep) for k, v in c.items()},
                "e_freq": [float(x) for x in e_freq[keep, i, -1].mean(0)] if keep.any() else None,
                "diverged": int((~keep).sum()),
            },
            "predicted": predicted_values(p, model, args.eps),
        }

    theory = {"gd": {"stable": stable, "max_stable_lr": max_lr, "condition": gd_reason}, "signgd": sg,
              "solve_s": {name: p.solve_s for name, p in preds.items()}}
    if "signgd" in traj.names and sg["applicable"] and spectrum.size == 3:
        i = traj.names.index("signgd")
        obs = observed_signgd_phases(steps, e_freq[keep_all[:, i], i], spectrum)
        sg["observed"] = {k: mean_std(v[np.isfinite(v)], np.ones(np.isfinite(v).sum(), bool))
                          for k, v in obs.items()}

    t_emp = time.perf_counter()
    cli.stage("empirical adversarial risk on fresh test samples (worst case and PGD)", args.quiet)
    key = jax.random.fold_in(jax.random.key(args.seed), 2**31 - 1)  # test data: disjoint from the seeds' streams
    emp = empirical_risks(key, w_freq[:, :, -1], keep_all, model, args.eps, args.test_samples, args.pgd_steps)
    empirical = {}
    for name, e in zip(traj.names, emp):
        if e:
            e["closed_form"] = results[name]["final"]["adversarial_risk"]["mean"]
            e["test_samples"] = args.test_samples
        empirical[name] = e
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
            phases = {"t1": sg["t1"], "t2": sg["t2"]} if sg["applicable"] and "signgd" in traj.names else None
            plot_error_dynamics(outputs.path("error_dynamics.png"), steps, errors, spectrum,
                                {n: mean_prediction(p) for n, p in preds.items()}, phases, title)
            plot_risks(outputs.path("risks.png"), steps, curves, pred_curves, args.eps, title)
            t_plot = time.perf_counter() - t_plot
        summary["timing"] = {"simulate_s": t_sim, "predict_s": t_pred, "empirical_s": t_emp, "plots_s": t_plot,
                             "total_s": time.perf_counter() - t_start}
        summary_path = outputs.path("summary.json")
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def error_bands(e_freq: np.ndarray, spectrum: np.ndarray) -> dict:
    """Bands over seeds of ``e~`` ``(seeds, T, d)``: signed, absolute and per band norm."""
    irrelevant = np.asarray(spectrum) == 0
    return {"e_freq": Band.of(e_freq), "abs_e_freq": Band.of(np.abs(e_freq)),
            "relevant_norm": Band.of(np.linalg.norm(e_freq[..., ~irrelevant], axis=-1)),
            "irrelevant_norm": Band.of(np.linalg.norm(e_freq[..., irrelevant], axis=-1))}


def mean_prediction(p: Prediction) -> Optional[np.ndarray]:
    """``(T, d)`` predicted ``e~`` (the mean over seeds for a fixed set)."""
    if p.e_freq is None:
        return None
    return p.e_freq.mean(0) if p.theory == "fixed_set" else p.e_freq


def predicted_curves(e_freq: np.ndarray, model: SignalModel, eps: float) -> dict:
    """R_s, ||w|| and R_a of a predicted ``e~`` ``([seeds,] T, d)`` (a fixed set: mean over seeds)."""
    w = jnp.asarray(e_freq + np.asarray(model.w_star_freq, np.float64), model.spectrum.dtype)
    c = {k: np.asarray(v, np.float64) for k, v in risk_curves(w, model, eps)._asdict().items()}
    return {k: v.mean(0) if v.ndim == 2 else v for k, v in c.items()}


def predicted_values(p: Prediction, model: SignalModel, eps: float) -> dict:
    """The final predicted ``R_s``, ``||w||``, ``R_a`` and ``e~``, with the formula used."""
    out = {"theory": p.theory, "applicable": p.applicable}
    if not p.applicable:
        return {**out, "reason": p.reason}
    final = p.e_freq[..., -1, :]
    w = final + np.asarray(model.w_star_freq, np.float64)
    with jax.enable_x64(True):
        m64 = make_model(*(np.asarray(v, np.float64) for v in model))
        c = {k: np.asarray(v, np.float64) for k, v in risk_curves(jnp.asarray(w), m64, eps)._asdict().items()}
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
        "eps": args.eps, "record_points": args.record_points, "test_samples": args.test_samples,
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


if __name__ == "__main__":
    sys.exit(main())
