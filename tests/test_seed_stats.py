"""Statistics over seeds in chunks (``sims.linear.seed_stats``) against the full trajectories.

* The streamed count, mean, std, min and max of ``e~`` and of the risk curves
  equal NumPy's float64 statistics of :func:`sims.linear.engine.simulate`'s output over
  the kept seeds, for several chunk sizes, within the float32 summation bound.
* Seed ``i``'s final weights are bitwise the same with 4 and 8 seeds and any
  chunking; divergence flags are :func:`sims.linear.metrics.diverged`'s.
* The fixed-budget attack check equals an independent per-sample computation
  and its interval covers what it estimates.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.linear.metrics import diverged
from sims.common.optimizers import make_optimizer
from sims.linear.oracles import make_oracle
from sims.linear.recording import every_k
from sims.linear.seed_stats import (PROGRESS_CALLS, attack_check, chunk_size, dense_prefix, merge, sample_seeds,
                                    simulate_stats)
from theory.dynamics import observe_records, phase_times
from theory.signal import paper_problem, sample_freq

_model = functools.lru_cache(maxsize=None)(paper_problem)
EPS = 1.4
SEEDS = 40
U = 2.0**-24  # float32 unit roundoff
# GD at lr 120 on one-sample batches diverges for some seeds (lr s_0^2 = 1.2, but
# lr ||x||^2 often exceeds 2); signGD and Adam at lr 0.01 never do.
GRID = np.union1d(np.arange(60), every_k(300, 7)).astype(np.int64)


@functools.lru_cache(maxsize=None)
def _sim():
    opts = {"gd": make_optimizer("gd", 120.0), "signgd": make_optimizer("signgd", 0.01),
            "adam": make_optimizer("adam", 0.01)}
    return make_simulation(opts, make_oracle("online", _model().spectrum, 1))


@functools.lru_cache(maxsize=None)
def _full() -> np.ndarray:
    # (S, k, T, d) float32, in as many calls as simulate_stats makes per chunk (the same
    # compiled program as its one 40-seed chunk; results do not depend on the calls).
    return np.asarray(simulate(_sim(), _model(), seed_keys(SEEDS, 3), GRID, chunks=PROGRESS_CALLS).w_freq)


def _curves64(w: np.ndarray) -> dict:
    """``R_s``, ``||w||`` and l2 ``R_a`` in float64 NumPy, written out from THEORY.md section 2."""
    m = _model()
    w = w.astype(np.float64)
    e = w - np.asarray(m.w_star_freq, np.float64)
    r_s = 0.5 * np.sum((np.asarray(m.spectrum, np.float64) * e) ** 2, axis=-1)
    norm = np.sqrt(np.sum(w**2, axis=-1))
    r_a = r_s + 2 * EPS * np.sqrt(r_s / np.pi) * norm + 0.5 * EPS**2 * norm**2
    return {"standard_risk": r_s, "weight_norm": norm, "adversarial_risk": r_a}


def _check_moments(got, x: np.ndarray, keep: np.ndarray, chunk: int, c_eval: float):
    """``got`` (Moments, ``(k, T, ...)``) against float64 statistics of ``x`` ``(S, k, T, ...)``.

    Bounds (u = 2^-24): a value the device computes is off by at most
    ``c_eval u |x|`` (0 for ``e~``, bitwise the engine's; see ``c_eval`` of the
    curves). A chunk of ``n <= chunk`` seeds sums in float32 with an error of at
    most ``(n - 1) u sum |x|``, so its mean is off by ``delta <= chunk u max|x|``;
    the float64 merge adds nothing at this scale. Hence
    ``|mean - mean_64| <= (chunk + 1 + c_eval) u max|x|``. For the variance,
    ``M2`` summed about a mean off by ``delta`` is ``M2 + n delta^2`` and sums
    with ``(n + 3) u M2``; the merge's ``delta_ab^2 n_a n_b / n`` moves by at
    most ``4 delta range``; so ``|var - var_64| <= (chunk + 3) u var + delta^2
    + 4 delta range`` and ``|std - std_64| <= sqrt(that) + c_eval u max|x|``
    (``|sqrt a - sqrt b| <= sqrt|a - b|``). min and max: ``c_eval u max|x|``.
    """
    x = np.where(keep.reshape(keep.shape + (1,) * (x.ndim - 2)), x, np.nan)
    count = keep.sum(0)
    np.testing.assert_array_equal(got.count, count)
    big = np.nanmax(np.abs(x), axis=0)
    rng = np.nanmax(x, axis=0) - np.nanmin(x, axis=0)
    var = np.nanvar(x, axis=0)
    delta = chunk * U * big
    tol_mean = (chunk + 1 + c_eval) * U * big
    tol_std = np.sqrt((chunk + 3) * U * var + delta**2 + 4 * delta * rng) + c_eval * U * big
    np.testing.assert_array_less(np.abs(got.mean - np.nanmean(x, axis=0)), tol_mean + 1e-300)
    np.testing.assert_array_less(np.abs(got.std - np.nanstd(x, axis=0)), tol_std + 1e-300)
    for mine, ref in ((got.min, np.nanmin(x, axis=0)), (got.max, np.nanmax(x, axis=0))):
        np.testing.assert_array_less(np.abs(mine - ref), c_eval * U * big + 1e-300 if c_eval else 1e-300)
        if not c_eval:
            np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("chunk", [16, 24, SEEDS])
def test_streamed_statistics_equal_numpy(chunk):
    """Chunks of 16 (three chunks, the last padded), 24 and 40 seeds.

    ``e~`` is the engine's float32 ``w~`` minus the float32 ``w~*`` on both
    sides: bitwise the same values, so only the summation bound applies.
    The curves are evaluated on the device in float32 and here in float64:
    ``R_a = R_s + 2 eps sqrt(R_s/pi) ||w|| + eps^2/2 ||w||^2`` is a sum of
    positive terms built with at most about 25 roundings for d = 3 (``R_s``:
    d subtractions, products, squares and d - 1 additions; ``||w||``: 2d; the
    rest about 9), so each value is within ``c_eval u |x|`` with
    ``c_eval = 32``.
    """
    st = simulate_stats(_sim(), _model(), 3, SEEDS, GRID, EPS, chunk_seeds=chunk)
    w = _full()
    div = diverged(jnp.asarray(w), _model())
    np.testing.assert_array_equal(st.diverged, div)
    assert 0 < div[:, 0].sum() < SEEDS and not div[:, 1:].any()  # the divergence path is exercised
    keep = ~div
    e = (w - np.asarray(_model().w_star_freq)).astype(np.float64)  # float32 subtraction, then exact
    _check_moments(st.e_freq, e, keep, chunk, 0.0)
    for name, x in _curves64(w).items():
        _check_moments(getattr(st, name), x, keep, chunk, 32.0)
    np.testing.assert_array_equal(st.w_final, w[:, :, -1])
    np.testing.assert_array_equal(st.steps, GRID)


def test_seed_is_bitwise_the_same_whatever_the_seed_count_and_chunking():
    """Seed i's final weights and divergence flag with 4 seeds, 8 seeds in
    chunks of 3, and 8 in one chunk: bit for bit."""
    four = simulate_stats(_sim(), _model(), 3, 4, GRID, EPS)
    eight = simulate_stats(_sim(), _model(), 3, 8, GRID, EPS, chunk_seeds=3)
    one = simulate_stats(_sim(), _model(), 3, 8, GRID, EPS, chunk_seeds=8)
    np.testing.assert_array_equal(four.w_final, eight.w_final[:4])
    np.testing.assert_array_equal(eight.w_final, one.w_final)
    np.testing.assert_array_equal(eight.diverged, one.diverged)
    np.testing.assert_array_equal(eight.w_final, _full()[:8, :, -1])


def test_merge_is_the_pooled_statistics():
    """Chan's merge of two float64 partials equals the statistics of the pooled
    sample, up to float64 rounding (relative 1e-12 for these O(1) values, a
    few hundred u = 2^-53); an empty side leaves the other unchanged."""
    from sims.linear.seed_stats import _Partial

    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (7, 2, 3)), rng.normal(-1.0, 0.5, (12, 2, 3))

    def part(x):
        return _Partial(np.full(2, len(x)), x.mean(0), ((x - x.mean(0)) ** 2).sum(0), x.min(0), x.max(0))

    both, pooled = merge(part(a), part(b)), np.concatenate([a, b])
    np.testing.assert_allclose(both.mean, pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(both.m2, ((pooled - pooled.mean(0)) ** 2).sum(0), rtol=1e-12)
    np.testing.assert_array_equal(both.min, pooled.min(0))
    empty = _Partial(np.zeros(2, int), np.zeros((2, 3)), np.zeros((2, 3)), np.full((2, 3), np.inf),
                     np.full((2, 3), -np.inf))
    for m in (merge(empty, part(a)), merge(part(a), empty)):
        np.testing.assert_array_equal(m.mean, part(a).mean)
        np.testing.assert_array_equal(m.m2, part(a).m2)


def test_phases_and_chunk_size():
    """Observed signGD phases per seed equal :func:`theory.dynamics.phase_times`
    scanned over the full records of each seed (the grid's dense prefix holds
    every step to 59; at lr 0.2 the paper problem reaches ``t2`` near step 32,
    so both phases are observed), with the drift ``e~_2(t2) - e~_2(0)`` the
    float64 difference of the recorded values; the chunk fits the budget."""
    sim = make_simulation({"signgd": make_optimizer("signgd", 0.2)}, make_oracle("population", _model().spectrum))
    st = simulate_stats(sim, _model(), 0, 5, GRID, EPS, phases=True, chunk_seeds=3)
    # In as many calls as simulate_stats makes (its compiled program, see _full).
    w = np.asarray(simulate(sim, _model(), seed_keys(5), GRID, chunks=PROGRESS_CALLS).w_freq)
    n = dense_prefix(GRID)
    assert n == 60
    e = w[:, 0, :n] - np.asarray(_model().w_star_freq)  # (seeds, n, 3) float32, as the engine records
    observer = phase_times(_model().spectrum)
    seen = jax.vmap(lambda x: observe_records(observer, np.arange(n), x))(jnp.asarray(e))  # each seed's scan
    for s in range(5):
        t1, t2 = int(seen.t1[s]), int(seen.t2[s])
        assert 0 <= t1 < t2 < n  # both phases observed
        assert st.phases["t1"][s] == t1 and st.phases["t2"][s] == t2
        assert st.phases["irrelevant_drift"][s] == np.float64(e[s, t2, 2]) - np.float64(e[s, 0, 2])
    per_seed = 1500 * 4 * 4 * (5 * 3 + 10)  # T k itemsize (5 d + 10): records, e~, |e~|, curves, band norms
    c = chunk_size(10**5, 1500, 4, 3, 4, 1, 512 * 2**20)
    assert c % 16 == 0 and c * per_seed <= 512 * 2**20 < (c + 16) * per_seed


def test_sample_seeds_cycles_over_kept_seeds():
    keep = np.array([[True, False], [False, False], [True, False], [True, False]])
    got = sample_seeds(keep, 7)
    np.testing.assert_array_equal(got[:, 0], [0, 2, 3, 0, 2, 3, 0])


def test_attack_check_equals_independent_losses():
    """Worst-case l2: sample ``j`` (``x~`` from the first half of
    ``split(fold_in(key, j))``, as ``monte_carlo_risk`` draws) attacking the
    ``(j mod K)``-th kept seed has loss ``1/2 (|<e~, x~>| + eps ||w||)^2``
    (THEORY.md section 2), computed here in float64. Device values are float32
    built with about 3d + 6 <= 16 roundings, so each loss is within
    ``16 u loss`` (u = 2^-24): the mean within ``16 u`` relative, the std
    within ``16 u max(loss)`` (a perturbation moves a standard deviation by
    at most its largest entry), the interval's ends within the sum of both.
    The interval then covers the weighted closed form
    within 4 of its half-widths / 1.96 (a false failure has probability 6e-5
    for N = 3000 samples from these seeds)."""
    w = _full()[:, :, -1]
    keep = ~diverged(jnp.asarray(_full()), _model())
    key = jax.random.key(11)
    n = 3000
    got = attack_check(key, w, keep, _model(), EPS, n, batch=1024)
    which = sample_seeds(keep, n)
    m = _model()
    draw = jax.vmap(lambda j: sample_freq(jax.random.split(jax.random.fold_in(key, j))[0], m.spectrum, 1)[0])
    x = np.asarray(draw(jnp.arange(n, dtype=jnp.uint32)), np.float64)  # (N, d)
    ws = w[which, np.arange(w.shape[1])].astype(np.float64)  # (N, k, d)
    e = ws - np.asarray(m.w_star_freq, np.float64)
    loss = 0.5 * (np.abs(np.einsum("nkd,nd->nk", e, x)) + EPS * np.linalg.norm(ws, axis=-1)) ** 2
    tol = 16 * U * loss.max(0)
    np.testing.assert_array_less(np.abs(got.mean - loss.mean(0)), tol)
    np.testing.assert_array_less(np.abs(got.std - loss.std(0, ddof=1)), tol)
    half = 1.96 * loss.std(0, ddof=1) / np.sqrt(n)
    ends = np.stack([loss.mean(0) - half, loss.mean(0) + half], -1)
    np.testing.assert_array_less(np.abs(got.ci95 - ends), np.broadcast_to(2 * tol[:, None], ends.shape))
    assert np.all(np.abs(got.mean - got.closed_form) < 4 * half / 1.96)
