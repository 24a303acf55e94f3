"""How fast the discrete optimizers approach their small-learning-rate limits.

    python sims/small_lr_limit.py            # both problems, both gradient sources
    python sims/small_lr_limit.py --help

Runs signGD, Adam, RMSProp and GD at several learning rates to the same time
``tau = lr t`` and compares the final error with the sign flow, the
fixed-``c`` ODEs and the online averaged ODEs (THEORY.md section 8), on the
paper's setting and on a power-law spectrum in d = 8. Writes
``small_lr_limit.png`` and ``small_lr_limit.json`` to ``--out`` and prints
the fitted slopes of ``log |discrete - limit|`` against ``log lr``. The study
is :mod:`sims.linear.limits_study`.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from sims.common import cli
from sims.linear import limits_study as study

PROG = "small_lr_limit.py"
SUMMARY = "small_lr_limit.json"
FIGURE = "small_lr_limit.png"
C = study.Config
MAX_STEPS = 1e8  # engine steps in all: about 10 minutes on 2 cores


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="signGD, Adam, RMSProp and GD against their small-learning-rate limits (sign flow, "
        "fixed-c ODEs, online averaged ODEs; THEORY.md section 8): |discrete - limit| against lr, "
        "with fitted slopes. GD runs with the population gradient only.",
    )
    a = p.add_argument
    a("--lrs", type=cli.float_list, default=C.lrs,
      help="learning rates, comma list (default: " + ",".join(f"{x:g}" for x in C.lrs) + ")")
    a("--tau", type=cli.float_list, default=C.tau,
      help="horizon tau = lr t, one per problem of --problems or one for all; the irrelevant error must have "
      "settled by tau / 2 (default: " + ",".join(f"{t:g}" for t in C.tau) + ")")
    cli.add_seed_flags(p, C.seeds)
    a("--batch-size", type=cli.positive_int, default=C.batch_size,
      help=f"samples per batch, for --gradients online (default: {C.batch_size})")
    a("--problems", type=cli.name_list(study.PROBLEMS), default=C.problems,
      help=f"comma list from {','.join(study.PROBLEMS)} (default: both)")
    a("--gradients", type=cli.name_list(study.GRADIENTS), default=C.gradients,
      help="gradient sources, comma list from " + ",".join(study.GRADIENTS) + " (default: both)")
    cli.add_optimizer_flags(p, study.OPTIMIZERS, hparams=False)
    cli.add_output_flags(p, SUMMARY, x64=False)
    return p


def validate(args) -> None:
    """Cross-flag checks, then ``args.config``; raises :class:`cli.UsageError` naming the flag."""
    lrs = args.lrs
    if len(lrs) < 2:
        raise cli.UsageError("--lrs: needs at least 2 learning rates to fit a slope")
    if len(set(lrs)) != len(lrs):
        raise cli.UsageError("--lrs: repeats a learning rate")
    if any(not 0 < lr <= 0.05 for lr in lrs):
        raise cli.UsageError("--lrs: each must be in (0, 0.05] (Adam's b1 = 1 - 10 lr must stay in [0.5, 1))")
    args.lrs = tuple(sorted(lrs, reverse=True))
    if len(args.tau) == 1:
        args.tau = args.tau * len(args.problems)
    if len(args.tau) != len(args.problems):
        raise cli.UsageError(f"--tau: has {len(args.tau)} values for {len(args.problems)} problems")
    if any(t <= 0 for t in args.tau):
        raise cli.UsageError("--tau: each must be > 0")
    if any(t / lr < 2 for t in args.tau for lr in lrs):
        raise cli.UsageError("--tau: needs tau / lr >= 2 steps at every learning rate")
    steps = sum(t / lr for t in args.tau for lr in lrs) * len(args.gradients)
    if steps > MAX_STEPS:
        raise cli.UsageError(f"--tau: {steps:.3g} engine steps in all, more than {MAX_STEPS:.0e} "
                             "(about 10 minutes on 2 cores); raise the smallest --lrs or lower --tau")
    if "online" in args.gradients and args.optimizers == ("gd",):
        raise cli.UsageError("--optimizers: GD alone has nothing to compare with the online gradient")
    cli.check_out_dir(args.out)
    args.config = cli.config_from(C, args)


def run(args, t_start: float) -> int:
    config = args.config
    results = study.run_study(config, progress=lambda msg: cli.stage(msg, args.quiet))
    t_study = time.perf_counter() - t_start
    summary = {"config": {**cli.config_json(config), **study.FIXED}, "results": results}
    cli.print_rows(study.table_rows(results))
    with cli.OutputSet(args.out) as outputs:
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            study.plot_study(outputs.path(FIGURE), results, config)
        summary["timing"] = {"study_s": t_study, "total_s": time.perf_counter() - t_start}
        path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


if __name__ == "__main__":
    cli.exit(main())
