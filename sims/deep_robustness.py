"""Robustness of small networks trained with GD, Adam and RMSProp on the digits, at every learning rate.

    python sims/deep_robustness.py                # the defaults, into results/ (see the README for the time)
    python sims/deep_robustness.py --out figures  # refresh the committed figures and deep_summary.json
    python sims/deep_robustness.py --arch cnn     # a small CNN instead of the MLP (much slower on CPU)

Trains each optimizer (GD on mini-batches, Adam, RMSProp) at every learning
rate of its list over several seeds, measures clean accuracy and every
robustness metric per rate with intervals, and states whether "A is more
robust than B" holds at matched clean accuracy (:mod:`sims.deep.study`).
Seed ``i`` uses ``fold_in(key(seed), i)``; the evaluation draws (noise, PGD
starts, power iteration) use ``fold_in(key(seed), 2^31 - 1)``. Writes
``deep_summary.json`` and ``deep_*.png`` to ``--out`` and prints the tables.
Ma, Pan and Farahmand, TMLR 2023, section 5.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence

from sims.common import cli
from sims.deep import study
from sims.deep.networks import ARCHS
from sims.deep.training import OPTIMIZERS

PROG = "deep_robustness.py"
SUMMARY = "deep_summary.json"
C = study.Config


def _list(kind):
    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list")
        return tuple(kind(p) for p in parts)
    return parse


def build_parser() -> cli.Parser:
    p = cli.Parser(prog=PROG, description="Noise, PGD and Lipschitz robustness of small networks trained with "
                   "mini-batch GD, Adam and RMSProp on scikit-learn's 8x8 digits, at every learning rate of a list.")
    a = p.add_argument
    g = lambda v: ",".join(f"{x:g}" for x in v)
    a("--arch", choices=ARCHS, default=C.arch, help=f"mlp, or a small cnn (slower) (default: {C.arch})")
    a("--widths", type=_list(cli.positive_int), default=None, help="hidden widths (mlp) or conv channels (cnn) "
      "(default: " + "; ".join(f"{g(v)} for {k}" for k, v in study.DEFAULT_WIDTHS.items()) + ")")
    cli.add_optimizer_flags(p, OPTIMIZERS, hparams=False)
    a("--momentum", type=cli.nonnegative_float, default=C.momentum,
      help=f"GD heavy-ball momentum in [0, 1) (default: {C.momentum:g})")
    a("--lrs", action="append", default=[], metavar="OPT=LR,LR,...", help="learning rates of one optimizer "
      "(repeatable); defaults: " + "; ".join(f"{k} {g(v)}" for k, v in study.LRS.items())
      + " (gd's times 1 - momentum)")
    a("--epochs", type=cli.positive_int, default=C.epochs, help=f"training epochs (default: {C.epochs})")
    a("--batch-size", type=cli.positive_int, default=C.batch_size, help=f"mini-batch size (default: {C.batch_size})")
    cli.add_seed_flags(p, C.seeds)
    a("--split-seed", type=cli.nonnegative_int, default=C.split_seed, help="seed of the 60/20/20 split (default: 0)")
    a("--noise-sigmas", type=_list(cli.positive_float), default=C.noise_sigmas,
      help=f"per-pixel sigmas of Gaussian noise (default: {g(C.noise_sigmas)})")
    a("--noise-draws", type=cli.positive_int, default=C.noise_draws, help=f"draws per image (default: {C.noise_draws})")
    a("--l2-radii", type=_list(cli.positive_float), default=C.l2_radii, help=f"l2 PGD radii (default: {g(C.l2_radii)})")
    a("--linf-radii", type=_list(cli.positive_float), default=C.linf_radii,
      help=f"l_inf PGD radii (default: {g(C.linf_radii)})")
    a("--pgd-steps", type=cli.positive_int, default=C.pgd_steps,
      help=f"PGD steps T; T/2 steps is the convergence check (default: {C.pgd_steps})")
    a("--pgd-step-frac", type=cli.positive_float, default=C.pgd_step_frac,
      help=f"PGD step = frac * radius (default: {C.pgd_step_frac:g})")
    a("--pgd-tol", type=cli.nonnegative_float, default=C.pgd_tol, help="largest accuracy change allowed from T/2 to "
      f"T steps (default: {C.pgd_tol:g})")
    a("--lowpass", choices=("energy", "block"), default=C.lowpass, help="frequencies kept: the top --keep-energy of "
      f"the energy, or the --block x --block lowest (default: {C.lowpass})")
    a("--keep-energy", type=cli.positive_float, default=C.keep_energy,
      help=f"energy kept, in (0, 1] (default: {C.keep_energy:g})")
    a("--block", type=cli.positive_int, default=C.block,
      help=f"side of the low-frequency block, 1-8 (default: {C.block})")
    a("--band-sigma", type=cli.positive_float, default=C.band_sigma, help="band-noise power as a white-noise sigma "
      f"(default: {C.band_sigma:g})")
    a("--power-iters", type=cli.positive_int, default=C.power_iters, help="power iterations per layer, the check of "
      f"the SVD norms (default: {C.power_iters})")
    a("--resamples", type=cli.positive_int, default=C.resamples, help=f"bootstrap resamples (default: {C.resamples})")
    cli.add_output_flags(p, SUMMARY, x64=True)
    return p


def validate(args) -> None:
    """Builds ``args.config`` and checks it, resources included; raises :class:`cli.UsageError` naming the flag."""
    from sims.deep.digits import load_split

    try:
        widths = study.DEFAULT_WIDTHS[args.arch] if args.widths is None else args.widths
        lrs = study.parse_lrs(args.lrs, args.optimizers, args.momentum)
        config = cli.config_from(study.Config, args, widths=tuple(widths), lrs=lrs)
        study.check_config(config)
    except ValueError as err:
        raise cli.UsageError(str(err)) from None
    cli.check_out_dir(args.out)
    try:
        data = load_split(config.split_seed)
    except ImportError:
        raise cli.UsageError("the digits need scikit-learn: pip install -e '.[deep]'") from None
    n_train, n_test = data.train.x.shape[0], data.test.x.shape[0]
    if config.batch_size > n_train:
        raise cli.UsageError(f"--batch-size: must be at most the {n_train} training images")
    for e in study.estimates(config, n_train, n_test):
        cli.require_fits(e.flag, e.bytes, e.what)
        cli.require_time(e.flag, e.seconds, e.what)
    args.config = config


def run(args, t_start: float) -> int:
    from sims.deep import report

    cli.stage("each optimizer's first stages include compilation", args.quiet)
    stages = 6 * len(args.config.optimizers) + 2
    with cli.Progress("study", stages, args.quiet, unit="stage") as bar:
        started = []

        def tick(message: str) -> None:  # a stage starts: the previous one is done
            bar.update(1 if started else 0)
            started.append(message)
            bar.bar.set_postfix_str(message, refresh=False)

        result = study.run_study(args.config, tick)
        bar.update(stages - bar.done)
    print(report.table(result.summary))
    with cli.OutputSet(args.out) as outputs:
        if not args.no_plots:
            cli.stage("drawing the figures", args.quiet)
            from sims.common.plotting import save_figure
            from sims.deep.figures import FILES, plot_all
            plot_all(result, outputs.path, save_figure)
            assert all(f in outputs.files for f in FILES)
        result.summary["timing"].update(total_s=time.perf_counter() - t_start, cpus=os.cpu_count())
        result.summary["files"] = outputs.files + [SUMMARY]
        cli.write_json(outputs.path(SUMMARY), result.summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


if __name__ == "__main__":
    cli.exit(main())
