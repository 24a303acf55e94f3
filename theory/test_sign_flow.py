"""The sign flow (``theory.sign_flow``, THEORY.md section 8.1) is the
``lr -> 0`` limit of population signGD.

Checked:

1. the JAX box least squares equals its optimality (KKT) conditions and
   ``scipy.optimize.lsq_linear(method="bvls")``;
2. along the flow, for random spectra (zeros, power laws) in ``d = 3..16``,
   every segment satisfies the Filippov inclusion ``v in -SIGN(g)`` on the
   open segment, and the flow reaches ``g = 0``;
3. ``d = 3``: the end point equals the closed forms of THEORY.md 8.1
   (``sqrt3 q |e~_1(0)|`` drift for ``q <= 1/3``, saturated ``|e~_1(0)|/sqrt3``
   for ``q > 1/3``) and ``sign_flow_final_d3``;
4. the discrete population signGD (``theory.signgd_events``, the exact
   iteration) minus the flow is ``O(lr)``;
5. a coordinate can have to leave the sliding set when another joins; the
   flow handles it (the per-coordinate rule does not).

Rounding tolerances use ``U = 2^-53`` (``eps = 2 U``), ``lambda`` the largest
eigenvalue of ``H~``, ``n`` the number of segments and
``S = ||e~(0)||_2 + sqrt(d) tau_end`` (a bound on ``||e~||_2`` and on the
path length, since ``||v||_2 <= sqrt(d)``). Each breakpoint is one
``fl(e~ + fl(dtau v~))`` away from the last, so the recorded ``e~_k`` is
within ``(k + 1) eps S`` per component of the exact flow through the same
velocities; ``g = C^T H~ e~`` adds ``2 d eps`` relative, so
``|g_computed - g_exact| <= (n + 3 d) eps lambda sqrt(d) S``; the tests allow
``TOL_G = 16`` times that (the solver's own threshold is 8 times the same
without ``sqrt(d)``). ``(H v)_i = (C^T H~ C v)_i`` is computed to
``3 d eps lambda ||v||_1 <= 3 d^2 eps lambda``: ``TOL_HV = 16 d^2 eps lambda``.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.optimize
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from theory.quadratic import Quadratic, population_quadratic
from theory.sign_flow import (
    FlowReason,
    box_least_squares,
    sign_flow,
    sign_flow_error,
    sign_flow_final_d3,
)
from theory.signal import make_problem, paper_problem
from theory.signgd_events import signgd_events
from theory.spectra import draw_w_star_freq, powerlaw_spectrum

U = 2.0**-53
EPS = 2.0 * U
D_PAD = 16  # every flow below runs in one compiled 16-dimensional program
MAX_EVENTS = 96
LRS = (1e-2, 3e-3, 1e-3, 3e-4)
SQRT2, SQRT3 = math.sqrt(2.0), math.sqrt(3.0)
#: Discrete minus flow, d = 3, q <= 1/3 (theory.signgd): the exact discrete drift
#: is within (sqrt(2/3) + sqrt6) lr of the first-order (= flow) drift at t2, and
#: e~_2 stays within sqrt(2/3) lr of its t2 value afterwards.
K_D3 = 2.0 * math.sqrt(2.0 / 3.0) + math.sqrt(6.0)

flow_padded = partial(sign_flow, max_events=MAX_EVENTS, pad_to=D_PAD)


def run_flow(hessian_freq, e0_freq):
    return flow_padded(Quadratic(jnp.asarray(hessian_freq), jnp.asarray(e0_freq)))


def dct_np(d):
    return scipy.fft.dct(np.eye(d), norm="ortho", axis=0)


def tolerances(h, e0, flow):
    d = h.shape[0]
    lam = float(np.linalg.eigvalsh(h).max())
    n = int(flow.n_segments)
    size = float(np.linalg.norm(e0)) + math.sqrt(d) * float(flow.tau[n])
    tol_g = 16.0 * (n + 3 * d) * EPS * lam * math.sqrt(d) * size
    tol_hv = 16.0 * d * d * EPS * lam
    return tol_g, tol_hv


def filippov_violations(h, flow):
    """Violations of ``v in -SIGN(g)`` on each open segment; ``[]`` when consistent.

    Free coordinates: ``|v_i| = 1`` and ``g_i`` has the sign ``-v_i`` (or is 0)
    at both ends, hence (``g`` is linear) on the whole open segment. Sliding
    coordinates: ``g_i = 0`` at both ends, ``(H v)_i = 0``, ``|v_i| <= 1``.
    At the end, ``g = 0``.
    """
    h = np.asarray(h)
    d = h.shape[0]
    c = dct_np(d)
    e = np.asarray(flow.e_freq)
    vf = np.asarray(flow.velocity_freq)
    sl = np.asarray(flow.sliding)
    tol_g, tol_hv = tolerances(h, e[0], flow)
    tol_v = 4 * d * EPS
    n = int(flow.n_segments)
    out = []
    if not bool(flow.converged):
        out.append(f"not converged: reason {int(flow.reason)}")
    g = e @ h @ c  # g_k = C^T H~ e~_k (H~ symmetric)
    for k in range(n):
        v = c.T @ vf[k]
        hv = c.T @ (h @ vf[k])
        free = ~sl[k]
        bad_unit = free & (np.abs(np.abs(v) - 1.0) > tol_v)
        bad_sign = free & ((v * g[k] > tol_g) | (v * g[k + 1] > tol_g))
        bad_slide = sl[k] & (
            (np.abs(hv) > tol_hv) | (np.abs(v) > 1.0 + tol_v) | (np.abs(g[k]) > tol_g) | (np.abs(g[k + 1]) > tol_g)
        )
        for name, bad in (("|v| != 1", bad_unit), ("sign", bad_sign), ("slide", bad_slide)):
            if bad.any():
                out.append(f"segment {k}: {name} at {np.nonzero(bad)[0].tolist()}")
    if np.abs(g[n]).max() > tol_g:
        out.append(f"final |g| = {np.abs(g[n]).max():.3g} > {tol_g:.3g}")
    return out


# --- 1. box least squares -----------------------------------------------------------------------

bvls_padded = jax.jit(lambda a, b, active: box_least_squares(a, b, active, 16 * D_PAD**2 * EPS * jnp.sum(a * a), 4 * D_PAD + 8))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, D_PAD),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 2.5),
    st.booleans(),
)
def test_box_least_squares_matches_scipy_and_kkt(d, seed, alpha, rotate):
    """The JAX BVLS solves ``min ||a x - b||, |x_Z| <= 1`` exactly.

    Instances are the flow's: ``a = L`` (``H = L^T L``, ``H~`` a power law with
    zeros, optionally rotated by a random orthogonal ``V``: an empirical-like
    non-diagonal ``H~``), ``b = -L v_N`` with random signs on ``N``, a random
    zero set ``Z``; padded to ``16`` (masked columns) so one program serves
    every ``d``.

    Checks, with ``lambda = ||a||_F^2 >= ||a||_2^2``:

    * KKT: ``grad = a^T (a x - b)``; interior ``|grad_i| <= 16 d^2 eps lambda``
      (backward-stable least squares on the free set: normal-equation residual
      ``~ d eps ||a||^2 ||x||``), bound components ``+-1`` exactly with
      ``grad_i x_i <= 16 d^2 eps lambda``; off ``Z`` exactly 0.
    * scipy: with ``f(x) = 1/2 ||a x - b||^2`` convex, for feasible ``x``
      ``f(x) - f* <= <grad f(x), x - x*> <= 2 ||r(x)||_1`` (``|x_i - x*_i| <= 2``),
      ``r`` the projected-gradient residual (interior gradient, wrong-signed
      bound gradient). So ``f_jax <= f_scipy + 2 ||r_jax||_1`` and, where
      ``a_Z`` has full column rank with smallest singular value ``s``
      (strong convexity ``f(x) - f* >= s^2/2 ||x - x*||^2``),
      ``||x_jax - x_scipy|| <= 2 (sqrt(||r_jax||_1) + sqrt(||r_scipy||_1)) / s``.
    """
    rng = np.random.default_rng(seed)
    cutoff = int(rng.integers(1, d + 1))
    sig2 = np.where(np.arange(d) < cutoff, (np.arange(d) + 1.0) ** (-2.0 * alpha), 0.0)
    vecs = np.linalg.qr(rng.normal(size=(d, d)))[0] if rotate else np.eye(d)
    a = np.sqrt(sig2)[:, None] * (vecs.T @ dct_np(d))  # H = a^T a, H~ = V diag(sig2) V^T
    zero = rng.random(d) < 0.5
    zero[int(rng.integers(d))] = True
    v_fixed = np.where(zero, 0.0, rng.choice([-1.0, 1.0], d))
    b = -a @ v_fixed
    a_pad = np.zeros((D_PAD, D_PAD))
    a_pad[:d, :d] = a
    b_pad = np.zeros(D_PAD)
    b_pad[:d] = b
    act = np.zeros(D_PAD, bool)
    act[:d] = zero
    sol = bvls_padded(jnp.asarray(a_pad), jnp.asarray(b_pad), jnp.asarray(act))
    assert bool(sol.ok)
    x = np.asarray(sol.x)
    assert np.all(x[~act] == 0.0)
    x = x[:d]
    lam = float(np.sum(a * a))
    tol = 16 * d * d * EPS * lam

    def residual(xz):
        xx = np.zeros(d)
        xx[zero] = xz
        grad = (a.T @ (a @ xx - b))[zero]
        at = np.abs(xz) >= 1.0
        return np.where(at, np.maximum(grad * np.sign(xz), 0.0), np.abs(grad)), xx

    assert np.all(np.abs(x[zero]) <= 1.0)
    bound = np.asarray(sol.at_bound)[:d][zero]
    assert np.all(np.abs(x[zero][bound]) == 1.0)
    r_jax, xx = residual(x[zero])
    assert r_jax.max() <= tol, (r_jax.max(), tol)

    ref = scipy.optimize.lsq_linear(a[:, zero], b, bounds=(-1.0, 1.0), method="bvls", tol=1e-14)
    r_sc, xs = residual(np.clip(ref.x, -1.0, 1.0))
    f = lambda y: 0.5 * np.sum((a @ y - b) ** 2)
    assert f(xx) <= f(xs) + 2 * r_jax.sum() + 4 * U * (f(xs) + 1.0)
    s = np.linalg.svd(a[:, zero], compute_uv=False)
    if s.size <= a.shape[0] and s.min() > 1e-6 * s.max():
        bound_x = 2.0 * (math.sqrt(r_jax.sum()) + math.sqrt(r_sc.sum())) / s.min() + 8 * U
        assert np.linalg.norm(xx - xs) <= bound_x, (np.linalg.norm(xx - xs), bound_x)


# --- 2. Filippov consistency along the flow -----------------------------------------------------


@st.composite
def configurations(draw):
    """``d`` in 3..16; a power law with a cutoff, or random ``sigma`` with zeros."""
    d = draw(st.integers(3, D_PAD))
    if draw(st.booleans()):
        alpha, cutoff = draw(st.floats(0.0, 2.5)), draw(st.integers(1, d - 1))
        sig = np.where(np.arange(d) < cutoff, (np.arange(d) + 1.0) ** -alpha, 0.0)  # powerlaw_spectrum
    else:
        sig = np.array([draw(st.floats(0.2, 1.0))] + [draw(st.one_of(st.just(0.0), st.floats(0.05, 1.0))) for _ in range(d - 1)])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w_star = np.where(sig > 0, rng.normal(size=d), 0.0)  # draw_w_star_freq's law, in numpy
    w0 = 0.1 * rng.normal(size=d)
    return sig, w_star, w0


@settings(max_examples=30, deadline=None)
@given(configurations())
def test_flow_is_filippov_consistent(config):
    """Every segment satisfies ``v in -SIGN(g)`` and the flow reaches ``g = 0``.

    Tolerances ``TOL_G``, ``TOL_HV`` (module docstring), and ``4 d eps`` for
    ``|v_i| = 1`` (the round trip ``C^T (C v)``). A wrong velocity selection
    moves some ``g_i`` the wrong way by ``O(|H v| dtau)``, far above them.
    """
    sig, w_star, w0 = config
    h = np.diag(sig**2)
    flow = run_flow(h, w0 - w_star)
    assert int(flow.reason) == FlowReason.CONVERGED
    assert filippov_violations(h, flow) == []


def test_flow_error_function_and_refusals():
    """``sign_flow_error`` interpolates the breakpoints, is constant after
    convergence; a non-finite input and a too small ``max_events`` are refused."""
    problem = paper_problem()
    quad = population_quadratic(problem)
    flow = sign_flow(quad)
    tau, e = np.asarray(flow.tau), np.asarray(flow.e_freq)
    # Padding changes nothing but rounding: the padded solve has the same breakpoints.
    padded = run_flow(quad.hessian_freq, quad.e0_freq)
    assert int(padded.n_segments) == int(flow.n_segments)
    np.testing.assert_allclose(np.asarray(padded.e_freq)[:4], e[:4], rtol=0, atol=1e-13)
    err = sign_flow_error(flow)
    n = int(flow.n_segments)
    mid = 0.5 * (tau[:n] + tau[1 : n + 1])
    # One call (the function is element-wise in tau): the breakpoints, the midpoints,
    # two times after convergence and one before 0.
    at = np.asarray(err(np.concatenate([tau[: n + 1], mid, [1e3, 1e6, -1.0]])))
    np.testing.assert_array_equal(at[: n + 1], e[: n + 1])
    np.testing.assert_allclose(at[n + 1 : 2 * n + 1], 0.5 * (e[:n] + e[1 : n + 1]), atol=1e-14)
    np.testing.assert_array_equal(at[2 * n + 1 : 2 * n + 3], np.stack([e[n]] * 2))
    assert np.isnan(at[-1]).all()
    short = sign_flow(quad, max_events=2)
    assert not bool(short.applicable) and int(short.reason) == FlowReason.MAX_EVENTS
    assert np.isinf(float(short.tau_converged))
    assert np.isnan(np.asarray(sign_flow_error(short)(9.0))).all()
    bad = sign_flow(quad._replace(e0_freq=jnp.asarray(np.where(np.arange(3) == 0, np.nan, quad.e0_freq))))
    assert not bool(bad.applicable) and int(bad.reason) == FlowReason.NON_FINITE


# --- 3. d = 3 closed forms ------------------------------------------------------------------------


#: The closed form as one compiled program (not ~40 eager operations).
final_d3 = jax.jit(sign_flow_final_d3)


def signed(lo, hi):
    return st.builds(lambda m, s: s * m, st.floats(lo, hi), st.sampled_from((-1.0, 1.0)))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.2, 1.0), st.floats(0.02, 3.0), signed(0.05, 4.0), signed(0.05, 4.0), st.floats(-3.0, 3.0))
def test_d3_end_point(s0, q, e0_0, e0_1, e0_2):
    """``d = 3``: the flow ends at ``(0, 0, e~_2(0) + drift)`` with (THEORY.md 8.1, 4)

    * start in phase 1 (``|A| > |B|``): ``drift = sign(e~_0) sqrt3 q |e~_1|`` for
      ``q <= 1/3``, ``sign(e~_0) |e~_1| / sqrt3`` (saturated) for ``q > 1/3``;
    * start in phase 2, ``q <= 1/3``: ``sign(e~_0) sqrt2 |e~_0|``;

    written out here independently of ``sign_flow_final_d3`` (which must agree,
    also in the remaining case, phase 2 with ``q > 1/3``).

    Tolerance: the flow has at most 4 segments; each ``dtau = -g_i/(H v)_i``
    has absolute error ``<= TOL_G / |(H v)_i|`` with ``|(H v)_i| >= sigma_0^2 / 3``
    on phases 1 and 2 (``|A|`` falls at ``sigma_0^2`` or ``sigma_0^2/3``, ``|B|``
    at ``q sigma_0^2``), and ``|v~_2| <= 1``; so ``|e~_2 - closed form| <=
    4 * 3 TOL_G / sigma_0^2 + 16 eps S`` (the last term: the closed forms' own
    rounding).
    """
    s1 = s0 * math.sqrt(q)
    e0 = np.array([e0_0, e0_1, e0_2])
    a, b = s0**2 * e0_0 / SQRT3, s1**2 * e0_1 / SQRT2
    assume(abs(abs(a) - abs(b)) > 1e-6 * (abs(a) + abs(b)))  # not on the phase boundary
    h = np.diag([s0**2, s1**2, 0.0])
    flow = run_flow(h, e0)
    assert bool(flow.converged)
    tol_g, _ = tolerances(h, e0, flow)
    size = float(np.linalg.norm(e0)) + SQRT3 * float(flow.tau_converged)
    tol = 12.0 * tol_g / s0**2 + 16 * EPS * size
    final = np.asarray(flow.e_freq)[-1]
    np.testing.assert_allclose(final[:2], 0.0, atol=tol)
    sign0 = math.copysign(1.0, e0_0)
    if abs(a) > abs(b):
        drift = sign0 * (SQRT3 * q if q <= 1.0 / 3.0 else 1.0 / SQRT3) * abs(e0_1)
        assert abs(final[2] - (e0_2 + drift)) <= tol, (final[2], e0_2 + drift, tol)
    elif q <= 1.0 / 3.0:
        assert abs(final[2] - (e0_2 + sign0 * SQRT2 * abs(e0_0))) <= tol
    problem = make_problem((s0, s1, 0.0), -e0, np.zeros(3))
    closed = final_d3(problem)
    assert bool(closed.applicable)
    assert abs(float(closed.e_freq_final[2]) - final[2]) <= tol


def test_d3_reference_numbers_and_refusal():
    """THEORY.md 8.1: paper setting ends at ``e~_2 = -4.314457`` (boundaries
    ``tau = 1.111, 6.420``, converged at 8.190); ``sigma = (0.1, 0.08, 0)`` and
    ``(0.1, 0.07, 0)`` saturate at -5.759276 (quoted to 7 digits: tolerance
    5e-7, 5e-4 for the 4-digit times). A spectrum not of the form
    ``(sigma_0 > 0, sigma_1 > 0, 0)`` is refused with NaN."""
    problem = paper_problem()
    flow = jax.tree.map(np.asarray, sign_flow(population_quadratic(problem)))
    n = int(flow.n_segments)
    assert n == 3
    np.testing.assert_allclose(flow.tau[1:4], [1.111, 6.420, 8.190], atol=5e-4)
    assert abs(float(flow.e_freq[n, 2]) + 4.314457) <= 5e-7
    assert abs(float(final_d3(problem).e_freq_final[2]) + 4.314457) <= 5e-7
    assert bool(flow.sliding[2, 1]) and not bool(flow.sliding[:2].any())
    for s1 in (0.08, 0.07):
        m = make_problem((0.1, s1, 0.0), problem.w_star_freq, problem.w0_freq)
        f = sign_flow(population_quadratic(m))
        assert abs(float(np.asarray(f.e_freq)[-1, 2]) + 5.759276) <= 5e-7
        c = final_d3(m)
        assert bool(c.saturated) and abs(float(c.e_freq_final[2]) + 5.759276) <= 5e-7
    bad = final_d3(make_problem((0.1, 0.05, 0.02), problem.w_star_freq, problem.w0_freq))
    assert not bool(bad.applicable) and np.isnan(np.asarray(bad.e_freq_final)).all()
    with pytest.raises(ValueError):
        sign_flow_final_d3(make_problem((0.1, 0.05, 0.0, 0.0), np.zeros(4), np.zeros(4)))


# --- 4. discrete population signGD minus the flow is O(lr) --------------------------------------

EVENTS_CAP = 1 << 15
discrete = jax.jit(partial(signgd_events, max_events=EVENTS_CAP, stop_on_oscillation=False))


def discrete_minus_flow(problem, lrs, components):
    """``max_k |e~_k(discrete) - e~_k(flow)|`` over ``components`` at ``t = ceil(1.25 tau_c / lr)``.

    ``theory.signgd_events`` is the exact iteration (event-driven, one event a
    step while it chatters), run past the flow's convergence time ``tau_c``.
    """
    flow = run_flow(np.diag(np.asarray(problem.spectrum) ** 2), problem.e0_freq)
    assert bool(flow.converged)
    out = []
    for lr in lrs:
        res = discrete(problem, lr, int(math.ceil(1.25 * float(flow.tau_converged) / lr)))
        assert not bool(res.truncated)
        diff = np.asarray(res.e_freq_final)[components] - np.asarray(flow.e_freq)[-1][components]
        out.append(float(np.abs(diff).max()))
    return np.asarray(out)


def loglog_slope(lrs, diffs):
    return float(np.polyfit(np.log(lrs), np.log(diffs), 1)[0])


def test_discrete_minus_flow_paper_setting():
    """Paper setting: ``|e~_2(discrete) - e~_2(flow)| <= K_D3 lr`` with
    ``K_D3 = 2 sqrt(2/3) + sqrt6`` (derived in ``theory.signgd``: the exact
    discrete drift at ``t2`` is within ``(sqrt(2/3) + sqrt6) lr`` of the
    first-order drift, which is the flow's; phase 3 keeps ``e~_2`` within
    ``sqrt(2/3) lr``). THEORY.md 8.1 quotes 0.0152, 0.0062, 0.0021, 0.0003:
    matched to the phase-3 wobble ``sqrt(2/3) lr`` plus the quote's last digit.
    The log-log slope over the four ``lr`` lies in [0.7, 1.4] (stated: ``O(lr)``
    with a sawtooth from rounding step counts; measured 1.08)."""
    diffs = discrete_minus_flow(paper_problem(), LRS, [2])
    lrs = np.asarray(LRS)
    assert np.all(diffs <= K_D3 * lrs), diffs / lrs
    quoted = np.array([0.0152, 0.0062, 0.0021, 0.0003])
    assert np.all(np.abs(diffs - quoted) <= math.sqrt(2.0 / 3.0) * lrs + 1e-4), diffs
    assert 0.7 <= loglog_slope(lrs, diffs) <= 1.4


@settings(max_examples=25, deadline=None)
@given(st.floats(0.3, 1.0), st.floats(0.02, 2.0), signed(0.1, 3.0), signed(0.1, 3.0), st.floats(-2.0, 2.0))
def test_discrete_minus_flow_d3(s0, q, e0_0, e0_1, e0_2):
    """``d = 3``, any ``q``: ``|e~_2(discrete) - e~_2(flow)| <= K_D3 lr`` at each lr.

    For ``q <= 1/3`` ``K_D3`` is derived (previous test); for ``q > 1/3`` it is
    stated: THEORY.md 8.1 measured ``1.8 lr`` there (the sliding boundary is
    followed by chattering, whose first-order drift matches the sliding
    velocity), and ``K_D3 = 4.08`` leaves a margin. The slope is not checked per
    draw: the ``O(lr)`` term is a sawtooth in ``lr`` and may vanish at one ``lr``.
    """
    problem = make_problem((s0, s0 * math.sqrt(q), 0.0), (-e0_0, -e0_1, -e0_2), np.zeros(3))
    diffs = discrete_minus_flow(problem, LRS, [2])
    assert np.all(diffs <= K_D3 * np.asarray(LRS)), diffs / np.asarray(LRS)


def test_discrete_minus_flow_powerlaw_d8():
    """``d = 8``, ``powerlaw_spectrum(8, 1, 4)``, a drawn target, start 0: the
    irrelevant band of the discrete tends to the flow's at ``O(lr)``: the
    log-log slope over ``lr`` = 1e-2 .. 1e-4 lies in [0.6, 1.4] and
    ``|diff| <= 27 lr`` (THEORY.md 8.1 states constants 2 to 27 at ``d = 8``,
    cutoff 4; measured here 6.5 to 18)."""
    sig = powerlaw_spectrum(8, 1.0, 4)
    problem = make_problem(sig, draw_w_star_freq(jax.random.PRNGKey(0), sig), np.zeros(8))
    lrs = np.asarray(LRS + (1e-4,))
    diffs = discrete_minus_flow(problem, lrs, np.arange(4, 8))
    assert np.all(diffs <= 27.0 * lrs), diffs / lrs
    assert 0.6 <= loglog_slope(lrs, diffs) <= 1.4, diffs / lrs


# --- 5. leaving the sliding set when another coordinate joins ------------------------------------

#: Found by a random search (d = 7): at an event, sliding coordinate 3 leaves Z while 2 joins.
LEAVE_SPECTRUM = (0.3, 0.926, 0.721, 0.0, 0.169, 0.54, 0.0)
LEAVE_E0 = (-1.277, 0.849, -0.804, 0.0, -0.811, -0.414, -0.063)


def test_leaving_when_another_joins():
    """The re-selection over the whole zero set handles a coordinate that must
    leave ``Z`` when another joins.

    * Structure: some event has ``i in Z_before, i not in Z_after`` and
      ``j not in Z_before, j in Z_after``.
    * Every segment is Filippov-consistent (tolerances as in test 2).
    * The discrete iteration agrees with the flow's irrelevant errors within
      ``27 lr`` (THEORY.md's ``d = 8`` constant) at ``lr = 3e-4`` and ``1e-4``.

    The per-coordinate rule ("slide or cross; leave when ``|v_i| > 1``": solve
    ``(H v)_Z0 = 0``, fix the components beyond ``+-1`` at the bound, re-solve
    the rest) breaks the consistency at that event and ends ``0.03`` away in the
    irrelevant band, far above ``27 * 3e-4``.
    """
    sig = np.asarray(LEAVE_SPECTRUM)
    h = np.diag(sig**2)
    flow = run_flow(h, np.asarray(LEAVE_E0))
    n = int(flow.n_segments)
    sl = np.asarray(flow.sliding)[:n]
    swaps = [k for k in range(1, n) if (sl[k - 1] & ~sl[k]).any() and (sl[k] & ~sl[k - 1]).any()]
    assert swaps
    assert filippov_violations(h, flow) == []
    problem = make_problem(sig, -np.asarray(LEAVE_E0), np.zeros(7))
    lrs = np.array([3e-4, 1e-4])
    diffs = discrete_minus_flow(problem, lrs, sig == 0.0)
    assert np.all(diffs <= 27.0 * lrs), diffs / lrs
