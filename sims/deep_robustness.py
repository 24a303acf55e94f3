"""Robustness of small networks trained with SGD, Adam and RMSProp on the digits, at every learning rate.

    python sims/deep_robustness.py                # the defaults, into results/ (see the README for the time)
    python sims/deep_robustness.py --out figures  # refresh the committed figures and deep_summary.json
    python sims/deep_robustness.py --arch cnn     # a small CNN instead of the MLP (much slower on CPU)

Trains each optimizer at every learning rate of its grid over several seeds,
measures clean accuracy and every robustness metric per rate with intervals,
and states whether "A is more robust than B" holds at matched clean accuracy
(:mod:`sims.deep.study`). Writes ``deep_summary.json`` and ``deep_*.png`` to
``--out`` and prints the tables. Ma, Pan and Farahmand, TMLR 2023, section 5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from sims.common import cli
from sims.deep.networks import ARCHS, Architecture, check_architecture
from sims.deep.study import DEFAULT_WIDTHS, LR_GRIDS, StudyConfig, estimates
from sims.deep.training import OPTIMIZERS

PROG = "deep_robustness.py"
SUMMARY = "deep_summary.json"
D = StudyConfig()
MAX_LRS = 64  # per grid: more is a typo, not a study
MAX_POWER_ITERS = 10**5


def _list(kind):
    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list")
        return tuple(kind(p) for p in parts)
    return parse


def build_parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description="Noise, PGD and Lipschitz robustness of small networks trained with SGD, "
                   "Adam and RMSProp on scikit-learn's 8x8 digits, at every learning rate of a grid.")
    a = p.add_argument
    g = lambda v: ",".join(f"{x:g}" for x in v)
    a("--arch", choices=ARCHS, default="mlp", help="mlp, or a small cnn (slower) (default: mlp)")
    a("--widths", type=_list(cli.positive_int), default=None, help="hidden widths (mlp) or conv channels (cnn) "
      "(default: 128,128 for mlp, 16,32 for cnn)")
    a("--optimizers", type=cli.name_list(OPTIMIZERS), default=OPTIMIZERS, help="comma list (default: all)")
    a("--momentum", type=cli.nonnegative_float, default=0.0, help="SGD heavy-ball momentum in [0, 1) (default: 0)")
    a("--lr-grid", action="append", default=[], metavar="OPT=LR,LR,...", help="learning-rate grid of one optimizer "
      "(repeatable); defaults: " + "; ".join(f"{k} {g(v)}" for k, v in LR_GRIDS.items()) + " (sgd's times 1 - momentum)")
    a("--epochs", type=cli.positive_int, default=D.epochs, help=f"training epochs (default: {D.epochs})")
    a("--batch-size", type=cli.positive_int, default=D.batch_size, help=f"mini-batch size (default: {D.batch_size})")
    a("--seeds", type=cli.positive_int, default=D.seeds, help=f"training seeds, vmapped (default: {D.seeds})")
    a("--seed", type=cli.nonnegative_int, default=0, help="base seed: seed i uses fold_in(key(seed), i); evaluation "
      "draws use fold_in(key(seed), 2^31 - 1) (default: 0)")
    a("--split-seed", type=cli.nonnegative_int, default=0, help="seed of the 60/20/20 split (default: 0)")
    a("--noise-sigmas", type=_list(cli.positive_float), default=D.noise_sigmas,
      help=f"per-pixel sigmas of Gaussian noise (default: {g(D.noise_sigmas)})")
    a("--noise-draws", type=cli.positive_int, default=D.noise_draws, help=f"draws per image (default: {D.noise_draws})")
    a("--l2-radii", type=_list(cli.positive_float), default=D.l2_radii, help=f"l2 PGD radii (default: {g(D.l2_radii)})")
    a("--linf-radii", type=_list(cli.positive_float), default=D.linf_radii, help=f"l_inf radii (default: {g(D.linf_radii)})")
    a("--pgd-steps", type=cli.positive_int, default=D.pgd_steps,
      help=f"PGD steps T; T/2 steps is the convergence check (default: {D.pgd_steps})")
    a("--pgd-step-frac", type=cli.positive_float, default=D.pgd_step_frac, help="step = frac * eps (default: 0.25)")
    a("--pgd-tol", type=cli.nonnegative_float, default=D.pgd_tol, help="largest accuracy change allowed from T/2 to "
      "T steps (default: 0.01)")
    a("--lowpass", choices=("energy", "block"), default="energy", help="frequencies kept: the top --keep-energy of "
      "the energy, or the --block x --block lowest (default: energy)")
    a("--keep-energy", type=cli.positive_float, default=D.keep_energy, help="energy kept, in (0, 1] (default: 0.9)")
    a("--block", type=cli.positive_int, default=D.block, help="side of the low-frequency block, 1-8 (default: 4)")
    a("--band-sigma", type=cli.positive_float, default=D.band_sigma, help="band-noise power as a white-noise sigma "
      "(default: 0.3)")
    a("--power-iters", type=cli.positive_int, default=D.power_iters, help="power iterations per layer, the check of "
      f"the SVD norms (default: {D.power_iters})")
    a("--resamples", type=cli.positive_int, default=D.resamples, help=f"bootstrap resamples (default: {D.resamples})")
    a("--out", default=cli.DEFAULT_OUT, help=f"output folder (default: {cli.DEFAULT_OUT}/)")
    a("--x64", action="store_true", help="compute in float64 (default: float32)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no progress")
    return p


def parse_lr_grids(items: Sequence[str], optimizers: Sequence[str], momentum: float) -> tuple:
    """``["adam=1e-3,1e-2"]`` -> ``((name, grid), ...)``, the defaults elsewhere; validated."""
    grids = {n: LR_GRIDS[n] for n in optimizers}
    if "sgd" in grids:
        grids["sgd"] = tuple(float(f"{v * (1 - momentum):.6g}") for v in grids["sgd"])
    seen = set()
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in optimizers or name in seen:
            why = ("is not of the form OPT=LR,LR,..." if not sep else "names an optimizer not in --optimizers"
                   if name not in optimizers else "gives an optimizer twice")
            raise cli.UsageError(f"--lr-grid: {item!r} {why}")
        seen.add(name)
        try:
            grid = _list(cli.positive_float)(values)
        except argparse.ArgumentTypeError as err:
            raise cli.UsageError(f"--lr-grid: {item!r}: {err}") from None
        if len(set(grid)) != len(grid) or len(grid) > MAX_LRS:
            raise cli.UsageError(f"--lr-grid: {item!r} repeats a value or has more than {MAX_LRS}")
        grids[name] = tuple(sorted(grid))
    return tuple((n, grids[n]) for n in optimizers)


def validate(args) -> None:
    """Builds ``args.config`` and checks it, resources included; raises :class:`cli.UsageError` naming the flag."""
    from sims.deep.digits import SIDE, load_split

    checks = [(args.momentum >= 1, "--momentum: must be in [0, 1)"), (args.keep_energy > 1, "--keep-energy: must be "
              "in (0, 1]"), (args.block > SIDE, f"--block: must be at most {SIDE}"), (args.pgd_steps < 2, "--pgd-steps:"
              " must be >= 2 (T/2 steps is the convergence check)"), (args.pgd_step_frac > 2, "--pgd-step-frac: must "
              "be in (0, 2]"), (args.pgd_tol > 1, "--pgd-tol: an accuracy change is at most 1"),
              (args.power_iters > MAX_POWER_ITERS, f"--power-iters: at most {MAX_POWER_ITERS} (the check of the SVD "
               "norms; its error falls like (s2/s1)^(4 iters))")]
    for bad, message in checks:
        if bad:
            raise cli.UsageError(message)
    widths = DEFAULT_WIDTHS[args.arch] if args.widths is None else args.widths
    try:
        check_architecture(Architecture(args.arch, widths))
    except ValueError as err:
        raise cli.UsageError(f"--widths: {err}") from None
    cli.check_out_dir(args.out)
    try:
        data = load_split(args.split_seed)
    except ImportError:
        raise cli.UsageError("the digits need scikit-learn: pip install -e '.[deep]'") from None
    n_train, n_test = data.train.x.shape[0], data.test.x.shape[0]
    if args.batch_size > n_train:
        raise cli.UsageError(f"--batch-size: must be at most the {n_train} training images")
    args.config = StudyConfig(args.arch, tuple(widths), tuple(args.optimizers), args.momentum,
                              parse_lr_grids(args.lr_grid, args.optimizers, args.momentum), args.epochs,
                              args.batch_size, args.seeds, args.seed, args.split_seed, tuple(args.noise_sigmas),
                              args.noise_draws, tuple(args.l2_radii), tuple(args.linf_radii), args.pgd_steps,
                              args.pgd_step_frac, args.pgd_tol, args.lowpass, args.keep_energy, args.block,
                              args.band_sigma, args.power_iters, args.resamples, args.x64)
    for e in estimates(args.config, n_train, n_test):
        cli.require_fits(e.flag, e.bytes, e.what)
        cli.require_time(e.flag, e.seconds, e.what)


def run(args, t_start: float) -> int:
    import jax.numpy as jnp

    from sims.deep import report
    from sims.deep.digits import load_split
    from sims.deep.study import run_study

    cli.stage("loading the digits; the first stage includes compilation", args.quiet)
    data = load_split(args.split_seed, dtype=jnp.float64 if args.x64 else jnp.float32)
    stages = 6 * len(args.config.optimizers) + 1
    with cli.Progress("study", stages, args.quiet, unit="stage") as bar:
        started = []

        def tick(message: str) -> None:  # a stage starts: the previous one is done
            bar.update(1 if started else 0)
            started.append(message)
            bar.bar.set_postfix_str(message, refresh=False)

        result = run_study(args.config, data, tick)
        bar.update(stages - bar.done)
    print(report.table(result.summary))
    with cli.OutputSet(args.out) as outputs:
        if not args.no_plots:
            cli.stage("drawing the figures", args.quiet)
            from sims.deep.figures import FILES, plot_all
            from sims.common.plotting import save_figure
            plot_all(result, outputs.path, save_figure)
            assert all(f in outputs.files for f in FILES)
        result.summary["timing"]["total_s"] = time.perf_counter() - t_start
        result.summary["timing"]["cpus"] = os.cpu_count()
        result.summary["config"].update(cli.environment())
        result.summary["files"] = outputs.files + [SUMMARY]
        cli.write_json(outputs.path(SUMMARY), result.summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


if __name__ == "__main__":
    cli.exit(main())
