"""Robustness of small networks trained with SGD, Adam and RMSProp on the digits.

    python sims/deep_robustness.py            # the defaults: about 1.5 minutes on 2 CPU cores
    python sims/deep_robustness.py --arch cnn # a small CNN instead of the MLP (much slower on CPU)
    python sims/deep_robustness.py --help

Trains an MLP (or a small CNN) on scikit-learn's 8x8 digits with each
optimizer, the learning rate of each chosen on a validation split from a
small grid, several seeds vmapped; then measures per optimizer, mean ± std
over seeds: clean test accuracy; accuracy under Gaussian noise; under l2 and
l_inf PGD (with a convergence check); the 2-D DCT energy of the data, the
accuracy after training on data with the low-energy frequencies removed,
and the accuracy under noise restricted to low, middle, high and the removed
frequencies; Lipschitz bounds; weight norms per layer.

Writes ``deep_summary.json`` and ``deep_*.png`` to ``--out`` and prints a
table. Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), sections 3 and 5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims import cli
from sims.digits import (DIM, SIDE, Split, band_masks, block_mask, energy_mask, load_split, project,
                         spectral_energy)
from sims.engine import seed_keys
from sims.networks import ARCHS, Architecture, apply, check_architecture, weight_norms
from sims.optimizers import DEFAULT_HYPERPARAMS
from sims.robustness import NORMS, dense_spectral_norms, lipschitz_bounds, noise_accuracy, pgd, spectral_norms
from sims.training import OPTIMIZERS, TrainConfig, batched_accuracy, select_lr, train_grid

PROG = "deep_robustness.py"
SUMMARY = "deep_summary.json"
FIGURES = ("deep_robustness_curves.png", "deep_pgd_convergence.png", "deep_spectral_energy.png",
           "deep_band_noise.png", "deep_lipschitz.png")
#: Factor-2 grids around each optimizer's usual range; with momentum m the SGD
#: grid is scaled by (1 - m), which keeps the effective step lr / (1 - m).
LR_GRIDS = {
    "sgd": (0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
    "adam": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2),
    "rmsprop": (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
}
DEFAULT_WIDTHS = {"mlp": (128, 128), "cnn": (16, 32)}
BAND_NAMES = ("low", "middle", "high", "removed")
EVAL_STREAM = 2**31 - 1  # fold_in index of the evaluation key: disjoint from the seeds' streams


# --- command line -------------------------------------------------------------------------------


def _int_list(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")
    return tuple(cli.positive_int(p) for p in parts)


def _positive_list(text: str) -> tuple[float, ...]:
    values = cli.float_list(text)
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every entry must be > 0")
    return values


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="Noise, PGD and Lipschitz robustness of small networks trained with SGD, Adam and RMSProp on "
        "scikit-learn's 8x8 digits, each optimizer at its validation-tuned learning rate.",
    )
    a = p.add_argument
    a("--arch", choices=ARCHS, default="mlp", help="network: mlp, or a small cnn (slower) (default: mlp)")
    a("--widths", type=_int_list, default=None,
      help="hidden widths (mlp) or conv channels (cnn), comma list (default: 128,128 for mlp, 16,32 for cnn)")
    a("--optimizers", type=cli.name_list(OPTIMIZERS), default=OPTIMIZERS,
      help=f"comma list from {','.join(OPTIMIZERS)} (default: all)")
    a("--momentum", type=cli.nonnegative_float, default=0.0,
      help="SGD heavy-ball momentum in [0, 1) (default: 0, plain SGD)")
    a("--lr-grid", action="append", default=[], metavar="OPT=LR,LR,...",
      help="learning-rate grid of one optimizer (repeatable); defaults: "
      + "; ".join(f"{k} {','.join(f'{v:g}' for v in g)}" for k, g in LR_GRIDS.items())
      + " (the sgd grid times 1 - momentum)")
    a("--epochs", type=cli.positive_int, default=40, help="training epochs (default: 40)")
    a("--batch-size", type=cli.positive_int, default=64, help="mini-batch size (default: 64)")
    a("--seeds", type=cli.positive_int, default=8, help="training seeds, vmapped (default: 8)")
    a("--seed", type=cli.nonnegative_int, default=0,
      help="base seed; seed i uses fold_in(key(seed), i); evaluation noise and PGD starts use "
      "fold_in(key(seed), 2^31 - 1), shared by all optimizers (default: 0)")
    a("--split-seed", type=cli.nonnegative_int, default=0,
      help="seed of the fixed 60/20/20 train/validation/test split (default: 0)")
    a("--noise-sigmas", type=_positive_list, default=(0.1, 0.2, 0.3, 0.4, 0.5),
      help="per-pixel standard deviations of Gaussian noise, pixels in [0, 1] (default: 0.1,0.2,0.3,0.4,0.5)")
    a("--noise-draws", type=cli.positive_int, default=10, help="noise draws per test image (default: 10)")
    a("--l2-eps", type=_positive_list, default=(0.1, 0.25, 0.5, 0.75, 1.0),
      help="l2 PGD radii (default: 0.1,0.25,0.5,0.75,1)")
    a("--linf-eps", type=_positive_list, default=(0.01, 0.02, 0.05, 0.1),
      help="l_inf PGD radii (default: 0.01,0.02,0.05,0.1)")
    a("--pgd-steps", type=cli.positive_int, default=100,
      help="PGD steps T; accuracy after T/2 steps is the convergence check (default: 100)")
    a("--pgd-step-frac", type=cli.positive_float, default=0.25, help="PGD step = frac * eps (default: 0.25)")
    a("--pgd-tol", type=cli.nonnegative_float, default=0.01,
      help="convergence threshold: the largest accuracy change from T/2 to T steps (default: 0.01)")
    a("--lowpass", choices=("energy", "block"), default="energy",
      help="frequencies kept for the irrelevant-frequency test: the top --keep-energy of the energy, or the "
      "--block x --block lowest (default: energy)")
    a("--keep-energy", type=cli.positive_float, default=0.9, help="energy fraction kept, in (0, 1] (default: 0.9)")
    a("--block", type=cli.positive_int, default=4, help="side of the low-frequency block, 1-8 (default: 4)")
    a("--band-sigma", type=cli.positive_float, default=0.3,
      help="band-limited noise power, as the per-pixel sigma of white noise of equal power (default: 0.3)")
    a("--power-iters", type=cli.positive_int, default=1000, help="power iterations per layer (default: 1000)")
    a("--out", default="figures", help=f"output folder for {SUMMARY} and deep_*.png (default: figures/)")
    a("--x64", action="store_true", help="compute in float64 (default: float32)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no progress line")
    return p


def parse_lr_grids(items: Sequence[str], optimizers: Sequence[str], momentum: float) -> dict:
    """``["adam=1e-3,1e-2"]`` -> grids per optimizer, the defaults elsewhere; validated."""
    grids = {n: LR_GRIDS[n] for n in optimizers}
    if "sgd" in grids:
        grids["sgd"] = tuple(float(f"{v * (1 - momentum):.6g}") for v in grids["sgd"])
    seen = set()
    for item in items:
        name, sep, values = item.partition("=")
        if not sep:
            raise cli.UsageError(f"--lr-grid: {item!r} is not of the form OPT=LR,LR,...")
        if name not in OPTIMIZERS:
            raise cli.UsageError(f"--lr-grid: unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
        if name not in optimizers:
            raise cli.UsageError(f"--lr-grid: {name} is not among --optimizers")
        if name in seen:
            raise cli.UsageError(f"--lr-grid: {name} is given twice")
        seen.add(name)
        try:
            grid = _positive_list(values)
        except Exception as err:
            raise cli.UsageError(f"--lr-grid: {item!r}: {err}") from None
        if len(set(grid)) != len(grid):
            raise cli.UsageError(f"--lr-grid: {item!r} repeats a value")
        grids[name] = tuple(sorted(grid))
    return grids


def validate(args) -> None:
    """Cross-flag checks (and loading the data); raises :class:`cli.UsageError` naming the flag."""
    if args.momentum >= 1:
        raise cli.UsageError("--momentum: must be in [0, 1)")
    args.widths = DEFAULT_WIDTHS[args.arch] if args.widths is None else args.widths
    try:
        check_architecture(Architecture(args.arch, args.widths))
    except ValueError as err:
        raise cli.UsageError(f"--widths: {err}") from None
    args.lr_grids = parse_lr_grids(args.lr_grid, args.optimizers, args.momentum)
    if args.keep_energy > 1:
        raise cli.UsageError("--keep-energy: must be in (0, 1]")
    if args.block > SIDE:
        raise cli.UsageError(f"--block: must be at most {SIDE}")
    if args.pgd_steps < 2:
        raise cli.UsageError("--pgd-steps: must be >= 2 (T/2 steps are the convergence check)")
    if args.pgd_step_frac > 2:
        raise cli.UsageError("--pgd-step-frac: must be in (0, 2] (a step longer than the ball's diameter)")
    if args.pgd_tol > 1:
        raise cli.UsageError("--pgd-tol: an accuracy change is at most 1")
    try:
        n_train = load_split(args.split_seed).train.x.shape[0]
    except ImportError:
        raise cli.UsageError("the digits need scikit-learn: pip install -e '.[deep]'") from None
    if args.batch_size > n_train:
        raise cli.UsageError(f"--batch-size: must be at most the {n_train} training images")
    cli.check_out_dir(args.out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


# --- evaluation (jitted once, shared by the optimizers) -----------------------------------------


@partial(jax.jit, static_argnames=("draws",))
def noise_curves(params, key, x, y, masks, sigmas, draws: int):
    """``(S, P)`` accuracy per seed under noise in ``masks[p]`` (``(P, 64)``) with power ``sigmas[p]``.

    Every seed and setting sees the same standard normal draws (common random numbers).
    """
    one = lambda p, m, s: noise_accuracy(key, partial(apply, p), x, y, m, s, draws)
    return jax.vmap(jax.vmap(one, (None, 0, 0)), (0, None, None))(params, masks, sigmas)


@partial(jax.jit, static_argnames=("norm", "steps", "step_frac"))
def pgd_curves(params, key, x, y, eps, norm: str, steps: int, step_frac: float):
    """``(S, E, steps + 1)`` accuracy under PGD after ``k`` steps, per seed and radius."""
    one = lambda p, e: jnp.mean(pgd(key, partial(apply, p), x, y, e, norm, steps, step_frac).margins > 0, axis=0)
    return jax.vmap(jax.vmap(one, (None, 0)), (0, None))(params, eps)


@partial(jax.jit, static_argnames=("iters",))
def grid_lipschitz(params, key, iters: int):
    """``(L, S)`` Lipschitz upper bounds of every grid point and seed."""
    upper = lambda p: jnp.prod(spectral_norms(p, key, iters))
    return jax.vmap(jax.vmap(upper))(params)


@partial(jax.jit, static_argnames=("iters",))
def layer_measures(params, key, x, y, iters: int):
    """Lipschitz bounds, the dense spectral norms and the Frobenius norms, per seed."""
    bounds = jax.vmap(lambda p: lipschitz_bounds(p, x, y, key, iters))(params)
    return bounds, jax.vmap(dense_spectral_norms)(params), jax.vmap(weight_norms)(params)


def stats(a) -> dict:
    """``{mean, std}`` over seeds (axis 0; population std), as floats or lists.

    A non-finite value (a run that diverged) becomes ``None``: JSON has no NaN.
    """
    a = np.asarray(a, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        mean, std = a.mean(0), a.std(0)
    clean = lambda v: np.vectorize(_finite, otypes=[object])(v).tolist()
    return {"mean": clean(mean), "std": clean(std)}


def _finite(v) -> Optional[float]:
    """``float(v)``, or ``None`` if it is not finite."""
    return float(v) if np.isfinite(v) else None


def _fmt(v, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


# --- the run ------------------------------------------------------------------------------------


def run(args, t_start: float) -> int:
    data = load_split(args.split_seed, dtype=jnp.float64 if args.x64 else jnp.float32)
    arch = Architecture(args.arch, tuple(args.widths))
    keys = seed_keys(args.seeds, args.seed)
    k_noise, k_l2, k_linf, k_power = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), EVAL_STREAM), 4)
    dtype = data.train.x.dtype
    test = data.test

    # The spectrum of the training images and the kept (relevant) frequencies.
    energy = spectral_energy(data.train.x)
    keep = energy_mask(energy, args.keep_energy) if args.lowpass == "energy" else block_mask(args.block)
    removed = ~keep
    masks = jnp.concatenate([band_masks(3), removed[None]]) if bool(removed.any()) else band_masks(3)
    band_names = BAND_NAMES[: masks.shape[0]]
    train_low = Split(project(data.train.x, keep), data.train.y)
    val_low = Split(project(data.val.x, keep), data.val.y)
    test_low = Split(project(test.x, keep), test.y)
    # White noise at each sigma, then each band at --band-sigma: one call.
    noise_masks = jnp.concatenate([jnp.ones((len(args.noise_sigmas), DIM), bool), masks])
    noise_sigmas = jnp.asarray(args.noise_sigmas + (args.band_sigma,) * masks.shape[0], dtype)
    eps = {"l2": jnp.asarray(args.l2_eps, dtype), "linf": jnp.asarray(args.linf_eps, dtype)}
    pgd_keys = {"l2": k_l2, "linf": k_linf}
    half = args.pgd_steps // 2

    progress = cli.Progress(PROG, quiet=args.quiet)
    stages = 6
    total, done = stages * len(args.optimizers), 0
    progress(0, total)
    timing: dict = {"train_s": 0.0, "evaluate_s": 0.0}
    results, curves = {}, {}
    for name in args.optimizers:
        cfg = TrainConfig(arch, name, args.epochs, args.batch_size, args.momentum if name == "sgd" else 0.0)
        t0 = time.perf_counter()
        grid = jnp.asarray(args.lr_grids[name], dtype)
        trained = train_grid(keys, grid, data.train, cfg)
        sel = select_lr(args.lr_grids[name], batched_accuracy(trained, data.val))
        params = jax.tree.map(lambda a: a[sel.index], trained)
        sweep_upper = np.asarray(grid_lipschitz(trained, k_power, args.power_iters))
        del trained
        done += 1
        progress(done, total)
        # The same grid on the low-pass data: same shapes, so no new compilation.
        trained = train_grid(keys, grid, train_low, cfg)
        sel_low = select_lr(args.lr_grids[name], batched_accuracy(trained, val_low))
        low_acc = np.asarray(batched_accuracy(jax.tree.map(lambda a: a[sel_low.index], trained), test_low))
        del trained
        timing["train_s"] += time.perf_counter() - t0
        done += 1
        progress(done, total)

        t0 = time.perf_counter()
        clean = np.asarray(batched_accuracy(params, test))
        train_acc = np.asarray(batched_accuracy(params, data.train))
        both = np.asarray(noise_curves(params, k_noise, test.x, test.y, noise_masks, noise_sigmas, args.noise_draws))
        noise, bands = both[:, :len(args.noise_sigmas)], both[:, len(args.noise_sigmas):]
        done += 1
        progress(done, total)
        attack = {}
        for norm in NORMS:
            attack[norm] = np.asarray(pgd_curves(params, pgd_keys[norm], test.x, test.y, eps[norm], norm,
                                                 args.pgd_steps, args.pgd_step_frac))
            done += 1
            progress(done, total)
        bounds, dense, frob = layer_measures(params, k_power, test.x, test.y, args.power_iters)
        layer_norms = np.asarray(bounds.layer_norms, np.float64)
        dense = np.asarray(dense, np.float64)
        timing["evaluate_s"] += time.perf_counter() - t0
        done += 1
        progress(done, total)

        curves[name] = {"noise": noise, "pgd": attack, "bands": bands, "clean": clean,
                        "upper": np.asarray(bounds.upper), "lower": np.asarray(bounds.lower),
                        "layer_norms": layer_norms, "frobenius": np.asarray(frob)}
        results[name] = {
            "lr": sel.lr,
            "lr_grid": list(args.lr_grids[name]),
            "val_accuracy_per_lr": stats(sel.val_accuracy.T),
            "lipschitz_upper_per_lr": stats(sweep_upper.T),
            "train_accuracy": stats(train_acc),
            "clean_accuracy": stats(clean),
            "lowpass": {"lr": sel_low.lr, "val_accuracy_per_lr": stats(sel_low.val_accuracy.T),
                        "accuracy": stats(low_acc), "change": stats(low_acc - clean)},
            "noise_accuracy": stats(noise),
            "band_noise_accuracy": stats(bands),
            "pgd": {norm: {"accuracy": stats(attack[norm][:, :, -1]),
                           "accuracy_half_steps": stats(attack[norm][:, :, half]),
                           "max_change": float(np.max(attack[norm][:, :, half] - attack[norm][:, :, -1]))}
                    for norm in NORMS},
            "lipschitz": {"upper": stats(bounds.upper), "lower": stats(bounds.lower),
                          "power_iteration_max_rel_err": _finite(np.max(np.abs(layer_norms / dense - 1)))},
            "weight_norms": {"frobenius": stats(frob), "spectral": stats(layer_norms)},
        }

    change = max(r["pgd"][n]["max_change"] for r in results.values() for n in NORMS)
    summary = {
        "config": config_dict(args),
        "results": {
            "data": {
                "n_train": int(data.train.x.shape[0]), "n_val": int(data.val.x.shape[0]),
                "n_test": int(test.x.shape[0]),
                "spectral_energy": np.asarray(energy, np.float64).reshape(SIDE, SIDE).tolist(),
                "kept_frequencies": int(keep.sum()),
                "kept_energy_fraction": float(np.asarray(energy)[np.asarray(keep)].sum() / np.asarray(energy).sum()),
                "kept_mask": np.asarray(keep).reshape(SIDE, SIDE).astype(int).tolist(),
                "bands": {b: np.flatnonzero(np.asarray(m)).tolist() for b, m in zip(band_names, masks)},
            },
            "optimizers": results,
            "pgd_convergence": {"steps": args.pgd_steps, "compared_with_steps": half, "max_change": change,
                                "tol": args.pgd_tol, "converged": bool(change <= args.pgd_tol)},
        },
    }
    print_table(summary, args)

    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    if not args.no_plots:
        plot_all(args, summary, curves, band_names)
    timing["plots_s"] = time.perf_counter() - t0 if not args.no_plots else 0.0
    timing["total_s"] = time.perf_counter() - t_start
    summary["timing"] = timing
    path = os.path.join(args.out, SUMMARY)
    cli.write_json(path, summary)
    if not args.quiet:
        print(f"wrote {path}" + ("" if args.no_plots else ", " + ", ".join(FIGURES)) +
              f" in {timing['total_s']:.1f} s", file=sys.stderr)
    return 0


def config_dict(args) -> dict:
    return {
        "arch": args.arch, "widths": list(args.widths), "optimizers": list(args.optimizers),
        "momentum": args.momentum, "lr_grids": {k: list(v) for k, v in args.lr_grids.items()},
        "hparams": {n: dict(DEFAULT_HYPERPARAMS[n]) for n in args.optimizers if n in DEFAULT_HYPERPARAMS},
        "epochs": args.epochs, "batch_size": args.batch_size, "seeds": args.seeds, "seed": args.seed,
        "split_seed": args.split_seed, "split": "60/20/20 stratified",
        "noise_sigmas": list(args.noise_sigmas), "noise_draws": args.noise_draws,
        "l2_eps": list(args.l2_eps), "linf_eps": list(args.linf_eps), "pgd_steps": args.pgd_steps,
        "pgd_step_frac": args.pgd_step_frac, "pgd_tol": args.pgd_tol, "lowpass": args.lowpass,
        "keep_energy": args.keep_energy, "block": args.block, "band_sigma": args.band_sigma,
        "power_iters": args.power_iters, "x64": args.x64, "dtype": "float64" if args.x64 else "float32",
        **cli.environment(),
    }


# --- the table ----------------------------------------------------------------------------------


def _pm(stat: dict, j: Optional[int] = None, fmt: str = "{:.3f}") -> str:
    m, s = (stat["mean"], stat["std"]) if j is None else (stat["mean"][j], stat["std"][j])
    return "diverged" if m is None else f"{fmt.format(m)} ± {_fmt(s, fmt)}"


def _print_rows(title: str, rows: list) -> None:
    cols = max(len(r) for r in rows)
    rows = [tuple(r) + ("",) * (cols - len(r)) for r in rows]  # grids may differ in length
    widths = [max(len(r[j]) for r in rows) for j in range(cols)]
    print(title)
    print("\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))


def print_table(summary: dict, args) -> None:
    """Blocks of rows per optimizer, mean ± std over seeds."""
    res, d = summary["results"]["optimizers"], summary["results"]["data"]
    low = (f"top {args.keep_energy:g} energy" if args.lowpass == "energy" else f"{args.block}x{args.block} block")
    rows = [("optimizer", "lr", "clean acc", f"lowpass acc ({d['kept_frequencies']}/64 freq., {low})", "(its lr)",
             "Lipschitz upper", "Lipschitz lower")]
    for n, r in res.items():
        lip = r["lipschitz"]
        rows.append((n, f"{r['lr']:.3g}", _pm(r["clean_accuracy"]), _pm(r["lowpass"]["accuracy"]),
                     f"{r['lowpass']['lr']:.3g}", _pm(lip["upper"], fmt="{:.1f}"), _pm(lip["lower"], fmt="{:.1f}")))
    _print_rows(f"digits, {args.arch} {args.widths}, {args.seeds} seeds, {args.epochs} epochs; "
                f"test set {d['n_test']} images; mean ± std over seeds", rows)
    blocks = [("Gaussian noise accuracy, per-pixel sigma", "sigma", args.noise_sigmas, lambda r: r["noise_accuracy"]),
              (f"l2 PGD accuracy ({args.pgd_steps} steps)", "eps", args.l2_eps, lambda r: r["pgd"]["l2"]["accuracy"]),
              (f"l_inf PGD accuracy ({args.pgd_steps} steps)", "eps", args.linf_eps,
               lambda r: r["pgd"]["linf"]["accuracy"]),
              (f"band-limited noise accuracy (power of white noise with sigma {args.band_sigma:g})", "band",
               list(d["bands"]), lambda r: r["band_noise_accuracy"])]
    for title, label, values, get in blocks:
        head = ("optimizer",) + tuple(f"{label} {v:g}" if not isinstance(v, str) else v for v in values)
        rows = [head] + [(n,) + tuple(_pm(get(r), j) for j in range(len(values))) for n, r in res.items()]
        _print_rows(title, rows)
    rows = [("optimizer",) + tuple(f"lr #{i + 1}" for i in range(max(len(r["lr_grid"]) for r in res.values())))]
    for n, r in res.items():
        val, lip = r["val_accuracy_per_lr"]["mean"], r["lipschitz_upper_per_lr"]["mean"]
        rows.append((n,) + tuple(f"{lr:.3g}: {_fmt(v)} | {_fmt(u, '{:.0f}')}" + (" *" if lr == r["lr"] else "")
                                 for lr, v, u in zip(r["lr_grid"], val, lip)))
    _print_rows("learning-rate grid, lr: validation accuracy | Lipschitz upper bound (means; * chosen)", rows)
    rows = [("optimizer", "spectral norm per layer", "Frobenius norm per layer", "power-iter rel. err")]
    for n, r in res.items():
        w = r["weight_norms"]
        rows.append((n, ", ".join(_fmt(m, "{:.2f}") for m in w["spectral"]["mean"]),
                     ", ".join(_fmt(m, "{:.2f}") for m in w["frobenius"]["mean"]),
                     _fmt(r["lipschitz"]["power_iteration_max_rel_err"], "{:.1e}")))
    _print_rows("weight norms (mean over seeds)", rows)
    c = summary["results"]["pgd_convergence"]
    verdict = "converged" if c["converged"] else "NOT converged: raise --pgd-steps"
    print(f"PGD convergence: accuracy after {c['compared_with_steps']} vs {c['steps']} steps differs by at most "
          f"{c['max_change']:.4f} (tolerance {c['tol']:g}, any optimizer, norm, eps, seed): {verdict}")


# --- figures ------------------------------------------------------------------------------------


def plot_all(args, summary: dict, curves: dict, band_names: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sims.plotting import COLORS, LABELS, save_figure

    colors = {"sgd": COLORS["gd"], "adam": COLORS["adam"], "rmsprop": COLORS["rmsprop"]}
    labels = {"sgd": "SGD" + (f" (momentum {args.momentum:g})" if args.momentum else ""), "adam": LABELS["adam"],
              "rmsprop": LABELS["rmsprop"]}
    res = summary["results"]["optimizers"]
    title = (f"digits, {args.arch} {tuple(args.widths)}, {args.epochs} epochs, {args.seeds} seeds; "
             "mean ± std over seeds")

    def save(fig, name):
        save_figure(fig, os.path.join(args.out, name))

    def err_line(ax, x, values, name):
        ax.errorbar(x, values.mean(0), yerr=values.std(0), color=colors[name], label=f"{labels[name]} "
                    f"(lr {res[name]['lr']:.3g})", marker="o", ms=3, capsize=3, lw=1.5)

    # Robustness curves: accuracy against the perturbation size, clean accuracy at 0.
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    panels = (("Gaussian noise", "per-pixel sigma", args.noise_sigmas, lambda c: c["noise"]),
              (f"l2 PGD, {args.pgd_steps} steps", "eps (l2)", args.l2_eps, lambda c: c["pgd"]["l2"][:, :, -1]),
              (f"l_inf PGD, {args.pgd_steps} steps", "eps (l_inf)", args.linf_eps,
               lambda c: c["pgd"]["linf"][:, :, -1]))
    for ax, (label, xlabel, xs, get) in zip(axes, panels):
        for name, c in curves.items():
            err_line(ax, np.r_[0.0, xs], np.column_stack([c["clean"], get(c)]), name)
        ax.set_title(label)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, FIGURES[0])

    # PGD convergence: accuracy against steps at the largest radii.
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    conv = summary["results"]["pgd_convergence"]
    for ax, norm, xs in zip(axes, NORMS, (args.l2_eps, args.linf_eps)):
        for name, c in curves.items():
            for j, ls in zip((len(xs) // 2, len(xs) - 1), (":", "-")):
                acc = c["pgd"][norm][:, j, :]
                ax.plot(np.arange(acc.shape[1]), acc.mean(0), ls, color=colors[name],
                        label=f"{labels[name]}, eps {xs[j]:g}")
        ax.axvline(conv["compared_with_steps"], color="gray", lw=0.8)
        ax.set_title(f"{norm} PGD: accuracy of the best iterate so far")
        ax.set_xlabel("PGD step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"max change from step {conv['compared_with_steps']} to {conv['steps']}: {conv['max_change']:.4f}")
    fig.tight_layout()
    save(fig, FIGURES[1])

    # Spectral energy of the training images in the 2-D DCT basis.
    d = summary["results"]["data"]
    energy = np.asarray(d["spectral_energy"])
    kept = np.asarray(d["kept_mask"], bool)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    im = axes[0].imshow(np.log10(energy), cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="log10 mean squared DCT coefficient")
    ky, kx = np.nonzero(~kept)
    axes[0].scatter(kx, ky, marker="x", color="white", s=18, label="removed")
    axes[0].set_title("energy per frequency (k vertical, l horizontal)")
    axes[0].set_xlabel("l")
    axes[0].set_ylabel("k")
    axes[0].legend(fontsize=8, loc="lower right")
    order = np.sort(energy.ravel())[::-1]
    axes[1].plot(np.arange(1, order.size + 1), np.cumsum(order) / order.sum(), marker=".")
    axes[1].axvline(d["kept_frequencies"], color="gray", ls="--",
                    label=f"kept {d['kept_frequencies']}/64: {d['kept_energy_fraction']:.3f} of the energy")
    axes[1].set_xlabel("frequencies, by decreasing energy")
    axes[1].set_ylabel("cumulative energy fraction")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("2-D DCT spectrum of the digits (training set)")
    fig.tight_layout()
    save(fig, FIGURES[2])

    # Band-limited noise.
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(curves)
    for i, (name, c) in enumerate(curves.items()):
        x = np.arange(len(band_names)) + (i - (len(curves) - 1) / 2) * width
        ax.bar(x, c["bands"].mean(0), width, yerr=c["bands"].std(0), color=colors[name], label=labels[name],
               capsize=3)
    sizes = [len(d["bands"][b]) for b in band_names]
    ax.set_xticks(np.arange(len(band_names)), [f"{b}\n({s} freq.)" for b, s in zip(band_names, sizes)])
    lo = min(c["bands"].min() for c in curves.values())
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"noise in one DCT band, power of white noise with sigma {args.band_sigma:g}\n{title}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save(fig, FIGURES[3])

    # Lipschitz bounds, per-layer norms, and the upper bound along each learning-rate grid.
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    names = list(curves)
    for i, name in enumerate(names):
        c = curves[name]
        for j, (key, marker) in enumerate((("upper", "v"), ("lower", "^"))):
            v = c[key]
            xs = np.full(v.shape, i + (j - 0.5) * 0.25)
            axes[0].scatter(xs, v, marker=marker, color=colors[name], alpha=0.6, s=18)
            axes[0].errorbar(xs[0], v.mean(), yerr=v.std(), fmt="_", color="k", capsize=4, ms=14)
        layers = np.arange(c["layer_norms"].shape[1])
        axes[1].errorbar(layers, c["layer_norms"].mean(0), yerr=c["layer_norms"].std(0), color=colors[name],
                         marker="o", capsize=3, label=f"{labels[name]} spectral")
        axes[1].errorbar(layers, c["frobenius"].mean(0), yerr=c["frobenius"].std(0), color=colors[name],
                         marker="s", ls="--", capsize=3, label=f"{labels[name]} Frobenius")
        r = res[name]
        # Grid points that failed to train (validation accuracy at chance level) are left out.
        pts = [(lr, u, v) for lr, u, v in zip(r["lr_grid"], r["lipschitz_upper_per_lr"]["mean"],
                                              r["val_accuracy_per_lr"]["mean"]) if None not in (u, v) and v >= 0.5]
        axes[2].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[name], label=labels[name])
        for lr, u, v in pts:
            if lr == r["lr"]:
                axes[2].plot([lr], [u], marker="*", ms=15, color=colors[name])
            axes[2].annotate(f"{v:.3f}", (lr, u), textcoords="offset points", xytext=(0, 6 if i % 2 else -11),
                             fontsize=6, ha="center", color=colors[name])
    axes[0].scatter([], [], marker="v", color="gray", label="upper: prod of layer spectral norms")
    axes[0].scatter([], [], marker="^", color="gray", label="lower: max ||grad margin|| / sqrt2 (test set)")
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)
    axes[0].set_xticks(np.arange(len(names)), [labels[n] for n in names])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("l2 Lipschitz constant of the logits")
    axes[0].set_title("bounds at the chosen learning rate, per seed")
    axes[0].grid(alpha=0.3, axis="y")
    axes[1].set_xticks(layers, [f"layer {k + 1}" for k in layers])
    axes[1].set_ylabel("weight norm")
    axes[1].set_title("per-layer weight norms")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("learning rate")
    axes[2].set_ylabel("Lipschitz upper bound (mean over seeds)")
    axes[2].set_title("along the grid (labels: validation accuracy; * chosen; failed runs left out)", fontsize=9)
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, FIGURES[4])


if __name__ == "__main__":
    sys.exit(main())
