"""Claims of ``theory.phase_bounds`` and the phase diagram's flow prediction (THEORY.md 3, 4, 8.1).

* :data:`DRIFT_LR_BOUND`: where the closed form applies, ``e~_2(T)`` is within
  ``(2 sqrt(2/3) + sqrt6) lr`` of ``e~_2(0) + drift_1`` for every ``T >= t2``,
  and ``drift_1`` is the sign flow's drift (``sign_flow_final_d3``);
* :func:`settle_bound` is at least ``signgd_settled``'s ``t_settled``, and from
  it on the iteration is within ``signgd_settled``'s bounds;
* :func:`signgd_regime`: the closed form it names holds at every step;
* ``q > 1/3``, the saturated drift: until ``e~_0`` or ``e~_1`` first changes
  sign (step ``t_end``), every step that moves ``e~_2`` moves ``e~_1`` in the
  ratio ``sqrt3`` (phase 2: ``sqrt(2/3) lr`` against ``sqrt2 lr``; a tie
  ``A = B`` step: ``lr/sqrt6`` against ``lr/sqrt2``), so
  ``e~_2(t) - e~_2(0) = s_0 (|e~_1(0)| - s_1 e~_1(t)) / sqrt3`` exactly, and at
  ``t_end`` the iteration is within ``|e~_1(t_end)| / sqrt3 <= sqrt(2/3) lr
  max(1, 4/(3q))`` of the flow (derivation in that test);
* :func:`gd_time_at_risk`: GD's ``R_s`` at the returned step is the target.

The iteration is ``theory.test_signgd``'s (the frequency recursion, whose
equality with the input-coordinate iteration that module checks), with its
rounding bound ``D(t)`` and tie exclusions. ``U = 2^-53``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from theory import phase_bounds as pb
from theory.gd import gd_error
from theory.risks import standard_risk
from theory.sign_flow import sign_flow_final_d3
from theory.signal import make_problem
from theory.signgd import signgd_drift_first_order, signgd_settled
from theory.test_signgd import T, applicable_problems, closed_tol, far_from_ties, freq_recursion, rounding, signed

U = 2.0**-53
SQRT3, SQRT_2_3 = math.sqrt(3.0), math.sqrt(2.0 / 3.0)

settled_at = jax.jit(signgd_settled)
settle = jax.jit(pb.settle_bound)
first_order = jax.jit(signgd_drift_first_order)
flow_d3 = jax.jit(sign_flow_final_d3)
regime_all = jax.jit(jax.vmap(pb.signgd_regime, in_axes=(None, None, 0)))
time_at_risk = jax.jit(pb.gd_time_at_risk)
risk_at = jax.jit(lambda problem, lr, t: standard_risk(problem.w_star_freq + gd_error(problem, lr)(t), problem))
regime_at = jax.jit(pb.signgd_regime)


def parts(problem, e):
    """``A = sigma_0^2 e~_0 / sqrt3`` and ``B = sigma_1^2 e~_1 / sqrt2`` along ``e`` (numpy)."""
    s2 = np.asarray(problem.spectrum) ** 2
    return s2[0] * e[..., 0] / SQRT3, s2[1] * e[..., 1] / math.sqrt(2.0)


def trajectory(problem, lr):
    """``e~(0..T)`` of the frequency recursion and its rounding bound ``D(t)``."""
    e = np.asarray(freq_recursion(problem.e0_freq, problem.spectrum, lr))
    return e, rounding(problem, lr, e)


@settings(max_examples=30, deadline=None)
@given(applicable_problems())
def test_drift_within_lr_bound_of_the_flow(problem):
    """``|e~_2(t) - e~_2(0) - drift_1| <= DRIFT_LR_BOUND lr`` for ``t2 <= t <= T``,
    and ``drift_1`` (first order) is the flow's drift (``sign_flow_final_d3``).

    Tolerance: the recursion's rounding ``D(t)`` (module docstring of
    ``test_signgd``) plus ``closed_tol`` for the closed forms' own roundings.
    The flow's closed form and ``drift_1`` are the same expression in exact
    arithmetic for ``q <= 1/3``: a few roundings, ``8 U |drift|``.
    """
    problem, lr, ph = problem
    e, dist = trajectory(problem, lr)
    assume(far_from_ties(problem, lr, ph, dist))
    t2 = int(ph.t2)
    drift1 = float(first_order(problem))
    flow = flow_d3(problem)
    assert bool(flow.applicable) and not bool(flow.saturated)
    assert abs(float(flow.drift) - drift1) <= 8 * U * (abs(drift1) + 1)
    err = np.abs(e[t2:, 2] - float(problem.e0_freq[2]) - drift1)
    assert np.all(err <= pb.DRIFT_LR_BOUND * lr + dist[t2:] + closed_tol(problem, lr, np.arange(t2, T + 1)))


@settings(max_examples=30, deadline=None)
@given(applicable_problems())
def test_settle_bound_is_past_settling(problem):
    """``settle_bound >= t_settled`` (module docstring of ``phase_bounds``), and for
    ``settle_bound <= t <= T`` the iteration is within ``signgd_settled``'s bound
    (tolerance ``D(t) + D(t2)``, as in ``test_signgd_settled``)."""
    problem, lr, ph = problem
    settled = settled_at(problem, lr)
    bound = int(settle(problem, lr))
    assert int(settled.t_settled) <= bound
    assume(bound < T)
    e, dist = trajectory(problem, lr)
    assume(far_from_ties(problem, lr, ph, dist))
    gap = np.abs(e[bound:] - np.asarray(settled.e_freq))
    assert np.all(gap <= np.asarray(settled.bound) + (dist[bound:] + dist[int(ph.t2)])[:, None])


def observed_t2(problem, e):
    """The iteration's ``t2``: the first step after ``t1`` (first ``|A| < |B|``) at which
    ``e~_0`` has the sign opposite to ``e~_0(t1)``; -1 if none."""
    a, b = parts(problem, e)
    below = np.abs(a) < np.abs(b)
    if not below.any():
        return -1
    t1 = int(np.argmax(below))
    flipped = np.sign(e[t1 + 1:, 0]) == -np.sign(e[t1, 0])
    return t1 + 1 + int(np.argmax(flipped)) if flipped.any() else -1


@settings(max_examples=30, deadline=None)
@given(applicable_problems())
def test_regime_names_the_closed_form_that_holds(problem):
    """At every ``0 <= t <= T``: ``EXACT`` exactly up to the iteration's own ``t2``,
    where ``e~(t)`` is the closed form's to ``D(t) + closed_tol``; then ``PHASE3``
    and ``SETTLED``, within their bounds plus ``D(t) + D(t2)``."""
    problem, lr, ph = problem
    e, dist = trajectory(problem, lr)
    assume(far_from_ties(problem, lr, ph, dist))
    t = np.arange(T + 1)
    pred = regime_all(problem, lr, jnp.asarray(t))
    regime = np.asarray(pred.regime)
    t2 = observed_t2(problem, e)
    assert t2 == int(ph.t2)
    np.testing.assert_array_equal(regime == pb.Regime.EXACT, t <= t2)
    assert set(np.unique(regime[t > t2])) <= {pb.Regime.PHASE3, pb.Regime.SETTLED}
    assert np.all(np.diff(regime) >= 0)  # EXACT, then PHASE3, then SETTLED
    exact = regime == pb.Regime.EXACT
    gap = np.abs(e - np.asarray(pred.e_freq))
    assert np.all(gap[exact] <= (dist + closed_tol(problem, lr, t))[exact][:, None])
    later = ~exact
    slack = (dist + dist[t2])[later][:, None]
    bound = np.asarray(pred.bound)[later]
    checked = np.isfinite(bound)
    assert np.all(checked[:, 2])  # e~_2 is always predicted after t2
    assert np.all((gap[later] <= bound + slack)[checked])


@st.composite
def saturating_problems(draw):
    """``q`` in ``(1/3, 3]``, any start (phase 1 or 2), sized so that ``e~_0``
    changes sign within ``sqrt3 |e~_0(0)| / lr + 1 <= 1040 < T`` steps."""
    s0 = draw(st.floats(0.2, 2.0))
    q = draw(st.floats(1.0 / 3.0 + 1e-3, 3.0))
    lr = draw(st.floats(0.005, 0.2))
    e0 = [draw(signed(0.05, 3.0)), draw(signed(0.05, 3.0)), draw(st.floats(-3.0, 3.0))]
    w_star = [draw(st.floats(-5.0, 5.0)) for _ in range(3)]
    return make_problem((s0, s0 * math.sqrt(q), 0.0), w_star, np.add(w_star, e0)), lr, q


@settings(max_examples=40, deadline=None)
@given(saturating_problems())
def test_saturated_drift_beyond_q_one_third(problem):
    """For ``q > 1/3`` the closed form refuses (``signgd_regime`` is ``FLOW``), and
    the iteration reaches the sign flow's end point ``sign_flow_final_d3`` to
    ``O(lr)`` by ``t_end``, the first step at which ``e~_0`` or ``e~_1`` changes sign.

    Derivation (``a = |A|``, ``b = |B|``, ``h = sigma_0^2 lr``). Until ``t_end``
    the identity of the module docstring holds, so the error at ``t_end`` is
    ``|e~_1(t_end)| / sqrt3 = sqrt(2/3) lr |B(t_end)| / (q h)``. A phase-1 step
    (``a > b``) raises ``b - a`` by ``h``, a phase-2 step lowers it by
    ``(q - 1/3) h > 0``; so once ``a >= b`` has held (the run *met* ``|A| = |B|``),
    ``b - a`` stays in ``(-(q - 1/3) h, h]``. The last step into ``t_end``:

    * phase 1: ``a`` crossed, so ``b < a <= h`` (``b`` did not move);
    * phase 2 and ``a`` crossed: ``a <= h/3``, ``b <= 4h/3``, then ``b`` fell by ``qh``;
    * phase 2 and ``b`` crossed: ``b <= qh`` before, ``|B(t_end)| < qh``.

    So ``|B(t_end)| <= max(q, 4/3) h`` and the error is at most
    ``sqrt(2/3) lr max(1, 4/(3q))``. Without meeting (a phase-2 start where
    ``A`` reaches 0 first, the flow's unsaturated case) phase 2 takes
    ``ceil(sqrt3 |e~_0(0)| / lr)`` steps of ``sqrt(2/3) lr``: error
    ``< sqrt(2/3) lr``. Draws where the iteration meets but the flow does not,
    or the reverse (both within ``O(lr)`` of the flow's meeting point), and
    exact ties ``a = b`` (measure zero), are excluded.

    Tolerance: ``t`` steps of the recursion round each of ``e~_1``, ``e~_2``
    by at most ``U (|e~| + 2 lr)`` a step: ``8 U (t + 2) (max |e~| + 2 lr)``
    covers both sides of the identity; the flow's closed form adds
    ``8 U (|e~(0)|_1 + 1)``.
    """
    problem, lr, q = problem
    assert int(regime_at(problem, lr, 0).regime) == pb.Regime.FLOW
    e, _ = trajectory(problem, lr)
    s0, s1 = np.sign(e[0, 0]), np.sign(e[0, 1])
    changed = (np.sign(e[:, 0]) != s0) | (np.sign(e[:, 1]) != s1)
    assert changed.any()
    t_end = int(np.argmax(changed))
    a, b = (np.abs(v) for v in parts(problem, e[:t_end]))
    assume(not np.any(a == b))
    met = bool(np.any(a >= b))
    flow = flow_d3(problem)
    assume(met == bool(flow.saturated))
    size = float(np.abs(e[: t_end + 1]).max()) + 2 * lr
    tol = 8 * U * (np.arange(t_end + 1) + 2) * size
    identity = s0 * (abs(e[0, 1]) - s1 * e[: t_end + 1, 1]) / SQRT3
    assert np.all(np.abs(e[: t_end + 1, 2] - e[0, 2] - identity) <= tol)
    bound = SQRT_2_3 * lr * (max(1.0, 4.0 / (3.0 * q)) if met else 1.0)
    flow_tol = 8 * U * (float(np.abs(e[0]).sum()) + 1)
    assert abs(e[t_end, 2] - float(flow.e_freq_final[2])) <= bound + tol[-1] + flow_tol
    if met:  # the saturated drift, |e~_1(0)| / sqrt3, from the identity alone
        assert abs(float(flow.drift) - s0 * abs(e[0, 1]) / SQRT3) <= flow_tol


@st.composite
def gd_problems(draw):
    """A stable GD problem in ``d = 3`` (one shape: one compilation), the last
    frequency relevant or not, and a step ``t``."""
    d = 3
    spectrum = [draw(st.floats(0.05, 2.0)) for _ in range(d)]
    spectrum[-1] = draw(st.sampled_from((0.0, spectrum[-1])))  # an irrelevant frequency or not
    lr = draw(st.floats(1e-3, 0.999)) / max(s * s for s in spectrum)  # lr sigma^2 < 1: the claim's domain
    w_star = [draw(st.floats(-5.0, 5.0)) for _ in range(d)]
    e0 = [draw(signed(0.01, 3.0)) for _ in range(d)]
    t = draw(st.floats(1.0, 1e5))
    return make_problem(spectrum, w_star, np.add(w_star, e0)), lr, t


def risk_np(problem, lr, t):
    """``R_s(t) = 1/2 sum_k sigma_k^2 (1 - lr sigma_k^2)^(2t) e~_k(0)^2`` in numpy, from
    ``e~`` directly (an implementation independent of ``gd_error``/``standard_risk``)."""
    s2 = np.asarray(problem.spectrum) ** 2
    e = np.abs(1.0 - lr * s2) ** t * np.asarray(problem.e0_freq)
    return 0.5 * np.sum(s2 * e * e), e


@settings(max_examples=30, deadline=None)
@given(gd_problems())
def test_gd_time_at_risk_hits_the_target(problem):
    """``R_s(gd_time_at_risk(target)) = target`` for ``target = R_s(t)``; a target
    ``>= R_s(0)`` gives 0; a target of 0 the first ``t`` where the computed
    ``R_s`` is 0 (at half that step it is not).

    Tolerance, relative to the target (``L = max_k |log|1 - lr sigma_k^2||``,
    ``u = log(1 + t)``): ``R_s`` changes by a factor ``exp(+-2 L dt)``; the
    bisection stops with ``u`` within 2 ulps (``4 U u``) of the crossing, and
    ``expm1`` adds ``U``, so ``dt <= (1 + t) (4 U u + U)``; the power
    ``(1 - lr sigma^2)^t`` (``exp(t log c)``, ``c`` rounded) errs by
    ``U (2 + 2 t L + t)`` relative, squared: twice that, in both evaluations;
    ``standard_risk`` forms ``e~ = (w~* + e~) - w~*``, an absolute error
    ``2 U (|w~*_k| + |e~_k|)`` per component. A factor 2 of slack.
    """
    problem, lr, t = problem
    target, e_t = risk_np(problem, lr, t)
    r0, _ = risk_np(problem, lr, 0.0)
    assume(1e-250 < target < r0 * (1 - 1e-9))
    t_found = float(time_at_risk(problem, lr, target))
    found, e_f = risk_np(problem, lr, t_found)
    s2 = np.asarray(problem.spectrum) ** 2
    big_l = float(np.max(np.abs(np.log(np.abs(1.0 - lr * s2[s2 > 0])))))
    u = math.log1p(max(t, t_found))
    rel = 2 * big_l * (1 + max(t, t_found)) * (4 * U * u + U) + 2 * 2 * U * (2 + 2 * max(t, t_found) * big_l + t)
    w = np.abs(np.asarray(problem.w_star_freq))
    cancel = sum(np.sum(s2 * 2 * np.abs(x) * 2 * U * (w + np.abs(x))) for x in (e_t, e_f))
    assert abs(found - target) <= 2 * (rel * target + cancel)
    assert float(time_at_risk(problem, lr, r0 * 1.5)) == 0.0
    t_zero = time_at_risk(problem, lr, 0.0)
    assert float(risk_at(problem, lr, t_zero)) == 0.0 < float(risk_at(problem, lr, 0.5 * t_zero))
