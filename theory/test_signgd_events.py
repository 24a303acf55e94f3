"""The event-driven signGD solver (``theory.signgd_events``) is the iteration.

Checked, for random ``d`` in {2, 3, 4, 5, 8}, random spectra (``sigma_0 > 0``,
each other frequency irrelevant with probability 1/3), targets, starting
points and learning rates, against ``w <- w - lr sign(C^T diag(sigma^2)(C w - w~*))``
iterated for ``T = 512`` steps by the dynamics core (:func:`theory.dynamics.run`
of :func:`theory.dynamics.optax_step` with ``optax.sign_sgd``, its state
being ``w`` itself, as in the solver, and its gradient source
``diag(sigma^2)(w~ - w~*)``; optax's ``w + (-lr) s`` is ``w - lr s`` exactly):

* ``e~(t)`` from ``signgd_event_trajectory`` equals the iteration's for every
  step up to the solver's ``t_final`` (the oscillation stop, ``steps`` or the
  first near-tie, below), to the rounding bound below;
* the same without the oscillation stop (``stop_on_oscillation=False``: one
  event a step through the oscillating regime), up to ``T`` or the first
  near-tie;
* ``t_events`` are exactly the steps where the iteration's sign vector
  changes, and ``t_oscillating`` is the first step of the iteration's first
  run of ``K = 8`` consecutive sign changes (when that run lies in range);
* the same for power-law spectra (``theory.spectra.powerlaw_spectrum``,
  ``1 <= cutoff < d``, ``alpha`` in [0, 2.5]) at ``d = 32``, where
  the tolerances below grow with ``d`` but stay far below ``lr``
  (``D(T)`` is ``1e-12`` relative, the ``e~`` bound ``< 1e-11`` even at ``d = 64``);
* d = 3, spectrum ``(sigma_0, sigma_1, 0)``, ``sigma_1^2 <= sigma_0^2 / 3``:
  the first events are ``signgd_phases``' ``t1`` (where ``|A| < |B|`` starts)
  and ``t2`` (where ``e~_0`` changes sign); just ``t2`` when ``t1 = 0``.

Tolerances (``U = 2^-53``; ``W = max_t ||w(t)||_inf`` and
``W2 = max_t ||w(t)||_2`` on the compared steps; ``S = max_k sigma_k^2``).

* ``w`` (input coordinates). With the same signs, the exact motion is
  ``w(t) = w(0) - lr sum_{tau<t} s(tau)``. The iteration rounds
  ``w - lr s`` (``lr s`` is exact, ``s`` in {-1,0,1}) once a step: at most
  ``U W`` a step, ``t U W`` after ``t`` steps. The solver computes
  ``fl(w(t0) - fl(lr k) s)`` once per segment from the segment's origin:
  ``U lr k + U W`` a segment, so ``U lr t + n_seg U W`` with ``n_seg <= t + 1``.
  Hence ``||w_it(t) - w_ev(t)||_inf <= D(t) = 1.01 (2 t + 1) U (W + lr)``
  (1.01 for second-order terms).
* ``e~ = C w - w~*``, computed by the same expression for both: the exact
  difference is ``||C dw||_inf <= 1.01 sqrt(d) D(t)`` (``||C||_2 <= 1 + 3 beta``,
  see ``test_gd``) plus the matrix-vector rounding of each side,
  ``gamma_d ||w||_2 + U |e~_k| <= 1.01 (d + 1) U (W2 + ||w~*||_inf)``.
* Near-ties. The solver and the iteration evaluate the same
  ``g = C^T (s2 (C w - w~*))`` at ``w`` that differ by ``D(t)``: the exact
  gradients differ by ``||M dw||_inf <= S ||dw||_2 <= 1.01 S sqrt(d) D(t)``;
  each evaluation rounds by at most ``1.01 (d + 2)(sqrt(d) + 1) U S (W2 + ||w~*||_2)``
  (``C w - w~*``, times ``s2``, then ``C^T``). The solver's predicted jump
  ``ceil(q (1 - 32 d U))``, ``q = -g_i / r_i``, lands no later than the true
  flip when ``g`` is that far from 0 at the step before it (``r`` has relative
  error ``<= (2 d + 3) U``, covered by the ``32 d U`` slack; the absolute
  error of ``g`` by the margin). So configurations are compared only up to
  the first step at which the iteration has some ``|g_i| <= margin(t) =
  1.01 S sqrt(d) D(t) + 4 (d + 2)(sqrt(d) + 1) U S (W2 + ||w~*||_2)``
  (twice the evaluation bound): near-ties, where the sign is decided by
  rounding, are excluded. A structural zero (``g_i`` exactly 0 in exact
  arithmetic, e.g. ``c_1 = (1, 0, -1)/sqrt2`` when only frequency 1 is
  relevant) is such a near-tie from step 0; ``sigma_0 > 0`` (``c_0`` has no
  zero entry) makes that rare, and hypothesis' ``event`` reports how far the
  comparisons reach.
* Phases (d = 3): ``t1`` depends on where ``r1 = (|A(0)| - |B(0)|)/h`` falls
  (``h = sigma_0^2 lr``), ``t2`` on ``r2 = sqrt3 |e~_0(t1)|/lr``. The closed
  form computes them to ``8 U (r + 1)``, the solver is within ``D`` of exact,
  moving ``r1`` by ``<= 2 D/lr`` and ``r2`` by ``<= sqrt3 D / lr``; draws
  within ``8 U (r + 1) + 2 D(t2)/lr`` of an integer are excluded.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from theory import dynamics as dyn
from theory import signgd
from theory.signal import dct_basis, make_problem
from theory.signgd_events import EventResult, signgd_event_trajectory, signgd_events
from theory.spectra import powerlaw_spectrum

U = 2.0**-53
T = 512
K = 8
MAX_EVENTS = 512
DIMS = (2, 3, 4, 5, 8)
POWERLAW_DIMS = (32,)

TIMES = np.arange(T + 1)


class Runs(NamedTuple):
    """What :func:`compare` checks, from one program."""

    c: jax.Array  # (d, d) the DCT-II matrix
    w_it: jax.Array  # (T + 1, d) the iteration's w(0..T)
    g_it: jax.Array  # (T + 1, d) its gradients C^T diag(s2)(C w - w~*)
    res: EventResult  # the solver up to max(times), stopping at the oscillation
    e_ev: jax.Array  # (len(times), d) its e~(times)
    e_on: jax.Array  # (len(times), d) e~(times) without the oscillation stop


def iteration(problem, lr):
    """``w(0..T)`` and ``g(0..T)`` of ``w <- w - lr sign(C^T diag(s2)(C w - w~*))``
    (module docstring)."""
    c = dct_basis(problem.dim)
    s2 = jnp.square(problem.spectrum)
    gradient = lambda w_freq, t: s2 * (w_freq - problem.w_star_freq)  # noqa: E731
    opt = optax.sign_sgd(lr)
    step = dyn.optax_step(opt, gradient, c)
    _, w, _ = dyn.run(step, dyn.init_state(opt, c.T @ problem.w0_freq), TIMES)
    return w, jax.vmap(lambda w: c.T @ gradient(c @ w, 0))(w)


@jax.jit
def iterate_and_solve(problem, lr, times):
    """The iteration and the solver (both variants) in one program: the problem,
    ``lr`` and ``times`` are traced, so every example of a given ``d`` reuses
    one compilation (``d``, ``T`` and ``len(times)`` are static)."""
    w_it, g_it = iteration(problem, lr)
    kw = dict(max_events=MAX_EVENTS, osc_window=K)
    return Runs(
        c=dct_basis(problem.dim),
        w_it=w_it,
        g_it=g_it,
        res=signgd_events(problem, lr, jnp.max(times), **kw),
        e_ev=signgd_event_trajectory(problem, lr, times, **kw),
        e_on=signgd_event_trajectory(problem, lr, times, stop_on_oscillation=False, **kw),
    )


phases = jax.jit(signgd.signgd_phases)


def bounds(problem, lr, w, n):
    """``D(t)``, the ``e~`` tolerance and the near-tie margin for ``t = 0..n``."""
    d = problem.dim
    w = w[: n + 1]
    t = np.arange(n + 1)
    wmax = float(np.abs(w).max())
    w2 = float(np.linalg.norm(w, axis=-1).max())
    ws = np.asarray(problem.w_star_freq)
    smax = float(np.max(np.asarray(problem.spectrum) ** 2))
    dist = 1.01 * (2 * t + 1) * U * (wmax + lr)
    e_tol = 1.01 * math.sqrt(d) * dist + 2 * 1.01 * (d + 1) * U * (w2 + np.abs(ws).max())
    margin = 1.01 * smax * math.sqrt(d) * dist + 4 * (d + 2) * (math.sqrt(d) + 1) * U * smax * (
        w2 + np.linalg.norm(ws)
    )
    return dist, e_tol, margin


def first_near_tie(g, margin):
    bad = np.nonzero(np.abs(g[: len(margin)]).min(axis=-1) <= margin)[0]
    return int(bad[0]) if bad.size else len(margin)


def signed(lo, hi):
    return st.builds(lambda m, s: s * m, st.floats(lo, hi), st.sampled_from((-1.0, 1.0)))


@st.composite
def problems(draw):
    d = draw(st.sampled_from(DIMS))
    sig = [draw(st.floats(0.1, 2.0))] + [
        draw(st.one_of(st.just(0.0), st.floats(0.1, 2.0), st.floats(0.1, 2.0))) for _ in range(d - 1)
    ]
    w_star = [draw(st.floats(-5.0, 5.0)) for _ in range(d)]
    e0 = [draw(signed(0.01, 3.0)) for _ in range(d)]
    lr = draw(st.floats(0.005, 0.2))
    return make_problem(sig, w_star, np.add(w_star, e0)), lr


def compare(problem, lr):
    """Checks the solver against the iteration; returns the number of steps compared."""
    out = iterate_and_solve(problem, lr, TIMES)
    w_it, g_it, c, e_ev = (np.asarray(a) for a in (out.w_it, out.g_it, out.c, out.e_ev))
    res = out.res
    e_it = w_it @ c.T - np.asarray(problem.w_star_freq)
    t_final = int(res.t_final)
    _, _, margin = bounds(problem, lr, w_it, t_final)
    n = first_near_tie(g_it, margin)  # steps 0..n-1 are sign-robust
    last = min(t_final, n)  # e~(t) for t <= n depends on signs at steps < n only
    _, e_tol, _ = bounds(problem, lr, w_it, last)
    err = np.abs(e_it[: last + 1] - e_ev[: last + 1]).max(axis=-1)
    assert np.all(err <= e_tol), (np.max(err / e_tol), int(np.argmax(err > e_tol)))
    assert np.all(np.isnan(e_ev[t_final + 1 :]))

    # Event times: steps where the iteration's sign vector changes, compared where robust.
    s = np.sign(g_it)
    changes = np.nonzero(np.any(s[1:] != s[:-1], axis=-1))[0] + 1
    horizon = min(t_final, n - 1)  # sign at t and t-1 both robust for t <= n - 1
    t_ev = np.asarray(res.t_events)[: int(res.n_events)]
    np.testing.assert_array_equal(t_ev[t_ev <= horizon], changes[changes <= horizon])

    # Oscillation: first run of K consecutive change steps in the iteration.
    ch = np.zeros(T + 1, bool)
    ch[changes] = True
    runs = [t for t in range(1, T + 2 - K) if ch[t : t + K].all()]
    if runs and runs[0] + K - 1 <= horizon:
        assert bool(res.oscillating) and int(res.t_oscillating) == runs[0]
        assert t_final == runs[0] + K - 1
    elif bool(res.oscillating):
        assert int(res.t_oscillating) + K - 1 > horizon  # detected past the robust range
    else:
        assert int(res.t_oscillating) == -1
    assert not bool(res.truncated)

    # Without the oscillation stop: one event per step through the regime, to T.
    e_on = np.asarray(out.e_on)
    _, _, margin = bounds(problem, lr, w_it, T)
    n_on = min(first_near_tie(g_it, margin), T)
    _, e_tol, _ = bounds(problem, lr, w_it, n_on)
    err = np.abs(e_it[: n_on + 1] - e_on[: n_on + 1]).max(axis=-1)
    assert np.all(err <= e_tol), (np.max(err / e_tol), int(np.argmax(err > e_tol)))
    return last, n_on


@settings(max_examples=60, deadline=None)
@given(problems())
def test_events_equal_iteration(problem):
    problem, lr = problem
    last, n_on = compare(problem, lr)
    bucket = lambda n: "0" if n == 0 else "<64" if n < 64 else f"<{T}" if n < T else f"all {T}"
    event(f"d = {problem.dim}")
    event(f"compared steps, stopping at the oscillation: {bucket(last)}")
    event(f"compared steps, stepping through it: {bucket(n_on)}")


@st.composite
def powerlaw_problems(draw):
    """A power-law spectrum (target on the relevant band, start anywhere)."""
    d = draw(st.sampled_from(POWERLAW_DIMS))
    cutoff = draw(st.integers(1, d - 1))
    sig = powerlaw_spectrum(d, draw(st.floats(0.0, 2.5)), cutoff, draw(st.floats(0.1, 2.0)))
    w_star = [draw(st.floats(-5.0, 5.0)) if k < cutoff else 0.0 for k in range(d)]
    e0 = [draw(signed(0.01, 3.0)) for _ in range(d)]
    lr = draw(st.floats(0.005, 0.2))
    return make_problem(sig, w_star, np.add(w_star, e0)), lr


# One size (d = 16 and 64 were also run while writing this): each new d compiles
# :func:`iterate_and_solve` once (about 1-2 s), after which an example takes milliseconds.
@settings(max_examples=25, deadline=None)
@given(powerlaw_problems())
def test_events_equal_iteration_powerlaw(problem):
    problem, lr = problem
    last, n_on = compare(problem, lr)
    bucket = lambda n: "0" if n == 0 else "<64" if n < 64 else f"<{T}" if n < T else f"all {T}"
    event(f"d = {problem.dim}, compared steps, stopping at the oscillation: {bucket(last)}")
    event(f"d = {problem.dim}, compared steps, stepping through it: {bucket(n_on)}")


def test_paper_setting():
    from theory.signal import paper_problem

    problem = paper_problem()
    ph = phases(problem, 0.01)
    times = np.full(T + 1, 641)
    times[-1] = 5000  # the solver runs to max(times)
    out = iterate_and_solve(problem, 0.01, times)
    res = out.res
    assert (int(ph.t1), int(ph.t2)) == (112, 641)
    np.testing.assert_array_equal(np.asarray(res.t_events)[:2], [112, 641])
    assert bool(res.oscillating) and int(res.t_oscillating) == 641 and not bool(res.truncated)
    e_t2 = np.asarray(out.e_ev)[0]
    np.testing.assert_allclose(e_t2, ph.e_freq_t2, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.2, 2.0),
    st.one_of(st.just(1.0 / 3.0), st.floats(0.01, 1.0 / 3.0)),
    st.floats(0.005, 0.2),
    signed(0.05, 3.0),
    signed(0.05, 3.0),
    st.floats(-3.0, 3.0),
    st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3),
)
def test_first_events_are_the_phases(s0, q, lr, e0, e1, e2, w_star):
    problem = make_problem((s0, s0 * math.sqrt(q), 0.0), w_star, np.add(w_star, [e0, e1, e2]))
    ph = phases(problem, lr)
    assume(bool(ph.applicable))
    t1, t2 = int(ph.t1), int(ph.t2)
    assume(t2 <= T)
    out = iterate_and_solve(problem, lr, TIMES)
    res, w_it = out.res, out.w_it
    dist, _, _ = bounds(problem, lr, np.asarray(w_it), t2)
    a0, b0 = (float(v) for v in signgd.signgd_gradient_parts(problem.e0_freq, problem.spectrum))
    r1 = (abs(a0) - abs(b0)) / (s0**2 * lr)
    r2 = math.sqrt(3) * abs(float(np.asarray(ph.e_freq_t1)[0])) / lr
    frac = lambda r: abs(r - round(r))
    assume(r1 < 0 or frac(r1) > 8 * U * (abs(r1) + 1) + 2 * dist[-1] / lr)
    assume(frac(r2) > 8 * U * (r2 + 1) + 2 * dist[-1] / lr)
    expected = [t1, t2] if t1 > 0 else [t2]
    np.testing.assert_array_equal(np.asarray(res.t_events)[: len(expected)], expected)


def test_zero_gradient_never_moves():
    """``g = 0`` exactly (``w = w~* = 0``): ``s = 0``, ``r = 0``, no event, no motion."""
    problem = make_problem((1.0, 0.5, 0.0, 0.3, 0.0), np.zeros(5), np.zeros(5))
    res = iterate_and_solve(problem, 0.1, np.full(T + 1, 1000)).res
    assert int(res.n_events) == 0 and int(res.t_final) == 1000
    assert not bool(res.oscillating) and not bool(res.truncated) and int(res.t_oscillating) == -1
    np.testing.assert_array_equal(res.e_freq_final, np.zeros(5))
