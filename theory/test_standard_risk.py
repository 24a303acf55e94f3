"""Claim 2 (THEORY.md section 2): the standard risk in closed form.

``R_s(w) = E[1/2 (<w, x> - y)^2] = 1/2 sum_k sigma_k^2 e~_k^2``: it matches a
Monte Carlo average over fresh samples (drawn in frequency coordinates, the
loss evaluated in input coordinates), and an irrelevant coordinate
(``sigma_k = 0``) does not enter it.

Tolerances.

* Monte Carlo: ``|mean - R_s| <= 5 stderr``; the per-sample loss ``r^2/2``
  has finite fourth moment, so at ``n = 2^15`` the mean is normal to within
  Berry-Esseen corrections far below the 5-sigma tail, and a false failure
  has probability about ``6e-7`` per comparison.
* Rounding of the residual: ``r = <C^T w~, C^T x~> - <w~*, x~>`` is computed
  with ``|dr| <= rho = 2 (TAU + d U)(||w|| + ||w*||) max_i ||x_i||``
  (two DCTs, ``TAU`` as in ``test_dct``, and two length-``d`` dot
  products), with ``max_i ||x_i|| <= 10 ||sigma||`` (a chi_d variable above
  10 has probability < 1e-19 for ``d <= 6``). It moves the mean by at most
  ``sqrt(2 R) * 2 rho + rho^2``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.linear.attacks import monte_carlo_risk
from theory import risks
from theory.signal import make_problem

U = 2.0**-53
N_SAMPLES = 2**15
Z = 5.0  # standard errors: two-sided false-failure probability 5.7e-7
DIMS = (3, 6)

mc_risk = jax.jit(monte_carlo_risk, static_argnames=("n_samples", "attack"))
standard_risk = jax.jit(risks.standard_risk)  # once per shape, not per primitive


def tau(d: int) -> float:
    return 16 * U * (1 + math.log2(d))


def coord(lo=-5.0, hi=5.0):
    return st.floats(lo, hi, allow_nan=False, allow_subnormal=False)


@st.composite
def problems(draw, need_irrelevant=False, dims=DIMS):
    """A model with a relevant frequency (and an irrelevant one if asked),
    a weight vector ``w~`` and a seed."""
    d = draw(st.sampled_from(dims))
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.05, 2.0)), min_size=d, max_size=d))
    k_rel = draw(st.integers(0, d - 1))
    sigma[k_rel] = draw(st.floats(0.05, 2.0))
    if need_irrelevant:
        sigma[(k_rel + draw(st.integers(1, d - 1))) % d] = 0.0
    w_star = draw(st.lists(coord(), min_size=d, max_size=d))
    w = draw(st.lists(coord(), min_size=d, max_size=d))
    return make_problem(sigma, w_star, w), jnp.asarray(w), draw(st.integers(0, 2**32 - 1))


def rounding_rho(problem, w_freq, radius=0.0) -> float:
    d = problem.dim
    scale = float(np.linalg.norm(w_freq) + np.linalg.norm(problem.w_star_freq))
    return 2 * (tau(d) + d * U) * scale * (10 * float(np.linalg.norm(problem.spectrum)) + radius)


@settings(max_examples=25, deadline=None)
@given(problems())
def test_closed_form_matches_monte_carlo(problem):
    problem, w, seed = problem
    est = mc_risk(jax.random.key(seed), w, problem, 0.0, n_samples=N_SAMPLES, attack="none")
    r_s = float(standard_risk(w, problem))
    rho = rounding_rho(problem, w)
    tol = Z * float(est.stderr) + 2 * math.sqrt(2 * r_s) * rho + rho**2
    assert abs(float(est.mean) - r_s) <= tol


@settings(max_examples=25, deadline=None)
@given(problems(need_irrelevant=True), st.floats(-10, 10, allow_subnormal=False))
def test_irrelevant_coordinates_do_not_enter(problem, shift):
    problem, w, seed = problem
    irrelevant = np.asarray(problem.spectrum) == 0
    w2 = jnp.asarray(np.where(irrelevant, np.asarray(w) + shift, w))
    # Closed form: sigma_k e~_k = 0 exactly for sigma_k = 0, so R_s is bit-identical.
    assert float(standard_risk(w2, problem)) == float(standard_risk(w, problem))
    # Monte Carlo on the same samples (common random numbers: the same key): x~_k = 0
    # exactly on irrelevant k, so the residuals differ by rounding only (rho for each of w, w2).
    key = jax.random.key(seed)
    m1, m2 = (float(mc_risk(key, v, problem, 0.0, n_samples=N_SAMPLES, attack="none").mean) for v in (w, w2))
    rho = rounding_rho(problem, w) + rounding_rho(problem, w2)
    r_s = max(m1, m2)
    assert abs(m2 - m1) <= 2 * math.sqrt(2 * r_s) * rho + rho**2


def test_batched_over_leading_axes():
    # Batched weights equal one-at-a-time calls on the same key (same samples).
    problem = make_problem((0.1, 0.05, 0.0), (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    ws = jnp.asarray(np.random.default_rng(1).standard_normal((2, 2, 3)))
    key = jax.random.key(2)
    batch = mc_risk(key, ws, problem, 0.0, n_samples=N_SAMPLES, attack="none")
    assert batch.mean.shape == (2, 2)
    one = mc_risk(key, ws[1, 0], problem, 0.0, n_samples=N_SAMPLES, attack="none")
    # The same arithmetic on the same samples; vmap may reorder the reductions,
    # so allow the summation rounding of an n-term mean (n U relative).
    np.testing.assert_allclose(float(batch.mean[1, 0]), float(one.mean), rtol=N_SAMPLES * U)
