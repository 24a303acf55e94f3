"""Claim 1 (THEORY.md section 1): ``C`` is the orthonormal DCT-II matrix.

``dct_basis(d)`` is orthonormal and equals ``scipy.fft.dct(norm="ortho")``;
``to_freq`` and ``to_input`` are ``x -> C x`` and its inverse ``C^T``, so
inner products and norms are preserved; for ``d = 3`` the rows are
``(1,1,1)/sqrt3``, ``(1,0,-1)/sqrt2`` and ``(1,-2,1)/sqrt6``.

Tolerance. Higham, *Accuracy and Stability of Numerical Algorithms* (2002),
Thm 24.2: a radix-2 FFT of length ``m`` has relative l2 error at most
``log2(m) eta / (1 - log2(m) eta)`` with ``eta = mu + gamma_4 (sqrt2 + mu)
<= 6 U`` per stage (``mu ~ U`` the twiddle-factor error). A DCT-II of length
``d`` is an FFT of length ``m <= 4d`` with pre- and post-twiddles (``<= 4 U``
more), so ``||fl(C x) - C x||_2 <= TAU(d) ||x||_2`` with
``TAU(d) = 16 U (1 + log2 d) >= 6 U (2 + log2 d) + 4 U``. Dot products of
length ``d`` add ``gamma_d ~ d U`` (Higham Lemma 3.1).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from theory import signal

# Jitted once per shape (eager dispatch would compile each primitive separately).
dct_basis = jax.jit(signal.dct_basis, static_argnums=0)
to_freq = jax.jit(signal.to_freq)
to_input = jax.jit(signal.to_input)

U = 2.0**-53  # float64 unit roundoff
DIMS = (1, 2, 3, 4, 5, 8, 16)  # few shapes: one jit compile each


def tau(d: int) -> float:
    """Relative l2 error bound of one DCT of length ``d`` (module docstring)."""
    return 16 * U * (1 + math.log2(d))


def vectors(d: int, n: int = 2):
    # Magnitudes 0 or in [1e-6, 1e3]: no underflow, so the relative rounding
    # model fl(a op b) = (a op b)(1 + delta) holds for every product formed.
    mag = st.one_of(st.just(0.0), st.floats(1e-6, 1e3))
    return arrays(np.float64, (n, d), elements=st.builds(lambda m, s: s * m, mag, st.sampled_from((-1.0, 1.0))))


@pytest.mark.parametrize("d", DIMS)
def test_basis_is_orthonormal(d):
    # C = C_exact + E with ||E e_j||_2 <= tau, so |(C C^T - I)_ij| <= 2 tau + tau^2
    # plus gamma_d for the product (|C| rows have unit l2 norm).
    c = np.asarray(dct_basis(d))
    tol = 2 * tau(d) + tau(d) ** 2 + 2 * d * U
    np.testing.assert_allclose(c @ c.T, np.eye(d), rtol=0, atol=tol)
    np.testing.assert_allclose(c.T @ c, np.eye(d), rtol=0, atol=tol)


@pytest.mark.parametrize("d", DIMS)
def test_basis_equals_scipy_dct(d):
    # Both are FFT-based DCTs of the unit vectors: each within tau of exact.
    ours = np.asarray(dct_basis(d))
    ref = scipy.fft.dct(np.eye(d), type=2, norm="ortho", axis=0)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2 * tau(d))


def test_d3_rows():
    # Exact rows rounded once per entry (sqrt and division: 2 U) plus tau(3).
    c = np.asarray(dct_basis(3))
    rows = np.array([[1, 1, 1] / np.sqrt(3), [1, 0, -1] / np.sqrt(2), [1, -2, 1] / np.sqrt(6)])
    np.testing.assert_allclose(c, rows, rtol=0, atol=tau(3) + 2 * U)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), d=st.sampled_from(DIMS))
def test_to_freq_to_input_are_c_and_its_inverse(data, d):
    x = data.draw(vectors(d, 1))[0]
    c = np.asarray(dct_basis(d))
    scale = np.linalg.norm(x)
    xf = np.asarray(to_freq(jnp.asarray(x)))
    # to_freq vs the matrix: tau for each of the two DCTs, gamma_d for the matvec.
    np.testing.assert_allclose(xf, c @ x, rtol=0, atol=(2 * tau(d) + 2 * d * U) * scale)
    # C^T C = I: two transforms, each within tau (1 + tau) of exact.
    back = np.asarray(to_input(jnp.asarray(xf)))
    np.testing.assert_allclose(back, x, rtol=0, atol=3 * tau(d) * scale)
    back2 = np.asarray(to_freq(to_input(jnp.asarray(x))))
    np.testing.assert_allclose(back2, x, rtol=0, atol=3 * tau(d) * scale)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), d=st.sampled_from(DIMS))
def test_inner_products_and_norms_preserved(data, d):
    x, y = data.draw(vectors(d, 2))
    xf, yf = (np.asarray(to_freq(jnp.asarray(v))) for v in (x, y))
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    # <Cx, Cy> - <x, y>: (1+tau)^2 - 1 <= 3 tau from the transforms, 2 gamma_d from the dots.
    tol = (3 * tau(d) + 4 * d * U) * nx * ny
    assert abs(np.dot(xf, yf) - np.dot(x, y)) <= tol
    assert abs(np.linalg.norm(xf) - nx) <= (tau(d) + 2 * d * U) * nx
    # ||w||_2 = ||w~||_2 through to_input as well (used by the risks).
    assert abs(np.linalg.norm(np.asarray(to_input(jnp.asarray(x)))) - nx) <= (tau(d) + 2 * d * U) * nx


def test_batched_along_last_axis():
    # to_freq acts on the last axis of a batch: each row within tau of C x, plus
    # gamma_3 for the reference matvec.
    x = jax.random.normal(jax.random.key(0), (4, 5, 3))
    c = np.asarray(dct_basis(3))
    scale = float(jnp.max(jnp.linalg.norm(x, axis=-1)))
    np.testing.assert_allclose(np.asarray(to_freq(x)), np.asarray(x) @ c.T, rtol=0, atol=(2 * tau(3) + 6 * U) * scale)
