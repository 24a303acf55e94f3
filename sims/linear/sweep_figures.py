"""The spectrum sweep's figures (:mod:`sims.linear.sweep_study`).

* :func:`plot_dynamics`: the dynamics point over time (``||e~_I(t)||``,
  ``R_s(t)``, ``R_a(t)``) and the final ``|e~_k|`` per frequency;
* :func:`plot_sweep`: the final ``||e~_I||``, ``R_s``, ``||w|| / ||w~*||`` and
  ``R_a / R_a(w~*)`` along each sweep axis.

Each optimizer's prediction is dashed in its colour.
"""

from __future__ import annotations

import numpy as np

from sims.common.plotting import LABELS, band, optimizer_color as color, plt, save_figure, time_axis
from sims.linear.sweep_study import SWEEP_AXES, Config, Study, axis_label

#: ``R_s`` and ``||e~_I||`` below this are drawn at it on log axes: rounding, or exactly 0
#: (e.g. GD's closed form at cutoff 2).
LOG_FLOOR = 1e-12


def plot_dynamics(path: str, study: Study, config: Config) -> None:
    """Four panels; each optimizer's prediction (``study.pred_curves``) dashed in its colour."""
    dyn, pred_curves = study.dynamics, study.pred_curves
    steps, curves = dyn.record_steps, dyn.curves
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = axes.ravel()
    panels = (("irrelevant_norm", "irrelevant-band error ||e~_I(t)||", "log"),
              ("standard_risk", "standard risk R_s", "log"),
              ("adversarial_risk", f"l2 adversarial risk R_a (eps = {config.radius:.3g})", "linear"))
    for ax, (key, title, yscale) in zip(axes, panels):
        for i, (name, c) in enumerate(curves.items()):
            band(ax, steps, c[key], color(name, i), LABELS.get(name, name))
            if name in pred_curves:
                y = pred_curves[name][key]
                ax.plot(steps, np.maximum(y, LOG_FLOOR) if yscale == "log" else y, "--", lw=1.3,
                        color=color(name, i), alpha=0.9)
        ax.set_title(title)
        ax.set_yscale(yscale)
        time_axis(ax, steps)
    ax = axes[3]
    d = config.dim
    k = np.arange(d)
    for i, (name, c) in enumerate(curves.items()):
        if c["abs_e_freq"].shape[0]:
            ax.plot(k, c["abs_e_freq"].mean(0), ".-", ms=3, lw=0.8, color=color(name, i), label=LABELS.get(name, name))
        if name in pred_curves:
            ax.plot(k, np.maximum(pred_curves[name]["abs_e_freq"], LOG_FLOOR), "--", lw=1.1, color=color(name, i))
    ax.plot([], [], "k--", lw=1.2, label="prediction (dashed, same colour)")
    ax.axvspan(config.cutoff - 0.5, d - 0.5, color="0.9", zorder=0, label="irrelevant band")
    ax.set_yscale("log")
    top = max(float(np.max(c["abs_e_freq"], initial=0.0)) for c in curves.values())
    if top > 0:  # converged frequencies reach 0 or 1e-30: show eight decades below the largest
        ax.set_ylim(bottom=1e-8 * top)
    ax.set_xlabel("frequency k")
    ax.set_title(f"final |e~_k| at t = {config.steps}")
    ax.grid(True, alpha=0.3)
    axes[0].plot([], [], "k--", lw=1.2, label="prediction")
    axes[0].legend(fontsize=8, loc="best")
    axes[3].legend(fontsize=8, loc="lower left")
    source = ("population gradient" if config.gradient == "population"
              else f"batch {config.batch_size} ({config.gradient})")
    missing = [f"{LABELS.get(n, n)}: {p['reason']}" for n, p in
               ((n, r.get("predicted")) for n, r in study.summary["dynamics"]["optimizers"].items())
               if p is not None and not p["applicable"]]
    fig.suptitle(f"d = {d}, sigma_k = {config.sigma0:g} (k+1)^-{config.alpha:g} for k < {config.cutoff}, 0 above; "
                 f"lr {config.lr:g}, {source}, {config.seeds} seeds (band = min-max)\n"
                 "dashed: GD closed form, sign flow, Adam/RMSProp fixed-c ODEs (lr -> 0 limits; a run differs by "
                 "O(lr),\nfor signGD with a constant that grows with d: THEORY.md 8.1)"
                 + ("\nno prediction at the end: " + "; ".join(missing) + " (drawn as far as it goes)"
                    if missing else ""), fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


def _means(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def plot_sweep(path: str, sweep: dict, config: Config) -> None:
    """One row per sweep axis, one column per final quantity; predictions dashed with crosses."""
    keys = (("irrelevant_norm", "final ||e~_I||", "log"),
            ("standard_risk", f"final R_s (mean; drawn at least {LOG_FLOOR:g})", "log"),
            ("weight_norm_ratio", "final ||w|| / ||w~*||", "linear"),
            ("adversarial_risk_ratio", f"final R_a / R_a(w~*)   (eps = {config.radius:.3g})", "linear"))
    fig, axes = plt.subplots(3, 4, figsize=(20, 12))
    for row, axis in enumerate(SWEEP_AXES):
        s = sweep[axis]
        label, xs = axis_label(s, axis, config)
        xs = np.asarray(xs, np.float64)
        for ax, (key, title, yscale) in zip(axes[row], keys):
            for i, (name, o) in enumerate(s["optimizers"].items()):
                m = _means(o[key]["mean"])
                style = dict(fmt="o-", ms=3, lw=1.2, capsize=2, color=color(name, i), label=LABELS.get(name, name))
                if yscale == "log":  # a std band would cross 0; the floor keeps exact zeros visible
                    ax.errorbar(xs, np.maximum(m, LOG_FLOOR), **style)
                else:
                    ax.errorbar(xs, m, yerr=_means(o[key]["std"]), **style)
            for name, p in s.get("predictions", {}).items():
                if "predicted" not in p:
                    continue
                m = _means(p["predicted"][key]["mean"])
                ax.plot(xs, np.maximum(m, LOG_FLOOR) if yscale == "log" else m, "--", marker="x", ms=5, lw=1.1,
                        color=color(name, list(s["optimizers"]).index(name)))
            ax.set_yscale(yscale)
            if axis == "dim":
                ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
            ax.set_xlabel(label)
            ax.set_title(title)
    axes[0, 0].plot([], [], "k--", marker="x", lw=1.1, label="prediction (mean)")
    axes[0, 0].legend(fontsize=8)
    solved = (f"sign flow and Adam/RMSProp ODEs on the {', '.join(config.predict_axes)} axes, where they apply"
              if config.predict_axes
              else "signGD, Adam and RMSProp not solved here (--predict), see the dynamics figure")
    fig.suptitle(f"sigma_k = {config.sigma0:g} (k+1)^-alpha for k < cutoff, 0 above; population gradient, "
                 f"lr {config.lr:g}, t = {config.steps}; mean (± std on linear axes) over {config.targets} targets\n"
                 f"dashed x: predictions (GD closed form; {solved}); lr -> 0 limits, a run differs by O(lr)",
                 fontsize=14)
    fig.tight_layout()
    save_figure(fig, path)
