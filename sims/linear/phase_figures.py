"""The phase diagram's figures (``phase_diagram.png``, ``phase_slices.png``).

The study is :mod:`sims.linear.phase_study`; this module only draws its
:class:`~sims.linear.phase_study.PhaseResults`.
"""

from __future__ import annotations

import numpy as np

from sims.linear.phase_study import Config, PhaseResults, first_bad_lr, fmax
from theory.phase_bounds import DRIFT_LR_BOUND
from theory.risks import irrelevant_drift_gap
from theory.signgd import Q_BOUNDARY

#: Fonts that stay readable with the figures shown about 800 px wide (README).
FIGURE_STYLE = {"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "figure.titlesize": 15}


def _edges(x: np.ndarray) -> np.ndarray:
    """Pixel edges of a log-spaced axis: geometric midpoints, extended by half a step."""
    r = np.sqrt(x[1] / x[0])
    return np.concatenate([[x[0] / r], np.sqrt(x[1:] * x[:-1]), [x[-1] * r]])


def _axes(ax, qe, le, title: str) -> None:
    """Log axes, a short title, and ``q = 1/3`` as a dash-dot line with a top tick (never covered)."""
    ax.set(xscale="log", yscale="log", xlim=(qe[0], qe[-1]), ylim=(le[0], le[-1]), xlabel="q")
    ax.set_ylabel("lr")
    ax.set_title(title)
    if qe[0] < Q_BOUNDARY < qe[-1]:
        ax.axvline(Q_BOUNDARY, color="k", ls="-.", lw=1.0, zorder=4)
        top = ax.secondary_xaxis("top")
        top.set_xticks([Q_BOUNDARY], labels=["1/3"])
        top.tick_params(length=3, pad=1)


def _levels(values: np.ndarray, n: int = 5) -> np.ndarray:
    """Round contour levels inside the central 84% of the range of ``values``
    (a level at an end would outline single noisy points)."""
    from matplotlib.ticker import MaxNLocator

    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.array([])
    lo, hi = finite.min(), finite.max()
    ticks = MaxNLocator(n).tick_values(lo, hi)
    return ticks[(ticks > lo + 0.08 * (hi - lo)) & (ticks < hi - 0.08 * (hi - lo))]


def _contours(ax, colorbar, q, lr, values, levels, color: str, style: str) -> None:
    """Contours of ``values`` ``(nq, nl)`` at ``levels``, marked on ``colorbar``
    (labels on the lines would be unreadable at README size)."""
    field = np.ma.masked_invalid(values.T)
    if len(levels) and field.count() > 3:
        cs = ax.contour(q, lr, field, levels=levels, colors=color, linewidths=1.3, linestyles=style, zorder=5)
        colorbar.add_lines(cs)


def plot_phase_diagram(path: str, res: PhaseResults, config: Config) -> None:
    """One row per w0 scale: (a) final ``e~_2`` (black contours) with the
    sign flow's (red dashed, same levels, marked on the colour bar); (b) ``|final - flow| / lr`` with
    the ``tol`` frontier of the relative error (one monotone staircase, first
    scale); (c) the ``R_a`` gap to GD at equal ``R_s``, with the gap the
    flow's drift alone gives, ``radius^2/2 (e~_2^2 - e~_2(0)^2)`` (blue dashed).
    Colour scales span the data (sequential maps)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(FIGURE_STYLE):
        _draw_phase_diagram(plt, path, res.diagram, res.points, config.tol, config.radius, config.sigma0)


def _draw_phase_diagram(plt, path, diagram, c, tol, radius, sigma0) -> None:
    from matplotlib.colors import Normalize

    from sims.common.plotting import save_figure

    qe, le = _edges(diagram.q), _edges(diagram.lr)
    ns = len(diagram.scales)
    fig, axes = plt.subplots(ns, 3, figsize=(15, 4.6 * ns + 0.5), squeeze=False)
    for row in range(ns):
        e20 = float(c["e0_freq"][row, 0, 0, 2])
        flow_e2 = c["flow_e_freq"][row, ..., 2]
        suffix = f", w0 scale {diagram.scales[row]:g}" if ns > 1 else ""

        ax = axes[row, 0]
        e2 = c["e2_final"][row]
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(e2).T, cmap="cividis",
                          norm=Normalize(np.nanmin(e2), np.nanmax(e2)))
        cb = fig.colorbar(m, ax=ax, label="final e~_2")
        levels = _levels(e2)
        _contours(ax, cb, diagram.q, diagram.lr, e2, levels, "k", "-")
        _contours(ax, cb, diagram.q, diagram.lr, flow_e2, levels, "r", "--")
        _axes(ax, qe, le, f"(a) final e~_2 (red: flow){suffix}")

        ax = axes[row, 1]
        err = c["flow_err_over_lr"][row]
        top = fmax(err) or 1.0  # all NaN: no flow converged (say so in gray)
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(err).T, norm=Normalize(0.0, top),
                          cmap=plt.get_cmap("viridis").with_extremes(bad="0.8"))
        cb = fig.colorbar(m, ax=ax, label="|final - flow| / lr")
        if DRIFT_LR_BOUND <= top:
            cb.ax.axhline(DRIFT_LR_BOUND, color="r", lw=1.5)
        if row == 0:
            ax.stairs(le[first_bad_lr(c, tol)], qe, baseline=None, color="r", lw=1.6, zorder=5,
                      label=f"rel. error < {tol:.0%} below")
            ax.legend(loc="lower right", fontsize=10, framealpha=0.85)
        _axes(ax, qe, le, f"(b) error of the flow{suffix}")

        ax = axes[row, 2]
        gap = c["gap_equal_risk"][row]
        m = ax.pcolormesh(qe, le, np.ma.masked_invalid(gap).T, cmap="magma_r",
                          norm=Normalize(np.nanmin(gap), np.nanmax(gap)))
        cb = fig.colorbar(m, ax=ax, label=f"R_a(signGD) - R_a(GD), radius {radius:.3g}")
        _contours(ax, cb, diagram.q, diagram.lr, irrelevant_drift_gap(radius, flow_e2, e20), _levels(gap), "deepskyblue", "--")
        _axes(ax, qe, le, f"(c) R_a gap to GD (blue: flow){suffix}")
    fig.suptitle(f"population signGD, spectrum (sigma_0, sigma_0 sqrt(q), 0), sigma_0 = {sigma0:g}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_slices(path: str, res: PhaseResults, config: Config) -> None:
    """Left: final ``e~_2`` against ``q`` at a few ``lr``, with the sign flow and
    the first-order drift. Right: ``|final - flow|`` against ``lr`` at a few
    ``q``, with the derived ``O(lr)`` bound for ``q <= 1/3`` (first w0 scale)."""
    import matplotlib.pyplot as plt

    with plt.rc_context(FIGURE_STYLE):
        _draw_slices(plt, path, res.diagram, res.points, config.sigma0)


def _draw_slices(plt, path, diagram, c, sigma0) -> None:
    from sims.common.plotting import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    e20 = c["e0_freq"][0, 0, 0, 2]
    for k, j in enumerate(sorted(set(np.linspace(0, len(diagram.lr) - 1, 4).round().astype(int).tolist()))):
        left.plot(diagram.q, c["e2_final"][0, :, j], "o", ms=2.5, color=f"C{k}", label=f"signGD, lr = {diagram.lr[j]:.3g}")
    left.plot(diagram.q, c["flow_e_freq"][0, :, 0, 2], "k-", lw=1.5, label="sign flow (lr -> 0)")
    left.plot(diagram.q, e20 + c["drift_first_order"][0, :, 0], color="0.5", ls="--", lw=1.2,
              label="first-order drift, sqrt3 q |e~_1(0)|")
    left.axvline(Q_BOUNDARY, color="k", ls="-.", lw=0.8)
    left.set(xscale="log", xlabel="q = sigma_1^2/sigma_0^2", ylabel="final e~_2")
    left.set_title("final e~_2 against q")
    left.legend(fontsize=10)
    left.grid(True, alpha=0.3)

    err = np.abs(c["e2_final"] - c["flow_e_freq"][..., 2])[0]
    for k, i in enumerate(sorted(set(np.linspace(0, len(diagram.q) - 1, 5).round().astype(int).tolist()))):
        right.plot(diagram.lr, np.ma.masked_less_equal(err[i], 0), "o-", ms=2.5, lw=1, color=f"C{k}",
                   label=f"q = {diagram.q[i]:.3g}")
    right.plot(diagram.lr, DRIFT_LR_BOUND * diagram.lr, "k--", lw=1.5, label=f"{DRIFT_LR_BOUND:.3g} lr (bound, q <= 1/3)")
    right.set(xscale="log", yscale="log", xlabel="lr", ylabel="|final e~_2 - flow|")
    right.set_title("error of the sign flow against lr")
    right.legend(fontsize=10, ncol=2)
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"population signGD, sigma_0 = {sigma0:g}, w0 scale {diagram.scales[0]:g}")
    fig.tight_layout()
    save_figure(fig, path)
