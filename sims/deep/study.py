"""The deep-network study: every learning rate, every seed, every robustness metric.

Ma, Pan and Farahmand (TMLR 2023), section 5, report that networks trained
with (mini-batch) GD are more robust than those trained with Adam or RMSProp
at equal clean accuracy (THEORY.md section 6). A comparison at one
validation-tuned learning rate per optimizer rests on validation differences
of a fraction of one image, so here each optimizer is trained at every rate of
its list, over seeds, and every rate is measured:

* clean test accuracy; accuracy under white Gaussian noise; under l2 and l_inf
  PGD (:func:`sims.deep.robustness.pgd`, with a convergence check); under
  noise restricted to DCT bands; the Lipschitz bounds (upper: the product of
  the layers' SVD norms, cross-checked by power iteration); the accuracy of the
  same network trained on low-pass images (the irrelevant frequencies
  removed);
* per rate, mean and 95% Student-t interval over seeds
  (:func:`sims.deep.stats.t_interval`);
* between optimizers, robustness at the highest clean accuracy both reach,
  read off each optimizer's accuracy-robustness Pareto front, with a paired
  bootstrap interval over seeds (:func:`sims.deep.stats.compare`); each claim
  "A is more robust than B" is then holding, not holding or not resolved;
* one rate per optimizer by the one-standard-error rule
  (:func:`sims.deep.training.select_lr`), with its stability under seed
  resampling.

:class:`Config` holds every setting (the script's flags are its fields);
:func:`run_study` returns the JSON summary and the per-seed arrays the
figures need; :mod:`sims.deep.report` prints and renders it, and
:mod:`sims.deep.figures` draws it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from functools import partial
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.common import cli
from sims.common.balls import NORMS
from sims.common.optimizers import DEFAULT_HYPERPARAMS
from sims.common.streams import EVAL_STREAM
from sims.deep import stats
from sims.deep.digits import (DIM, SIDE, Digits, Split, band_masks, block_mask, energy_mask, load_split, project,
                              spectral_energy)
from sims.deep.networks import Architecture, apply, check_architecture, weight_norms, weight_shapes
from sims.deep.robustness import dense_spectral_norms, lipschitz_bounds, noise_accuracy, pgd
from sims.deep.training import OPTIMIZERS, TrainConfig, batched_accuracy, select_lr, train_lrs

#: Factor-2 learning rates around each optimizer's usual range; with momentum m
#: GD's are scaled by (1 - m), which keeps the effective step lr / (1 - m).
LRS = {
    "gd": (0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
    "adam": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2),
    "rmsprop": (5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
}
DEFAULT_WIDTHS = {"mlp": (128, 128), "cnn": (16, 32)}
BAND_NAMES = ("low", "middle", "high", "removed")
#: The claims tested, each "the first is more robust than the second".
CLAIMS = (("gd", "adam"), ("gd", "rmsprop"), ("adam", "rmsprop"))
MAX_LRS = 64  # per optimizer: more is a typo, not a study
MAX_POWER_ITERS = 10**5


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a run: the script's flags fill it (same names) and the summary's ``config`` is dumped from it.

    ``lrs`` is ``((optimizer, (lr, ...)), ...)`` (hashable); the JSON writes it as
    ``{optimizer: [lr, ...]}``.
    """

    arch: str = "mlp"
    widths: tuple = DEFAULT_WIDTHS["mlp"]
    optimizers: tuple = OPTIMIZERS
    momentum: float = 0.0
    lrs: tuple = tuple(LRS.items())
    epochs: int = 40
    batch_size: int = 64
    seeds: int = 8
    seed: int = 0
    split_seed: int = 0
    noise_sigmas: tuple = (0.1, 0.2, 0.3, 0.4, 0.5)
    noise_draws: int = 10
    l2_radii: tuple = (0.25, 0.5, 1.0)
    linf_radii: tuple = (0.02, 0.05, 0.1)
    pgd_steps: int = 50
    pgd_step_frac: float = 0.25
    pgd_tol: float = 0.01
    lowpass: str = "energy"
    keep_energy: float = 0.9
    block: int = 4
    band_sigma: float = 0.3
    power_iters: int = 100
    resamples: int = stats.RESAMPLES
    x64: bool = False


def config_json(config: Config) -> dict:
    """The summary's ``config`` block: the fields, the optimizers' hyper-parameters, the dtype, the versions."""
    d = cli.config_json(config)
    d["lrs"] = {k: list(v) for k, v in config.lrs}
    d["hparams"] = {n: dict(DEFAULT_HYPERPARAMS[n]) for n in config.optimizers if n in DEFAULT_HYPERPARAMS}
    d["dtype"] = "float64" if config.x64 else "float32"
    d["split"] = "60/20/20 stratified"
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def parse_lrs(items: Sequence[str], optimizers: Sequence[str], momentum: float) -> tuple:
    """``["adam=1e-3,1e-2", ...]`` (the ``--lrs`` flags) -> ``((name, lrs), ...)``, :data:`LRS` elsewhere.

    GD's default rates are scaled by ``1 - momentum``.

    Raises:
      ValueError: ``"--lrs: ..."`` for a malformed item, an optimizer not in
        ``optimizers`` or given twice, a repeat or more than :data:`MAX_LRS` rates.
    """
    lrs = {n: LRS[n] for n in optimizers}
    if "gd" in lrs:
        lrs["gd"] = tuple(float(f"{v * (1 - momentum):.6g}") for v in lrs["gd"])
    seen = set()
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or name not in optimizers or name in seen:
            why = ("is not of the form OPT=LR,LR,..." if not sep else "names an optimizer not in --optimizers"
                   if name not in optimizers else "gives an optimizer twice")
            raise ValueError(f"--lrs: {item!r} {why}")
        seen.add(name)
        try:
            given = cli.float_list(values)
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"--lrs: {item!r}: {err}") from None
        if any(v <= 0 for v in given):
            raise ValueError(f"--lrs: {item!r}: a learning rate must be > 0")
        if len(set(given)) != len(given) or len(given) > MAX_LRS:
            raise ValueError(f"--lrs: {item!r} repeats a value or has more than {MAX_LRS}")
        lrs[name] = tuple(sorted(given))
    return tuple((n, lrs[n]) for n in optimizers)


def check_config(config: Config) -> None:
    """The ranges the flags' types do not check.

    Raises:
      ValueError: ``"--flag: why"`` for the first setting out of range.
    """
    checks = [(config.momentum >= 1, "--momentum: must be in [0, 1)"),
              (config.keep_energy > 1, "--keep-energy: must be in (0, 1]"),
              (config.block > SIDE, f"--block: must be at most {SIDE}"),
              (config.pgd_steps < 2, "--pgd-steps: must be >= 2 (T/2 steps is the convergence check)"),
              (config.pgd_step_frac > 2, "--pgd-step-frac: must be in (0, 2]"),
              (config.pgd_tol > 1, "--pgd-tol: an accuracy change is at most 1"),
              (config.power_iters > MAX_POWER_ITERS, f"--power-iters: at most {MAX_POWER_ITERS} (the check of the "
               "SVD norms; its error falls like (s2/s1)^(4 iters))")]
    for bad, message in checks:
        if bad:
            raise ValueError(message)
    try:
        check_architecture(Architecture(config.arch, tuple(config.widths)))
    except ValueError as err:
        raise ValueError(f"--widths: {err}") from None


def headline(config: Config, band_names) -> list[tuple[str, object, str]]:
    """The metrics the claims are tested on: ``(metric, setting, label)``.

    The middle radius or sigma of each list, the noise in the removed band
    (the paper's irrelevant frequencies; the high band if nothing is removed),
    and the Lipschitz upper bound (as ``-log10``, so larger is more robust).
    """
    mid = lambda v: v[(len(v) - 1) // 2]
    band = "removed" if "removed" in band_names else band_names[-1]
    return [("noise", mid(config.noise_sigmas), f"Gaussian noise sigma {mid(config.noise_sigmas):g}"),
            ("pgd_l2", mid(config.l2_radii), f"l2 PGD radius {mid(config.l2_radii):g}"),
            ("pgd_linf", mid(config.linf_radii), f"l_inf PGD radius {mid(config.linf_radii):g}"),
            ("band_noise", band, f"noise in the {band} band"),
            ("lipschitz_upper", None, "Lipschitz upper bound")]


# --- resources ------------------------------------------------------------------------------------


class Estimate(NamedTuple):
    """A resource estimate of one part of the run, for the guards of the script."""

    flag: str
    bytes: float
    seconds: float
    what: str


#: Floating-point operations per second assumed for the time guard: a CPU
#: core's fp32 peak (3 GHz x 2 FMA units x 8 lanes x 2 flops ~ 1e11) times the
#: cores, so the guard only refuses runs certain to be too long on a CPU.
ASSUMED_FLOPS = 1e11 * (os.cpu_count() or 1)


def activation_floats(arch: Architecture) -> int:
    """Floats one sample's forward pass holds (input, every layer's output, a CNN's patches)."""
    if arch.kind == "mlp":
        return DIM + sum(arch.widths) + 10
    total, side, c_in = DIM, SIDE, 1
    for c_out in arch.widths:
        total += side * side * (9 * c_in + c_out)  # patches and the pre-pooling output
        side, c_in = side // 2, c_out
    return total + 10


def estimates(config: Config, n_train: int, n_test: int) -> list[Estimate]:
    """Memory, and a lower bound on time, of the run's largest stages, each named by its flag.

    With ``N = L S`` networks of one optimizer (all trained and measured at
    once), ``P`` parameters, ``A`` = :func:`activation_floats` per sample and
    ``b`` bytes per float: training holds ``N`` copies of the parameters and
    optimizer state (``4 P``), the epochs' shuffles (``2 epochs n_train``
    words) and a batch's activations (``3 batch A``: forward and backward);
    the noise stage (one network at a time) holds, for every setting,
    ``draws n_test`` noisy images and their activations; PGD (one network at a time) holds
    ``E n_test`` iterates and activations and the margin history
    ``E n_test (T + 1)``; the bootstrap ``resamples S`` indices. Time is
    ``6 P``-flop passes (forward and backward; the CNN's ``P`` counted once per
    output position) at the generous :data:`ASSUMED_FLOPS`, so the guard only
    refuses a run certain to be too long.
    """
    b = 8 if config.x64 else 4
    lrs = dict(config.lrs)
    nets = max(len(lrs[o]) for o in config.optimizers) * config.seeds
    k = len(config.optimizers)
    arch = Architecture(config.arch, tuple(config.widths))
    p = sum(math.prod(s) + s[-1] for s in weight_shapes(arch))
    act = activation_floats(arch)
    flops = 6 * (p * (SIDE * SIDE if config.arch == "cnn" else 1))  # one sample, forward and backward
    n_radii = max(len(config.l2_radii), len(config.linf_radii))
    settings = len(config.noise_sigmas) + len(BAND_NAMES)
    steps_per_epoch = n_train // config.batch_size
    train_samples = 2 * k * nets * config.epochs * steps_per_epoch * config.batch_size
    return [
        Estimate("--seeds", nets * (4 * p * b + 3 * config.batch_size * act * b), 0.0, "training"),
        Estimate("--epochs", nets * 2 * config.epochs * n_train * 4, train_samples * flops / ASSUMED_FLOPS,
                 "training"),
        Estimate("--noise-draws", settings * config.noise_draws * n_test * (DIM + act) * b * 2,
                 k * nets * settings * config.noise_draws * n_test * flops / 3 / ASSUMED_FLOPS,
                 "the noise evaluation"),
        Estimate("--pgd-steps", n_radii * n_test * ((config.pgd_steps + 1) + 3 * (DIM + act)) * b
                 + nets * n_radii * (config.pgd_steps + 1) * b,
                 2 * k * nets * n_radii * n_test * config.pgd_steps * flops / ASSUMED_FLOPS, "PGD"),
        Estimate("--power-iters", nets * (n_test * act * 3 + 4 * p) * b,
                 k * nets * config.power_iters * 4 * p * (SIDE * SIDE if config.arch == "cnn" else 1) / ASSUMED_FLOPS,
                 "the Lipschitz bounds"),
        Estimate("--resamples", config.resamples * config.seeds * 8 * 2, config.resamples * 15 * 1e-5,
                 "the bootstrap"),
    ]


# --- evaluation: jitted once per shape, shared by the optimizers ----------------------------------


def _flat(params):
    """``(L, S, ...)`` leaves -> ``(L S, ...)``."""
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), params)


@partial(jax.jit, static_argnames=("draws",))
def noise_curves(params, key, x, y, masks, sigmas, draws: int):
    """``(N, P)`` accuracy per network under noise in ``masks[p]`` with power ``sigmas[p]``.

    Every network and setting sees the same standard normal draws (common random numbers).
    """
    one = lambda p, m, s: noise_accuracy(key, partial(apply, p), x, y, m, s, draws)
    # One network at a time: the noisy batch of every setting is already large.
    return jax.lax.map(lambda p: jax.vmap(one, (None, 0, 0))(p, masks, sigmas), params)


@partial(jax.jit, static_argnames=("norm", "steps", "step_frac"))
def pgd_curves(params, key, x, y, radius, norm: str, steps: int, step_frac: float):
    """``(N, E, steps + 1)`` accuracy under PGD after ``k`` steps, per network and radius."""
    one = lambda p, e: jnp.mean(pgd(key, partial(apply, p), x, y, e, norm, steps, step_frac).margins > 0, axis=0)
    return jax.lax.map(lambda p: jax.vmap(one, (None, 0))(p, radius), params)


@partial(jax.jit, static_argnames=("iters",))
def layer_measures(params, key, x, y, iters: int):
    """Lipschitz bounds, the dense spectral norms and the Frobenius norms, per network."""
    bounds = jax.vmap(lambda p: lipschitz_bounds(p, x, y, key, iters))(params)
    return bounds, jax.vmap(dense_spectral_norms)(params), jax.vmap(weight_norms)(params)


class Evaluation(NamedTuple):
    """Per learning rate and seed (leading axes ``(L, S)``) measures of one optimizer."""

    val: np.ndarray
    train: np.ndarray
    clean: np.ndarray
    noise: np.ndarray  # (L, S, sigmas)
    band_noise: np.ndarray  # (L, S, bands)
    pgd: dict  # norm -> (L, S, E, steps + 1)
    lipschitz_upper: np.ndarray  # prod of the SVD layer norms
    lipschitz_lower: np.ndarray
    layer_norms: np.ndarray  # (L, S, layers), power iteration
    dense_norms: np.ndarray  # (L, S, layers), SVD
    frobenius: np.ndarray
    lowpass_val: np.ndarray
    lowpass: np.ndarray


# --- the study ------------------------------------------------------------------------------------


def _np(a, shape):
    return np.asarray(a, np.float64).reshape(shape + np.shape(a)[1:])


def evaluate_optimizer(name: str, config: Config, data: Digits, low: Digits, setup: dict,
                       tick: Callable[[str], None]) -> Evaluation:
    """Trains ``name`` at every rate and seed (on the full and the low-pass data) and measures each network."""
    lrs = dict(config.lrs)[name]
    arch = Architecture(config.arch, tuple(config.widths))
    cfg = TrainConfig(arch, name, config.epochs, config.batch_size, config.momentum if name == "gd" else 0.0)
    ls = (len(lrs), config.seeds)
    lrs = jnp.asarray(lrs, data.train.x.dtype)
    tick(f"{name}: training {ls[0]} learning rates x {ls[1]} seeds")
    trained = train_lrs(setup["keys"], lrs, data.train, cfg)
    val, train = batched_accuracy(trained, data.val), batched_accuracy(trained, data.train)
    clean = batched_accuracy(trained, data.test)
    params = jax.block_until_ready(_flat(trained))  # each stage ends before the next is announced
    tick(f"{name}: training on the low-pass images")
    trained_low = train_lrs(setup["keys"], lrs, low.train, cfg)
    lowpass_val, lowpass = jax.block_until_ready((batched_accuracy(trained_low, low.val),
                                                  batched_accuracy(trained_low, low.test)))
    del trained, trained_low
    test = data.test
    tick(f"{name}: noise")
    both = np.asarray(noise_curves(params, setup["k_noise"], test.x, test.y, setup["noise_masks"],
                                   setup["noise_sigmas"], config.noise_draws))
    k = len(config.noise_sigmas)
    attack = {}
    for norm in NORMS:
        tick(f"{name}: {norm} PGD")
        attack[norm] = _np(pgd_curves(params, setup["pgd_keys"][norm], test.x, test.y, setup["radius"][norm], norm,
                                      config.pgd_steps, config.pgd_step_frac), ls)
    tick(f"{name}: Lipschitz bounds")
    bounds, dense, frob = layer_measures(params, setup["k_power"], test.x, test.y, config.power_iters)
    # The upper bound from the exact (SVD) layer norms; power iteration is the cross-check.
    upper = jnp.prod(dense, axis=-1)
    return Evaluation(
        np.asarray(val, np.float64),
        np.asarray(train, np.float64), np.asarray(clean, np.float64),
        _np(both[:, :k], ls), _np(both[:, k:], ls), attack,
        _np(upper, ls), _np(bounds.lower, ls), _np(bounds.layer_norms, ls), _np(dense, ls), _np(frob, ls),
        np.asarray(lowpass_val, np.float64), np.asarray(lowpass, np.float64))


def _interval(a) -> dict:
    """``{mean, lo, hi}`` over seeds (axis 1 of ``(L, S, ...)``), per learning rate."""
    iv = stats.t_interval(np.moveaxis(np.asarray(a, np.float64), 1, 0))
    return {"mean": iv.mean.tolist(), "lo": iv.lo.tolist(), "hi": iv.hi.tolist()}


def metric(ev: Evaluation, name: str, setting, config: Config, band_names) -> np.ndarray:
    """``(L, S)`` robustness (larger is more robust) of one headline metric."""
    if name == "noise":
        return ev.noise[..., list(config.noise_sigmas).index(setting)]
    if name == "pgd_l2":
        return ev.pgd["l2"][..., list(config.l2_radii).index(setting), -1]
    if name == "pgd_linf":
        return ev.pgd["linf"][..., list(config.linf_radii).index(setting), -1]
    if name == "band_noise":
        return ev.band_noise[..., list(band_names).index(setting)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log10(ev.lipschitz_upper)


class StudyResult(NamedTuple):
    """The summary (JSON-ready) and the per-seed measures behind it."""

    summary: dict
    evaluations: dict  # optimizer -> Evaluation
    band_names: tuple
    config: Config


def prepare(config: Config, data: Digits) -> tuple[dict, Digits, tuple, dict]:
    """Keys, the low-pass data and the noise settings, shared by every optimizer."""
    dtype = data.train.x.dtype
    base = jax.random.key(config.seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(config.seeds))
    k_noise, k_l2, k_linf, k_power = jax.random.split(jax.random.fold_in(base, EVAL_STREAM), 4)
    energy = spectral_energy(data.train.x)
    keep = energy_mask(energy, config.keep_energy) if config.lowpass == "energy" else block_mask(config.block)
    removed = ~keep
    masks = jnp.concatenate([band_masks(3), removed[None]]) if bool(removed.any()) else band_masks(3)
    band_names = BAND_NAMES[: masks.shape[0]]
    low = Digits(*(Split(project(s.x, keep), s.y) for s in data))
    setup = {
        "keys": keys, "k_noise": k_noise, "k_power": k_power, "pgd_keys": {"l2": k_l2, "linf": k_linf},
        "noise_masks": jnp.concatenate([jnp.ones((len(config.noise_sigmas), DIM), bool), masks]),
        "noise_sigmas": jnp.asarray(config.noise_sigmas + (config.band_sigma,) * masks.shape[0], dtype),
        "radius": {"l2": jnp.asarray(config.l2_radii, dtype), "linf": jnp.asarray(config.linf_radii, dtype)},
    }
    energy = np.asarray(energy, np.float64)
    keep = np.asarray(keep)
    info = {
        "n_train": int(data.train.x.shape[0]), "n_val": int(data.val.x.shape[0]), "n_test": int(data.test.x.shape[0]),
        "spectral_energy": energy.reshape(SIDE, SIDE).tolist(), "kept_frequencies": int(keep.sum()),
        "kept_energy_fraction": float(energy[keep].sum() / energy.sum()),
        "kept_mask": keep.reshape(SIDE, SIDE).astype(int).tolist(),
        "bands": {b: np.flatnonzero(np.asarray(m)).tolist() for b, m in zip(band_names, masks)},
    }
    return setup, low, band_names, info


def run_study(config: Config, tick: Optional[Callable[[str], None]] = None,
              data: Optional[Digits] = None) -> StudyResult:
    """Trains and measures every optimizer at every rate and seed; compares them; returns the summary.

    Args:
      config: the settings.
      tick: called with a message at the start of each stage (progress).
      data: the split; default: :func:`sims.deep.digits.load_split` of
        ``config.split_seed`` in float64 if ``config.x64``, else float32 (the
        data's dtype is the computation's).

    Returns:
      :class:`StudyResult`.
    """
    tick = tick or (lambda message: None)
    if data is None:
        tick("loading the digits")
        data = load_split(config.split_seed, dtype=jnp.float64 if config.x64 else jnp.float32)
    setup, low, band_names, info = prepare(config, data)
    lrs = dict(config.lrs)
    evaluations, timing = {}, {}
    for name in config.optimizers:
        t0 = time.perf_counter()
        evaluations[name] = evaluate_optimizer(name, config, data, low, setup, tick)
        timing[f"{name}_s"] = time.perf_counter() - t0
    tick("statistics: intervals, Pareto fronts, bootstrap comparisons")
    t0 = time.perf_counter()
    rng = np.random.default_rng([config.seed, EVAL_STREAM])
    optimizers = {name: _optimizer_summary(lrs[name], ev, config, rng) for name, ev in evaluations.items()}
    comparisons = _comparisons(evaluations, config, band_names, rng)
    timing["statistics_s"] = time.perf_counter() - t0
    half = config.pgd_steps // 2
    change = max(float(np.nanmax(ev.pgd[n][..., half] - ev.pgd[n][..., -1])) for ev in evaluations.values() for n in NORMS)
    summary = {
        "config": config_json(config),
        "results": {
            "data": info,
            "intervals": {
                "per_lr": f"mean and {stats.LEVEL:.0%} Student-t interval over the {config.seeds} seeds",
                "comparisons": f"paired percentile bootstrap over seeds, {config.resamples} resamples, "
                               f"{stats.LEVEL:.0%}",
                "lr_choice": "largest lr with mean validation accuracy >= best mean - its standard error",
            },
            "optimizers": optimizers,
            "comparisons": comparisons,
            "conclusions": _conclusions(comparisons),
            "pgd_convergence": {"steps": config.pgd_steps, "compared_with_steps": half, "max_change": change,
                                "tol": config.pgd_tol, "converged": bool(change <= config.pgd_tol)},
        },
        "timing": timing,
    }
    return StudyResult(summary, evaluations, band_names, config)


def _optimizer_summary(lrs, ev: Evaluation, config: Config, rng) -> dict:
    sel = select_lr(lrs, ev.val)
    stab = stats.selection_stability(lrs, ev.val, select_lr, rng, config.resamples)
    low_sel = select_lr(lrs, ev.lowpass_val)
    half = config.pgd_steps // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(ev.layer_norms / ev.dense_norms - 1)
    return {
        "lrs": list(lrs),
        "chosen_lr": {"lr": sel.lr, "index": sel.index, "bootstrap_agreement": stab.bootstrap_agreement,
                      "halves": list(stab.halves) if stab.halves else None},
        "lowpass_chosen_lr": low_sel.lr,
        "per_lr": {
            "val_accuracy": _interval(ev.val), "train_accuracy": _interval(ev.train),
            "clean_accuracy": _interval(ev.clean), "noise_accuracy": _interval(ev.noise),
            "band_noise_accuracy": _interval(ev.band_noise),
            "pgd_l2_accuracy": _interval(ev.pgd["l2"][..., -1]), "pgd_linf_accuracy": _interval(ev.pgd["linf"][..., -1]),
            "pgd_l2_accuracy_half_steps": _interval(ev.pgd["l2"][..., half]),
            "pgd_linf_accuracy_half_steps": _interval(ev.pgd["linf"][..., half]),
            "lipschitz_upper": _interval(ev.lipschitz_upper), "lipschitz_lower": _interval(ev.lipschitz_lower),
            "lowpass_accuracy": _interval(ev.lowpass), "lowpass_change": _interval(ev.lowpass - ev.clean),
            "spectral_norms": _interval(ev.dense_norms), "frobenius_norms": _interval(ev.frobenius),
        },
        "power_iteration_max_rel_err": float(np.nanmax(rel)) if np.isfinite(rel).any() else float("nan"),
    }


def _comparisons(evaluations: dict, config: Config, band_names, rng) -> list[dict]:
    out = []
    for a, b in CLAIMS:
        if a not in evaluations or b not in evaluations:
            continue
        for name, setting, label in headline(config, band_names):
            ea, eb = evaluations[a], evaluations[b]
            c = stats.compare(ea.clean, metric(ea, name, setting, config, band_names),
                              eb.clean, metric(eb, name, setting, config, band_names), rng, config.resamples)
            out.append({"a": a, "b": b, "claim": f"{a} more robust than {b}", "metric": name, "setting": setting,
                        "label": label, "matched_accuracy": dict(zip(("value", "lo", "hi"), c.accuracy)),
                        "robustness_a": c.robustness_a, "robustness_b": c.robustness_b,
                        "difference": dict(zip(("value", "lo", "hi"), c.difference)), "verdict": c.verdict,
                        "undefined_fraction": c.undefined})
    return out


def _conclusions(comparisons: list[dict]) -> dict:
    """Per claim: its verdict on every headline metric, and the counts."""
    out: dict = {}
    for c in comparisons:
        entry = out.setdefault(c["claim"], {"verdicts": {}, "counts": {v: 0 for v in stats.VERDICTS}})
        entry["verdicts"][c["label"]] = c["verdict"]
        entry["counts"][c["verdict"]] += 1
    return out
