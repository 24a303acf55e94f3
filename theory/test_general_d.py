"""GD in general dimension ``d`` (THEORY.md section 7, items 1 and 2).

Claims, for any ``d``, any spectrum (power law from ``theory.spectra`` or
random with zeros anywhere), target and start:

1. GD leaves every irrelevant coordinate ``e~_k`` (``sigma_k = 0``)
   unchanged for every gradient source of the core
   (:mod:`theory.dynamics`): population, online (a fresh explicit batch each
   step) and fixed (one training set). Every sample has ``x~_k = 0``, so
   ``g~_k`` is exactly 0 for any batch.
2. The closed form ``e~_k(t) = (1 - lr sigma_k^2)^t e~_k(0)``
   (``theory.gd.gd_error``) equals the iteration: the plain frequency loop
   and the core's :func:`~theory.dynamics.optax_step` of ``optax.sgd`` in
   input coordinates.

Both are checked for ``d`` drawn from ``[2, 64]`` by hypothesis and at one
fixed ``d = 1024`` power-law model (``alpha = 1``, ``cutoff = 768``).

Tolerances are those of ``theory/test_gd.py`` (``U = 2^-53``):

* frequency loop vs closed form: ``16 (t + 1) U |e~_k(0)|`` per coordinate
  (its derivation does not depend on ``d``: the loop is coordinate-wise);
* core vs closed form: ``(t + 1) KAPPA_d M + 16 (t + 1) U |e~_k(0)|`` with
  ``M = ||e~(0)||`` and ``KAPPA_d = 6 d beta_d + (4 d^1.5 + 5) U``,
  ``beta_d = (2 pi d + 4) U``;
* irrelevant coordinates: ``KAPPA_d M_0 + sum_{tau < t} KAPPA_d (M_tau +
  M_{tau+1})`` with ``M_tau = ||e~(tau)||``.

``test_gd`` derives ``KAPPA_d`` for an iteration on ``w`` with ``M`` bounding
``||w(t)||``. The core iterates the error alone, ``e <- e - lr C'^T g~(C' e)``
(no ``w*`` enters GD's step), and records ``e~ = C' e``: the same operations
(two ``d``-term products, a scaling and an addition per step, one product
per record), rounded relative to ``||e||`` instead. Since ``C'`` is
orthogonal to ``O(d beta_d)``, ``||e|| = ||e~|| (1 + O(d beta_d))`` and the
derivation holds with ``M_tau = ||e~(tau)||``; stable GD does not increase
``||e~||``, so ``M = ||e~(0)||`` bounds it for claim 2.

Is ``KAPPA_d`` still meaningful at large ``d``? It grows like
``12 pi d^2 U``: ``KAPPA_64 = 1.8e-11``, ``KAPPA_1024 = 4.4e-9``. Over the
``t <= 64`` steps compared here the core bound is at most
``65 KAPPA_1024 M = 2.9e-7 M``, and the tests assert that every bound used
stays below ``1e-6 M`` (resp. far below the motion actually observed at
``d = 1024``), so a wrong contraction factor (``1.01 lr sigma^2``: off by
``1e4`` bounds at ``d = 1024``) does not hide in it. It is a worst-case bound,
though: a spurious gradient ``eps`` on an irrelevant coordinate moves it by
``lr eps`` a step and shows only once ``lr eps`` exceeds about
``2 KAPPA_d M``.

Compiles. The core takes the problem, the learning rate, the batches' keys
and the basis ``C`` as traced arguments of one jitted function per gradient
source: a ``d``-dimensional problem runs padded to ``D_MAX`` (spectrum,
target and start zero past ``d``, and ``C_d`` in the top-left block of a
zero ``D_MAX x D_MAX`` basis). The padding stays exactly 0 and adds exact
zeros to every product, so the run is the ``d``-dimensional one with the same
``d``-term rounding bounds. Only the basis ``C_d`` compiles per ``d``
(``theory.signal.dct_basis``, about 0.13 s), so the core tests draw ``d``
from :data:`CORE_DIMS`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from theory import dynamics as dyn
from theory import gd
from theory.signal import Problem, make_problem, sample_freq
from theory.testing import jit_dct_basis, pad_problem, padded_basis
from theory.spectra import powerlaw_spectrum
from theory.test_gd import T as LOOP_T, coord, freq_loop, kappa  # the shared loop and bound

U = 2.0**-53
D_MAX = 64  # hypothesis draws d in [2, D_MAX]
#: The d's of the core tests (one basis compile each): every d up to 9, then
#: powers of 2 and their odd neighbours, up to D_MAX.
CORE_DIMS = (2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64)
STEPS = 64  # core steps per run
BATCH = 8  # online / fixed batch size: small, noisy gradients
GRADIENTS = ("population", "online", "fixed")
BIG_D = 1024

gd_error_at = jax.jit(lambda problem, lr, t: gd.gd_error(problem, lr)(t))
@functools.partial(jax.jit, static_argnames=("gradient", "steps"))
def core_gd(problem, dct, lr, keys, gradient, steps=STEPS):
    """``e~(0..steps)`` of GD on the core, one run per key: ``(seeds, steps + 1, d)``.

    :func:`theory.dynamics.run` of :func:`theory.dynamics.optax_step` with
    ``optax.sgd(lr)``, from ``e(0) = C^T e~(0)``, recording ``e~ = C e``.

    Args:
      problem: the (padded) problem; its ``w_star_freq`` does not enter GD.
      dct: ``(d, d)`` basis ``C`` (:func:`theory.testing.padded_basis` for a padded problem).
      lr: learning rate (traced).
      keys: ``(seeds,)`` PRNG keys: step ``t``'s batch comes from
        ``fold_in(key, t)`` (online), the training set of ``BATCH`` samples
        from ``key`` (fixed); unused by the population gradient.
      gradient: ``"population"``, ``"online"`` or ``"fixed"`` (static).
      steps: number of steps (static).
    """
    optimizer = optax.sgd(lr)
    e0 = dct.T @ problem.e0_freq

    def one(key):
        if gradient == "population":
            source = dyn.population_gradient(problem.spectrum)
        elif gradient == "online":
            source = dyn.online_gradient(problem.spectrum, BATCH, key)
        else:
            source = dyn.fixed_gradient(sample_freq(key, problem.spectrum, BATCH))
        step = dyn.optax_step(optimizer, source, dct)
        _, e_freq, _ = dyn.run(step, dyn.init_state(optimizer, e0), np.arange(steps + 1), dyn.save_e_freq(dct))
        return e_freq

    return jax.vmap(one)(keys)


@st.composite
def spectra(draw, dims, d_max=D_MAX):
    """A ``(d,)`` spectrum, ``d`` drawn from ``dims``, with at least one
    relevant and one irrelevant frequency: either ``powerlaw_spectrum(d,
    alpha, cutoff, scale)`` with ``1 <= cutoff < d``, or random, each
    frequency irrelevant with probability about 1/3.

    The power law is taken as the first ``d`` entries of
    ``powerlaw_spectrum(d_max, ...)`` (entry ``k`` depends on ``k``,
    ``alpha``, ``cutoff`` and ``scale`` only, so it is the same vector): JAX
    compiles its eager operations once per shape, about 0.2 s for each new
    ``d``, which this avoids.
    """
    d = draw(dims)
    if draw(st.booleans()):
        cutoff = draw(st.integers(1, d - 1))
        alpha, scale = draw(st.floats(0.0, 2.5)), draw(st.floats(0.1, 2.0))
        return np.asarray(powerlaw_spectrum(d_max, alpha, cutoff, scale), np.float64)[:d]
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.05, 2.0), st.floats(0.05, 2.0)), min_size=d, max_size=d))
    k_rel = draw(st.integers(0, d - 1))
    sigma[k_rel] = draw(st.floats(0.05, 2.0))
    sigma[(k_rel + draw(st.integers(1, d - 1))) % d] = 0.0
    return np.asarray(sigma)


@st.composite
def problems(draw, dims=st.integers(2, D_MAX), d_max=D_MAX):
    """A model on such a spectrum and a stable lr (``lr sigma_max^2`` in
    [0.01, 1.99]), padded: ``(problem, lr, d)`` with a :class:`Problem` of
    size ``d_max`` whose entries past ``d`` are zero (spectrum, target and
    start; padded in NumPy, which compiles nothing)."""
    sigma = draw(spectra(dims, d_max))
    d = len(sigma)
    w_star = draw(st.lists(coord(), min_size=d, max_size=d))
    w0 = draw(st.lists(coord(), min_size=d, max_size=d))
    lr = draw(st.floats(0.01, 1.99)) / float(np.max(sigma)) ** 2

    return pad_problem(Problem(sigma, w_star, w0), d_max), lr, d


def closed_form(problem, lr, steps):
    """``e~(0..steps)`` of the closed form, evaluated at ``t = 0..max(steps, LOOP_T)``
    (one compile per size for the loop and the core tests)."""
    return np.asarray(gd_error_at(problem, lr, np.arange(max(steps, LOOP_T) + 1)))[: steps + 1]


def assume_normal_error(problem):
    """The rounding model ``|fl(x) - x| <= U |x|`` holds for normal numbers:
    discard a start error so small (``||e~(0)|| < 1e-100``, e.g. ``w0 = w*``)
    that the bound ``KAPPA_d M`` itself nears the underflow threshold. From
    ``M >= 1e-100`` every absolute error of an underflow (``<= 2^-1074``
    per operation) is negligible against ``KAPPA_d M >= 1e-112``."""
    assume(float(np.linalg.norm(np.asarray(problem.e0_freq))) >= 1e-100)


def check_core_equals_closed_form(problem, lr, e_freq, d):
    """Claim 2 for one population run ``e_freq`` ``(steps + 1, d_max)`` of a
    ``d``-dimensional problem; returns the closed form."""
    closed = closed_form(problem, lr, len(e_freq) - 1)
    e0 = np.abs(np.asarray(problem.e0_freq))
    m = float(np.linalg.norm(e0))
    t = np.arange(len(e_freq))[:, None]
    tol = (t + 1) * kappa(d) * m + 16 * (t + 1) * U * e0
    assert np.all(np.abs(e_freq - closed) <= tol), np.max(np.abs(e_freq - closed) / tol)
    assert tol.max() <= 1e-6 * m  # the bound is meaningful: far below the quantities compared
    return closed


def check_irrelevant_constant(problem, e_freq, d):
    """Claim 1 for runs ``e_freq`` ``(seeds, steps + 1, d_max)`` of a
    ``d``-dimensional problem; returns the bound ``(seeds, steps + 1)``."""
    irr = np.asarray(problem.spectrum)[:d] == 0
    e0_irr = np.asarray(problem.e0_freq)[:d][irr]
    drift = np.abs(e_freq[..., :d][..., irr] - e0_irr).max(axis=-1)  # (seeds, t)
    m = np.linalg.norm(e_freq, axis=-1)  # M_tau, (seeds, t)
    k = kappa(d)
    bound = k * m[:, :1] + np.concatenate([np.zeros((len(e_freq), 1)), np.cumsum(k * (m[:, :-1] + m[:, 1:]), axis=1)], 1)
    assert np.all(np.isfinite(e_freq))
    assert np.all(e_freq[..., d:] == 0)  # the padding stays exactly 0
    assert np.all(drift <= bound), np.max(drift / bound)
    assert np.all(bound <= 1e-6 * m.max())  # meaningful
    return bound


@settings(max_examples=40, deadline=None)
@given(problems())
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


@settings(max_examples=30, deadline=None)  # one compile for every example
@given(problems(st.sampled_from(CORE_DIMS)))
def test_population_core_general_d(problem):
    """Claims 1 and 2 on one population run: the core equals the closed form
    and its irrelevant coordinates stay put."""
    problem, lr, d = problem
    assume_normal_error(problem)
    e_freq = np.asarray(core_gd(problem, padded_basis(d, D_MAX), lr, jax.random.split(jax.random.key(0), 1), "population"))
    check_core_equals_closed_form(problem, lr, e_freq[0], d)
    check_irrelevant_constant(problem, e_freq, d)


@pytest.mark.parametrize("gradient", ("online", "fixed"))
@settings(max_examples=25, deadline=None)  # one compile per gradient source
@given(problems(st.sampled_from(CORE_DIMS)), st.integers(0, 2**31 - 1))
def test_irrelevant_constant_stochastic_general_d(gradient, problem, seed):
    """Claim 1 for two independent batch sequences (online) or training sets
    (fixed) of ``BATCH`` samples: ``lr`` is stable for the population, not
    for every batch, so some runs grow; the bound follows ``||e~(tau)||``."""
    problem, lr, d = problem
    assume_normal_error(problem)
    keys = jax.random.split(jax.random.key(seed), 2)
    check_irrelevant_constant(problem, np.asarray(core_gd(problem, padded_basis(d, D_MAX), lr, keys, gradient)), d)


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
    e_freq = np.asarray(core_gd(problem, jit_dct_basis(BIG_D, jnp.float64), lr, jax.random.split(jax.random.key(0), 1),
                                "population", steps=32))
    closed = check_core_equals_closed_form(problem, lr, e_freq[0], BIG_D)
    bound = check_irrelevant_constant(problem, e_freq, BIG_D)
    # Meaningful at d = 1024: the relevant band moved by far more than either bound.
    moved = np.abs(closed[-1] - closed[0]).max()
    assert moved > 1e4 * (33 * kappa(BIG_D) * float(np.linalg.norm(problem.e0_freq)))
    assert moved > 1e4 * bound.max()
    loop = np.asarray(freq_loop(problem.e0_freq, problem.spectrum, lr, steps=32))
    assert np.all(np.abs(closed - loop) <= 16 * (np.arange(33)[:, None] + 1) * U * np.abs(np.asarray(problem.e0_freq)))


def test_big_d_online():
    problem, lr = big_model()
    keys = jax.random.split(jax.random.key(1), 2)
    e_freq = np.asarray(core_gd(problem, jit_dct_basis(BIG_D, jnp.float64), lr, keys, "online", steps=32))
    bound = check_irrelevant_constant(problem, e_freq, BIG_D)
    rel = np.asarray(problem.spectrum) > 0
    assert np.abs(e_freq[:, -1, rel] - e_freq[:, 0, rel]).max() > 1e4 * bound.max()
