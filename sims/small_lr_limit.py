"""How fast the discrete optimizers approach their small-learning-rate limits.

    python sims/small_lr_limit.py            # both problems, both gradient modes
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

import sys
import time
from typing import Optional, Sequence

from sims.common import cli
from sims.linear import limits_study as study

PROG = "small_lr_limit.py"
SUMMARY = "small_lr_limit.json"
FIGURE = "small_lr_limit.png"
DEFAULTS = study.StudyConfig()
MAX_STEPS = 1e8  # engine steps in all: about 10 minutes on 2 cores


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="signGD, Adam, RMSProp and GD against their small-learning-rate limits (sign flow, "
        "fixed-c ODEs, online averaged ODEs; THEORY.md section 8): |discrete - limit| against lr, "
        "with fitted slopes.",
    )
    a = p.add_argument
    a("--lrs", type=cli.float_list, default=DEFAULTS.lrs,
      help="learning rates, comma list (default: " + ",".join(f"{x:g}" for x in DEFAULTS.lrs) + ")")
    a("--tau", type=cli.float_list, default=DEFAULTS.tau,
      help="horizon tau = lr t, one per problem of --problems or one for all; the irrelevant error must have "
      "settled by tau / 2 (default: " + ",".join(f"{t:g}" for t in DEFAULTS.tau) + ")")
    a("--seeds", type=cli.positive_int, default=DEFAULTS.seeds,
      help=f"online seeds (default: {DEFAULTS.seeds}; the engine pads to 16 anyway)")
    a("--seed", type=cli.nonnegative_int, default=0, help="base seed (default: 0)")
    a("--batch-size", type=cli.positive_int, default=DEFAULTS.batch_size,
      help=f"online batch n (default: {DEFAULTS.batch_size})")
    a("--problems", type=cli.name_list(study.PROBLEMS), default=study.PROBLEMS,
      help=f"comma list from {','.join(study.PROBLEMS)} (default: both)")
    a("--modes", type=cli.name_list(study.MODES), default=study.MODES,
      help=f"comma list from {','.join(study.MODES)} (default: both)")
    a("--optimizers", type=cli.name_list(study.OPTIMIZERS), default=study.OPTIMIZERS,
      help=f"comma list from {','.join(study.OPTIMIZERS)} (default: all; GD runs in population mode only)")
    a("--out", default=cli.DEFAULT_OUT, help=f"output folder (default: {cli.DEFAULT_OUT}/; "
      "the README's figure is refreshed with --out figures)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no stage lines on stderr")
    return p


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
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
    steps = sum(t / lr for t in args.tau for lr in lrs) * len(args.modes)
    if steps > MAX_STEPS:
        raise cli.UsageError(f"--tau: {steps:.3g} engine steps in all, more than {MAX_STEPS:.0e} "
                             "(about 10 minutes on 2 cores); raise the smallest --lrs or lower --tau")
    if "online" in args.modes and args.optimizers == ("gd",):
        raise cli.UsageError("--optimizers: GD alone has nothing to compare in online mode")
    cli.check_out_dir(args.out)


def config_dict(args) -> dict:
    return {"lrs": list(args.lrs), "tau": list(args.tau), "seeds": args.seeds, "seed": args.seed,
            "batch_size": args.batch_size, "problems": list(args.problems), "modes": list(args.modes),
            "optimizers": list(args.optimizers), "c1_adam": study.C1_ADAM, "c2_adam": study.C2_ADAM,
            "c2_rmsprop": study.C2_RMSPROP, "powerlaw": study.POWERLAW, "dtype": "float64",
            **cli.environment()}


def run(args, t_start: float) -> int:
    config = study.StudyConfig(tuple(args.lrs), tuple(args.tau), args.seeds, args.seed, args.batch_size,
                               tuple(args.problems), tuple(args.modes), tuple(args.optimizers))
    results = study.run_study(config, progress=lambda msg: cli.stage(msg, args.quiet))
    t_study = time.perf_counter() - t_start
    summary = {"config": config_dict(args), "results": results}
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
