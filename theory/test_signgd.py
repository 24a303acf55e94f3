"""Claim 5 (THEORY.md section 4): population signGD on ``(sigma_0, sigma_1, 0)``.

With the sign taken in input coordinates, ``w <- w - lr sign(C^T diag(sigma^2) e~)``
(the iteration: :func:`theory.dynamics.run` of :func:`theory.dynamics.optax_step`
with ``optax.sign_sgd``, on ``e = w - w*``):

* ``theory.signgd.signgd_step_freq`` (the frequency recursion,
  :func:`theory.dynamics.signgd_freq_step`, also iterated by ``run``) is that
  iteration (the sims engine is checked against the same core in ``tests/``);
* ``signgd_phases`` (``t1``, ``t2``, ``e~(t1)``, ``e~(t2)``, the drift) and
  ``signgd_error(t)`` for ``t <= t2`` are the iteration's;
* ``signgd_drift_first_order`` is within ``(sqrt(2/3) + sqrt6) lr`` of the
  exact drift, and ``|drift| - sqrt2 |e~_0(t1)|`` lies in ``[0, sqrt(2/3) lr)``;
* phase 3: ``|e~_2(t) - e~_2(t2)| <= sqrt(2/3) lr`` and ``|e~_0(t)| < sqrt3 lr``
  for every ``t2 <= t <= T`` (``T = 4096``, thousands of steps past ``t2``
  and past the time ``e~_1`` stops moving). ``e~_1`` need not converge: in
  about 40% of the draws it freezes in a phase-1 two-cycle of ``e~_0``, at
  ``|e~_1| < sqrt2 lr / (3 q)``, ``q = sigma_1^2 / sigma_0^2``;
* outside the assumptions the closed form says so (``applicable = False``,
  the right :class:`Reason`, NaN and -1) and ``require_applicable`` raises.

Here ``t2`` is the first step after ``t1`` at which ``e~_0`` has the sign
opposite to ``e~_0(t1)``. When the last phase-1 step jumps over 0 (possible
for ``|e~_0(t1)| < sqrt3 lr``), ``e~_0(t1)`` already has the sign opposite
to ``e~_0(0)``; ``t2`` is still the end of phase 2, and the phase-3 bound
holds from there, not from ``t1``.

Tolerances (``U = 2^-53``, ``M`` the largest of ``||w(t)||`` and ``||e(t)||``
on the run: the iterations round ``e`` or ``w``).

* Iteration vs exact recursion, l2: the input-coordinate iteration uses a
  float64 basis ``C'`` with ``||C' - C||_2 <= 3 beta``, ``beta = (6 pi + 4) U``
  (see ``test_gd``); while the signs agree, a step moves ``e~`` by
  ``lr C' s`` instead of ``lr C s`` (``||s|| <= sqrt3``) and rounds ``w``, so
  it errs by ``rho = 2 lr 3 beta + 8 U M`` (also covering the recursion's own
  ``3 U`` constants and the rounding of ``e~(0)`` into ``e(0) = C^T e~(0)``),
  and ``D(t) = (t + 2) rho`` after ``t`` steps.
* Signs agree while every ``|g_i| = |(A+B, A, A-B)_i|`` exceeds what an
  error ``D`` in ``e~`` can change: ``sigma_0^2 (sqrt3 D + 12 U ||e~||)``.
  Trajectories are compared up to the first step where that margin fails.
* Ties: ``t1`` depends on where ``r1 = (|A(0)| - |B(0)|) / h`` falls
  (``h = sigma_0^2 lr``), ``t2`` on ``r2 = sqrt3 |e~_0(t1)| / lr``. An error
  ``D`` in ``e~`` moves ``r1`` by ``<= 2 D / lr`` and ``r2`` by
  ``<= sqrt3 D / lr``, so configurations within that (plus the closed form's
  own ``8 U r``) of an integer are excluded: about ``1e-9``, a negligible
  fraction of draws.
* Closed form vs exact: a handful of roundings of numbers of size
  ``||e~(0)||_1 + 2 lr t``: ``8 U (||e~(0)||_1 + 2 lr t)``.
"""

import math
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from theory import dynamics as dyn
from theory import signgd
from theory.signal import dct_basis, make_problem
from theory.signgd import REASON_TEXT, NotApplicableError, Reason

U = 2.0**-53
T = 4096
BETA = (6 * math.pi + 4) * U
SQRT2, SQRT3, SQRT6, SQRT_2_3 = math.sqrt(2), math.sqrt(3), math.sqrt(6), math.sqrt(2 / 3)

phases = jax.jit(signgd.signgd_phases)
error_at = jax.jit(lambda problem, lr, t: signgd.signgd_error(problem, lr)(t))
drift_first_order = jax.jit(signgd.signgd_drift_first_order)


@partial(jax.jit, static_argnames="steps")
def freq_recursion(e0, spectrum, lr, steps=T):
    """``e~(0..steps)`` of the frequency recursion: ``run`` of ``signgd_freq_step``."""
    state0 = dyn.State(jnp.zeros((), jnp.int32), e0, ())
    return dyn.run(dyn.signgd_freq_step(spectrum, lr), state0, np.arange(steps + 1))[1]


@partial(jax.jit, static_argnames="steps")
def spatial_iteration(w0_freq, w_star_freq, spectrum, lr, steps=T):
    """``e~(0..steps) = C e(t)`` of ``e <- e - lr sign(C^T diag(sigma^2) C e)``,
    ``e = w - w*``: ``run`` of ``optax_step`` with ``optax.sign_sgd``."""
    c = dct_basis(3)
    opt = optax.sign_sgd(lr)
    step = dyn.optax_step(opt, dyn.population_gradient(spectrum), c)
    state0 = dyn.init_state(opt, c.T @ (w0_freq - w_star_freq))
    return dyn.run(step, state0, np.arange(steps + 1), dyn.save_e_freq(c))[1]


def gradient(e, spectrum):
    """``(..., 3)`` spatial gradient ``(A + B, A, A - B)`` from the parts."""
    a, b = signgd.signgd_gradient_parts(jnp.asarray(e), jnp.asarray(spectrum))
    return np.stack([np.asarray(a + b), np.asarray(a), np.asarray(a - b)], axis=-1)


def rounding(problem, lr, e_traj):
    """``D(t)`` for ``t = 0..len-1`` (module docstring)."""
    norms = np.linalg.norm(np.stack([e_traj, e_traj + np.asarray(problem.w_star_freq)]), axis=-1)
    m = float(np.max(norms))
    rho = 2 * lr * 3 * BETA + 8 * U * m
    return (np.arange(len(e_traj)) + 2) * rho


def agreeing_prefix(problem, e_traj, dist):
    """Number of leading steps whose signs are robust to an error ``dist(t)`` in ``e~``."""
    s0sq = float(problem.spectrum[0]) ** 2
    g = np.abs(gradient(e_traj, problem.spectrum)).min(axis=-1)
    need = s0sq * (SQRT3 * dist + 12 * U * np.linalg.norm(e_traj, axis=-1))
    bad = np.nonzero(g <= need)[0]
    return int(bad[0]) if bad.size else len(e_traj)


def signed(lo, hi):
    mag = st.floats(lo, hi)
    return st.builds(lambda m, s: s * m, mag, st.sampled_from((-1.0, 1.0)))


@st.composite
def applicable_problems(draw):
    """``(sigma_0, sigma_1, 0)`` with ``q = sigma_1^2/sigma_0^2`` in ``(0, 1/3]``, a
    learning rate and an error ``e~(0)``, sized so that ``t2 < T / 2``."""
    s0 = draw(st.floats(0.2, 2.0))
    q = draw(st.one_of(st.just(1.0 / 3.0), st.floats(0.01, 1.0 / 3.0)))
    lr = draw(st.floats(0.005, 0.2))
    e0 = [draw(signed(0.05, 3.0)), draw(signed(0.05, 3.0)), draw(st.floats(-3.0, 3.0))]
    w_star = [draw(st.floats(-5.0, 5.0)) for _ in range(3)]
    problem = make_problem((s0, s0 * math.sqrt(q), 0.0), w_star, np.add(w_star, e0))
    ph = phases(problem, lr)
    assume(bool(ph.applicable))  # q = 1/3 can round either way; NO_PHASE2 is tested below
    return problem, lr, ph


def far_from_ties(problem, lr, ph, dist):
    """The tie exclusions of the module docstring."""
    e0 = np.asarray(problem.e0_freq)
    a0, b0 = (float(v) for v in signgd.signgd_gradient_parts(problem.e0_freq, problem.spectrum))
    h = float(problem.spectrum[0]) ** 2 * lr
    t1, t2 = int(ph.t1), int(ph.t2)
    r1 = (abs(a0) - abs(b0)) / h
    r2 = SQRT3 * abs(float(ph.e_freq_t1[0])) / lr
    frac = lambda r: abs(r - round(r))
    ok2 = frac(r2) > (SQRT3 * (dist[t2] + 8 * U * (np.sum(np.abs(e0)) + 2 * lr * t1))) / lr + 8 * U * (r2 + 1)
    ok1 = r1 < 0 or frac(r1) > 2 * dist[t1] / lr + 8 * U * (abs(r1) + 1)
    return ok1 and ok2


def closed_tol(problem, lr, t):
    return 8 * U * (float(np.sum(np.abs(np.asarray(problem.e0_freq)))) + 2 * lr * np.asarray(t))


@settings(max_examples=40, deadline=None)
@given(applicable_problems())
def test_frequency_recursion_is_the_spatial_iteration(problem):
    problem, lr, ph = problem
    spatial = np.asarray(spatial_iteration(problem.w0_freq, problem.w_star_freq, problem.spectrum, lr))
    freq = np.asarray(freq_recursion(problem.e0_freq, problem.spectrum, lr))
    dist = 2 * rounding(problem, lr, spatial)  # both within D(t) of the exact recursion
    n = agreeing_prefix(problem, freq, dist)
    assume(n > int(ph.t2))  # signs robust through phases 1 and 2 at least
    err = np.linalg.norm(spatial[:n] - freq[:n], axis=-1)
    assert np.all(err <= dist[:n])


@jax.jit
def one_step_pair(w_freq, w_star_freq, spectrum, lr):
    """``e~`` after one step of the frequency recursion and of the spatial
    iteration (``signgd_freq_step`` and ``optax_step``) from ``w~``."""
    c = dct_basis(3)
    e_freq = w_freq - w_star_freq
    freq = dyn.signgd_freq_step(spectrum, lr)(dyn.State(jnp.zeros((), jnp.int32), e_freq, ()))
    opt = optax.sign_sgd(lr)
    spatial = dyn.optax_step(opt, dyn.population_gradient(spectrum), c)(dyn.init_state(opt, c.T @ e_freq))
    return freq.e, c @ spatial.e


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.2, 2.0),
    st.floats(0.01, 3.0),
    st.floats(0.005, 0.2),
    signed(0.05, 3.0),
    st.sampled_from(("A = B", "A = -B", "A = 0")),
    st.floats(-8.0, -1.0),
    st.sampled_from((-1.0, 1.0)),
    st.floats(-3.0, 3.0),
)
def test_one_step_near_sign_boundaries(s0, q, lr, e1, boundary, log_delta, side, e2):
    """One step of ``signgd_step_freq`` equals the spatial step for every sign
    pattern, including states a relative ``delta`` in [1e-8, 0.1] from the
    boundaries ``A = B``, ``A = -B`` and ``A = 0`` where the pattern changes
    (any spectrum ``(s0, s1, 0)``, ratio ``q`` up to 3).

    The spatial step computes ``A``, ``B`` from ``e~ = C e``, ``e = C^T e~``, off by at
    most ``sigma_0^2 8 U M <= 3.2e-14`` (``M <= 9``, ``sigma_0 <= 2``), while
    the margin is ``delta |B| >= 1e-8 * 1.4e-3`` (``|B| >= sigma_1^2 0.05 /
    sqrt2``) or ``delta sigma_0^2 lr >= 2e-12``: the signs are determined, and
    the two steps agree to ``2 rho`` (module docstring) each way."""
    s1 = s0 * math.sqrt(q)
    b = s1**2 * e1 / SQRT2
    delta = side * 10.0**log_delta
    a = {"A = B": b * (1 + delta), "A = -B": -b * (1 + delta), "A = 0": delta * s0**2 * lr}[boundary]
    e = np.array([SQRT3 * a / s0**2, e1, e2])
    w_star = np.array([1.0, -2.0, 0.5])
    spectrum = jnp.array([s0, s1, 0.0])
    freq, spatial = (np.asarray(v) for v in one_step_pair(jnp.asarray(e + w_star), jnp.asarray(w_star), spectrum, lr))
    m = max(float(np.linalg.norm(e)), float(np.linalg.norm(e + w_star))) + 2 * lr
    rho = 2 * lr * 3 * BETA + 8 * U * m
    assert np.linalg.norm(freq - spatial) <= 2 * (2 * rho)
    # The step moved by a sign pattern, not by zero: the boundary is not a tie.
    assert np.linalg.norm(freq - e) > lr / 2


@settings(max_examples=60, deadline=None)
@given(applicable_problems())
def test_phases_and_error_match_the_iteration(problem):
    problem, lr, ph = problem
    e = np.asarray(spatial_iteration(problem.w0_freq, problem.w_star_freq, problem.spectrum, lr))
    dist = rounding(problem, lr, e)
    assume(far_from_ties(problem, lr, ph, dist))
    t1, t2 = int(ph.t1), int(ph.t2)
    assert 0 <= t1 < t2 < T // 2
    event("starts in phase 2" if t1 == 0 else "starts in phase 1")
    if e[t1, 0] * e[0, 0] < 0:
        event("last phase-1 step jumps over e~_0 = 0")

    # t1: first |A| < |B|; t2: first step after t1 with sign(e~_0) = -sign(e~_0(t1)).
    a, b = (np.asarray(v) for v in signgd.signgd_gradient_parts(jnp.asarray(e), problem.spectrum))
    assert int(np.argmax(np.abs(a) < np.abs(b))) == t1
    flipped = e[t1:, 0] * e[t1, 0] < 0
    assert t1 + int(np.argmax(flipped)) == t2

    for t, e_closed in ((t1, ph.e_freq_t1), (t2, ph.e_freq_t2)):
        assert np.linalg.norm(np.asarray(e_closed) - e[t]) <= dist[t] + closed_tol(problem, lr, t)
    drift = e[t2, 2] - e[0, 2]
    assert abs(float(ph.irrelevant_drift) - drift) <= dist[t2] + dist[0] + closed_tol(problem, lr, t2)

    # signgd_error: the iteration on [0, t2], NaN after.
    ts = np.arange(T + 1)
    closed = np.asarray(error_at(problem, lr, jnp.asarray(ts)))
    err = np.linalg.norm(closed[: t2 + 1] - e[: t2 + 1], axis=-1)
    assert np.all(err <= dist[: t2 + 1] + closed_tol(problem, lr, ts[: t2 + 1]))
    assert np.all(np.isnan(closed[t2 + 1 :]))

    # Size of the damage: |drift| = sqrt(2/3) lr ceil(sqrt3 |e~_0(t1)| / lr), so
    # |drift| - sqrt2 |e~_0(t1)| is in [0, sqrt(2/3) lr) (up to rounding).
    slack = 2 * dist[t2] + closed_tol(problem, lr, t2)
    excess = abs(drift) - SQRT2 * abs(e[t1, 0])
    assert -slack <= excess < SQRT_2_3 * lr + slack
    # First order in lr: within (sqrt(2/3) + sqrt6) lr (theory/signgd.py docstring).
    first = float(drift_first_order(problem))
    assert abs(first - drift) <= (SQRT_2_3 + SQRT6) * lr + slack


@settings(max_examples=60, deadline=None)
@given(applicable_problems())
def test_phase3_irrelevant_error_is_frozen(problem):
    problem, lr, ph = problem
    e = np.asarray(spatial_iteration(problem.w0_freq, problem.w_star_freq, problem.spectrum, lr))
    dist = rounding(problem, lr, e)
    assume(far_from_ties(problem, lr, ph, dist))
    t2 = int(ph.t2)
    after = e[t2:]
    slack = dist[t2:] + dist[t2]
    # e~_2 stays within sqrt(2/3) lr of e~_2(t2), for thousands of steps ...
    assert np.all(np.abs(after[:, 2] - e[t2, 2]) <= float(ph.phase3_bound) + slack)
    assert math.isclose(float(ph.phase3_bound), SQRT_2_3 * lr, rel_tol=4 * U)
    # ... while e~_0 oscillates around 0 within sqrt3 lr (the phase-1 step), and
    assert np.all(np.abs(after[:, 0]) < SQRT3 * lr + slack)
    # the run is long: at least 2000 steps past t2, and e~_1 has stopped moving
    # (converged to within a step, or frozen in a phase-1 two-cycle).
    assert T - t2 >= 2000
    event("e~_1 frozen" if np.all(e[-200:, 1] == e[-1, 1]) else "e~_1 oscillates")
    assert np.all(np.abs(e[-200:, 1] - e[-1, 1]) <= SQRT2 * lr + dist[-1] * 2)
    # e~_1 need not converge: once a phase-1 step happens after t2 (at |e~_0| = |x| <
    # lr/sqrt3 with |A| > |B|), e~_0 two-cycles between x and x -+ sqrt3 lr, both with
    # |A| > |B|, and e~_1 freezes with |B| < sigma_0^2 lr / 3, i.e.
    # |e~_1| < sqrt2 lr / (3 q), q = sigma_1^2 / sigma_0^2 (>= sqrt2 lr, the
    # oscillation of a converged e~_1).
    q = float(problem.spectrum[1] ** 2 / problem.spectrum[0] ** 2)
    assert abs(e[-1, 1]) < SQRT2 * lr / (3 * q) + dist[-1]


# --- Outside the assumptions -------------------------------------------------

NAN_FIELDS = ("e_freq_t1", "e_freq_t2", "irrelevant_drift")


def assert_not_applicable(problem, lr, reason):
    ph = phases(problem, lr)
    assert not bool(ph.applicable)
    assert Reason(int(ph.reason)) == reason
    assert int(ph.t1) == -1 and int(ph.t2) == -1
    for name in NAN_FIELDS:
        assert np.all(np.isnan(np.asarray(getattr(ph, name)))), name
    assert np.all(np.isnan(np.asarray(error_at(problem, lr, jnp.arange(0, 50, 7)))))
    with pytest.raises(NotApplicableError, match=re.escape(REASON_TEXT[reason])):
        signgd.require_applicable(ph)


def base_model(draw, s0, s1, s2=0.0):
    e0 = [draw(signed(0.05, 3.0)), draw(signed(0.05, 3.0)), draw(st.floats(-3.0, 3.0))]
    return make_problem((s0, s1, s2), (0.0, 0.0, 0.0), e0)


@settings(max_examples=25, deadline=None)
@given(st.data(), st.floats(0.2, 2.0), st.floats(1.0 / 3.0 + 1e-6, 3.0), st.floats(0.005, 0.2))
def test_ratio_above_one_third_is_not_applicable(data, s0, q, lr):
    # sigma_1^2 = q sigma_0^2 with q >= 1/3 + 1e-6: far above the rounding of the test.
    assert_not_applicable(base_model(data.draw, s0, s0 * math.sqrt(q)), lr, Reason.RATIO)


@settings(max_examples=25, deadline=None)
@given(st.data(), st.floats(0.2, 2.0), st.floats(0.01, 1.0 / 3.0 - 1e-6), st.floats(0.005, 0.2))
def test_no_phase2_when_b_vanishes(data, s0, q, lr):
    # e~_1(0) = 0 gives B = 0: |A| < |B| never holds, phase 2 is never entered.
    e0 = [data.draw(signed(0.05, 3.0)), 0.0, data.draw(st.floats(-3.0, 3.0))]
    problem = make_problem((s0, s0 * math.sqrt(q), 0.0), (0.0, 0.0, 0.0), e0)
    assert_not_applicable(problem, lr, Reason.NO_PHASE2)


@settings(max_examples=30, deadline=None)
@given(st.data(), st.floats(0.2, 2.0), st.floats(0.01, 1.0 / 3.0 - 1e-6), st.floats(0.005, 0.2), st.floats(1e-6, 0.5))
def test_no_phase2_iff_phase1_jumps_over_the_band(data, s0, q, lr, b_over_h):
    # |B(0)| = b_over_h * h <= h/2: one phase-1 step (|A| falls by h) may jump over
    # the band |A| < |B| of width 2 |B|. The closed form says NO_PHASE2 exactly when
    # the iteration leaves phase 1 without ever having |A| < |B| before e~_0 changes sign.
    s1 = s0 * math.sqrt(q)
    h = s0**2 * lr
    e01 = data.draw(st.sampled_from((-1.0, 1.0))) * b_over_h * h * SQRT2 / s1**2
    e0 = [data.draw(signed(0.05, 3.0)), e01, data.draw(st.floats(-3.0, 3.0))]
    problem = make_problem((s0, s1, 0.0), (0.0, 0.0, 0.0), e0)
    e = np.asarray(spatial_iteration(problem.w0_freq, problem.w_star_freq, problem.spectrum, lr))
    a, b = (np.asarray(v) for v in signgd.signgd_gradient_parts(jnp.asarray(e), problem.spectrum))
    first_flip = int(np.argmax(e[:, 0] * e[0, 0] <= 0))
    gap = np.abs(b[: first_flip + 1]) - np.abs(a[: first_flip + 1])
    dist = rounding(problem, lr, e)[: first_flip + 1]
    assume(np.all(np.abs(gap) > 2 * s0**2 * dist + 16 * U * np.abs(a[: first_flip + 1])))  # no near-ties
    entered = bool(np.any(gap > 0))
    ph = phases(problem, lr)
    event(f"phase 2 entered: {entered}")
    if entered:
        assert bool(ph.applicable)
    else:
        assert_not_applicable(problem, lr, Reason.NO_PHASE2)


BAD_LRS = (0.0, -0.01, -1.0, math.inf, -math.inf, math.nan)


@pytest.mark.parametrize("lr", BAD_LRS)
def test_bad_lr_is_not_applicable(lr):
    problem = make_problem((0.1, 0.05, 0.0), (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    assert_not_applicable(problem, lr, Reason.BAD_LR)


@settings(max_examples=30, deadline=None)
@given(st.data(), st.sampled_from(("irrelevant_nonzero", "sigma0_zero", "sigma1_zero")), st.floats(0.005, 0.2))
def test_bad_spectrum_is_not_applicable(data, kind, lr):
    s = data.draw(st.floats(0.2, 2.0))
    spectrum = {
        "irrelevant_nonzero": (s, s / 3, data.draw(st.floats(1e-3, 2.0))),
        "sigma0_zero": (0.0, s, 0.0),
        "sigma1_zero": (s, 0.0, 0.0),
    }[kind]
    assert_not_applicable(base_model(data.draw, *spectrum), lr, Reason.BAD_SPECTRUM)


def test_require_applicable_passes_through_and_needs_d3():
    problem = make_problem((0.1, 0.05, 0.0), (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    ph = phases(problem, 0.01)
    assert signgd.require_applicable(ph) is ph
    with pytest.raises(ValueError):
        signgd.signgd_phases(make_problem((0.1, 0.05, 0.0, 0.0), (0,) * 4, (1,) * 4), 0.01)
