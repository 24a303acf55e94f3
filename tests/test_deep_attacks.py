"""PGD, norm balls and band-limited noise (``sims.common.balls.pgd`` via ``sims.deep.robustness``) against closed forms.

A binary linear classifier ``z = x W + b`` (``W``: ``64 x 2``) has the
margin ``m(x) = <v, x> + c`` with ``v = W[:, y] - W[:, 1 - y]`` and
``c = b_y - b_{1-y}``, so by Hoelder the smallest margin in the ball is

    l2:    m(x) - eps ||v||_2   at  delta = -eps v / ||v||_2,
    l_inf: m(x) - eps ||v||_1   at  delta = -eps sign(v).

PGD must find these from its random start. Float32 throughout (arrays are
made float32, so this holds with or without x64); ``U = 2^-24``,
``gamma(n) = n U / (1 - n U)`` (Higham, Lemma 3.1).

Convergence, derived for the step ``a = rho eps`` (``rho = 0.25``). The
gradient is the constant ``v``, so write ``delta = -c u + r w`` with
``u = v / ||v||`` and ``w`` orthogonal to ``u``.

* l_inf: each coordinate moves by ``a`` towards ``-eps sign(v_i)`` and is
  clipped there, so after ``ceil(2 / rho) + 1 = 9`` steps (one for the
  rounding of ``a``) ``delta = -eps sign(v)`` exactly.
* l2: an unprojected step adds ``a`` to ``c`` and keeps ``r``. The
  projection acts only when ``(c + a)^2 + r^2 > eps^2 >= c^2 + r^2``, i.e.
  ``c > -a / 2``; it rescales, so ``tan(phi) = r / c`` becomes
  ``r / (c + a) < eps / (a / 2) = 2 / rho``. At most ``2 / rho`` unprojected
  steps fit in the ball, so by step ``2 / rho + 1`` the iterate is on the
  sphere with ``tan(phi) < 2 / rho``, and every later step is projected and
  gives ``tan(phi') = tan(phi) c / (c + a) <= tan(phi) / (1 + rho)``
  (``c <= eps``). After ``T`` steps ``tan(phi_T) <= (2 / rho) (1 + rho)^-(T - 2 / rho - 1)``
  and the margin exceeds the optimum by ``eps ||v|| (1 - cos phi_T) <= eps ||v|| tan^2(phi_T) / 2``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.common import balls
from sims.deep import robustness
from sims.deep.digits import DIM, dct2
from sims.deep.training import margin

U = 2.0**-24
RHO = 0.25  # PGD step / eps
STEPS = 60
N = 16  # samples per example: one shape, one compile
band_noise = jax.jit(robustness.band_noise, static_argnums=(1, 4))


def gamma(n: int) -> float:
    return n * U / (1 - n * U)


def l2_shortfall(steps: int) -> float:
    """Bound on ``1 - cos(phi_T)`` for l2 PGD on a linear margin (module docstring)."""
    tan = (2 / RHO) * (1 + RHO) ** -(steps - 2 / RHO - 1)
    return tan**2 / 2


def linear_problem(seed: int, scale: float):
    rng = np.random.default_rng(seed)
    w = (scale * rng.standard_normal((DIM, 2))).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    x = rng.uniform(0, 1, (N, DIM)).astype(np.float32)
    y = rng.integers(0, 2, N).astype(np.int32)
    return w, b, x, y


@jax.jit
def _pgd_linear(key, w, b, x, y, radius):
    logits = lambda xi: xi @ w + b
    return {norm: robustness.pgd(key, logits, x, y, radius, norm, STEPS, RHO) for norm in balls.NORMS}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), radius=st.floats(2.0**-7, 3.0, width=32), scale=st.sampled_from((0.1, 1.0, 10.0)))
def test_pgd_finds_the_linear_worst_case(seed, radius, scale):
    w, b, x, y = linear_problem(seed, scale)
    eps32 = np.float32(radius)
    out = _pgd_linear(jax.random.key(seed), jnp.asarray(w), jnp.asarray(b), jnp.asarray(x), jnp.asarray(y), eps32)
    w64, b64, x64, e64 = w.astype(np.float64), b.astype(np.float64), x.astype(np.float64), float(eps32)
    v = (w64[:, y] - w64[:, 1 - y]).T  # (N, DIM): v = W[:, y] - W[:, 1 - y]
    c = b64[y] - b64[1 - y]
    m = np.sum(v * x64, axis=1) + c
    best = {"l2": m - e64 * np.linalg.norm(v, axis=1), "linf": m - e64 * np.abs(v).sum(axis=1)}
    opt_delta = {"l2": -e64 * v / np.linalg.norm(v, axis=1, keepdims=True), "linf": -e64 * np.sign(v)}
    for norm in balls.NORMS:
        res = out[norm]
        found = np.asarray(res.margins[:, -1], np.float64)
        # Float32 evaluation of the margin at the optimum: two dot products of 64 terms plus the bias
        # and the rounded x + delta (gamma(66) of the absolute sum), then the subtraction (U |m|).
        s = np.sum(np.abs(x64 + opt_delta[norm]) * (np.abs(w64[:, 0]) + np.abs(w64[:, 1])), axis=1) + np.abs(b64).sum()
        tol = gamma(66) * s + U * np.abs(best[norm])
        if norm == "l2":
            # The projected iterate is on the sphere up to the rounding of ||delta|| (gamma(64) / 2 for the
            # sum of squares under the sqrt, U for the sqrt) and of the rescaling and the step (3 U), and
            # within the convergence bound of the optimum's direction.
            tol = tol + e64 * np.linalg.norm(v, axis=1) * (gamma(64) / 2 + 4 * U + l2_shortfall(STEPS))
        assert np.all(np.abs(found - best[norm]) <= tol), (norm, np.max(np.abs(found - best[norm]) / tol))
        delta = np.asarray(res.delta, np.float64)
        if norm == "linf":
            assert np.all(np.abs(delta) <= e64)  # clipping is exact
            nz = v != 0
            np.testing.assert_array_equal(delta[nz], opt_delta["linf"][nz])  # the vertex, exactly
        else:
            assert np.all(np.linalg.norm(delta, axis=1) <= e64 * (1 + gamma(64) / 2 + 4 * U))
        # The best-so-far margins never increase.
        hist = np.asarray(res.margins)
        assert np.all(np.diff(hist, axis=1) <= 0)


def test_l2_convergence_bound_is_not_vacuous():
    # The bound used above must be far below float32 resolution at STEPS, and must decrease.
    assert l2_shortfall(STEPS) < 1e-8
    assert l2_shortfall(STEPS) < l2_shortfall(STEPS - 1)


def vectors():
    # Entries 0 or of magnitude in [2^-10, 10]: no underflow in ||delta||^2 (the rounding model holds).
    mag = st.one_of(st.just(0.0), st.floats(2.0**-10, 10.0, width=32))
    entry = st.builds(lambda m, s: s * m, mag, st.sampled_from((-1.0, 1.0)))
    return st.lists(entry, min_size=5, max_size=5).map(lambda v: np.asarray(v, np.float32))


@settings(max_examples=40, deadline=None)
@given(delta=vectors(), radius=st.floats(2.0**-7, 5.0, width=32), norm=st.sampled_from(balls.NORMS))
def test_projection_onto_the_ball(delta, radius, norm):
    p = np.asarray(balls.project_ball(jnp.asarray(delta), np.float32(radius), norm), np.float64)
    d64 = delta.astype(np.float64)
    if norm == "linf":
        np.testing.assert_array_equal(p, np.clip(d64, -np.float32(radius), np.float32(radius)))
        return
    n = np.linalg.norm(d64)
    # Rounding of ||delta|| (gamma(5) / 2 + U), of the ratio and of the product (2 U).
    tol = gamma(5) / 2 + 3 * U
    if n <= radius * (1 - tol):
        np.testing.assert_array_equal(p, d64)  # inside: unchanged (the factor is exactly 1)
    assert np.linalg.norm(p) <= radius * (1 + tol)
    if n > radius * (1 + tol):
        # Outside: the same direction, on the sphere.
        assert abs(np.linalg.norm(p) - radius) <= radius * tol
        np.testing.assert_allclose(p / np.linalg.norm(p), d64 / n, rtol=0, atol=4 * tol)


def test_uniform_ball_radius_distribution():
    # Uniform in the d-ball: P(||delta|| <= t eps) = t^d. Kolmogorov-Smirnov on 2000 draws at level
    # 1e-6 (a false alarm once in a million runs).
    d, n, radius = 3, 2000, 0.7
    keys = jax.random.split(jax.random.key(0), n)
    draw = jax.jit(jax.vmap(balls.uniform_ball, (0, None, None, None)), static_argnums=(1, 3))
    pts = draw(keys, (d,), radius, "l2")
    r = np.linalg.norm(np.asarray(pts, np.float64), axis=1) / radius
    assert r.max() <= 1 + gamma(d) / 2 + 4 * U
    assert scipy.stats.kstest(r, lambda t: np.clip(t, 0, 1) ** d).pvalue > 1e-6
    cube = np.asarray(draw(keys, (d,), radius, "linf"))
    assert np.abs(cube).max() <= radius
    assert scipy.stats.kstest(cube.ravel() / radius, "uniform", args=(-1, 2)).pvalue > 1e-6


@pytest.mark.parametrize("bands", [1, 3, 8])
def test_band_noise_lives_in_its_band_with_the_stated_power(bands):
    # band_noise = idct2(s mask z), z = normal(key, (n, 64)), s = sigma sqrt(64 / |mask|); so
    # dct2(noise) = s mask z up to four DCT passes (Higham: (1 + 64 U)^4 - 1 relative, see
    # test_deep_dct.py) and the rounding of s (3 U); hence ||noise||^2 = s^2 ||z_mask||^2 and
    # E ||noise||^2 = s^2 |mask| = 64 sigma^2, whatever the band.
    from sims.deep.digits import band_masks

    key, n, sigma = jax.random.key(3), 64, 0.3
    rho4 = (1 + 64 * U) ** 4 - 1
    for mask in np.asarray(band_masks(bands)):
        noise = band_noise(key, n, jnp.asarray(mask), sigma, jnp.float32)
        z = np.asarray(jax.random.normal(key, (n, DIM), jnp.float32), np.float64)
        s = sigma * math.sqrt(DIM / mask.sum())
        expected = np.where(mask, s * z, 0.0)
        err = np.linalg.norm(np.asarray(dct2(noise), np.float64) - expected, axis=1)
        assert np.all(err <= (rho4 + 4 * U) * np.linalg.norm(expected, axis=1))


# Logits 0 or of magnitude >= 2^-100: XLA on CPU flushes float32 subnormals to zero, which would tie
# distinct logits; two distinct such floats differ by at least 2^-123, a normal float32, so the
# margin's sign is exact.
LOGIT = st.floats(-5, 5, width=32).filter(lambda v: v == 0 or abs(v) >= 2.0**-100)


@settings(max_examples=40, deadline=None)
@given(logits=st.lists(LOGIT, min_size=4, max_size=4, unique=True), y=st.integers(0, 3))
def test_margin_is_positive_iff_correct(logits, y):
    z = jnp.asarray(logits, jnp.float32)
    m = float(margin(z, jnp.asarray(y)))
    assert (m > 0) == (int(jnp.argmax(z)) == y)
    assert m == pytest.approx(logits[y] - max(v for i, v in enumerate(logits) if i != y), abs=2 * U * 5)
