"""GD in general dimension ``d`` (THEORY.md section 7, items 1 and 2).

Claims, for any ``d``, any spectrum (power law from ``theory.spectra`` or
random with zeros anywhere), target and start:

1. GD leaves every irrelevant coordinate ``e~_k`` (``sigma_k = 0``)
   unchanged in every gradient mode of the sims engine: population, online
   (samplers ``wishart`` and ``explicit``) and fixed. Every sample has
   ``x~_k = 0``, so the oracle's ``g~_k`` is exactly 0 in every mode.
2. The closed form ``e~_k(t) = (1 - lr sigma_k^2)^t e~_k(0)``
   (``theory.gd.gd_error``) equals the iteration: the plain frequency loop
   and the engine's ``"gd"`` in input coordinates.

Both are checked for ``d`` drawn from ``[2, 64]`` by hypothesis and at one
fixed ``d = 1024`` power-law model (``alpha = 1``, ``cutoff = 768``).

Tolerances are those of ``theory/test_gd.py`` (``U = 2^-53``):

* frequency loop vs closed form: ``16 (t + 1) U |e~_k(0)|`` per coordinate
  (its derivation does not depend on ``d``: the loop is coordinate-wise);
* engine vs closed form: ``(t + 1) KAPPA_d M + 16 (t + 1) U |e~_k(0)|`` with
  ``M = ||w~*|| + ||e~(0)||`` and ``KAPPA_d = 6 d beta_d + (4 d^1.5 + 5) U``,
  ``beta_d = (2 pi d + 4) U``;
* irrelevant coordinates: ``KAPPA_d M_0 + sum_{tau < t} KAPPA_d (M_tau +
  M_{tau+1})``. ``test_gd`` writes ``||w(tau)||`` for ``M_tau``; here
  ``M_tau = ||e~(tau)|| + ||w~*||``, which bounds both ``||w(tau)||`` and the
  norm of the engine's iterate ``e = w - w*`` (the engine iterates on the
  error, and rounds relative to it), so the bound also holds when ``w`` is
  much smaller than ``e``.

Is ``KAPPA_d`` still meaningful at large ``d``? It grows like
``12 pi d^2 U``: ``KAPPA_64 = 1.8e-11``, ``KAPPA_1024 = 4.4e-9``. Over the
``t <= 64`` steps compared here the engine bound is at most
``65 KAPPA_1024 M = 2.9e-7 M``, and the tests assert that every bound used
stays below ``1e-6 M`` (resp. far below the motion actually observed at
``d = 1024``), so a wrong contraction factor (``1.01 lr sigma^2``: off by
``1e4`` bounds at ``d = 1024``) does not hide in it. It is a worst-case bound,
though: a spurious gradient ``eps`` on an irrelevant coordinate moves it by
``lr eps`` a step and shows only once ``lr eps > 2 KAPPA_d M``. At
``d = 1024`` (``M = 54``) a constant ``eps = 1e-6`` fails the online test and
``1e-9`` passes it, while the drift actually measured there is ``2.6e-13``,
``1e-8`` of the bound.

Budget: every engine call compiles (about 1 s; the model is baked into the
compiled program) and these checks must stay within a few seconds each, so
the hypothesis tests draw few examples (2 for population, 2 per stochastic
mode); the cheap frequency-loop check, padded to one compiled shape, draws
many.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.common.optimizers import make_optimizer
from sims.linear.oracles import make_oracle
from sims.linear.recording import every_step
from theory import gd
from theory.signal import Problem, make_problem
from theory.spectra import powerlaw_spectrum
from theory.test_gd import T as LOOP_T, coord, freq_loop, kappa  # the shared loop and bound

U = 2.0**-53
D_MAX = 64  # hypothesis draws d in [2, D_MAX]
STEPS = 64  # engine steps per run
BIG_D = 1024

gd_error_at = jax.jit(lambda problem, lr, t: gd.gd_error(problem, lr)(t))


@st.composite
def spectra(draw, d_max=D_MAX, padded=False):
    """A ``(d,)`` spectrum with at least one relevant and one irrelevant frequency:
    either ``powerlaw_spectrum(d, alpha, cutoff, scale)`` with ``1 <= cutoff < d``,
    or random, each frequency irrelevant with probability about 1/3.

    ``padded``: take the power law as the first ``d`` entries of
    ``powerlaw_spectrum(d_max, ...)`` (entry ``k`` depends on ``k``, ``alpha``,
    ``cutoff`` and ``scale`` only, so it is the same vector). JAX compiles its
    eager operations once per shape, about 0.2 s for each new ``d``, which the
    cheap tests below avoid this way.
    """
    d = draw(st.integers(2, d_max))
    if draw(st.booleans()):
        cutoff = draw(st.integers(1, d - 1))
        alpha, scale = draw(st.floats(0.0, 2.5)), draw(st.floats(0.1, 2.0))
        return np.asarray(powerlaw_spectrum(d_max if padded else d, alpha, cutoff, scale), np.float64)[:d]
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.05, 2.0), st.floats(0.05, 2.0)), min_size=d, max_size=d))
    k_rel = draw(st.integers(0, d - 1))
    sigma[k_rel] = draw(st.floats(0.05, 2.0))
    sigma[(k_rel + draw(st.integers(1, d - 1))) % d] = 0.0
    return np.asarray(sigma)


@st.composite
def problems(draw, d_max=D_MAX, padded=False):
    """A model on such a spectrum and a stable lr: ``lr sigma_max^2`` in [0.01, 1.99].

    ``padded``: a :class:`Problem` of size ``d_max`` whose entries past ``d``
    are zero (spectrum, target and start), and ``d``.
    """
    sigma = draw(spectra(d_max, padded))
    d = len(sigma)
    w_star = draw(st.lists(coord(), min_size=d, max_size=d))
    w0 = draw(st.lists(coord(), min_size=d, max_size=d))
    lr = draw(st.floats(0.01, 1.99)) / float(np.max(sigma)) ** 2
    if padded:
        pad = lambda v: jnp.zeros(d_max).at[:d].set(jnp.asarray(v, jnp.float64))
        return Problem(pad(sigma), pad(w_star), pad(w0)), lr, d
    return make_problem(sigma, w_star, w0), lr


def run_engine(problem, lr, mode, sampler="wishart", seeds=1, base_seed=0, steps=STEPS):
    """``(seeds, steps + 1, d)`` GD weights ``w~`` from the engine."""
    oracle = make_oracle(mode, problem.spectrum, 8, sampler)  # small batches: noisy gradients
    sim = make_simulation({"gd": make_optimizer("gd", lr)}, oracle)
    return np.asarray(simulate(sim, problem, seed_keys(seeds, base_seed), every_step(steps), chunks=1).of("gd"))


def closed_form(problem, lr, steps):
    return np.asarray(gd_error_at(problem, lr, jnp.arange(steps + 1)))


def check_engine_equals_closed_form(problem, lr, w):
    """Claim 2 for one population run ``w`` ``(steps + 1, d)``; returns the bound."""
    e_engine = w - np.asarray(problem.w_star_freq)
    closed = closed_form(problem, lr, len(w) - 1)
    m = float(np.linalg.norm(problem.w_star_freq) + np.linalg.norm(problem.e0_freq))
    t = np.arange(len(w))[:, None]
    tol = (t + 1) * kappa(problem.dim) * m + 16 * (t + 1) * U * np.abs(np.asarray(problem.e0_freq))
    assert np.all(np.abs(e_engine - closed) <= tol), np.max(np.abs(e_engine - closed) / tol)
    assert tol.max() <= 1e-6 * m  # the bound is meaningful: far below the quantities compared
    return closed


def check_irrelevant_constant(problem, w):
    """Claim 1 for engine runs ``w`` ``(seeds, steps + 1, d)``; returns the final bound."""
    w_star = np.asarray(problem.w_star_freq)
    irr = np.asarray(problem.spectrum) == 0
    drift = np.abs(w[..., irr] - np.asarray(problem.w0_freq)[irr]).max(axis=-1)  # (seeds, t)
    m = np.linalg.norm(w - w_star, axis=-1) + np.linalg.norm(w_star)  # M_tau, (seeds, t)
    k = kappa(problem.dim)
    bound = k * m[:, :1] + np.concatenate([np.zeros((len(w), 1)), np.cumsum(k * (m[:, :-1] + m[:, 1:]), axis=1)], 1)
    assert np.all(np.isfinite(w))
    assert np.all(drift <= bound), np.max(drift / bound)
    assert np.all(bound <= 1e-6 * m.max())  # meaningful
    return bound


@settings(max_examples=40, deadline=None)
@given(problems(padded=True))
def test_closed_form_equals_frequency_loop(problem):
    """Claim 2, frequency loop, ``d`` in [2, 64]. Padded to ``D_MAX`` (zero
    spectrum and error: the padding stays exactly 0 in both) so that one
    compiled loop and closed form serve every ``d``."""
    problem, lr, d = problem
    loop = np.asarray(freq_loop(problem.e0_freq, problem.spectrum, lr))
    closed = closed_form(problem, lr, LOOP_T)
    assert np.all(loop[:, d:] == 0) and np.all(closed[:, d:] == 0)
    e0 = np.abs(np.asarray(problem.e0_freq))
    assert np.all(np.abs(closed - loop) <= 16 * (np.arange(LOOP_T + 1)[:, None] + 1) * U * e0)
    irr = np.asarray(problem.spectrum) == 0
    assert np.all(closed[:, irr] == np.asarray(problem.e0_freq)[irr])
    assert np.all(loop[:, irr] == np.asarray(problem.e0_freq)[irr])


@settings(max_examples=2, deadline=None)  # every engine run compiles (~1 s)
@given(problems())
def test_population_engine_general_d(problem):
    """Claims 1 and 2 on one population run: the engine equals the closed form
    and its irrelevant coordinates stay put."""
    problem, lr = problem
    w = run_engine(problem, lr, "population")
    check_engine_equals_closed_form(problem, lr, w[0])
    check_irrelevant_constant(problem, w)


STOCHASTIC = (("online", "wishart"), ("online", "explicit"), ("fixed", "wishart"))


@pytest.mark.parametrize("mode,sampler", STOCHASTIC)
@settings(max_examples=2, deadline=None)  # every engine run compiles (~1-3 s at d = 64)
@given(problems(), st.integers(0, 2**31 - 1))
def test_irrelevant_constant_stochastic_general_d(mode, sampler, problem, base_seed):
    problem, lr = problem
    check_irrelevant_constant(problem, run_engine(problem, lr, mode, sampler, seeds=2, base_seed=base_seed))


@functools.lru_cache(maxsize=None)
def big_model():
    """``d = 1024``, power law ``alpha = 1``, ``cutoff = 768`` (256 irrelevant
    frequencies), target on the relevant band, start everywhere."""
    sigma = powerlaw_spectrum(BIG_D, 1.0, 768)
    rng = np.random.default_rng(1024)
    w_star = np.where(np.asarray(sigma) > 0, rng.standard_normal(BIG_D), 0.0)
    return make_problem(sigma, w_star, 0.1 * rng.standard_normal(BIG_D)), 1.0  # lr sigma_0^2 = 1


def test_big_d_population():
    problem, lr = big_model()
    w = run_engine(problem, lr, "population", steps=32)
    closed = check_engine_equals_closed_form(problem, lr, w[0])
    bound = check_irrelevant_constant(problem, w)
    # Meaningful at d = 1024: the relevant band moved by far more than either bound.
    moved = np.abs(closed[-1] - closed[0]).max()
    assert moved > 1e4 * (33 * kappa(BIG_D) * float(np.linalg.norm(problem.w_star_freq) + np.linalg.norm(problem.e0_freq)))
    assert moved > 1e4 * bound.max()
    loop = np.asarray(freq_loop(problem.e0_freq, problem.spectrum, lr, steps=32))
    assert np.all(np.abs(closed - loop) <= 16 * (np.arange(33)[:, None] + 1) * U * np.abs(np.asarray(problem.e0_freq)))


def test_big_d_online():
    problem, lr = big_model()
    w = run_engine(problem, lr, "online", "explicit", seeds=2, steps=32)
    bound = check_irrelevant_constant(problem, w)
    rel = np.asarray(problem.spectrum) > 0
    assert np.abs(w[:, -1, rel] - w[:, 0, rel]).max() > 1e4 * bound.max()
