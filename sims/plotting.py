"""Figures of the linear dynamics: per-frequency errors and risks over time.

Curves are the mean over the seeds that did not diverge, with a band from
the smallest to the largest seed; closed forms are dashed.
"""

from __future__ import annotations

from typing import Mapping, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sims.cli import atomic_write  # noqa: E402

COLORS = {"gd": "tab:blue", "signgd": "tab:red", "adam": "tab:green", "rmsprop": "tab:purple"}
LABELS = {"gd": "GD", "signgd": "signGD", "adam": "Adam", "rmsprop": "RMSProp"}
MAX_PANELS = 12


def optimizer_color(name: str, i: int) -> str:
    return COLORS.get(name, f"C{i % 10}")


def time_axis(ax, steps) -> None:
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, max(int(steps[-1]), 1))
    ax.set_xlabel("step t")
    ax.grid(True, which="major", alpha=0.3)


def band(ax, steps, values, color, label):
    """Mean with a min-max band over seeds (axis 0); no seeds: a legend entry only."""
    if values.shape[0] == 0:
        ax.plot([], [], color=color, label=f"{label} (all seeds diverged)", lw=1.6)
        return
    ax.plot(steps, values.mean(0), color=color, label=label, lw=1.6)
    if values.shape[0] > 1:
        ax.fill_between(steps, values.min(0), values.max(0), color=color, alpha=0.2, lw=0)


def save_figure(fig, path: str) -> None:
    """Saves ``fig`` as a PNG at ``path`` atomically and closes it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png"))
    plt.close(fig)


def plot_error_dynamics(
    path: str,
    steps: np.ndarray,
    e_freq: Mapping[str, np.ndarray],
    spectrum: np.ndarray,
    gd_e_freq: Optional[np.ndarray] = None,
    signgd_phases: Optional[dict] = None,
    title: str = "",
) -> None:
    """``|e~_k(t)|`` per frequency, one panel each, log-x.

    Args:
      path: the PNG to write (atomically).
      steps: ``(T,)`` record grid.
      e_freq: optimizer name -> ``(seeds, T, d)`` errors of the kept seeds.
      spectrum: ``(d,)``, to mark irrelevant frequencies.
      gd_e_freq: ``(T, d)`` GD closed form, dashed.
      signgd_phases: ``{t1, t2, steps, e_freq}``: the signGD phase boundaries
        and the closed-form phase-1/2 trajectory on ``steps``, dotted.
    """
    d = len(spectrum)
    panels = min(d, MAX_PANELS)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False, sharex=True)
    for k in range(panels):
        ax = axes.flat[k]
        for i, (name, e) in enumerate(e_freq.items()):
            band(ax, steps, np.abs(e[:, :, k]), optimizer_color(name, i), LABELS.get(name, name))
        if gd_e_freq is not None:
            ax.plot(steps, np.abs(gd_e_freq[:, k]), "k--", lw=1.0, label="GD closed form")
        if signgd_phases is not None:
            ax.plot(signgd_phases["steps"], np.abs(signgd_phases["e_freq"][:, k]), ":", color="darkred", lw=2.0,
                    label="signGD closed form (phases 1-2)")
            for t, ls in ((signgd_phases["t1"], "-."), (signgd_phases["t2"], "--")):
                ax.axvline(t, color="gray", ls=ls, lw=0.9)
        kind = "irrelevant" if spectrum[k] == 0 else f"sigma = {spectrum[k]:g}"
        ax.set_title(f"|e~_{k}(t)|  ({kind})")
        ax.set_yscale("log")
        time_axis(ax, steps)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    if signgd_phases is not None:
        axes.flat[0].text(signgd_phases["t1"], 0.02, " t1", transform=axes.flat[0].get_xaxis_transform(), color="gray")
        axes.flat[0].text(signgd_phases["t2"], 0.02, " t2", transform=axes.flat[0].get_xaxis_transform(), color="gray")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, min(len(labels), 6)), frameon=False, bbox_to_anchor=(0.5, -0.02))
    note = f" (first {panels} of {d} frequencies)" if panels < d else ""
    fig.suptitle((title + "\n" if title else "") + "error per frequency: mean over seeds, band = min-max" + note)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)


def plot_risks(
    path: str,
    steps: np.ndarray,
    curves: Mapping[str, Mapping[str, np.ndarray]],
    gd_curves: Optional[Mapping[str, np.ndarray]] = None,
    eps: float = float("nan"),
    title: str = "",
) -> None:
    """``R_s(t)``, ``||w(t)||`` and ``R_a(t)`` per optimizer, final values labelled.

    Args:
      path: the PNG to write (atomically).
      steps: ``(T,)`` record grid.
      curves: optimizer -> ``{standard_risk, weight_norm, adversarial_risk}``,
        each ``(seeds, T)`` over the kept seeds.
      gd_curves: the same keys, ``(T,)``, for the GD closed form (dashed).
    """
    keys = (("standard_risk", "standard risk R_s", "log"),
            ("weight_norm", "weight norm ||w||_2", "linear"),
            ("adversarial_risk", f"l2 adversarial risk R_a (eps = {eps:.3g})", "linear"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True)
    for ax, (key, label, yscale) in zip(axes, keys):
        finals = []
        for i, (name, c) in enumerate(curves.items()):
            v = np.asarray(c[key])
            color = optimizer_color(name, i)
            band(ax, steps, v, color, LABELS.get(name, name))
            if v.shape[0]:
                finals.append((v[:, -1].mean(), color))
        if gd_curves is not None:
            ax.plot(steps, gd_curves[key], "k--", lw=1.0, label="GD closed form")
        # Final values, spread vertically so that labels do not overlap.
        finals.sort()
        for j, (value, color) in enumerate(finals):
            ax.annotate(f"{value:.4g}", xy=(steps[-1], value), xytext=(6, 11 * (j - (len(finals) - 1) / 2)),
                        textcoords="offset points", color=color, fontsize=8, va="center")
        ax.set_title(label)
        ax.set_yscale(yscale)
        time_axis(ax, steps)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle((title + "\n" if title else "") + "mean over seeds, band = min-max; final means labelled")
    fig.tight_layout()
    save_figure(fig, path)
