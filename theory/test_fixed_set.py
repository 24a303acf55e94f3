"""THEORY.md section 8.4: a fixed training set is a population problem.

GD on a fixed set of ``n`` samples is GD on the quadratic with
``H~_S = X~^T X~ / n``, so its exact discrete trajectory is
``e~(t) = (I - lr H~_S)^t e~(0)`` (``theory.gd.gd_error_quadratic``). It is
compared with the reference iteration ``theory.testing.reference_run`` with
``optax.sgd(lr)`` on ``empirical_quadratic(X~, e~(0))``, over drawn sets
including ``n < d`` (a singular ``H~_S`` even on the relevant band) and
irrelevant frequencies (``x~_k = 0`` for every sample).

Tolerance (``U = 2^-53``; ``0 < lr lambda_max(H~_S) <= 1.95``, so
``||I - lr H~_S||_2 <= 1`` and errors are never amplified; every bound is
relative to ``||e~(0)||``, which bounds ``||e~(t)||``):

* Reference iteration (``theory.dynamics.optax_step``, the error ``e`` in
  input coordinates), per step: the product ``C' e`` with the DCT matrix
  ``C'`` (entries within ``beta_d = (2 pi d + 4) U`` of exact, so
  ``C' C'^T`` is within ``3 d beta_d`` of ``I``), the matrix-vector product
  ``H~ e~``, the product with ``C'^T``, the scaling by ``lr`` and the
  addition; the record ``C' e`` adds one more product with ``C'``. With
  ``lr ||H~|| <= 2`` this is the structure bounded in ``theory/test_gd.py``:
  at most ``KAPPA_d = 6 d beta_d + (4 d^1.5 + 5) U`` per step (the record's
  product is within one step's share), so ``(t + 1) KAPPA_d`` after ``t``
  steps.
* Closed form: ``eigh`` is backward stable, ``||E|| <= p_d U ||H~||`` and
  ``Q`` orthonormal within ``p_d U``, with ``p_d = 10 d^2`` (a generous
  LAPACK-style constant). Then ``||(I - lr(H~ + E))^t - (I - lr H~)^t||
  <= t lr ||E|| <= 2 t p_d U``; ``1 - lr lambda`` and ``pow`` add
  ``<= 5 t U + 3 U`` (as in ``theory/test_gd.py``); the two products with
  ``Q`` and the non-orthonormality of ``Q`` add ``<= (4 p_d + 3 d) U``.

Per coordinate, ``|closed - reference| <= ((t + 1) KAPPA_d +
(2 t p_d + 5 t + 3 + 4 p_d + 3 d) U) ||e~(0)||``. The irrelevant band: the
closed form returns ``e~_k(0)`` exactly; the reference iteration's
``g~_k = 0`` exactly, so ``e~_k`` moves by the non-orthonormality of ``C'``
only (``C'_k C'^T g~``, within ``3 d beta_d |g~|`` per step), within the same
``(t + 1) KAPPA_d ||e~(0)||``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import gd
from theory.quadratic import empirical_quadratic
from theory.testing import reference_run

U = 2.0**-53
STEPS = np.arange(0, 301, 20)
DIMS = (3, 5)


def kappa(d: int) -> float:
    beta = (2 * math.pi * d + 4) * U
    return 6 * d * beta + (4 * d**1.5 + 5) * U


def tolerance(d: int, t: np.ndarray) -> np.ndarray:
    p = 10 * d**2
    return (t + 1) * kappa(d) + (2 * t * p + 5 * t + 3 + 4 * p + 3 * d) * U


reference_gd = jax.jit(lambda quad, lr: reference_run(optax.sgd(lr), quad, STEPS))
closed_gd = jax.jit(lambda quad, lr, t: gd.gd_error_quadratic(quad, lr)(t))


@st.composite
def fixed_sets(draw):
    """A training set ``X~`` ``(n, d)`` with at least one relevant and one
    irrelevant frequency, ``n`` from 1 to ``2 d`` (``n < d`` included), a start
    ``e~(0)`` and ``lr = x / lambda_max(H~_S)``, ``x`` in ``[0.05, 1.95]``."""
    d = draw(st.sampled_from(DIMS))
    sigma = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.1, 2.0)), min_size=d, max_size=d))
    k = draw(st.integers(0, d - 1))
    sigma[k] = draw(st.floats(0.1, 2.0))
    sigma[(k + draw(st.integers(1, d - 1))) % d] = 0.0
    n = draw(st.integers(1, 2 * d))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, d)) * np.asarray(sigma)
    e0 = np.asarray(draw(st.lists(st.floats(-5.0, 5.0), min_size=d, max_size=d)))
    quad = empirical_quadratic(jnp.asarray(x), jnp.asarray(e0))
    lam_max = float(np.linalg.eigvalsh(np.asarray(quad.hessian_freq))[-1])
    lr = draw(st.floats(0.05, 1.95)) / lam_max
    return quad, lr, np.asarray(sigma) == 0


@settings(max_examples=30, deadline=None)
@given(fixed_sets())
def test_gd_closed_form_equals_fixed_set_iteration(problem):
    """``(I - lr H~_S)^t e~(0)`` equals GD on the fixed set to the rounding
    bound of the module docstring; the irrelevant band never moves."""
    quad, lr, irrelevant = problem
    d = quad.dim
    ref = np.asarray(reference_gd(quad, lr))
    closed = np.asarray(closed_gd(quad, lr, jnp.asarray(STEPS, jnp.float64)))
    e0 = np.asarray(quad.e0_freq)
    big = np.max(np.abs(e0))
    scale = big * np.linalg.norm(e0 / big) if big > 0 else 0.0  # ||e~(0)|| without underflow in the squares
    # Below 2^-1022 rounding is absolute, at most 2^-1075 per operation: about 8 d^2 operations
    # per step (three d x d products, the scaling and the addition), so ``(t + 1) 8 d^2 2^-1075``.
    tiny = (STEPS + 1)[:, None] * 8 * d**2 * 2.0**-1075
    tol = tolerance(d, STEPS)[:, None] * scale + tiny
    assert np.all(np.abs(closed - ref) <= tol), np.max(np.abs(closed - ref) / tol)
    # Irrelevant band: exactly e~_k(0) in the closed form, rounding only in the iteration.
    np.testing.assert_array_equal(closed[:, irrelevant], np.broadcast_to(e0[irrelevant], closed[:, irrelevant].shape))
    assert np.all(np.abs(ref[:, irrelevant] - e0[irrelevant]) <= ((STEPS + 1) * kappa(d) * scale)[:, None] + tiny)
