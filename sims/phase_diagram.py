"""Phase diagram of population signGD in d = 3 over ``q = sigma_1^2 / sigma_0^2`` and ``lr``.

    python sims/phase_diagram.py              # 64 x 64 grid, the paper's w~* and w~(0)
    python sims/phase_diagram.py --help

Every cell is iterated exactly in float64 until it has settled, all cells in
one compiled program, and its final irrelevant error ``e~_2`` is compared with
the sign flow (THEORY.md section 8.1), which predicts every cell, ``q > 1/3``
included; the l2 adversarial risk is compared with GD's at equal standard
risk. The study is :mod:`sims.linear.phase_study`. Writes ``phase_summary.json``,
``phase_diagram.png`` and ``phase_slices.png`` to ``--out`` and prints a
table. Ma, Pan and Farahmand, TMLR 2023 (arXiv:2308.06703), section 4.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Optional, Sequence

import jax
import numpy as np

from sims.common import cli
from sims.linear import phase_study as study
from theory.phase_bounds import settle_bound
from theory.signal import Problem

PROG = "phase_diagram.py"
SUMMARY = "phase_summary.json"
FIGURES = ("phase_diagram.png", "phase_slices.png")
PAPER = study.PAPER
MAX_CELL_STEPS = 1e10  # ~50M cell-steps/s on 2 CPU cores: a few minutes
#: Memory per cell, host and device together: the cell's model, carry and
#: observations, its sign flow, the summary arrays and figure data
#: (measured: about 2.5 KB at 4096 cells; doubled for headroom).
BYTES_PER_CELL = 5_000
MAX_SCALES = 6  # one figure row each


# --- command line -------------------------------------------------------------------------------


def _range(text: str) -> tuple[float, float]:
    """``MIN,MAX`` with ``0 < MIN < MAX`` (argparse ``type``)."""
    values = cli.float_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form MIN,MAX")
    lo, hi = values
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"{text!r}: needs 0 < MIN < MAX")
    return lo, hi


def _grid_shape(text: str) -> tuple[int, int]:
    """``NQ,NLR``, each an integer >= 2 (the log-spaced cell edges need two points)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form NQ,NLR")
    values = tuple(cli.positive_int(p) for p in parts)
    if min(values) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each size must be >= 2")
    return values


def _vector3(text: str) -> tuple[float, float, float]:
    values = cli.float_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} has {len(values)} entries; d = 3 needs 3")
    return values


def _scales(text: str) -> tuple[float, ...]:
    values = cli.float_list(text)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value")
    if len(values) > MAX_SCALES:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SCALES} values (one figure row each)")
    return values


def _fraction(text: str) -> float:
    value = cli.positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be < 1")
    return value


def _horizon(text: str) -> float:
    value = cli.finite_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="Phase diagram of population signGD in d = 3 over q = sigma_1^2/sigma_0^2 and the learning "
        "rate: the final irrelevant error e~_2 against the sign flow's prediction, and the l2 "
        "adversarial-risk gap to GD. The whole grid runs as one compiled program, in float64.",
    )
    a = p.add_argument
    a("--ratios", type=_range, default=(0.01, 1.0), metavar="MIN,MAX",
      help="range of q = sigma_1^2/sigma_0^2, log-spaced (default: 0.01,1)")
    a("--lrs", type=_range, default=(1e-3, 0.1), metavar="MIN,MAX",
      help="range of the learning rate lr, log-spaced (default: 0.001,0.1; the paper's 0.01 is inside)")
    a("--grid", type=_grid_shape, default=(64, 64), metavar="NQ,NLR", help="grid size (default: 64,64)")
    a("--sigma0", type=cli.positive_float, default=PAPER["sigma0"],
      help="sigma_0, standard deviation of frequency 0; sigma_1 = sigma_0 sqrt(q) (default: 0.1)")
    a("--w-star", type=_vector3, default=PAPER["w_star"], help="target w~* in frequency coordinates (default: 5,10,0)")
    a("--w0", type=_vector3, default=PAPER["w0"],
      help="initial w~(0) in frequency coordinates (default: 0.01,-0.01,0.02)")
    a("--init-scale", type=_scales, default=(1.0,), metavar="S[,S...]",
      help=f"factors multiplying --w0, one grid (and figure row) each, at most {MAX_SCALES} (default: 1)")
    a("--radius", type=cli.nonnegative_float, default=math.sqrt(2.0), help="l2 adversary budget (default: sqrt(2))")
    a("--tol", type=_fraction, default=0.1,
      help="relative-error tolerance of the sign flow's drift, in (0, 1) (default: 0.1)")
    a("--horizon", type=_horizon, default=1.25,
      help="each cell runs to ceil(HORIZON * b) steps, b = sqrt3 |e~_0(0)|/lr + |e~_1(0)|/(sqrt2 lr) + 2 the "
      "step by which it has settled; >= 1 (default: 1.25)")
    a("--out", default=cli.DEFAULT_OUT,
      help=f"output folder for {SUMMARY} and phase_*.png (default: {cli.DEFAULT_OUT}/; "
      "the README's figures are refreshed with --out figures)")
    a("--no-plots", action="store_true", help=f"write {SUMMARY} only")
    a("--quiet", action="store_true", help="no progress or 'wrote ...' lines on stderr")
    return p


def validate(args) -> None:
    """Cross-flag checks; raises :class:`cli.UsageError` naming the flag."""
    q_hi, lr_hi = args.ratios[1], args.lrs[1]
    top = lr_hi * args.sigma0**2 * max(1.0, q_hi)
    if top >= 2:
        raise cli.UsageError(f"--lrs: GD is unstable at lr = {lr_hi:g} (lr * max(sigma^2) = {top:.3g} >= 2), "
                             "so the risk gap to GD is undefined; lower MAX or --sigma0")
    cell_steps = _max_steps(args) * args.grid[0] * args.grid[1] * len(args.init_scale)
    if cell_steps > MAX_CELL_STEPS:
        raise cli.UsageError(f"--grid/--lrs: the grid needs about {cell_steps:.2g} cell-steps "
                             f"(> {MAX_CELL_STEPS:.0e}, minutes of CPU); raise the smallest lr or shrink the grid")
    cells = args.grid[0] * args.grid[1] * len(args.init_scale)
    cli.require_fits("--grid", cells * BYTES_PER_CELL, f"a grid of {cells} cells")
    cli.check_out_dir(args.out)


def _max_steps(args) -> float:
    """The largest per-cell horizon: :func:`settle_bound` at the smallest ``lr``."""
    w0 = np.outer(args.init_scale, args.w0)
    with jax.enable_x64(True):
        bound = np.asarray(settle_bound(Problem(np.zeros_like(w0), np.broadcast_to(args.w_star, w0.shape), w0),
                                        args.lrs[0]))
    return float(bound.max()) * args.horizon


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


def config_dict(args) -> dict:
    return {
        "ratios": list(args.ratios), "lrs": list(args.lrs), "grid": list(args.grid), "sigma0": args.sigma0,
        "w_star_freq": list(args.w_star), "w0_freq": list(args.w0), "init_scales": list(args.init_scale),
        "radius": args.radius, "tol": args.tol, "horizon": args.horizon, "dtype": "float64",
        "gradient": "population", "spacing": "log", "flow_events": study.FLOW_EVENTS, **cli.environment(),
    }


def run(args, t_start: float) -> int:
    grid = study.make_grid(args.ratios, args.lrs, args.grid, args.init_scale)
    cli.stage(f"compiling and running {grid.q.size * grid.lr.size * len(grid.scales)} cells and their sign flows "
              "(float64)", args.quiet)
    res = study.simulate(grid, args.sigma0, args.w_star, args.w0, args.horizon, args.radius)
    summary = {"config": config_dict(args), **study.summarize(res, grid, args.radius, args.tol),
               "slice_paper_lr": study.paper_lr_slice(res.cells, grid)}
    g = summary["grid"]
    print(f"phase diagram: {args.grid[0]} x {args.grid[1]} cells x {len(grid.scales)} init scale(s), q in "
          f"[{g['q'][0]:g}, {g['q'][-1]:g}], lr in [{g['lr'][0]:g}, {g['lr'][-1]:g}], sigma_0 = {args.sigma0:g}, "
          f"population signGD in float64, up to {g['max_steps']} steps")
    cli.print_rows(study.table_rows(summary))
    print("\n".join(study.table_notes(summary)))
    with cli.OutputSet(args.out) as outputs:
        t_plot = time.perf_counter()
        if not args.no_plots:
            cli.stage("plotting", args.quiet)
            study.plot_phase_diagram(outputs.path(FIGURES[0]), grid, res.cells, args.tol, args.radius, args.sigma0)
            study.plot_slices(outputs.path(FIGURES[1]), grid, res.cells, args.sigma0)
        summary["timing"] = {"flow_s": res.flow_s, "compile_s": res.compile_s, "grid_s": res.run_s,
                             "plots_s": time.perf_counter() - t_plot, "total_s": time.perf_counter() - t_start}
        summary_path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(summary_path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


if __name__ == "__main__":
    cli.exit(main())
