"""GD, signGD, Adam and RMSProp on a power-law signal in ``d`` dimensions.

    python sims/spectrum_sweep.py            # d = 64, alpha = 1, cutoff = 16
    python sims/spectrum_sweep.py --help

``sigma_k = sigma0 (k + 1)^-alpha`` for ``k < cutoff`` and 0 above: the
``d - cutoff`` high frequencies are irrelevant. Writes to ``--out``:

* ``spectrum_dynamics.png``: one point (``--dim``, ``--alpha``, ``--cutoff``)
  over ``--seeds``, with any ``--gradient``: ``||e~_I(t)||``, ``R_s(t)``,
  ``R_a(t)`` and the final ``|e~_k|``;
* ``spectrum_sweep.png``: the final ``||e~_I||``, ``||w||`` and ``R_a``
  against ``d - cutoff``, ``alpha`` and ``d``, over ``--targets`` drawn
  targets, population gradient;
* ``spectrum_summary.json``: the numbers.

Beside both, dashed, the small-learning-rate limits (THEORY.md 3 and 8) of the
dynamics run and of the sweep axes in ``--predict``. The study is
:mod:`sims.linear.sweep_study`, its figures :mod:`sims.linear.sweep_figures`.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from sims.common import cli
from sims.common.optimizers import OPTIMIZERS
from sims.linear import sweep_study as study
from sims.linear.oracles import GRADIENTS
from sims.linear.sampling import SAMPLERS

PROG = "spectrum_sweep.py"
SUMMARY = "spectrum_summary.json"
FIGURES = ("spectrum_dynamics.png", "spectrum_sweep.png")
MAX_DIM = 4096  # the DCT is a dense d x d product: d^2 work per step and problem
C = study.Config


def _list(xs) -> str:
    return ",".join(f"{x:g}" for x in xs)


def build_parser() -> cli.Parser:
    p = cli.Parser(
        prog=PROG,
        description="GD, signGD, Adam and RMSProp on a power-law spectrum sigma_k = sigma0 (k+1)^-alpha "
        "(k < cutoff; 0 above, the irrelevant band) in d dimensions: the irrelevant-band error over time, "
        "and the final weight norm and R_a against the cutoff, alpha and d, beside their small-lr limits.",
    )
    a = p.add_argument
    a("--dim", type=cli.positive_int, default=C.dim, help=f"dimension d (default: {C.dim})")
    a("--alpha", type=cli.nonnegative_float, default=C.alpha, help=f"power-law exponent (default: {C.alpha:g})")
    a("--cutoff", type=cli.positive_int, default=C.cutoff,
      help=f"relevant frequencies k < cutoff; the other d - cutoff are irrelevant (default: {C.cutoff})")
    a("--sigma0", type=cli.positive_float, default=C.sigma0,
      help=f"sigma_0, the largest standard deviation (default: {C.sigma0:g}, so that lr sigma0^2 = 0.9 for GD)")
    a("--alphas", type=cli.float_list, default=C.alphas,
      help=f"alpha values of the sweep, at --cutoff (default: {_list(C.alphas)})")
    a("--cutoffs", type=cli.float_list, default=None,
      help="cutoffs of the sweep, at --alpha (default: d/32, d/16, d/8, d/4, d/2, 3d/4 and 15d/16 rounded, "
      "which is 2,4,8,16,32,48,60 at d = 64)")
    a("--dims", type=cli.float_list, default=C.dims,
      help=f"dimensions of the sweep, at --alpha with cutoff/d as --cutoff/--dim (default: {_list(C.dims)})")
    a("--targets", type=cli.positive_int, default=C.targets,
      help=f"targets and starts drawn per sweep point; the dynamics use the first (default: {C.targets})")
    a("--target-scale", type=cli.positive_float, default=C.target_scale,
      help=f"w~*_k ~ N(0, target_scale^2) on the relevant band, 0 on the irrelevant one (default: {C.target_scale:g})")
    a("--w0-std", type=cli.nonnegative_float, default=C.w0_std,
      help=f"w~(0)_k ~ N(0, w0_std^2) on every frequency (default: {C.w0_std:g})")
    a("--steps", type=cli.positive_int, default=C.steps, help=f"iterations (default: {C.steps})")
    a("--lr", type=cli.positive_float, default=C.lr,
      help=f"learning rate, shared by all optimizers (default: {C.lr:g})")
    cli.add_optimizer_flags(p, OPTIMIZERS)
    cli.add_seed_flags(p, C.seeds)
    cli.add_gradient_flags(p, GRADIENTS, SAMPLERS, gradient=C.gradient, batch_size=C.batch_size)
    a("--radius", type=cli.nonnegative_float, default=C.radius, help="l2 adversary budget (default: sqrt(2))")
    a("--record-points", type=cli.positive_int, default=C.record_points,
      help=f"log-spaced record points of the dynamics run (default: {C.record_points})")
    a("--predict", default=",".join(C.predict),
      help="what gets the signGD, Adam and RMSProp predictions: a comma list from dynamics,cutoff,alpha,dim "
      "(the dynamics run and sweep axes), or none; GD's closed form is always drawn (default: dynamics; "
      "each d = 64 ODE solve takes minutes on a loaded 2-core machine)")
    cli.add_output_flags(p, SUMMARY)
    return p


def _int_list(values: Sequence[float], flag: str, lo: int, hi: int) -> tuple[int, ...]:
    """Distinct integers in ``[lo, hi]``, sorted."""
    out = []
    for v in values:
        if v != int(v) or not lo <= v <= hi:
            raise cli.UsageError(f"{flag}: {v:g} is not an integer in [{lo}, {hi}]")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise cli.UsageError(f"{flag}: repeats a value")
    return tuple(sorted(out))


def validate(args) -> None:
    """Cross-flag checks, then ``args.config``; raises :class:`cli.UsageError` naming the flag."""
    if not 2 <= args.dim <= MAX_DIM:
        raise cli.UsageError(f"--dim: must be in [2, {MAX_DIM}]")
    args.cutoff = _int_list([args.cutoff], "--cutoff", 1, args.dim)[0]
    if args.cutoffs is not None:
        args.cutoffs = _int_list(args.cutoffs, "--cutoffs", 1, args.dim)
    args.dims = _int_list(args.dims, "--dims", 2, MAX_DIM)
    if any(a < 0 for a in args.alphas) or len(set(args.alphas)) != len(args.alphas):
        raise cli.UsageError("--alphas: entries must be >= 0, without repeats")
    args.alphas = tuple(sorted(args.alphas))
    predict = tuple(a.strip() for a in args.predict.split(","))
    predict = () if predict == ("none",) else predict
    if any(a not in (study.DYNAMICS,) + study.SWEEP_AXES for a in predict) or len(set(predict)) != len(predict):
        raise cli.UsageError(f"--predict: a comma list from dynamics,{','.join(study.SWEEP_AXES)} "
                             "without repeats, or none")
    cli.check_gradient_flags(args)
    hparams = cli.parse_hparams(args.hparam, args.optimizers)
    args.config = config = cli.config_from(C, args, hparams=hparams, predict=predict)
    cli.require_fits("--targets", *study.memory_bytes(config))
    # At 1e11 flop/s, more than 2 CPU cores do.
    cli.require_time("--dims", study.flops(config) / 1e11, f"the sweep over d = {','.join(map(str, config.dims))}")
    cli.check_out_dir(args.out)


def run(args, t_start: float) -> int:
    config = args.config
    result = study.run_study(config, args.quiet)
    summary = {"config": cli.config_json(config), **result.summary}
    study.print_report(summary, config)
    with cli.OutputSet(args.out) as outputs:
        t_plot = time.perf_counter()
        if not args.no_plots:
            from sims.linear import sweep_figures

            cli.stage("plotting", args.quiet)
            sweep_figures.plot_dynamics(outputs.path(FIGURES[0]), result, config)
            sweep_figures.plot_sweep(outputs.path(FIGURES[1]), summary["sweep"], config)
        summary["timing"].update(plots_s=time.perf_counter() - t_plot, total_s=time.perf_counter() - t_start)
        path = outputs.path(SUMMARY)
        summary["files"] = list(outputs.files)
        cli.write_json(path, summary)
    cli.wrote(outputs, t_start, args.quiet)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return cli.run_script(argv, build_parser(), validate, run, PROG)


if __name__ == "__main__":
    cli.exit(main())
