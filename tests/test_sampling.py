"""The exact online sampler (Bartlett/Wishart) against the explicit reference.

What "exact" means here is "equal in distribution", so these are statistical
tests with stated confidence levels; they use fixed keys, so they are
deterministic, and each was checked to fail when the sampler is perturbed
(e.g. a diagonal chi-square with ``n - i + 1`` degrees of freedom instead of
``n - i``).

Tolerances:

* A z-test compares an estimate with its expected value in units of its
  standard error (SE), estimated from the same sample:
  - a mean ``m`` of ``N`` draws: ``SE = s / sqrt(N)``;
  - a sample variance ``s^2``: ``Var(s^2) = (mu_4 - sigma^4) / N + O(1/N^2)``
    with ``mu_4`` the fourth central moment, so ``SE = sqrt((m_4 - s^4) / N)``;
  - a difference of two independent means: ``sqrt(SE_a^2 + SE_b^2)``.
  Each bound is ``|z| < Z = 5`` (two-sided ``P = 5.7e-7`` under the null
  hypothesis), except where Bonferroni-corrected quantiles are stated.
* Wishart moments. ``n S = W ~ Wishart(n, Sigma)``, ``Sigma = diag(sigma^2)``,
  is a sum of ``n`` i.i.d. ``x x^T`` with ``x ~ N(0, Sigma)``, and
  ``Var(x_i x_j) = E[x_i^2 x_j^2] - Sigma_ij^2 = Sigma_ii Sigma_jj + Sigma_ij^2``
  (Isserlis), so ``E S = Sigma`` and
  ``Var(S_ij) = (Sigma_ij^2 + Sigma_ii Sigma_jj) / n``: ``2 sigma_i^4 / n`` on
  the diagonal, ``sigma_i^2 sigma_j^2 / n`` off it. This holds for ``n < d``
  (singular Wishart) too.
* Power against a wrong degree of freedom: ``chi^2_{n-i+1}`` instead of
  ``chi^2_{n-i}`` shifts ``E S_ii`` by ``sigma_i^2 / n``, while
  ``SE = sigma_i^2 sqrt(2 / (n N))``: a shift of ``sqrt(N / (2 n))``
  standard errors, 63 at ``n = 50``, ``N = 400 000`` and 10 at ``n = 5000``,
  ``N = 10^6``. It also shifts ``Var(S_ii)`` by ``1/n`` relatively, against a
  relative SE of about ``sqrt(2 / N)``: 9 SE at ``n = 50``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.common.optimizers import OPTIMIZERS, make_optimizer
from sims.linear.oracles import make_oracle
from sims.linear.sampling import (
    SMALL_DOF,
    fold_in_words,
    key_words,
    sample_batch,
    sample_explicit,
    sample_wishart,
    threefry2x32,
    wishart_draw,
    wishart_factor,
)
from theory.signal import paper_problem

Z = 5.0


#: Keys are made, and samplers run, this many at a time: every call of a
#: jitted sampler below sees the same shapes, so each (dimension, ``n``,
#: noise) compiles once, whatever the number of draws.
CHUNK = 20_000


@jax.jit
def _key_chunk(seed, start):
    """Keys ``start .. start + CHUNK - 1`` of the sequence ``fold_in(key(seed), i)``,
    which is ``jax.random.split(jax.random.key(seed), count)`` (threefry's
    partitionable split: key ``i`` of a split is ``fold_in(key, i)``)."""
    key = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(CHUNK, dtype=jnp.uint32))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _wishart(keys, spectrum, n, noise):
    """``(S (N, d, d), label_grad (N, d))`` from the batched Wishart sampler."""
    draw = wishart_draw(key_words(keys), spectrum, n, noise)
    factor = wishart_factor(draw, spectrum, n)
    return jnp.einsum("ijN,kjN->Nik", factor, factor), draw.label_grad.T


@functools.partial(jax.jit, static_argnums=(2, 3))
def _explicit(keys, spectrum, n, noise):
    """The same from ``n`` explicit samples per draw."""
    st = jax.vmap(lambda k: sample_explicit(k, spectrum, n, noise))(keys)
    return jnp.einsum("Nij,Nkj->Nik", st.factor, st.factor), st.label_grad


def _draws(run, count: int, seed: int, spectrum, n: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``run`` (:func:`_wishart` or :func:`_explicit`) on the first ``count`` keys of ``seed``."""
    parts = [run(_key_chunk(seed, np.uint32(start)), spectrum, n, noise) for start in range(0, count, CHUNK)]
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts])[:count] for i in range(2))


def _z_mean(x: np.ndarray, expected) -> np.ndarray:
    """z-scores of the means of ``x`` (axis 0) against ``expected``."""
    x = np.asarray(x, np.float64)
    se = x.std(axis=0, ddof=1) / np.sqrt(len(x))
    return (x.mean(axis=0) - expected) / se


def _z_var(x: np.ndarray, expected) -> np.ndarray:
    """z-scores of the sample variances of ``x`` (axis 0), SE from the fourth moment."""
    x = np.asarray(x, np.float64)
    c = x - x.mean(axis=0)
    s2 = (c**2).mean(axis=0)
    m4 = (c**4).mean(axis=0)
    se = np.sqrt((m4 - s2**2) / len(x))
    return (s2 * len(x) / (len(x) - 1) - expected) / se


def _z_two_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    return (a.mean(axis=0) - b.mean(axis=0)) / se


def _check_wishart_moments(s_mat: np.ndarray, spectrum, n: int) -> None:
    sig2 = np.asarray(spectrum, np.float64) ** 2
    cov = np.diag(sig2)
    d = len(sig2)
    for i in range(d):
        for j in range(i, d):
            if sig2[i] * sig2[j] == 0:
                continue
            entry = s_mat[:, i, j]
            z_mean = _z_mean(entry, cov[i, j])
            z_var = _z_var(entry, (cov[i, j] ** 2 + cov[i, i] * cov[j, j]) / n)
            assert abs(z_mean) < Z, (i, j, "mean", z_mean)
            assert abs(z_var) < Z, (i, j, "variance", z_var)


# ---------------------------------------------------------------------------
# The random words.


def test_threefry_and_fold_in_match_jax():
    from jax.extend.random import threefry2x32_p

    rng = np.random.default_rng(0)
    k1, k2, x1, x2 = (jnp.asarray(rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)) for _ in range(4))
    ours = jax.jit(threefry2x32)(k1, k2, x1, x2)
    theirs = threefry2x32_p.bind(k1, k2, x1, x2)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    keys = _key_chunk(1, np.uint32(0))
    data = np.arange(CHUNK, dtype=np.uint32) * np.uint32(7919)
    expected = jax.jit(jax.vmap(lambda k, t: jax.random.key_data(jax.random.fold_in(k, t))))(keys, data)
    got = jax.jit(lambda k, t: fold_in_words(key_words(k), t))(keys, data)
    np.testing.assert_array_equal(np.asarray(got).T, np.asarray(expected))


def test_key_words_accepts_raw_and_other_impls():
    raw = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(np.asarray(key_words(raw)), [0, 3])
    typed = jax.random.key(3)
    np.testing.assert_array_equal(np.asarray(key_words(typed)), [0, 3])
    rbg = jax.random.key(3, impl="rbg")
    assert key_words(rbg).shape == (2,)
    spectrum = jnp.array([0.1, 0.05, 0.0])
    factor = jax.jit(lambda k: sample_wishart(k, spectrum, 50).factor)
    np.testing.assert_array_equal(np.asarray(factor(rbg)), np.asarray(factor(rbg)))


def test_single_key_and_batched_draws_agree():
    spectrum = jnp.array([0.1, 0.05, 0.0])
    keys = _key_chunk(2, np.uint32(0))
    batched = jax.jit(lambda k: wishart_factor(wishart_draw(key_words(k), spectrum, 5000, 0.3), spectrum, 5000))(keys)
    single = jax.jit(jax.vmap(lambda k: sample_wishart(k, spectrum, 5000, 0.3).factor))(keys)
    np.testing.assert_array_equal(np.moveaxis(np.asarray(batched), -1, 0), np.asarray(single))
    one = jax.jit(lambda k: sample_wishart(k, spectrum, 5000, 0.3).factor)(keys[3])
    np.testing.assert_array_equal(np.asarray(one), np.asarray(single[3]))


# ---------------------------------------------------------------------------
# Moments of S.


@pytest.mark.parametrize(
    "spectrum, n, draws",
    [
        ((0.1, 0.05, 0.0), 50, 400_000),  # Marsaglia-Tsang diagonal
        ((1.0, 0.5, 2.0), 6, 400_000),  # dofs 6, 5 by Marsaglia-Tsang, 4 as a sum of squares
        ((1.0, 2.0, 0.5), 2, 400_000),  # n < d: singular, dofs 2, 1
        ((0.1, 0.05, 0.0), 5000, 1_000_000),  # the paper's batch size
    ],
)
def test_wishart_moments(spectrum, n, draws):
    spectrum = jnp.asarray(spectrum, jnp.float32)
    s_mat, _ = _draws(_wishart, draws, n, spectrum, n)
    _check_wishart_moments(s_mat, spectrum, n)


def test_explicit_reference_moments():
    """The reference itself obeys the same formulas."""
    spectrum = jnp.asarray((0.1, 0.05, 0.0), jnp.float32)
    s_mat, _ = _draws(_explicit, 100_000, 11, spectrum, 50)
    _check_wishart_moments(s_mat, spectrum, 50)


@functools.partial(jax.jit, static_argnums=1)
def _diag0(keys, dof):
    """``A_00`` of a ``1 x 1`` Wishart draw, ``sqrt(chi^2_dof)``, per key."""
    return wishart_draw(key_words(keys), jnp.ones(1), dof).diag[0]


@pytest.mark.parametrize("dof", [2, 5, 50, 4999])
def test_diagonal_chi_square_distribution(dof):
    """``A_00^2 ~ chi^2_n`` exactly: one-sample KS test against scipy's CDF.

    ``n = 5`` rejects 1.4% of the first candidates, so the retry path is
    exercised; ``n = 2`` is the smallest dof Marsaglia-Tsang is used for
    (with ``SMALL_DOF = 4`` it is drawn as a sum of squares instead).
    Bonferroni over the 4 cases at a family-wise level of 1e-3.
    """
    assert SMALL_DOF < 5
    diag = [_diag0(_key_chunk(dof, np.uint32(start)), dof) for start in range(0, 200_000, CHUNK)]
    chi2 = np.concatenate(diag).astype(np.float64) ** 2
    assert stats.kstest(chi2, stats.chi2(dof).cdf).pvalue > 1e-3 / 4


def test_irrelevant_frequencies_are_exactly_zero():
    spectrum = jnp.asarray((0.1, 0.0, 0.05, 0.0), jnp.float32)
    for n in (2, 50, 5000):  # (label noise does not change S: see test_label_noise_moments)
        s_mat, lg = _draws(_wishart, CHUNK, n, spectrum, n, 0.7)
        assert np.all(s_mat[:, [1, 3], :] == 0) and np.all(s_mat[:, :, [1, 3]] == 0)
        assert np.all(lg[:, [1, 3]] == 0)
    e = jnp.asarray((1.0, -2.0, 3.0, 4.0), jnp.float32)
    for sampler in ("wishart", "explicit"):
        oracle = make_oracle("online", spectrum, 50, sampler, 0.7)
        g = np.asarray(jax.jit(jax.vmap(lambda k: oracle.grad((), k, e)))(_key_chunk(5, np.uint32(0))))
        assert np.all(g[:, [1, 3]] == 0)
        assert np.all(g[:, [0, 2]] != 0)


def test_n_smaller_than_d_is_singular():
    spectrum = jnp.ones(5)
    st = jax.eval_shape(lambda k: sample_wishart(k, spectrum, 3), jax.random.key(0))
    assert st.factor.shape == (5, 3)
    s_mat, _ = _draws(_wishart, CHUNK, 3, spectrum, 3)
    eig = np.linalg.eigvalsh(np.asarray(s_mat, np.float64))  # ascending
    assert np.all(eig[:, :2] < 1e-5 * eig[:, -1:]) and np.all(eig[:, 2:] > 1e-5 * eig[:, -1:])
    _check_wishart_moments(_draws(_wishart, 400_000, 4, spectrum, 3)[0], spectrum, 3)


# ---------------------------------------------------------------------------
# One step's gradient: Wishart against explicit.


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_gradient_distribution_matches_explicit(noise):
    """Per-coordinate two-sample KS tests of ``g~ = S e~ - X~^T xi / n``.

    At ``n = 50`` a wrong dof shifts ``S_00`` by 0.1 of its standard
    deviation, which these samples detect (KS critical value about
    ``2 sqrt(2/N) = 0.02``). Bonferroni: family-wise level 1e-3 over the
    2 relevant coordinates x 2 noise levels.
    """
    problem = paper_problem()
    spectrum, n, count = problem.spectrum, 50, 20_000
    e = problem.e0_freq
    grads = {}
    for sampler, run in (("wishart", _wishart), ("explicit", _explicit)):
        s_mat, lg = _draws(run, count, 7 if sampler == "wishart" else 8, spectrum, n, noise)
        grads[sampler] = s_mat @ np.asarray(e) - lg
    for sampler in grads:
        assert np.all(grads[sampler][:, 2] == 0)
    for i in (0, 1):
        p = stats.ks_2samp(grads["wishart"][:, i], grads["explicit"][:, i]).pvalue
        assert p > 1e-3 / 4, (i, p)


# ---------------------------------------------------------------------------
# Label noise.


@pytest.mark.parametrize("sampler, count", [("wishart", 400_000), ("explicit", 100_000)])
def test_label_noise_moments(sampler, count):
    """``X~^T xi / n | S ~ N(0, noise^2 S / n)``: the mean gradient is
    unchanged and its covariance gains ``noise^2 S / n``.

    Checked as z-tests (bound ``Z``) of: ``E[g~] = Sigma e~``; ``E[lg] = 0``;
    ``E[lg lg^T - noise^2 S / n] = 0`` entrywise, and weighted by ``S_ii``
    (the covariance is ``noise^2 S / n`` given ``S``, i.e. the noise uses
    the batch's own ``S``); ``Var(lg_i) = noise^2 sigma_i^2 / n``; and, for
    the Wishart sampler, that the noise leaves the batch itself (``S``)
    unchanged for the same key.
    """
    problem = paper_problem()
    spectrum, n, noise = problem.spectrum, 50, 0.5
    e = problem.e0_freq
    run = _wishart if sampler == "wishart" else _explicit
    s_mat, lg = _draws(run, count, 21, spectrum, n, noise)
    s_mat, lg = s_mat.astype(np.float64), lg.astype(np.float64)
    g = s_mat @ np.asarray(e, np.float64) - lg
    sig2 = np.asarray(spectrum, np.float64) ** 2
    relevant = sig2 > 0
    assert np.all(np.abs(_z_mean(g[:, relevant], (sig2 * np.asarray(e))[relevant])) < Z)
    assert np.all(np.abs(_z_mean(lg[:, relevant], 0.0)) < Z)
    resid = lg[:, :, None] * lg[:, None, :] - noise**2 * s_mat / n
    idx = np.ix_(relevant, relevant)
    assert np.all(np.abs(_z_mean(resid[:, idx[0], idx[1]], 0.0)) < Z)
    # Conditional on S, not just on average: E[(lg_i^2 - noise^2 S_ii / n) S_ii] = 0.
    # (Noise drawn independently of S with the right marginal covariance
    # would give noise^2 Var(S_ii) / n here, about 90 SE at these sizes.)
    diag = np.diagonal(resid, axis1=1, axis2=2) * np.diagonal(s_mat, axis1=1, axis2=2) / np.where(relevant, sig2, 1)
    assert np.all(np.abs(_z_mean(diag[:, relevant], 0.0)) < Z)
    # The Wishart noise term has the right size, not just the right shape:
    # its variance is noise^2 sigma^2 / n.
    assert np.all(np.abs(_z_var(lg[:, relevant], noise**2 * sig2[relevant] / n)) < Z)
    if sampler == "wishart":
        clean, _ = _draws(run, count, 21, spectrum, n, 0.0)
        np.testing.assert_array_equal(clean, s_mat.astype(np.float32))


def test_sample_batch_dispatch():
    spectrum = jnp.asarray((0.1, 0.05, 0.0))
    k = jax.random.key(0)
    both = jax.jit(lambda k: (sample_batch(k, spectrum, 50, "wishart").factor, sample_wishart(k, spectrum, 50).factor))
    np.testing.assert_array_equal(*map(np.asarray, both(k)))
    with pytest.raises(ValueError):
        sample_batch(k, spectrum, 50, "nope")


# ---------------------------------------------------------------------------
# Whole trajectories: Wishart against explicit, through the engine.


def test_trajectory_statistics_match_explicit():
    """Final ``w~`` of all four optimizers after 2000 online steps, 256 seeds.

    Two-sample z-test per (optimizer, coordinate) between the two samplers,
    Bonferroni over the 11 statistics at family-wise level 1e-3
    (``|z| < 4.0``). GD's irrelevant coordinate has no variance in either
    (no gradient acts on it) and must agree to float rounding instead. A
    dof error at ``n = 50`` (2% on ``S``) moves GD's ``e~_0`` by about 40 SE.
    """
    problem = paper_problem()
    n, steps, seeds = 50, 2000, 256
    finals = {}
    for sampler, base in (("wishart", 1), ("explicit", 2)):
        oracle = make_oracle("online", problem.spectrum, n, sampler)
        sim = make_simulation({name: make_optimizer(name, 0.01) for name in OPTIMIZERS}, oracle)
        traj = simulate(sim, problem, seed_keys(seeds, base_seed=base), np.array([0, steps]))
        finals[sampler] = np.asarray(traj.w_freq[:, :, -1], np.float64)  # (seeds, 4, 3)
    threshold = stats.norm.isf(1e-3 / 11 / 2)
    for k, name in enumerate(OPTIMIZERS):
        for i in range(3):
            a, b = finals["wishart"][:, k, i], finals["explicit"][:, k, i]
            if name == "gd" and i == 2:
                assert abs(a.mean() - b.mean()) < 1e-4 and a.std() < 1e-4 and b.std() < 1e-4
                continue
            z = _z_two_sample(a, b)
            assert abs(z) < threshold, (name, i, z)
