"""Claim 4 (THEORY.md section 3): population GD decouples in frequency.

``e~_k(t) = (1 - lr sigma_k^2)^t e~_k(0)`` (``theory.gd.gd_error``) equals the
iteration ``e~ <- e~ - lr diag(sigma^2) e~`` and the core's GD
(:func:`theory.dynamics.optax_step` with ``optax.sgd``, which iterates the error
``e <- e - lr C^T diag(sigma^2) C e`` in input coordinates); irrelevant
coordinates stay constant in every gradient mode (population, online, fixed:
:func:`theory.dynamics.population_gradient`, ``online_gradient``,
``fixed_gradient``); the limits ``gd_limit`` and ``gd_limit_weight_norm_sq``
hold; ``gd_is_stable`` (``0 < lr sigma_max^2 < 2``) is exactly when the
iteration decays.

Tolerances (``U = 2^-53``; ``M`` bounds the norm ``||e(t)||`` of the iterate:
stable GD does not increase ``||e~||``, and ``||e|| = ||C'^T e~||`` with the
rounding of the recorded ``e~ = C' e`` is within ``(1 + 4 d beta_d)`` of the
recorded ``||e~||``, ``beta_d`` below).

* Frequency loop vs closed form, per coordinate: a loop step
  ``fl(e - fl(fl(lr s^2) e))`` is ``c e + eta`` with ``c = 1 - lr s^2`` and
  ``|eta| <= 7 U |e|`` (``lr s^2 < 2``, ``|c| < 1``), and errors are damped by
  ``|c| <= 1``, so the loop is within ``7 t U |e~(0)|`` of exact. The closed
  form rounds ``c`` by ``|dc| <= 5 U`` (so ``|c'^t - c^t| <= 5 t U``), and
  ``pow`` errs by ``<= (2 log2 t + 3) U`` relative if done by repeated
  squaring, or, as ``exp(t log c)``, by ``<= |c|^t (t |log|c|| + 2) U <= 3 U``
  absolute (``x e^-x <= 1/e``). Together: ``16 (t + 1) U |e~_k(0)|``.
* Core (input coordinates): it uses a float64 basis ``C'`` with entries
  within ``beta_d = (2 pi d + 4) U`` of the exact DCT (this covers both an
  FFT-built basis, ``TAU(d) <= beta_d``, and ``sqrt(2/d) cos(pi k (2j+1)/2d)``,
  whose argument carries ``<= 2 pi d U``), so ``phi = ||C' - C||_2 <= d beta_d``
  and ``||C' C'^T - I|| <= 3 phi``. One step of the recorded ``e~ = C' e`` is
  ``(I - lr S) e~ - lr (C'C'^T - I) S e~`` (``<= 6 phi ||e~||``) plus the
  rounding of two ``d``-term products and an axpy, relative to the iterate
  ``e`` and its update (``<= (4 d^1.5 + 5) U M``). ``I - lr S`` does not
  amplify, so after ``t`` steps (and the transforms ``e(0) = C'^T e~(0)`` and
  ``C' e(t)``, the ``+ 1``) the core is within ``(t + 1) KAPPA_d M`` of exact,
  ``KAPPA_d = 6 d beta_d + (4 d^1.5 + 5) U``.
* Irrelevant coordinates: every sample has ``x~_k = 0``, so ``g~_k = 0``
  exactly in all modes (population ``sigma_k^2 e~_k``, a batch's or a training
  set's ``X~^T X~ e~`` has a zero row ``k``), for any batch; one step moves
  ``e~_k`` only through ``(C'C'^T - I) lr g~`` and rounding:
  ``<= KAPPA_d (||e(t)|| + ||e(t+1)||)`` (``lr ||g|| = ||e(t+1) - e(t)||``
  up to rounding), summed over the steps.

Compiles. The core runs every problem padded to ``D_PAD = 6`` (spectrum,
target and start zero past ``d``, ``C_d`` in the top-left block of a zero
``D_PAD x D_PAD`` basis), as in ``theory/test_general_d.py``: the padding
stays exactly 0 (asserted) and adds exact zeros to every product, so the run
is the ``d``-dimensional one, with the same ``d``-term rounding bounds (which
hold in any summation order); one compile per gradient mode serves every
``d``. Online batches and training sets are drawn ``(n, D_PAD)``; their
first ``d`` columns are the ``d``-dimensional samples.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import optax

from sims.linear.oracles import GRADIENTS
from theory import dynamics as dyn
from theory import gd
from theory.signal import make_problem, sample_freq
from theory.testing import pad_problem, padded_basis

U = 2.0**-53
DIMS = (3, 6)
T = 200  # iteration length for the loop comparisons (one compile per d)

gd_error_at = jax.jit(lambda problem, lr, t: gd.gd_error(problem, lr)(t))


def kappa(d: int) -> float:
    """Per-step rounding of the core relative to ``M`` (module docstring)."""
    beta = (2 * math.pi * d + 4) * U
    return 6 * d * beta + (4 * d**1.5 + 5) * U


@partial(jax.jit, static_argnames="steps")
def freq_loop(e0, spectrum, lr, steps=T):
    """``e~(0..steps)`` of the plain loop ``e~ <- e~ - lr sigma^2 e~``."""
    s2 = jnp.square(spectrum)

    def body(e, _):
        e = e - lr * s2 * e
        return e, e

    return jnp.concatenate([e0[None], jax.lax.scan(body, e0, None, length=steps)[1]])


def coord(lo=-5.0, hi=5.0, floor=0.0):
    """A coordinate in ``[lo, hi]``: 0 or of magnitude at least ``floor``."""
    x = st.floats(lo, hi, allow_nan=False, allow_subnormal=False)
    return x.filter(lambda v: v == 0 or abs(v) >= floor) if floor else x


@st.composite
def problems(draw, dims=DIMS, x_range=(0.01, 1.99), floor=0.0):
    """A model with at least one relevant and one irrelevant frequency, and an
    lr given by ``x = lr sigma_max^2`` in ``x_range`` (default: stable);
    coordinates are 0 or of magnitude at least ``floor``."""
    d = draw(st.sampled_from(dims))
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.05, 2.0)), min_size=d, max_size=d))
    k_rel = draw(st.integers(0, d - 1))
    sigma[k_rel] = draw(st.floats(0.05, 2.0))
    sigma[(k_rel + draw(st.integers(1, d - 1))) % d] = 0.0
    w_star = draw(st.lists(coord(floor=floor), min_size=d, max_size=d))
    w0 = draw(st.lists(coord(floor=floor), min_size=d, max_size=d))
    lr = draw(st.floats(*x_range)) / max(sigma) ** 2
    return make_problem(sigma, w_star, w0), lr


BATCH = 8  # small batches and training sets: noisy gradients


def gd_gradient(problem, mode, key):
    """The :data:`theory.dynamics.Gradient` of ``mode``; ``key`` draws the
    batches (online) or the training set of ``BATCH`` samples (fixed)."""
    if mode == "population":
        return dyn.population_gradient(problem.spectrum)
    if mode == "online":
        return dyn.online_gradient(problem.spectrum, BATCH, key)
    return dyn.fixed_gradient(sample_freq(key, problem.spectrum, BATCH))


@partial(jax.jit, static_argnames=("steps", "mode"))
def core_gd(problem, c, lr, key, steps, mode="population"):
    """``(steps + 1, d)`` ``e~ = C e`` of the core's GD at every step with
    the basis ``c``; the problem, basis, ``lr`` and ``key`` are traced (one
    compile per size, mode and ``steps``)."""
    opt = optax.sgd(lr)
    step = dyn.optax_step(opt, gd_gradient(problem, mode, key), c)
    return dyn.run(step, dyn.init_state(opt, c.T @ problem.e0_freq), np.arange(steps + 1), dyn.save_e_freq(c))[1]


SEEDS = 4
STEPS = 100  # core steps per run
D_PAD = max(DIMS)  # every core run is padded to this size (module docstring)
core_gd_seeds = jax.vmap(core_gd, in_axes=(None, None, None, 0, None, None))


def run_core(problem, lr, keys, mode):
    """``(seeds, STEPS + 1, d)`` ``e~`` of the core's GD on ``problem``, one
    run per key, run padded to ``D_PAD`` (padded in NumPy, which compiles
    nothing); the padding stays exactly 0."""
    d = problem.dim
    e = np.asarray(core_gd_seeds(pad_problem(problem, D_PAD), padded_basis(d, D_PAD), lr, keys, STEPS, mode))
    assert np.all(e[..., d:] == 0)
    return e[..., :d]


def iterate_norm_bound(e_freq):
    """A bound on ``||e(t)||`` from the recorded ``e~`` (module docstring), for
    each ``t``; the norm is scaled by ``max |e~_k|`` so that squares of tiny
    coordinates do not underflow."""
    d = e_freq.shape[-1]
    scale = np.max(np.abs(e_freq), axis=-1, keepdims=True)
    norm = scale[..., 0] * np.linalg.norm(e_freq / np.where(scale > 0, scale, 1.0), axis=-1)
    return (1 + 4 * d * (2 * math.pi * d + 4) * U) * (1 + d * U) * norm


@settings(max_examples=30, deadline=None)
@given(problems())
def test_closed_form_equals_frequency_loop(problem):
    problem, lr = problem
    t = jnp.arange(T + 1)
    closed = np.asarray(gd_error_at(problem, lr, t))
    loop = np.asarray(freq_loop(problem.e0_freq, problem.spectrum, lr))
    tol = 16 * (np.arange(T + 1)[:, None] + 1) * U * np.abs(np.asarray(problem.e0_freq))
    assert np.all(np.abs(closed - loop) <= tol)
    # Irrelevant coordinates: (1 - 0)^t = 1 and e - 0 = e exactly.
    irr = np.asarray(problem.spectrum) == 0
    assert np.all(closed[:, irr] == np.asarray(problem.e0_freq)[irr])
    assert np.all(loop[:, irr] == np.asarray(problem.e0_freq)[irr])


@settings(max_examples=30, deadline=None)
@given(problems(floor=1e-50))
def test_closed_form_equals_core(problem):
    # Coordinates are 0 or at least 1e-50 in magnitude: XLA on CPU flushes subnormals
    # to zero, an absolute error up to 2^-1022 per operation that the relative model
    # (units of U) does not cover; with a nonzero coordinate of at least 1e-50 the
    # bound below is at least KAPPA_d 1e-50 > 1e-67, far above 100 such flushes
    # (~2.2e-306); a zero start stays exactly zero.
    # The core as the irrelevant-coordinate tests run it (SEEDS keys, unused by the
    # population gradient: one program); run 0.
    problem, lr = problem
    steps = STEPS
    e_core = run_core(problem, lr, jax.random.split(jax.random.key(0), SEEDS), "population")[0]
    closed = np.asarray(gd_error_at(problem, lr, jnp.arange(T + 1)))[: steps + 1]
    m = float(np.max(iterate_norm_bound(e_core)))
    t = np.arange(steps + 1)[:, None]
    tol = (t + 1) * kappa(problem.dim) * m + 16 * (t + 1) * U * np.abs(np.asarray(problem.e0_freq))
    assert np.all(np.abs(e_core - closed) <= tol)


def check_irrelevant_constant(problem, lr, mode, base_seed):
    """Irrelevant ``e~_k`` within the summed per-step bounds (module docstring)
    on ``SEEDS`` runs; returns ``(SEEDS, STEPS + 1, d)`` ``e~``."""
    keys = jax.random.split(jax.random.key(base_seed), SEEDS)
    e = run_core(problem, lr, keys, mode)
    assert np.all(np.isfinite(e))
    irr = np.asarray(problem.spectrum) == 0
    drift = np.abs(e[..., irr] - np.asarray(problem.e0_freq)[irr])  # (seeds, t, #irrelevant)
    norms = iterate_norm_bound(e)  # (seeds, t)
    # Bound at t: the transforms (t = 0 term) plus the sum of per-step bounds.
    per_step = kappa(problem.dim) * (norms[:, :-1] + norms[:, 1:])
    bound = kappa(problem.dim) * norms[:, :1] + np.concatenate(
        [np.zeros((e.shape[0], 1)), np.cumsum(per_step, axis=1)], axis=1
    )
    assert np.all(drift <= bound[..., None])
    return e


# A fixed model on which small batches visibly move the relevant coordinates.
MODE_MODEL = make_problem((1.0, 0.0, 0.5), (5.0, -2.0, 3.0), (0.3, 1.5, -0.7))
MODE_LR = 0.3


@pytest.mark.parametrize("mode", GRADIENTS)
@settings(max_examples=25, deadline=None)
@given(base_seed=st.integers(0, 2**31 - 1))
def test_irrelevant_coordinate_constant_in_every_mode(mode, base_seed):
    e = check_irrelevant_constant(MODE_MODEL, MODE_LR, mode, base_seed)
    rel = np.asarray(MODE_MODEL.spectrum) > 0
    if mode != "population":  # the relevant coordinates did move, noisily: seeds differ
        assert np.all(np.abs(e[:, -1, rel] - np.asarray(MODE_MODEL.e0_freq)[rel]) > 0.1)
        assert np.all(np.abs(e[1:, -1, rel] - e[:1, -1, rel]) > 0)


@pytest.mark.parametrize("mode", GRADIENTS)
@settings(max_examples=25, deadline=None)
@given(problems(x_range=(0.01, 0.5), floor=1e-50), st.integers(0, 2**31 - 1))
def test_irrelevant_coordinate_constant_any_problem(mode, problem, base_seed):
    """Drawn problems, any batches. The rounding model (relative errors ``U``)
    needs no underflow: coordinates are 0 or at least ``1e-50`` in magnitude,
    so over 100 steps no product gets near ``2^-1022``. ``lr sigma_max^2 <=
    1/2`` keeps the noisy runs finite (online, ``M = X~^T X~ / n``:
    ``E (I - lr M)^2 = I - 2 lr S + lr^2 (S^2 (1 + 1/n) + tr(S) S / n)
    <= I - lr S (2 - 0.57 - 0.38)`` for ``d <= 6``, ``n = 8``; fixed: growth
    at most ``|1 - lr lambda_max(H~_S)|^100``)."""
    problem, lr = problem
    check_irrelevant_constant(problem, lr, mode, base_seed)


@jax.jit
def freq_loop_final(e0, spectrum, lr, steps):
    """``e~(steps)`` of the frequency loop; ``steps`` is traced (one compile per ``d``)."""
    s2 = jnp.square(spectrum)
    return jax.lax.fori_loop(0, steps, lambda _, e: e - lr * s2 * e, e0)


#: The limits and the stability test, one compiled program each per ``d``.
limits = jax.jit(lambda problem: (gd.gd_limit(problem), gd.gd_limit_weight_norm_sq(problem)))
stability = jax.jit(lambda spectrum, lr: (gd.gd_is_stable(spectrum, lr), gd.gd_max_stable_lr(spectrum)))


@st.composite
def contracting_problems(draw):
    """Every relevant ``|1 - lr sigma_k^2| <= 0.95``: relevant sigma in [0.5, 1]
    and ``lr sigma_max^2`` in [0.2, 1.95], so ``lr sigma_k^2 >= 0.05``; the
    target vanishes on irrelevant frequencies (as in the paper)."""
    d = draw(st.sampled_from(DIMS))
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.5, 1.0)), min_size=d, max_size=d))
    k_rel = draw(st.integers(0, d - 1))
    sigma[k_rel] = draw(st.floats(0.5, 1.0))
    sigma[(k_rel + draw(st.integers(1, d - 1))) % d] = 0.0
    w_star = [0.0 if s == 0 else draw(coord()) for s in sigma]
    w0 = draw(st.lists(coord(), min_size=d, max_size=d))
    lr = draw(st.floats(0.2, 1.95)) / max(sigma) ** 2
    return make_problem(sigma, w_star, w0), lr


@settings(max_examples=30, deadline=None)
@given(contracting_problems())
def test_limits(problem):
    problem, lr = problem
    steps = 2000
    w_star, e0 = np.asarray(problem.w_star_freq), np.asarray(problem.e0_freq)
    w_final = w_star + np.asarray(freq_loop_final(problem.e0_freq, problem.spectrum, lr, steps))
    limit, norm_sq = limits(problem)
    limit, norm_sq = np.asarray(limit), float(norm_sq)
    # |w(T) - limit| <= 0.95^T |e~(0)| (not yet converged) + 7 T U |e~(0)| (loop rounding)
    # + U |w~*| (adding w~*). Irrelevant coordinates: limit = w~(0), reached exactly.
    tol = (0.95**steps + 7 * steps * U) * np.abs(e0) + U * np.abs(w_star)
    assert np.all(np.abs(w_final - limit) <= tol)
    irr = np.asarray(problem.spectrum) == 0
    np.testing.assert_array_equal(limit[irr], np.asarray(problem.w0_freq)[irr])
    np.testing.assert_array_equal(limit[~irr], w_star[~irr])
    # ||w(inf)||^2 = ||w~*||^2 + sum_irrelevant e~_k(0)^2 here (w~* = 0 there); sums of
    # d non-negative squares agree to 2 (d + 1) U relative.
    expected = float(np.sum(w_star**2) + np.sum(e0[irr] ** 2))
    assert abs(norm_sq - expected) <= 2 * (problem.dim + 1) * U * expected
    # and the iteration's squared norm tends to it: |a^2 - b^2| <= (a + b) |a - b|.
    dist = float(np.linalg.norm(tol)) + 2 * (problem.dim + 1) * U * float(np.linalg.norm(limit))
    assert abs(float(np.sum(w_final**2)) - norm_sq) <= (2 * math.sqrt(norm_sq) + dist) * dist + 4 * (
        problem.dim + 1
    ) * U * norm_sq


@settings(max_examples=40, deadline=None)
@given(problems(x_range=(-1.0, 4.0)), st.data())
def test_is_stable_iff_the_iteration_decays(problem, data):
    problem, lr = problem
    spectrum = np.asarray(problem.spectrum)
    x = lr * float(np.max(spectrum)) ** 2
    # Within 0.01 of the thresholds x = 0 and x = 2 the top factor |1 - x| is within
    # 0.01 of 1 and T steps cannot tell growth from decay; outside, |1 - x|^T is
    # <= 0.99^200 = 0.13 or >= 1.01^200 = 7.3.
    assume(abs(x) >= 0.01 and abs(x - 2) >= 0.01)
    d = problem.dim
    e0 = np.asarray(data.draw(st.lists(st.floats(0.1, 5.0), min_size=d, max_size=d)))
    e_t = np.asarray(freq_loop_final(jnp.asarray(e0), problem.spectrum, lr, T))
    rel = spectrum > 0
    # Decay: every relevant coordinate shrinks (slowest factor 1 - lr sigma_min^2,
    # >= 6e-6 per step here, so the shrinkage is far above rounding).
    decays = bool(np.all(np.where(rel, np.abs(e_t) < np.abs(e0), True)))
    stable, max_lr = stability(problem.spectrum, lr)
    assert bool(stable) == decays
    assert decays == (0 < lr < float(max_lr))
