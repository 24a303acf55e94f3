"""Figures of the deep study, drawn from the summary and the per-seed measures.

Intervals are those of the summary: mean and 95% Student-t interval over
seeds. Learning rates whose networks failed to train (mean clean accuracy
below :data:`FAILED`) are left out of the accuracy axes and said so.
"""

from __future__ import annotations

from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sims.common.balls import NORMS  # noqa: E402
from sims.common.plotting import COLORS, LABELS  # noqa: E402
from sims.deep import stats  # noqa: E402
from sims.deep.study import StudyResult, headline, metric  # noqa: E402

FILES = ("deep_accuracy_robustness.png", "deep_robustness_curves.png", "deep_pgd_convergence.png",
         "deep_spectral_energy.png", "deep_band_noise.png", "deep_lipschitz.png")
FAILED = 0.5


def _err(ax, x, values, color, label, **kw):
    """Mean over seeds (axis 0) with its t interval as error bars."""
    iv = stats.t_interval(values)
    ax.errorbar(x, iv.mean, yerr=[iv.mean - iv.lo, iv.hi - iv.mean], color=color, label=label, marker="o", ms=3,
                capsize=3, lw=1.5, **kw)


def plot_all(result: StudyResult, path: Callable[[str], str], save: Callable) -> None:
    """Draws every figure; ``path(name)`` gives the file to write, ``save(fig, file)`` writes it."""
    s, ev, config = result.summary, result.evaluations, result.config
    cfg, res = s["config"], s["results"]
    labels = {n: LABELS[n] + (f" (momentum {config.momentum:g})" if n == "gd" and config.momentum else "")
              for n in ev}
    chosen = {n: res["optimizers"][n]["chosen_lr"]["index"] for n in ev}
    lrs = {n: res["optimizers"][n]["lrs"] for n in ev}
    setting = (f"digits, {cfg['arch']} {tuple(cfg['widths'])}, {cfg['epochs']} epochs, {cfg['seeds']} seeds; "
               "mean and 95% t interval over seeds")

    # 1. The accuracy-robustness plane, one panel per headline metric.
    heads = headline(config, result.band_names)
    rows = (len(heads) + 1 + 2) // 3
    fig, grid = plt.subplots(rows, 3, figsize=(12, 4.0 * rows))
    axes, spare = list(grid.ravel()[: len(heads)]), grid.ravel()[len(heads):]
    comps = {(c["a"], c["b"], c["metric"]): c for c in res["comparisons"]}
    for ax, (name, value, label) in zip(axes, heads):
        for n, e in ev.items():
            acc, rob = e.clean, metric(e, name, value, config, result.band_names)
            if name == "lipschitz_upper":
                rob = 10.0 ** (-rob)
            ok = np.flatnonzero(e.clean.mean(1) >= FAILED)
            a, r = stats.t_interval(acc[ok].T), stats.t_interval(rob[ok].T)
            ax.errorbar(a.mean, r.mean, xerr=[a.mean - a.lo, a.hi - a.mean], yerr=[r.mean - r.lo, r.hi - r.mean],
                        color=COLORS[n], marker="o", ms=4, lw=1, capsize=2, label=labels[n])
            if chosen[n] in ok:
                k = list(ok).index(chosen[n])
                ax.plot(a.mean[k], r.mean[k], "*", ms=13, color=COLORS[n], mec="k", mew=0.5)
            front = ok[stats.pareto_front(acc[ok].mean(1), (-np.log10(rob[ok]) if name == "lipschitz_upper"
                                                            else rob[ok]).mean(1))]
            ax.plot(acc[front].mean(1), rob[front].mean(1), color=COLORS[n], lw=3, alpha=0.3)
        a_star = [c["matched_accuracy"]["value"] for (x, y, m), c in comps.items() if m == name and x == "gd"]
        if a_star:
            ax.axvline(min(a_star), color="gray", ls="--", lw=0.8)
        if name == "lipschitz_upper":
            ax.set_yscale("log")
            ax.set_ylabel("Lipschitz upper bound (lower is more robust)")
        else:
            ax.set_ylabel("accuracy under perturbation")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("clean test accuracy")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    for ax in spare:
        ax.axis("off")
    spare[0].legend(handles, names, loc="upper left", fontsize=10, frameon=False)
    spare[0].text(0, 0.55, "each point: one learning rate,\nmean and 95% t interval over seeds\n"
                  "*: one-standard-error choice\nthick line: Pareto front\n"
                  "dashed: matched accuracy a*\n" f"rates with clean accuracy < {FAILED}\nleft out",
                  va="top", fontsize=10, transform=spare[0].transAxes)
    fig.suptitle(setting, fontsize=11)
    fig.tight_layout()
    save(fig, path(FILES[0]))

    # 2. Robustness curves at the chosen learning rate.
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    panels = (("Gaussian noise", "per-pixel sigma", cfg["noise_sigmas"], lambda e, i: e.noise[i]),
              (f"l2 PGD, {cfg['pgd_steps']} steps", "radius (l2)", cfg["l2_radii"],
               lambda e, i: e.pgd["l2"][i, :, :, -1]),
              (f"l_inf PGD, {cfg['pgd_steps']} steps", "radius (l_inf)", cfg["linf_radii"],
               lambda e, i: e.pgd["linf"][i, :, :, -1]))
    for ax, (title, xlabel, xs, get) in zip(axes, panels):
        for n, e in ev.items():
            i = chosen[n]
            _err(ax, np.r_[0.0, xs], np.column_stack([e.clean[i], get(e, i)]), COLORS[n],
                 f"{labels[n]}, lr {lrs[n][i]:g}")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"at each optimizer's one-standard-error learning rate; {setting}", fontsize=10)
    fig.tight_layout()
    save(fig, path(FILES[1]))

    # 3. PGD convergence at the chosen learning rate, the largest radius and the middle one.
    conv = res["pgd_convergence"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), sharey=True)
    for ax, norm, xs in zip(axes, NORMS, (cfg["l2_radii"], cfg["linf_radii"])):
        picks = sorted({(len(xs) - 1) // 2, len(xs) - 1})
        for n, e in ev.items():
            for j, ls in zip(picks, (":", "-")[-len(picks):]):
                acc = e.pgd[norm][chosen[n], :, j, :]
                ax.plot(np.arange(acc.shape[1]), acc.mean(0), ls, color=COLORS[n],
                        label=f"{labels[n]}, radius {xs[j]:g}")
        ax.axvline(conv["compared_with_steps"], color="gray", lw=0.8)
        name = "l2" if norm == "l2" else "l_inf"
        ax.set_title(f"{name} PGD, radii {', '.join(f'{v:g}' for v in xs)}; drawn: "
                     f"{', '.join(f'{xs[j]:g}' for j in picks)}", fontsize=10)
        ax.set_xlabel("PGD step")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", ncol=1)
    axes[0].set_ylabel("accuracy of the best iterate so far (mean over seeds)")
    fig.suptitle(f"PGD at the chosen lr; largest change from step {conv['compared_with_steps']} to {conv['steps']} "
                 f"over every optimizer, lr, radius and seed: {conv['max_change']:.4f} (tolerance {conv['tol']:g})",
                 fontsize=10)
    fig.tight_layout()
    save(fig, path(FILES[2]))

    # 4. Spectral energy of the training images in the 2-D DCT basis.
    d = res["data"]
    energy = np.asarray(d["spectral_energy"])
    kept = np.asarray(d["kept_mask"], bool)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    im = axes[0].imshow(np.log10(energy), cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="log10 mean squared DCT coefficient")
    ky, kx = np.nonzero(~kept)
    axes[0].scatter(kx, ky, marker="x", color="white", s=18, label="removed")
    axes[0].set_title("energy per frequency (k vertical, l horizontal)", fontsize=10)
    axes[0].set_xlabel("l")
    axes[0].set_ylabel("k")
    axes[0].legend(fontsize=8, loc="lower right")
    order = np.sort(energy.ravel())[::-1]
    axes[1].plot(np.arange(1, order.size + 1), np.cumsum(order) / order.sum(), marker=".")
    axes[1].axvline(d["kept_frequencies"], color="gray", ls="--",
                    label=f"kept {d['kept_frequencies']}/64: {d['kept_energy_fraction']:.3f} of the energy")
    axes[1].set_xlabel("frequencies, by decreasing energy")
    axes[1].set_ylabel("cumulative energy fraction")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("2-D DCT spectrum of the digits (training set)")
    fig.tight_layout()
    save(fig, path(FILES[3]))

    # 5. Band-limited noise at the chosen learning rate, the axis from 0.
    bands = list(result.band_names)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(ev)
    for i, (n, e) in enumerate(ev.items()):
        x = np.arange(len(bands)) + (i - (len(ev) - 1) / 2) * width
        iv = stats.t_interval(e.band_noise[chosen[n]])
        ax.bar(x, iv.mean, width, yerr=[iv.mean - iv.lo, iv.hi - iv.mean], color=COLORS[n], capsize=3,
               label=f"{labels[n]}, lr {lrs[n][chosen[n]]:g}")
        for xi, m in zip(x, iv.mean):
            ax.text(xi, m / 2, f"{m:.3f}", rotation=90, ha="center", va="center", fontsize=7, color="white")
    sizes = [len(d["bands"][b]) for b in bands]
    ax.set_xticks(np.arange(len(bands)), [f"{b}\n({k} freq.)" for b, k in zip(bands, sizes)])
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"noise in one DCT band, power of white noise with sigma {cfg['band_sigma']:g}\n{setting}",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save(fig, path(FILES[4]))

    # 6. Lipschitz bounds at the chosen rate, per-layer norms, and the upper bound at every rate.
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    names = list(ev)
    for i, n in enumerate(names):
        e, k = ev[n], chosen[n]
        for j, (vals, marker) in enumerate(((e.lipschitz_upper[k], "v"), (e.lipschitz_lower[k], "^"))):
            xs = np.full(vals.shape, i + (j - 0.5) * 0.25)
            axes[0].scatter(xs, vals, marker=marker, color=COLORS[n], alpha=0.6, s=18)
        layers = np.arange(e.dense_norms.shape[-1])
        _err(axes[1], layers, e.dense_norms[k], COLORS[n], f"{labels[n]} spectral")
        _err(axes[1], layers, e.frobenius[k], COLORS[n], f"{labels[n]} Frobenius", ls="--")
        ok = np.flatnonzero(e.clean.mean(1) >= FAILED)
        _err(axes[2], np.asarray(lrs[n])[ok], e.lipschitz_upper[ok].T, COLORS[n], labels[n])
        axes[2].plot([lrs[n][k]], [e.lipschitz_upper[k].mean()], "*", ms=14, color=COLORS[n], mec="k", mew=0.5)
    axes[0].scatter([], [], marker="v", color="gray", label="upper: product of layer spectral norms")
    axes[0].scatter([], [], marker="^", color="gray", label="lower: max ||grad margin|| / sqrt2 (test set)")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].set_xticks(np.arange(len(names)), [LABELS[n] for n in names])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("l2 Lipschitz constant of the logits")
    axes[0].set_title("bounds at the chosen lr, per seed", fontsize=10)
    axes[0].grid(alpha=0.3, axis="y")
    axes[1].set_xticks(layers, [f"layer {k + 1}" for k in layers])
    axes[1].set_ylabel("weight norm")
    axes[1].set_title("per-layer weight norms at the chosen lr", fontsize=10)
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("learning rate")
    axes[2].set_ylabel("Lipschitz upper bound")
    axes[2].set_title(f"upper bound against lr (* chosen; clean acc. < {FAILED} left out)", fontsize=10)
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(setting, fontsize=10)
    fig.tight_layout()
    save(fig, path(FILES[5]))

