"""Claim 3 (THEORY.md section 2): the adversarial risks in closed form.

For a sample with residual ``r = <w, x> - y`` the worst perturbation in the
l2 ball is ``eps sign(r) w/||w||_2`` (loss ``1/2 (|r| + eps ||w||_2)^2``) and
in the l_inf ball ``eps sign(r) sign(w)`` (loss ``1/2 (|r| + eps ||w||_1)^2``,
``||w||_1`` in input coordinates). Averaging over ``r ~ N(0, 2 R_s)``:

    R_a = R_s + 2 eps sqrt(R_s/pi) ||w||_* + eps^2/2 ||w||_*^2.

Checked here: the closed forms against Monte Carlo under the worst-case
perturbation; PGD (``jax.grad``) never beats the worst case on any sample
and reaches it; at equal ``R_s`` a larger weight norm gives a larger ``R_a``.

Tolerances.

* Monte Carlo: 5 standard errors (false failure ~6e-7 per comparison), plus
  the rounding of the per-sample residual ``|dr| <= rho`` (as in
  ``test_standard_risk``, with ``eps`` added for ``<w, delta>``), which moves
  the mean by at most ``2 sqrt(2 R_a) rho + rho^2``.
* Per sample: the loss ``1/2 (<w, x + delta> - y)^2`` is evaluated with the
  residual off by at most ``g = gamma_{d+1} (||w||_2 ||x + delta||_2 + |y|)``
  (Higham Lemma 3.1, ``gamma_k ~ k U``) and ``delta`` is in the ball up to the
  normalisation and projection (``(2d + 6) U`` relative), so a computed loss exceeds the exact
  worst case ``W = 1/2 (|r| + eps ||w||_*)^2`` by at most
  ``(|r| + eps ||w||_*) e + e^2/2 + 2 U W`` with ``e = 2 g + (2d + 6) U eps ||w||_*``.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sims.linear.attacks import monte_carlo_risk, pgd_perturbations, worst_case
from theory import risks
from theory.signal import make_problem, sample_freq, to_input
from theory.test_standard_risk import coord, tau
from theory.test_standard_risk import problems as model_problems

U = 2.0**-53
N_SAMPLES = 2**15
N_PGD = 512  # samples for the per-sample PGD checks
Z = 5.0
DIMS = (3, 6)

CLOSED = {"worst_l2": risks.adversarial_risk_l2, "worst_linf": risks.adversarial_risk_linf}


# Jitted as a whole, once per shape (eager dispatch compiles every primitive
# separately): the tests below always pass two weight vectors.
@jax.jit
def worst_risks(key, w_freq, problem, radius):
    """``R_s``, ``||w||_2``, and for both worst-case attacks the closed-form
    ``R_a`` (``closed``) and Monte Carlo risks on the same samples (``mc``)."""
    return {
        "r_s": risks.standard_risk(w_freq, problem),
        "norm": risks.weight_norm(w_freq),
        "closed": {a: f(w_freq, problem, radius) for a, f in CLOSED.items()},
        "mc": {a: monte_carlo_risk(key, w_freq, problem, radius, N_SAMPLES, a) for a in CLOSED},
    }


@jax.jit
def pgd_risks(key, w_freq, problem, radius):
    """Monte Carlo risks under both PGD attacks (default Madry steps, random
    start; 4096 samples) and the closed-form worst cases, per norm."""
    mc = lambda norm: monte_carlo_risk(key, w_freq, problem, radius, 4096, f"pgd_{norm}")
    return {norm: (mc(norm), CLOSED[f"worst_{norm}"](w_freq, problem, radius)) for norm in ("l2", "linf")}


@st.composite
def problems(draw, need_irrelevant=False, dims=DIMS):
    """A model with a relevant frequency (and an irrelevant one if asked),
    weights ``w~``, a budget ``eps`` and a seed."""
    problem, w, seed = draw(model_problems(need_irrelevant, dims))
    return problem, w, draw(st.floats(0.01, 2.0)), seed


def rounding_rho(problem, w_freq, radius) -> float:
    d = problem.dim
    scale = float(np.linalg.norm(w_freq) + np.linalg.norm(problem.w_star_freq))
    return 2 * (tau(d) + d * U) * scale * (10 * float(np.linalg.norm(problem.spectrum)) + math.sqrt(d) * radius)


@settings(max_examples=25, deadline=None)
@given(problems(), coord())
def test_closed_form_matches_monte_carlo_worst_case(problem, scale):
    problem, w, radius, seed = problem
    w = np.asarray(w)
    ws = np.stack([w, scale * w + np.asarray(problem.w_star_freq)])  # two weights on the same samples
    out = jax.tree.map(np.asarray, worst_risks(jax.random.key(seed), jnp.asarray(ws), problem, radius))
    est = out["mc"]
    for attack in CLOSED:
        r_a_all = out["closed"][attack]
        for i, wi in enumerate(ws):
            r_a = float(r_a_all[i])
            rho = rounding_rho(problem, wi, radius)
            tol = Z * float(est[attack].stderr[i]) + 2 * math.sqrt(2 * r_a) * rho + rho**2
            assert abs(float(est[attack].mean[i]) - r_a) <= tol, attack


def samples(problem, seed, n=N_PGD):
    """``n`` samples in input coordinates with labels ``y = <w~*, x~>``."""
    x_freq = sample_freq(jax.random.key(seed), problem.spectrum, n)
    return to_input(x_freq), x_freq @ problem.w_star_freq


def loss(w, x, y, delta):
    return 0.5 * jnp.square(jnp.einsum("d,nd->n", w, x + delta) - y)


def worst_and_slack(w, x, y, radius, dual):
    """Worst loss ``W = 1/2 (|r| + eps ||w||_*)^2`` per sample (from the computed
    ``r``, hence the ``2 g`` in ``e``), the rounding slack of a computed loss, and ``r``."""
    d = w.shape[-1]
    r = x @ w - y
    a = jnp.abs(r) + radius * dual
    g = 2 * (d + 1) * U * (jnp.linalg.norm(w) * (jnp.linalg.norm(x, axis=-1) + math.sqrt(d) * radius) + jnp.abs(y))
    e = 2 * g + (2 * d + 6) * U * radius * dual
    worst = 0.5 * a**2
    return worst, a * e + e**2 / 2 + 2 * U * worst, r


ATTACKS = {
    "l2": (partial(pgd_perturbations, norm="l2"), partial(worst_case, norm="l2"), lambda w: jnp.linalg.norm(w)),
    "linf": (partial(pgd_perturbations, norm="linf"), partial(worst_case, norm="linf"), lambda w: jnp.sum(jnp.abs(w))),
}


def pgd_excess(key, w, x, y, radius, norm):
    """Per-sample ``|loss - W| - slack`` (or ``loss - W - slack``): each must be <= 0.

    Returns the excess of the closed-form ``delta*`` (two-sided), of PGD from a
    random start (one-sided), of PGD from 0 with step ``eps`` (two-sided), and of
    PGD from a random start with step ``eps`` where ``|r| > eps ||w||_*`` (two-sided).
    """
    pgd_fn, worst_fn, dual_fn = ATTACKS[norm]
    worst, slack, r = worst_and_slack(w, x, y, radius, dual_fn(w))
    excess = lambda delta: jnp.abs(loss(w, x, y, delta) - worst) - slack
    delta_star = jax.vmap(worst_fn, in_axes=(None, 0, 0, None))(w, x, y, radius)
    madry = pgd_fn(key, w, x, y, radius, steps=20)  # step 2.5 eps / steps
    zero_start = pgd_fn(key, w, x, y, radius, steps=4, step_size=radius, random_start=False)
    rand_start = pgd_fn(key, w, x, y, radius, steps=64, step_size=radius)
    # r = 0 makes delta = 0 stationary; |r| above the rounding bound g of r keeps its sign.
    d = w.shape[-1]
    g = 2 * (d + 1) * U * (jnp.linalg.norm(w) * jnp.linalg.norm(x, axis=-1) + jnp.abs(y))
    one_sided = jnp.abs(r) > radius * dual_fn(w) * (1 + 1e-6)
    return (
        excess(delta_star),
        loss(w, x, y, madry) - worst - slack,
        jnp.where(jnp.abs(r) > 2 * g, excess(zero_start), -1.0),
        jnp.where(one_sided, excess(rand_start), -1.0),
    )


@jax.jit
def max_pgd_excess(problem, w_freq, radius, seed):
    """The largest :func:`pgd_excess` of each kind on the :func:`samples` of
    ``seed``, for both norms, with ``w = C^T w~``."""
    x, y = samples(problem, seed)
    key, w = jax.random.key(seed ^ 0x5EED), to_input(w_freq)
    return {norm: [jnp.max(v) for v in pgd_excess(key, w, x, y, radius, norm)] for norm in ATTACKS}


@settings(max_examples=25, deadline=None)
@given(problems(dims=(3,)))
def test_pgd_never_beats_the_worst_case_and_reaches_it(problem):
    problem, w_freq, radius, seed = problem
    for norm, excess in max_pgd_excess(problem, w_freq, radius, seed).items():
        star, madry, zero_start, rand_start = (float(v) for v in excess)
        # The closed-form perturbation attains W (to the slack).
        assert star <= 0, norm
        # PGD from a random start stays inside the ball, so it never exceeds W.
        assert madry <= 0, norm
        # PGD reaches W with step size eps: from delta = 0 (where r is not within
        # rounding of 0, else delta = 0 is stationary) the first ascent step is
        # sign(r) times the worst direction, so one step lands on delta* (l_inf: two,
        # clipping saturates every coordinate). From a random start it also reaches W
        # wherever |r| > eps ||w||_*: then sign(r + <w, delta>) = sign(r) on the whole
        # ball, so there is no second local maximum, and the off-axis part (l2) shrinks
        # by eps / (eps + eps) = 1/2 every step, to 2^-60 after 64 steps.
        assert zero_start <= 0, norm
        assert rand_start <= 0, norm


@settings(max_examples=25, deadline=None)
@given(problems(need_irrelevant=True), st.floats(-10, 10, allow_subnormal=False))
def test_larger_norm_at_equal_standard_risk_is_less_robust(problem, shift):
    # Shifting an irrelevant coordinate keeps R_s bit-identical (see test_standard_risk)
    # and changes only ||w||_2; the l2 R_a grows with the norm at fixed R_s:
    # dR_a/d||w|| = 2 eps sqrt(R_s/pi) + eps^2 ||w|| > 0.
    problem, w, radius, seed = problem
    w = np.asarray(w)
    w2 = np.where(np.asarray(problem.spectrum) == 0, w + shift, w)
    out = jax.tree.map(np.asarray, worst_risks(jax.random.key(seed), jnp.asarray(np.stack([w, w2])), problem, radius))
    (n1, n2), (r1, r2) = out["norm"], out["r_s"]
    assert r1 == r2
    lo, hi = (0, 1) if n1 < n2 else (1, 0)  # rows of the lower and the higher norm
    ra_lo, ra_hi = (float(out["closed"]["worst_l2"][i]) for i in (lo, hi))
    # R_a(hi) - R_a(lo) >= eps^2/2 (n_hi^2 - n_lo^2); each R_a is a sum of three
    # non-negative terms with relative rounding <= (d + 8) U, so the gap is resolved
    # when it exceeds 2 (d + 8) U R_a(hi) (else the draw is within rounding of a tie).
    gap = 0.5 * radius**2 * abs(float(n2**2 - n1**2))
    assume(gap > 4 * (problem.dim + 8) * U * ra_hi)
    assert ra_hi > ra_lo
    # The same order holds sample by sample under the worst-case attack: with common
    # random numbers, (|r| + eps n)^2 grows with n for every sample, so the Monte Carlo
    # estimates are ordered too.
    est = out["mc"]["worst_l2"]
    assert est.mean[hi] > est.mean[lo]


def test_monte_carlo_pgd_is_below_worst_case():
    # Through monte_carlo_risk: the PGD risk (default Madry steps, random start)
    # never exceeds the closed-form worst case beyond the Monte Carlo CI.
    problem = make_problem((0.1, 0.05, 0.0), (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    w = jnp.array([[4.9, 9.5, 3.0], [0.01, -0.01, 0.02]])
    radius = math.sqrt(2.0)
    for est, closed in jax.tree.map(np.asarray, pgd_risks(jax.random.key(3), w, problem, radius)).values():
        assert np.all(est.mean <= closed + Z * est.stderr)
        assert np.all(est.mean >= 0.5 * closed)  # a real attack, not a no-op
