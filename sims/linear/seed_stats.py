"""Statistics over many seeds in bounded memory, and a fixed-budget attack check.

:func:`simulate_stats` runs the engine over chunks of seeds. Chunk ``c``
holds the seeds ``start, ..., stop - 1`` with keys
``seed_keys(range(start, stop), base_seed)``, so seed ``i`` is bitwise the
same trajectory whatever the chunking (the engine's seed independence). At
each record point, on the device, it reduces the chunk's kept seeds (those
that did not diverge, :func:`sims.linear.metrics.diverged`'s criterion) to a count,
a mean, a sum of squared deviations ``M2``, a minimum and a maximum, of

* the error ``e~ = w~ - w~*`` (``(k, T, d)``), and
* the risk curves ``R_s``, ``||w||`` and the l2 ``R_a`` (``(k, T)``,
  :func:`sims.linear.metrics.risk_curves`),

and merges the chunks on the host in float64 by Chan, Golub and LeVeque's
pairwise update (for counts ``n_a, n_b``, ``delta = mean_b - mean_a``):

    n = n_a + n_b,  mean = mean_a + delta n_b / n,
    M2 = M2_a + M2_b + delta^2 n_a n_b / n,   std = sqrt(M2 / n).

Per seed it keeps only the final weights ``(seeds, k, d)``, the divergence
flags ``(seeds, k)`` and, when asked, the observed signGD phase times. The
memory is one chunk of records on the device plus that per-seed final state;
:func:`chunk_size` picks the chunk from a memory budget.

:func:`attack_check` estimates the adversarial risk of the final weights
from a fixed number ``N`` of test samples, whatever the number of seeds:
sample ``j`` is drawn from ``fold_in(key, j)`` (shared by the optimizers)
and attacks the weights of the ``(j mod K)``-th kept seed (``K`` kept). Its
95% interval ``mean +- 1.96 s / sqrt(N)`` (``s`` the sample standard
deviation of the ``N`` losses) covers

    theta = (1/N) sum_j R_a(w_{sigma(j)}),

the seeds' risks weighted by how often each was used (``closed_form``
returns it for the worst-case attack, whose expected loss is exactly
``R_a``). Given the seeds, ``E[mean] = theta`` and
``Var(mean) = (1/N^2) sum_j sigma_j^2``, while
``E[s^2 / N] = (1/N^2) sum_j sigma_j^2 + sum_j (mu_j - mu)^2 / (N (N - 1))``:
the interval is conservative by the spread of the seeds' risks, and exact
when ``N <= K`` (the pairs (seed, sample) are then i.i.d., and it is the
usual interval for the mean over the seed distribution).

THEORY.md section 2 (risks) and section 8 (the paper's setting).
Reference: T. F. Chan, G. H. Golub, R. J. LeVeque, *Algorithms for
computing the sample variance*, The American Statistician 37, 1983.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sims.linear.engine import SEED_MULTIPLE, Simulation, seed_keys, simulate_seeds_last
from sims.linear.metrics import DIVERGENCE_FACTOR
from theory.dynamics import observe_records, phase_times
from theory.risks import adversarial_risk_l2, standard_risk, weight_norm
from theory.signal import Problem

Array = jax.Array

#: Default device memory for one chunk's records and their statistics.
MEMORY_BUDGET = 256 * 2**20

#: Beyond this many seeds per device a chunk gains no speed (the engine is
#: vectorised over seeds long before).
MAX_CHUNK_PER_DEVICE = 8192

#: Engine calls per chunk of seeds, so that progress is reported within a
#: chunk (the results do not depend on it).
PROGRESS_CALLS = 8

CURVES = ("standard_risk", "weight_norm", "adversarial_risk")
#: Per-seed quantities of the error reduced besides ``e~``: ``|e~|`` and the
#: norms of its relevant and irrelevant bands (what the figures draw for d > 4).
ERRORS = ("e_freq", "abs_e_freq", "relevant_norm", "irrelevant_norm")


class Moments(NamedTuple):
    """Statistics over the kept seeds, float64.

    Attributes:
      count: ``(k,)`` kept seeds of each optimizer.
      mean, std, min, max: ``(k, T, ...)``; ``std`` is the population
        standard deviation (``ddof = 0``); NaN where no seed was kept.
    """

    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray


class SeedStats(NamedTuple):
    """What :func:`simulate_stats` keeps.

    Attributes:
      names: optimizer names (axis ``k``).
      steps: ``(T,)`` the record steps.
      e_freq: :class:`Moments` of ``e~`` over ``(k, T, d)``.
      abs_e_freq: :class:`Moments` of ``|e~|`` over ``(k, T, d)``.
      relevant_norm, irrelevant_norm: :class:`Moments` of ``||e~_R||`` and
        ``||e~_I||`` over ``(k, T)``.
      standard_risk, weight_norm, adversarial_risk: :class:`Moments` over ``(k, T)``.
      w_final: ``(seeds, k, d)`` final weights, in the engine's dtype.
      diverged: ``(seeds, k)`` bool.
      phases: ``{t1, t2, irrelevant_drift}`` of ``(seeds,)`` float64 for
        signGD (:func:`theory.dynamics.phase_times` over the records of the
        record steps' dense prefix; the drift is ``e~_2(t2) - e~_2(0)``; NaN where a
        phase was not reached and for diverged seeds), or ``None`` when not asked.
    """

    names: tuple[str, ...]
    steps: np.ndarray
    e_freq: Moments
    abs_e_freq: Moments
    relevant_norm: Moments
    irrelevant_norm: Moments
    standard_risk: Moments
    weight_norm: Moments
    adversarial_risk: Moments
    w_final: np.ndarray
    diverged: np.ndarray
    phases: Optional[dict]


class _Partial(NamedTuple):
    """Sufficient statistics of one chunk (or of merged chunks)."""

    count: np.ndarray  # (k,)
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray


def chunk_size(n_seeds: int, steps: int, k: int, d: int, itemsize: int = 4, n_devices: int = 1,
               budget: int = MEMORY_BUDGET) -> int:
    """Seeds per chunk whose records fit ``budget`` bytes.

    A seed's share is its records ``(T, k, d)`` twice (the engine's calls and
    their concatenation), its error and absolute error ``(T, k, d)`` with a
    masked copy, and its three curves and two band norms ``(T, k)`` with their
    masked copies: ``T k itemsize (5 d + 10)`` bytes. The chunk is a
    multiple of ``SEED_MULTIPLE`` per device (the engine pads to it anyway), at
    least one such multiple and at most the seeds asked for (rounded up).
    """
    unit = SEED_MULTIPLE * n_devices
    per_seed = steps * k * itemsize * (5 * d + 10)
    fit = max(unit, budget // max(1, per_seed) // unit * unit)
    cap = min(MAX_CHUNK_PER_DEVICE * n_devices, -(-n_seeds // unit) * unit)
    return int(min(fit, max(unit, cap)))


@functools.partial(jax.jit, static_argnames=("phase_index", "n_dense"))
def _reduce_chunk(w: Array, valid: Array, problem: Problem, radius, phase_index: int = -1, n_dense: int = 0):
    """Reduces one chunk's records ``w`` ``(T, k, d, S)`` over its kept seeds.

    ``valid``: ``(S,)``, False for padding. Returns the partials of ``e~`` and
    of the curves (reduced over the seed axis, float32), the divergence flags
    ``(k, S)``, the final weights ``(k, d, S)`` and, with ``phase_index >= 0``,
    signGD's observed phases per seed: ``(t1, t2, e~_2(t2), e~_2(0))``, each
    ``(S,)``, from :func:`theory.dynamics.phase_times` scanned over the first
    ``n_dense`` records (steps ``0, ..., n_dense - 1``).
    """
    w_last = jnp.moveaxis(w, 2, -1)  # (T, k, S, d): XLA fuses the transpose into the consumers
    r_s = standard_risk(w_last, problem)  # (T, k, S)
    curves = (r_s, weight_norm(w_last), adversarial_risk_l2(w_last, problem, radius))
    # sims.linear.metrics.diverged, on the seed-last layout.
    reference = jnp.maximum(standard_risk(problem.w0_freq, problem), standard_risk(jnp.zeros_like(problem.w0_freq), problem))
    finite = jnp.all(jnp.isfinite(w), axis=(0, 2))  # (k, S)
    blown = jnp.max(jnp.where(jnp.isfinite(r_s), r_s, jnp.inf), axis=0) > DIVERGENCE_FACTOR * reference
    div = ~finite | blown
    keep = valid[None, :] & ~div  # (k, S)
    count = jnp.sum(keep, axis=-1)

    def moments(x, mask):  # x: (T, k, ..., S); mask broadcasts against it
        n = jnp.maximum(count, 1).astype(x.dtype).reshape((1, -1) + (1,) * (x.ndim - 2))
        mean = jnp.sum(jnp.where(mask, x, 0), axis=-1) / n[..., 0]
        m2 = jnp.sum(jnp.where(mask, jnp.square(x - mean[..., None]), 0), axis=-1)
        lo = jnp.min(jnp.where(mask, x, jnp.inf), axis=-1)
        hi = jnp.max(jnp.where(mask, x, -jnp.inf), axis=-1)
        return mean, m2, lo, hi

    e = w - problem.w_star_freq[None, None, :, None]
    band = lambda mask: jnp.sqrt(jnp.sum(jnp.where(mask[None, None, :, None], jnp.square(e), 0), axis=2))
    irrelevant = problem.spectrum == 0
    parts = {"e_freq": moments(e, keep[None, :, None, :]), "abs_e_freq": moments(jnp.abs(e), keep[None, :, None, :]),
             "relevant_norm": moments(band(~irrelevant), keep[None]),
             "irrelevant_norm": moments(band(irrelevant), keep[None])}
    for name, c in zip(CURVES, curves):
        parts[name] = moments(c, keep[None])
    phase = None
    if phase_index >= 0:
        dense = e[:n_dense, phase_index]  # (T_dense, d, S)
        observer = phase_times(problem.spectrum)
        seen = jax.vmap(lambda x: observe_records(observer, jnp.arange(n_dense), x), in_axes=2)(dense)
        phase = (seen.t1, seen.t2, seen.e_freq_t2[:, 2], dense[0, 2])
    return count, parts, div, w[-1], phase


def _to_partial(count, part) -> _Partial:
    """A chunk's device partial as float64, ``(k, T, ...)``."""
    mean, m2, lo, hi = (np.moveaxis(np.asarray(v, np.float64), 0, 1) for v in part)
    return _Partial(np.asarray(count, np.int64), mean, m2, lo, hi)


def merge(a: Optional[_Partial], b: _Partial) -> _Partial:
    """Chan et al.'s pairwise merge of two partials (float64); see the module docstring."""
    if a is None:
        return b
    shape = (-1,) + (1,) * (a.mean.ndim - 1)
    na, nb = a.count.astype(np.float64).reshape(shape), b.count.astype(np.float64).reshape(shape)
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    delta = b.mean - a.mean
    mean = np.where(nb > 0, np.where(na > 0, a.mean + delta * nb / safe, b.mean), a.mean)
    m2 = np.where(
        (na > 0) & (nb > 0), a.m2 + b.m2 + delta**2 * na * nb / safe, np.where(nb > 0, b.m2, a.m2)
    )
    return _Partial(a.count + b.count, mean, m2, np.minimum(a.min, b.min), np.maximum(a.max, b.max))


def _finish(p: _Partial) -> Moments:
    shape = (-1,) + (1,) * (p.mean.ndim - 1)
    n = p.count.reshape(shape)
    none = n == 0
    nan = lambda x: np.where(none, np.nan, x)
    std = np.sqrt(np.maximum(p.m2, 0.0) / np.where(none, 1, n))
    return Moments(p.count, nan(p.mean), nan(std), nan(p.min), nan(p.max))


def dense_prefix(record_steps) -> int:
    """Record steps of the leading run ``0, 1, 2, ...`` (every step recorded)."""
    record_steps = np.asarray(record_steps)
    return int(np.sum(np.cumprod(record_steps == np.arange(len(record_steps)))))


def simulate_stats(
    sim: Simulation,
    problem: Problem,
    base_seed: int,
    n_seeds: int,
    record_steps,
    radius,
    *,
    chunk_seeds: Optional[int] = None,
    devices: Optional[Sequence[jax.Device]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    phases: bool = False,
    budget: int = MEMORY_BUDGET,
    draw_steps: Optional[int] = None,
) -> SeedStats:
    """Runs ``n_seeds`` seeds in chunks and keeps statistics over them.

    Args:
      sim: from :func:`sims.linear.engine.make_simulation`.
      problem: the signal model.
      base_seed: seed ``i`` uses ``fold_in(key(base_seed), i)``.
      n_seeds: number of seeds.
      record_steps: from :mod:`sims.linear.recording` (starts at 0).
      radius: the l2 budget of ``R_a``.
      chunk_seeds: seeds per chunk; default :func:`chunk_size` of ``budget``.
        Results do not depend on it (beyond float32 summation order in the
        statistics, see the module docstring).
      devices: devices to shard each chunk over (default: all).
      progress: called as ``progress(seed_steps_done, n_seeds * steps)``
        during each chunk.
      phases: also keep the observed signGD phase times per seed, read on
        the record steps' dense prefix (:func:`dense_prefix`); needs ``d = 3`` and
        an optimizer named ``signgd``.
      budget: device bytes for one chunk (see :func:`chunk_size`).
      draw_steps: the engine's steps drawn at once (default: its own choice).

    Returns:
      :class:`SeedStats`.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    devices = tuple(devices if devices is not None else jax.devices())
    record_steps = np.asarray(record_steps)
    k, d = len(sim.names), problem.dim
    if chunk_seeds is None:
        chunk_seeds = chunk_size(n_seeds, len(record_steps), k, d, jnp.dtype(problem.spectrum.dtype).itemsize,
                                 len(devices), budget)
    if chunk_seeds < 1:
        raise ValueError(f"chunk_seeds must be >= 1, got {chunk_seeds}")
    phase_index, n_dense = -1, 0
    if phases:
        if d != 3 or "signgd" not in sim.names:
            raise ValueError("phases need d = 3 and an optimizer named 'signgd'")
        phase_index, n_dense = sim.names.index("signgd"), dense_prefix(record_steps)

    totals: dict[str, Optional[_Partial]] = {name: None for name in ERRORS + CURVES}
    w_final = np.empty((n_seeds, k, d), problem.spectrum.dtype)
    div_all = np.empty((n_seeds, k), bool)
    obs = {name: np.full(n_seeds, np.nan) for name in ("t1", "t2", "irrelevant_drift")} if phases else None
    steps = None
    for start in range(0, n_seeds, chunk_seeds):
        stop = min(n_seeds, start + chunk_seeds)
        # Every chunk has chunk_seeds seeds (the last one padded with copies), so one compilation serves all.
        idx = np.minimum(np.arange(start, start + chunk_seeds), stop - 1)
        base, n_chunk = start * int(record_steps[-1]), stop - start
        report = None if progress is None else (
            lambda done, total, base=base, n_chunk=n_chunk: progress(base + n_chunk * done, n_seeds * total))
        out = simulate_seeds_last(sim, problem, seed_keys(idx, base_seed), record_steps, chunks=PROGRESS_CALLS,
                                  devices=devices, draw_steps=draw_steps, progress=report)
        steps = out.steps
        valid = np.zeros(out.w_freq.shape[-1], bool)
        valid[: stop - start] = True
        count, parts, div, last, phase = _reduce_chunk(out.w_freq, jnp.asarray(valid), problem, radius,
                                                       phase_index=phase_index, n_dense=n_dense)
        del out
        for name, part in parts.items():
            totals[name] = merge(totals[name], _to_partial(count, part))
        n = stop - start
        w_final[start:stop] = np.moveaxis(np.asarray(last), -1, 0)[:n]
        div_all[start:stop] = np.asarray(div).T[:n]
        if phases:
            t1, t2, e2_t2, e2_0 = (np.asarray(v)[:n] for v in phase)
            got = {"t1": np.where(t1 >= 0, steps[np.maximum(t1, 0)], np.nan),
                   "t2": np.where(t2 >= 0, steps[np.maximum(t2, 0)], np.nan),
                   # float64 difference of the recorded values
                   "irrelevant_drift": np.where(t2 >= 0, e2_t2.astype(np.float64) - e2_0.astype(np.float64), np.nan)}
            ok = ~div_all[start:stop, phase_index]
            for name, v in got.items():
                obs[name][start:stop] = np.where(ok, v, np.nan)
    return SeedStats(
        sim.names,
        steps,
        *(_finish(totals[name]) for name in ERRORS + CURVES),
        w_final,
        div_all,
        obs,
    )


# --------------------------------------------------------------------------
# The empirical attack check.


class AttackEstimate(NamedTuple):
    """Monte Carlo adversarial risk of each optimizer's final weights.

    Attributes:
      mean: ``(k,)`` mean of the ``N`` per-sample losses (NaN if no seed kept).
      ci95: ``(k, 2)`` the interval ``mean -+ 1.96 s / sqrt(N)``.
      std: ``(k,)`` ``s``, the sample standard deviation (``ddof = 1``).
      closed_form: ``(k,)`` ``(1/N) sum_j R_a(w_{sigma(j)})``, what the
        worst-case attack estimates (PGD estimates a lower bound of it).
      n_samples: ``N``.
    """

    mean: np.ndarray
    ci95: np.ndarray
    std: np.ndarray
    closed_form: np.ndarray
    n_samples: int


def sample_seeds(keep: np.ndarray, n_samples: int) -> np.ndarray:
    """``(N, k)`` the seed whose weights test sample ``j`` attacks, per
    optimizer: the ``(j mod K)``-th kept seed (0 where none is kept)."""
    keep = np.asarray(keep, bool)
    out = np.zeros((n_samples, keep.shape[1]), np.int64)
    j = np.arange(n_samples)
    for o in range(keep.shape[1]):
        kept = np.flatnonzero(keep[:, o])
        if kept.size:
            out[:, o] = kept[j % kept.size]
    return out


@functools.partial(jax.jit, static_argnames=("attack", "pgd"))
def _sample_losses(key, first, w, problem, radius, attack: str, pgd: tuple):
    """Per-sample losses ``(B, k)``: sample ``first + b`` from ``fold_in(key, first + b)``
    attacks ``w[b]`` ``(B, k, d)``, each optimizer with the same sample."""
    from sims.linear.attacks import monte_carlo_risk

    def one(j, wj):
        return monte_carlo_risk(jax.random.fold_in(key, j), wj, problem, radius, 1, attack, **dict(pgd)).mean

    return jax.vmap(one)(first + jnp.arange(w.shape[0], dtype=jnp.uint32), w)


def attack_check(
    key: Array,
    w_final: np.ndarray,
    keep: np.ndarray,
    problem: Problem,
    radius,
    n_samples: int,
    attack: str = "worst_l2",
    batch: int = 4096,
    **pgd_kwargs,
) -> AttackEstimate:
    """Adversarial risk on ``n_samples`` fresh test samples, whatever the seed count.

    Sample ``j`` (from ``fold_in(key, j)``, shared by the optimizers) attacks
    the weights of the ``(j mod K)``-th kept seed (:func:`sample_seeds`);
    the interval is derived in the module docstring.

    Args:
      key: PRNG key of the test data (disjoint from the seeds' streams).
      w_final: ``(seeds, k, d)`` final weights; ``keep``: ``(seeds, k)``.
      problem: the signal model.
      radius: l2 budget.
      n_samples: ``N`` (at least 2).
      attack: one of :data:`sims.linear.attacks.ATTACKS`.
      batch: samples per compiled call (memory bound; results do not depend on it).
      **pgd_kwargs: ``steps``, ``step_size``, ``random_start``, ``restarts`` for PGD.

    Returns:
      :class:`AttackEstimate`.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    keep = np.asarray(keep, bool)
    which = sample_seeds(keep, n_samples)  # (N, k)
    k = keep.shape[1]
    w_used = np.asarray(w_final)[which, np.arange(k)[None, :]]  # (N, k, d)
    batch = min(batch, n_samples)
    pgd = tuple(sorted(pgd_kwargs.items()))
    dtype = problem.spectrum.dtype
    losses = []
    for first in range(0, n_samples, batch):
        w = np.zeros((batch,) + w_used.shape[1:], dtype)
        part = w_used[first : first + batch]
        w[: len(part)] = part
        got = _sample_losses(key, jnp.uint32(first), jnp.asarray(w), problem, radius, attack, pgd)
        losses.append(np.asarray(got, np.float64)[: len(part)])
    loss = np.concatenate(losses)  # (N, k)
    mean = loss.mean(axis=0)
    std = loss.std(axis=0, ddof=1)
    half = 1.96 * std / math.sqrt(n_samples)
    closed = np.asarray(adversarial_risk_l2(jnp.asarray(w_used), problem, radius), np.float64).mean(axis=0)
    none = ~keep.any(axis=0)
    nan = lambda x: np.where(none.reshape((-1,) + (1,) * (x.ndim - 1)), np.nan, x)
    return AttackEstimate(nan(mean), nan(np.stack([mean - half, mean + half], -1)), nan(std), nan(closed), n_samples)
