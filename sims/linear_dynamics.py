"""Reproduces the paper's Figure 5: GD, signGD, Adam and RMSProp on the
three-dimensional signal model, simulated beside the closed forms.

    python sims/linear_dynamics.py            # the paper's setting
    python sims/linear_dynamics.py --help

Writes ``error_dynamics.png``, ``risks.png``, ``seeds.npz`` and
``summary.json`` to ``--out`` and prints a table of simulated against
predicted values. The study is :mod:`sims.linear.dynamics_study`.
Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), section 4 and Figure 5.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np

from sims.common import cli
from sims.common.optimizers import OPTIMIZERS
from sims.linear import dynamics_study as study
from sims.linear.oracles import GRADIENTS
from sims.linear.sampling import SAMPLERS
from sims.common.streams import FIRST_RESERVED

PROG = "linear_dynamics.py"
DEFAULTS = study.Config()


def _floats(v) -> str:
    return ",".join(f"{x:g}" for x in v)


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="GD, signGD, Adam and RMSProp on the paper's linear signal model (Figure 5), "
        "with the closed forms beside the simulation. Defaults are the paper's setting.",
    )
    a = p.add_argument
    a("--steps", type=cli.positive_int, default=DEFAULTS.steps, help=f"iterations (default: {DEFAULTS.steps})")
    a("--lr", type=cli.positive_float, default=DEFAULTS.lr,
      help=f"learning rate, shared by all optimizers (default: {DEFAULTS.lr:g})")
    cli.add_seed_flags(p, DEFAULTS.seeds)
    cli.add_gradient_flags(p, GRADIENTS, SAMPLERS, gradient=DEFAULTS.gradient, batch_size=DEFAULTS.batch_size)
    cli.add_optimizer_flags(p, OPTIMIZERS)
    a("--spectrum", type=cli.float_list, default=DEFAULTS.spectrum, help="standard deviations of the frequencies, "
      f"comma list; 0 marks an irrelevant one (default: {_floats(DEFAULTS.spectrum)})")
    a("--w-star", dest="w_star_freq", metavar="W_STAR", type=cli.float_list, default=DEFAULTS.w_star_freq,
      help=f"target w~* in frequency coordinates (default: {_floats(DEFAULTS.w_star_freq)})")
    a("--w0", dest="w0_freq", metavar="W0", type=cli.float_list, default=DEFAULTS.w0_freq,
      help=f"initial w~(0) in frequency coordinates (default: {_floats(DEFAULTS.w0_freq)})")
    a("--radius", type=cli.nonnegative_float, default=DEFAULTS.radius, help="l2 adversary budget (default: sqrt(2))")
    a("--record-points", type=cli.positive_int, default=DEFAULTS.record_points,
      help=f"log-spaced record steps (default: {DEFAULTS.record_points}); every step up to ~2 t2 is recorded as well")
    a("--test-samples", type=cli.positive_int, default=DEFAULTS.test_samples,
      help="fresh test samples for the empirical adversarial risk, whatever the number of seeds: sample j "
      f"attacks the (j mod K)-th kept seed (default: {DEFAULTS.test_samples})")
    a("--pgd-steps", type=cli.positive_int, default=DEFAULTS.pgd_steps,
      help=f"steps of the PGD attack (default: {DEFAULTS.pgd_steps})")
    cli.add_output_flags(p)
    return p


def validate(args) -> None:
    """Cross-flag checks, then ``args.config``; raises :class:`cli.UsageError` naming the flag."""
    d = len(args.spectrum)
    for flag, v in (("--w-star", args.w_star_freq), ("--w0", args.w0_freq)):
        if len(v) != d:
            raise cli.UsageError(f"{flag}: has {len(v)} entries but --spectrum has {d} (the dimension)")
    if any(s < 0 for s in args.spectrum):
        raise cli.UsageError("--spectrum: entries must be >= 0 (they are standard deviations)")
    if not any(s > 0 for s in args.spectrum):
        raise cli.UsageError("--spectrum: needs at least one relevant (non-zero) frequency; "
                             "with none there is nothing to learn and every risk is constant")
    cli.check_gradient_flags(args)
    if args.seeds > FIRST_RESERVED:
        raise cli.UsageError(f"--seeds: at most {FIRST_RESERVED} (higher indices are the test data's PRNG streams)")
    sampled = args.gradient != "population"
    config = cli.config_from(study.Config, args, hparams=study.full_hparams(
        args.optimizers, cli.parse_hparams(args.hparam, args.optimizers)), batch_size=args.batch_size if sampled
        else None, sampler=args.sampler if sampled else None)
    for flag, need, what in study.memory_estimates(config):
        cli.require_fits(flag, need, what)
    cli.require_time("--pgd-steps", study.attack_seconds(config),
                     f"PGD with {config.pgd_steps} steps on {config.test_samples} samples")
    cli.check_out_dir(args.out)
    args.config = config


def run(args, t_start: float) -> int:
    config = args.config
    result = study.run_study(config, args.quiet)
    summary = {"config": cli.config_json(config), **result.summary}
    cli.print_rows(study.table_rows(summary))
    notes = study.table_notes(summary)
    if notes:
        print("\n".join(notes))

    with cli.OutputSet(args.out) as outputs:
        t_plot = time.perf_counter()
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            study.plot_study(outputs.path("error_dynamics.png"), outputs.path("risks.png"), result, config)
        summary["timing"] = {**result.timing, "plots_s": 0.0 if args.no_plots else time.perf_counter() - t_plot,
                             "total_s": time.perf_counter() - t_start}
        stats = result.stats
        phases = {} if stats.phases is None else {f"signgd_{k}": v for k, v in stats.phases.items()}
        np.savez(outputs.path("seeds.npz"), names=np.array(stats.names), w_final=stats.w_final,
                 diverged=stats.diverged, **phases)
        summary_path = outputs.path("summary.json")
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


if __name__ == "__main__":
    cli.exit(main())
