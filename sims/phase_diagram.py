"""Phase diagram of population signGD in d = 3 over ``q = sigma_1^2 / sigma_0^2`` and ``lr``.

    python sims/phase_diagram.py              # 64 x 64 points, the paper's w~* and w~(0)
    python sims/phase_diagram.py --help

Every point is iterated exactly in float64 until it has settled, all points in
one compiled program, and its final irrelevant error ``e~_2`` is compared with
the sign flow (THEORY.md section 8.1), which predicts every point, ``q > 1/3``
included; the l2 adversarial risk is compared with GD's at equal standard
risk. The study is :mod:`sims.linear.phase_study` (figures:
:mod:`sims.linear.phase_figures`). Writes ``phase_summary.json``,
``phase_diagram.png`` and ``phase_slices.png`` to ``--out`` and prints a
table. Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), section 4.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Optional, Sequence

import numpy as np

from sims.common import cli
from sims.linear import phase_figures as figures
from sims.linear import phase_study as study
from theory.gd import gd_max_monotone_lr

PROG = "phase_diagram.py"
SUMMARY = "phase_summary.json"
FIGURES = ("phase_diagram.png", "phase_slices.png")
MAX_POINT_STEPS = 1e10  # ~50M point-steps/s on 2 CPU cores: a few minutes
MAX_STEPS = 2**31 - 1  # the step counter of theory.dynamics is int32
#: Memory per point, host and device together: the point's problem, carry and
#: observations, its sign flow, the summary arrays and figure data
#: (measured: about 2.5 KB at 4096 points; doubled for headroom).
BYTES_PER_POINT = 5_000
MAX_SCALES = 6  # one figure row each


def _checked(convert, ok, need: str):
    """An argparse ``type``: ``convert(text)``, refused with "needs ``need``" unless ``ok`` of it."""

    def parse(text: str):
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: needs {need}")
        return value

    return parse


_range = _checked(cli.float_list, lambda v: len(v) == 2 and 0 < v[0] < v[1], "MIN,MAX with 0 < MIN < MAX")
_shape = _checked(lambda text: tuple(cli.positive_int(p) for p in text.split(",")),
                  lambda v: len(v) == 2 and min(v) >= 2, "NQ,NLR, integers >= 2 (two points per axis)")
_vector3 = _checked(cli.float_list, lambda v: len(v) == 3, "3 comma-separated entries (d = 3)")
_scales = _checked(cli.float_list, lambda v: len(set(v)) == len(v) <= MAX_SCALES,
                   f"distinct values, at most {MAX_SCALES} (one figure row each)")
_fraction = _checked(cli.positive_float, lambda v: v < 1, "a value in (0, 1)")
_horizon = _checked(cli.finite_float, lambda v: v >= 1, "a value >= 1")


def build_parser() -> cli.Parser:
    d, csv = study.Config, lambda v: ",".join(f"{x:g}" for x in v)
    p = cli.Parser(prog=PROG, description="Phase diagram of population signGD in d = 3 over q = sigma_1^2/sigma_0^2 "
                   "and the learning rate: the final irrelevant error e~_2 against the sign flow's prediction, and "
                   "the l2 adversarial-risk gap to GD. All points run as one compiled program, in float64.")
    a = p.add_argument
    a("--q-range", type=_range, default=d.q_range, metavar="MIN,MAX",
      help=f"range of q = sigma_1^2/sigma_0^2, log-spaced (default: {csv(d.q_range)})")
    a("--lr-range", type=_range, default=d.lr_range, metavar="MIN,MAX",
      help=f"range of the learning rate, log-spaced (default: {csv(d.lr_range)}; the paper's 0.01 is inside)")
    a("--shape", type=_shape, default=d.shape, metavar="NQ,NLR",
      help=f"points along q and lr (default: {csv(d.shape)})")
    a("--sigma0", type=cli.positive_float, default=d.sigma0,
      help=f"sigma_0, standard deviation of frequency 0; sigma_1 = sigma_0 sqrt(q) (default: {d.sigma0:g})")
    a("--w-star", dest="w_star_freq", type=_vector3, default=d.w_star_freq, metavar="W0,W1,W2",
      help=f"target w~* in frequency coordinates (default: {csv(d.w_star_freq)})")
    a("--w0", dest="w0_freq", type=_vector3, default=d.w0_freq, metavar="W0,W1,W2",
      help=f"initial w~(0) in frequency coordinates (default: {csv(d.w0_freq)})")
    a("--w0-scales", type=_scales, default=d.w0_scales, metavar="S[,S...]",
      help=f"factors multiplying --w0, one diagram (and figure row) each, at most {MAX_SCALES} (default: 1)")
    a("--radius", type=cli.nonnegative_float, default=d.radius, help="l2 adversary budget (default: sqrt(2))")
    a("--tol", type=_fraction, default=d.tol,
      help=f"relative-error tolerance of the sign flow's drift, in (0, 1) (default: {d.tol:g})")
    a("--horizon", type=_horizon, default=d.horizon,
      help="each point runs to ceil(HORIZON * b) steps, b = sqrt3 |e~_0(0)|/lr + |e~_1(0)|/(sqrt2 lr) + 2 the "
      f"step by which it has settled; >= 1 (default: {d.horizon:g})")
    cli.add_output_flags(p, SUMMARY, x64=False)
    return p


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
    config = cli.config_from(study.Config, args)
    q_hi, lr_hi = config.q_range[1], config.lr_range[1]
    lr_gd = float(gd_max_monotone_lr(np.array([config.sigma0, config.sigma0 * math.sqrt(q_hi)])))
    if lr_hi >= lr_gd:
        raise cli.UsageError(f"--lr-range: GD's time to signGD's risk needs lr < 1 / max(sigma^2) = {lr_gd:.3g} "
                             f"(its error keeps its sign), got {lr_hi:g}; lower MAX or --sigma0")
    longest = study.max_point_steps(config)
    points = config.shape[0] * config.shape[1] * len(config.w0_scales)
    if longest * points > MAX_POINT_STEPS or longest > MAX_STEPS:
        raise cli.UsageError(f"--shape/--lr-range: {points} points of up to {longest:.2g} steps need about "
                             f"{longest * points:.2g} point-steps (limits: {MAX_POINT_STEPS:.0e} in all, minutes "
                             f"of CPU; {MAX_STEPS} per point); raise the smallest lr or shrink --shape")
    cli.require_fits("--shape", points * BYTES_PER_POINT, f"a diagram of {points} points")
    cli.check_out_dir(args.out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


def run(args, t_start: float) -> int:
    config = cli.config_from(study.Config, args)
    points = config.shape[0] * config.shape[1] * len(config.w0_scales)
    cli.stage(f"compiling and running {points} points and their sign flows (float64)", args.quiet)
    res = study.phase_diagram(config)
    summary = {"config": cli.config_json(config), **study.summarize(res, config)}
    print(study.headline(summary, config))
    cli.print_rows(study.table_rows(summary))
    print("\n".join(study.table_notes(summary)))
    with cli.OutputSet(args.out) as outputs:
        t_plot = time.perf_counter()
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            figures.plot_phase_diagram(outputs.path(FIGURES[0]), res, config)
            figures.plot_slices(outputs.path(FIGURES[1]), res, config)
        summary["timing"] = {"flow_s": res.flow_s, "compile_s": res.compile_s, "run_s": res.run_s,
                             "plots_s": time.perf_counter() - t_plot, "total_s": time.perf_counter() - t_start}
        summary_path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


if __name__ == "__main__":
    cli.exit(main())
