"""Tables of the deep study: the printed report and the README block, both from the summary alone.

Every number shown comes from ``deep_summary.json`` (:func:`sims.deep.study.run_study`),
so the README block (:func:`readme_block`) can be re-rendered from the
committed JSON and checked against it.
"""

from __future__ import annotations

from typing import Optional, Sequence

from sims.common.plotting import LABELS as NAMES

COMMAND = "python sims/deep_robustness.py --out figures"

#: Per-lr columns: (title, key in per_lr, index into a per-setting list or None, format).
def _columns(summary: dict) -> list[tuple[str, str, Optional[int], str]]:
    cfg, data = summary["config"], summary["results"]["data"]
    mid = lambda v: (len(v) - 1) // 2
    bands = list(data["bands"])
    band = "removed" if "removed" in bands else bands[-1]
    return [("val", "val_accuracy", None, "{:.3f}"), ("clean", "clean_accuracy", None, "{:.3f}"),
            (f"noise {cfg['noise_sigmas'][mid(cfg['noise_sigmas'])]:g}", "noise_accuracy",
             mid(cfg["noise_sigmas"]), "{:.3f}"),
            (f"l2 PGD {cfg['l2_radii'][mid(cfg['l2_radii'])]:g}", "pgd_l2_accuracy", mid(cfg["l2_radii"]), "{:.3f}"),
            (f"linf PGD {cfg['linf_radii'][mid(cfg['linf_radii'])]:g}", "pgd_linf_accuracy", mid(cfg["linf_radii"]),
             "{:.3f}"),
            (f"{band} band", "band_noise_accuracy", bands.index(band), "{:.3f}"),
            ("low-pass", "lowpass_accuracy", None, "{:.3f}"),
            ("Lipschitz", "lipschitz_upper", None, "{:.3g}")]


def _cell(stat: dict, i: int, j: Optional[int], fmt: str) -> str:
    """``mean ± half`` (symmetric t interval), or ``mean [lo, hi]`` for the ``.3g`` columns; ``-`` if undefined."""
    m, lo, hi = (stat[k][i] if j is None else stat[k][i][j] for k in ("mean", "lo", "hi"))
    if m is None:
        return "-"
    if fmt == "{:.3g}":
        return f"{m:.3g} [{lo:.3g}, {hi:.3g}]" if lo is not None else f"{m:.3g}"
    return f"{fmt.format(m)} ± {fmt.format((hi - lo) / 2)}" if lo is not None else fmt.format(m)


def _optimizers(summary: dict) -> list[tuple[str, dict]]:
    """``(name, results)`` in the order of ``--optimizers`` (the JSON sorts its keys)."""
    res = summary["results"]["optimizers"]
    return [(n, res[n]) for n in summary["config"]["optimizers"]]


def lr_rows(summary: dict) -> list[tuple[str, ...]]:
    """Header and one row per optimizer and learning rate (``*``: the one-standard-error choice)."""
    cols = _columns(summary)
    rows = [("optimizer", "lr") + tuple(c[0] for c in cols)]
    for name, r in _optimizers(summary):
        for i, lr in enumerate(r["lrs"]):
            star = " *" if i == r["chosen_lr"]["index"] else ""
            rows.append((NAMES.get(name, name), f"{lr:g}{star}")
                        + tuple(_cell(r["per_lr"][key], i, j, fmt) for _, key, j, fmt in cols))
    return rows


def _num(v, fmt="{:+.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def conclusion_rows(summary: dict) -> list[tuple[str, ...]]:
    """Header and one row per claim and headline metric."""
    rows = [("claim", "metric", "matched clean acc.", "difference A - B [95% CI]", "status")]
    for c in summary["results"]["comparisons"]:
        a, d = c["matched_accuracy"], c["difference"]
        unit = " (log10 1/L)" if c["metric"] == "lipschitz_upper" else ""
        rows.append((f"{NAMES[c['a']]} more robust than {NAMES[c['b']]}", c["label"] + unit,
                     f"{_num(a['value'], '{:.3f}')} [{_num(a['lo'], '{:.3f}')}, {_num(a['hi'], '{:.3f}')}]",
                     f"{_num(d['value'])} [{_num(d['lo'])}, {_num(d['hi'])}]", c["verdict"]))
    return rows


def choice_rows(summary: dict) -> list[tuple[str, ...]]:
    rows = [("optimizer", "chosen lr", "same choice in seed resamples", "first / second half of the seeds")]
    for name, r in _optimizers(summary):
        c = r["chosen_lr"]
        halves = " / ".join(f"{v:g}" for v in c["halves"]) if c["halves"] else "-"
        rows.append((NAMES.get(name, name), f"{c['lr']:g}", f"{c['bootstrap_agreement']:.0%}", halves))
    return rows


def _text(title: str, rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([title] + lines)


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: s.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows[1:]])


def _setting(summary: dict) -> str:
    cfg, d = summary["config"], summary["results"]["data"]
    return (f"digits, {cfg['arch']} {tuple(cfg['widths'])}, {cfg['epochs']} epochs, {cfg['seeds']} seeds "
            f"(base seed {cfg['seed']}); test set {d['n_test']} images; low-pass keeps "
            f"{d['kept_frequencies']}/64 frequencies")


def _convergence(summary: dict) -> str:
    c = summary["results"]["pgd_convergence"]
    verdict = "converged" if c["converged"] else "NOT converged: raise --pgd-steps"
    return (f"PGD convergence: accuracy after {c['compared_with_steps']} vs {c['steps']} steps differs by at most "
            f"{c['max_change']:.4f} (tolerance {c['tol']:g}; any optimizer, lr, norm, eps, seed): {verdict}")


def table(summary: dict) -> str:
    """The printed report."""
    iv = summary["results"]["intervals"]
    return "\n".join([
        _text(f"{_setting(summary)}\nper learning rate: {iv['per_lr']} (mean ± half width; Lipschitz: mean "
              "[interval]); * = one-standard-error choice", lr_rows(summary)),
        _text(f"conclusions at matched clean accuracy (Pareto fronts; {iv['comparisons']})", conclusion_rows(summary)),
        _text(f"learning-rate choice ({iv['lr_choice']}) and its stability", choice_rows(summary)),
        _convergence(summary)])


def readme_block(summary: dict, runs_s: Optional[Sequence[float]] = None) -> str:
    """Markdown for the README's deep section, rendered from ``deep_summary.json`` alone.

    Args:
      summary: the loaded ``deep_summary.json``.
      runs_s: wall times of repeated default runs (e.g. from
        ``benchmarks/results_deep.json``); default: this run's own time.
    """
    cfg, iv = summary["config"], summary["results"]["intervals"]
    runs = list(runs_s) if runs_s else [summary["timing"]["total_s"]]
    span = f"{min(runs):.0f} s" if len(runs) == 1 else f"{min(runs):.0f} to {max(runs):.0f} s over {len(runs)} runs"
    dev = cfg.get("device", {})
    machine = f"{dev.get('count', '?')} {dev.get('platform', '?')} device(s), {summary['timing'].get('cpus', '?')} cores"
    jax = cfg.get("versions", {}).get("jax", "?")
    lines = [f"`{COMMAND}` ({span}, {machine}; jax {jax}). {_setting(summary)}.", "",
             f"Per learning rate, {iv['per_lr']} (mean ± half width; Lipschitz upper bound: mean [interval]); "
             "`*` marks the one-standard-error choice:", "", _markdown(lr_rows(summary)), "",
             f"Each claim at matched clean accuracy: robustness read off each optimizer's accuracy-robustness "
             f"Pareto front at the highest clean accuracy both reach; {iv['comparisons']}. `holding`: the interval "
             "is above 0; `not holding`: below 0; `not resolved`: it contains 0.", "",
             _markdown(conclusion_rows(summary)), "",
             f"Learning-rate choice ({iv['lr_choice']}):", "", _markdown(choice_rows(summary)), "",
             _convergence(summary) + "."]
    return "\n".join(lines) + "\n"
