"""Figures of the linear dynamics: errors and risks over time.

Curves are the mean over the seeds that did not diverge, with a band from
the smallest to the largest seed; each optimizer's analytical prediction
(THEORY.md sections 3 and 8) is dashed in its colour.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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


class Band(NamedTuple):
    """Mean, minimum and maximum over seeds of a recorded quantity (``None``: no seed kept)."""

    mean: Optional[np.ndarray]
    lo: Optional[np.ndarray]
    hi: Optional[np.ndarray]

    @classmethod
    def of(cls, values: np.ndarray) -> "Band":
        """The band of per-seed ``values`` (seeds on axis 0)."""
        values = np.asarray(values)
        if values.shape[0] == 0:
            return cls(None, None, None)
        return cls(values.mean(0), values.min(0), values.max(0))

    def take(self, index) -> "Band":
        """The band of ``quantity[..., index]``."""
        return Band(*(None if v is None else v[..., index] for v in self))


def draw_band(ax, steps, b: Band, color, label):
    """The mean with its min-max band; no kept seed: a legend entry only."""
    if b.mean is None:
        ax.plot([], [], color=color, label=f"{label} (all seeds diverged)", lw=1.6)
        return
    ax.plot(steps, b.mean, color=color, label=label, lw=1.6)
    if np.any(b.hi > b.lo):
        ax.fill_between(steps, b.lo, b.hi, color=color, alpha=0.2, lw=0)


def band(ax, steps, values, color, label):
    """Mean with a min-max band over seeds (axis 0) of per-seed ``values``."""
    draw_band(ax, steps, Band.of(values), color, label)


def draw_prediction(ax, steps, values, color) -> None:
    """A prediction, dashed in the optimizer's colour (``None``: nothing)."""
    if values is not None:
        ax.plot(steps, values, "--", color=color, lw=1.1, alpha=0.9)


def floor_log_axis(ax, bands) -> None:
    """Bottoms a log axis at a third of the smallest positive observed value, so
    that a prediction reaching exactly 0 (rounding: 1e-16) does not squash it."""
    lows = [np.min(b.lo[b.lo > 0]) for b in bands if b.lo is not None and np.any(b.lo > 0)]
    if lows:
        ax.set_ylim(bottom=min(lows) / 3)


def _legend(fig, ax, extra_prediction: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if extra_prediction:
        handles.append(plt.Line2D([], [], color="gray", ls="--", lw=1.1))
        labels.append("prediction (same colour)")
    fig.legend(handles, labels, loc="lower center", ncol=max(1, min(len(labels), 6)), frameon=False,
               bbox_to_anchor=(0.5, -0.01))


def save_figure(fig, path: str) -> None:
    """Saves ``fig`` as a PNG at ``path`` and closes it (scripts write into a
    :class:`sims.common.cli.OutputSet`, which moves the run's files into place together)."""
    try:
        fig.savefig(path, dpi=130, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)


def plot_error_dynamics(
    path: str,
    steps: np.ndarray,
    errors: Mapping[str, Mapping[str, Band]],
    spectrum: np.ndarray,
    predictions: Mapping[str, Optional[np.ndarray]],
    signgd_phases: Optional[dict] = None,
    title: str = "",
) -> None:
    """The error over time, per frequency (``d <= 4``) or per band (``d > 4``).

    ``d <= 4``: one panel per frequency; a relevant one shows ``|e~_k(t)|``
    on a log axis, an irrelevant one the signed ``e~_k(t)`` on a linear axis,
    so that the drift's sign and linearity show. ``d > 4``: ``||e~_R(t)||``
    (relevant band, log), ``||e~_I(t)||`` (irrelevant band, linear) and the
    final ``|e~_k|`` against ``k``.

    Args:
      path: the PNG to write.
      steps: ``(T,)`` record steps.
      errors: optimizer -> ``{"e_freq": Band (T, d), "abs_e_freq": Band (T, d),
        "relevant_norm": Band (T,), "irrelevant_norm": Band (T,)}``.
      spectrum: ``(d,)``; zeros mark the irrelevant band.
      predictions: optimizer -> ``(T, d)`` predicted ``e~`` (or ``None``).
      signgd_phases: ``{t1, t2}`` to mark (d = 3 closed form).
    """
    spectrum = np.asarray(spectrum)
    d, irrelevant = len(spectrum), spectrum == 0
    per_frequency = d <= 4
    panels = d if per_frequency else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.7), squeeze=False)
    axes = axes[0]
    for i, (name, err) in enumerate(errors.items()):
        color, label = optimizer_color(name, i), LABELS.get(name, name)
        pred = predictions.get(name)
        if per_frequency:
            for k in range(d):
                if irrelevant[k]:
                    draw_band(axes[k], steps, err["e_freq"].take(k), color, label)
                    draw_prediction(axes[k], steps, None if pred is None else pred[:, k], color)
                else:
                    draw_band(axes[k], steps, err["abs_e_freq"].take(k), color, label)
                    draw_prediction(axes[k], steps, None if pred is None else np.abs(pred[:, k]), color)
        else:
            for ax, key, mask in ((axes[0], "relevant_norm", ~irrelevant), (axes[1], "irrelevant_norm", irrelevant)):
                draw_band(ax, steps, err[key], color, label)
                draw_prediction(ax, steps, None if pred is None else np.linalg.norm(pred[:, mask], axis=-1), color)
            final = err["abs_e_freq"]
            if final.mean is not None:
                axes[2].plot(np.arange(d), final.mean[-1], color=color, lw=1.4, marker=".", ms=3)
            if pred is not None:
                axes[2].plot(np.arange(d), np.abs(pred[-1]), "--", color=color, lw=1.0)
    if per_frequency:
        for k, ax in enumerate(axes):
            kind = "irrelevant" if irrelevant[k] else f"sigma = {spectrum[k]:g}"
            ax.set_title(f"e~_{k}(t)  ({kind})" if irrelevant[k] else f"|e~_{k}(t)|  ({kind})")
            ax.set_yscale("linear" if irrelevant[k] else "log")
            if not irrelevant[k]:
                floor_log_axis(ax, [err["abs_e_freq"].take(k) for err in errors.values()])
            time_axis(ax, steps)
    else:
        axes[0].set_title(f"||e~_R(t)||  ({int((~irrelevant).sum())} relevant)")
        axes[0].set_yscale("log")
        floor_log_axis(axes[0], [err["relevant_norm"] for err in errors.values()])
        axes[1].set_title(f"||e~_I(t)||  ({int(irrelevant.sum())} irrelevant)")
        for ax in axes[:2]:
            time_axis(ax, steps)
        axes[2].set_title("final |e~_k| per frequency")
        axes[2].set_xlabel("frequency k")
        axes[2].set_yscale("log")
        floor_log_axis(axes[2], [Band(*(None if v is None else v[-1] for v in err["abs_e_freq"]))
                                 for err in errors.values()])
        if irrelevant.any():
            axes[2].axvspan(np.flatnonzero(irrelevant)[0] - 0.5, d - 0.5, color="gray", alpha=0.12, lw=0)
        axes[2].grid(True, alpha=0.3)
    if signgd_phases is not None:
        for ax in axes[: d if per_frequency else 2]:
            for key, ls in (("t1", "-."), ("t2", ":")):
                ax.axvline(signgd_phases[key], color="gray", ls=ls, lw=0.9)
                ax.text(signgd_phases[key], 0.02, f" {key}", transform=ax.get_xaxis_transform(), color="gray",
                        fontsize=8)
    _legend(fig, axes[0], any(p is not None for p in predictions.values()))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)


def _label_ends(ax, x_end: float, finals: list[tuple[float, str]], log: bool) -> None:
    """Final values written just right of the curve ends, nudged apart only
    where two would overlap (within 4% of the axis height)."""
    lo, hi = ax.get_ylim()
    to_frac = (lambda y: (np.log10(y) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))) if log else \
        (lambda y: (y - lo) / (hi - lo))
    placed: list[float] = []
    for value, color in sorted(finals):
        if not np.isfinite(value) or (log and value <= 0):
            continue
        f = float(np.clip(to_frac(value), 0.0, 1.0))
        if placed:  # one nudge: at least 4.5% of the axis above the label below
            f = max(f, placed[-1] + 0.045)
        placed.append(f)
        ax.annotate(f"{value:.4g}", xy=(x_end, value), xycoords="data",
                    xytext=(1.01, f), textcoords="axes fraction", color=color, fontsize=8, va="center",
                    arrowprops=dict(arrowstyle="-", color=color, lw=0.5, alpha=0.6))


def plot_risks(
    path: str,
    steps: np.ndarray,
    curves: Mapping[str, Mapping[str, Band]],
    predictions: Mapping[str, Optional[Mapping[str, np.ndarray]]],
    radius: float = float("nan"),
    title: str = "",
) -> None:
    """``R_s(t)``, ``||w(t)||`` and ``R_a(t)`` per optimizer, final values labelled.

    Args:
      path: the PNG to write.
      steps: ``(T,)`` record steps.
      curves: optimizer -> ``{standard_risk, weight_norm, adversarial_risk}`` bands.
      predictions: optimizer -> the same keys, ``(T,)``, predicted (or ``None``).
    """
    keys = (("standard_risk", "standard risk R_s", "log"),
            ("weight_norm", "weight norm ||w||_2", "linear"),
            ("adversarial_risk", f"l2 adversarial risk R_a (eps = {radius:.3g})", "linear"))
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.2), sharex=True)
    for ax, (key, label, yscale) in zip(axes, keys):
        finals = []
        for i, (name, c) in enumerate(curves.items()):
            color = optimizer_color(name, i)
            draw_band(ax, steps, c[key], color, LABELS.get(name, name))
            pred = predictions.get(name)
            draw_prediction(ax, steps, None if pred is None else pred[key], color)
            if c[key].mean is not None:
                finals.append((float(c[key].mean[-1]), color))
        ax.set_title(label)
        ax.set_yscale(yscale)
        if yscale == "log":
            floor_log_axis(ax, [c[key] for c in curves.values()])
        time_axis(ax, steps)
        _label_ends(ax, float(steps[-1]), finals, yscale == "log")
    _legend(fig, axes[0], any(p is not None for p in predictions.values()))
    fig.suptitle(title + ("; " if title else "") + "mean over seeds, band = min-max; final means labelled")
    fig.tight_layout(rect=(0, 0.07, 0.97, 1))
    save_figure(fig, path)
