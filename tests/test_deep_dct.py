"""The digits data and their 2-D DCT: exact, invertible, energy-preserving.

Everything runs in float32 (arrays are made float32 explicitly, so the checks
hold whether or not another test module enabled x64); ``U = 2^-24`` is the
float32 unit roundoff.

Tolerance. Higham, *Accuracy and Stability of Numerical Algorithms* (2002),
Thm 24.2 (the bound used in ``theory/test_dct.py``): one orthonormal DCT of
length 8 has ``||fl(C v) - C v||_2 <= TAU ||v||_2`` with
``TAU = 16 U (1 + log2 8) = 64 U``. ``dct2`` applies ``C`` to the 8 rows,
then to the 8 columns; errors of the rows add in quadrature to a Frobenius
error ``<= TAU ||X||_F``, and the second pass sees the first pass's output
(norm ``<= (1 + TAU) ||X||_F``), so ``k`` passes in a chain are within
``RHO(k) = (1 + TAU)^k - 1`` of exact, relative to ``||X||_F``. Masking is
exact (it multiplies by 0 or 1).
"""

import math

import jax
import numpy as np
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sims.deep import digits

U = 2.0**-24
TAU = 16 * U * (1 + math.log2(digits.SIDE))
N = 4  # images per hypothesis example: one shape, one compile per function

dct2 = jax.jit(digits.dct2)
idct2 = jax.jit(digits.idct2)
project = jax.jit(digits.project)
spectral_energy = jax.jit(digits.spectral_energy)


def rho(passes: int) -> float:
    """Relative Frobenius error bound of ``passes`` chained 1-D DCT passes."""
    return (1 + TAU) ** passes - 1


def images():
    # Magnitudes 0 or in [2^-10, 2^10]: no underflow, so fl(a op b) = (a op b)(1 + d), |d| <= U.
    mag = st.one_of(st.just(0.0), st.floats(2.0**-10, 2.0**10, width=32))
    return arrays(np.float32, (N, digits.DIM),
                  elements=st.builds(lambda m, s: np.float32(s * m), mag, st.sampled_from((-1.0, 1.0))))


def masks():
    return arrays(np.bool_, (digits.DIM,))


def norms(a):
    return np.linalg.norm(np.asarray(a, np.float64), axis=-1)


@settings(max_examples=25, deadline=None)
@given(x=images())
def test_dct2_is_scipy_dctn_ortho(x):
    # Ours: two passes (rho(2)); scipy in float64 on the same input: negligible (2^-53 scale).
    ours = np.asarray(dct2(x), np.float64).reshape(N, 8, 8)
    ref = scipy.fft.dctn(x.astype(np.float64).reshape(N, 8, 8), type=2, norm="ortho", axes=(1, 2))
    err = np.linalg.norm((ours - ref).reshape(N, -1), axis=1)
    assert np.all(err <= rho(2) * norms(x) + 1e-12 * norms(x))


@settings(max_examples=25, deadline=None)
@given(x=images())
def test_round_trip_and_parseval(x):
    back = idct2(dct2(x))
    # Four passes in a chain.
    assert np.all(norms(np.asarray(back, np.float64) - x) <= rho(4) * norms(x))
    # | ||fl(C X C^T)|| - ||X|| | <= ||fl(...) - C X C^T|| (triangle inequality) <= rho(2) ||X||.
    assert np.all(np.abs(norms(dct2(x)) - norms(x)) <= rho(2) * norms(x))


@settings(max_examples=25, deadline=None)
@given(x=images(), mask=masks())
def test_projection_is_idempotent_and_complementary(x, mask):
    # fl(P x) = P x + e with ||e|| <= rho(4) ||x||; then fl(P y) - y = P e + e' - e for y = fl(P x),
    # so ||fl(P y) - y|| <= rho(4) (2 ||x|| + ||y||) <= rho(4) (3 + rho(4)) ||x||.
    p = project(x, mask)
    pp = project(p, mask)
    r = rho(4)
    assert np.all(norms(np.asarray(pp, np.float64) - np.asarray(p, np.float64)) <= r * (3 + r) * norms(x))
    # P x + (I - P) x = x: two projections, rho(4) each, plus one rounded addition (U ||.||, bounded by 2U ||x||).
    q = project(x, ~mask)
    total = np.asarray(p, np.float64) + np.asarray(q, np.float64)
    assert np.all(norms(total - x) <= (2 * r + 2 * U) * norms(x))
    # Orthogonality: <P x, (I - P) x> = 0 up to the errors of both, |<a + e, b + f>| <= ||a|| ||f|| + ||e|| ||b|| + ...
    inner = np.abs(np.sum(np.asarray(p, np.float64) * np.asarray(q, np.float64), axis=1))
    assert np.all(inner <= (2 * r + r * r) * norms(x) ** 2)


@settings(max_examples=25, deadline=None)
@given(x=images(), mask=masks())
def test_projection_keeps_its_span_and_removes_exactly_the_masked_coefficients(x, mask):
    # dct2(P x) = mask * dct2(x): left side six passes (rho(6)), right side two (rho(2)).
    lhs = np.asarray(dct2(project(x, mask)), np.float64)
    rhs = np.where(mask, np.asarray(dct2(x), np.float64), 0.0)
    assert np.all(norms(lhs - rhs) <= (rho(6) + rho(2)) * norms(x))
    # An image already in the span is left alone: P y = y for y = fl(P x), as in the idempotence bound.
    y = np.asarray(project(x, mask))
    assert np.all(norms(np.asarray(project(y, mask), np.float64) - y) <= rho(4) * (3 + rho(4)) * norms(x))


@settings(max_examples=25, deadline=None)
@given(x=images(), mask=masks())
def test_energy_is_parseval_and_projection_removes_it_exactly(x, mask):
    # sum_k energy_k = mean ||x||^2 (Parseval): coefficients within rho(2) ||x|| in l2, so the sum of
    # squares is within ((1 + rho(2))^2 - 1) ||x||^2 per image; the float32 mean over N squares adds
    # (N + 1) U of the total.
    e = np.asarray(spectral_energy(x), np.float64)
    total = np.mean(norms(x) ** 2)
    assert abs(e.sum() - total) <= (((1 + rho(2)) ** 2 - 1) + (N + 1) * U) * total
    # Energy of the projected images: the kept energies, and (up to rounding) none elsewhere.
    ep = np.asarray(spectral_energy(project(x, mask)), np.float64)
    err = ((1 + rho(6) + rho(2)) ** 2 - 1 + (N + 2) * U) * total  # coefficient errors as above, squared, plus the mean
    assert np.all(np.abs(ep - np.where(mask, e, 0.0)) <= err)


@settings(max_examples=50, deadline=None)
@given(energy=arrays(np.float64, (digits.DIM,), elements=st.one_of(st.just(0.0), st.floats(1e-6, 10.0))),
       keep=st.floats(0.01, 1.0))
def test_energy_mask_is_the_fewest_frequencies_reaching_the_fraction(energy, keep):
    if energy.sum() == 0:
        energy = energy + 1.0
    mask = np.asarray(digits.energy_mask(energy, keep))
    kept, total = energy[mask], energy.sum()
    target = keep * total * (1 - 1e-12)  # the function's target (guarded against rounding at keep = 1)
    slack = 2 * 64 * 2.0**-53 * total  # two float64 sums of <= 64 non-negative terms in different orders
    assert kept.sum() >= target - slack
    # Minimal: every kept frequency has at least the energy of every removed one, and dropping the
    # weakest kept one falls short of the target.
    if (~mask).any():
        assert kept.min() >= energy[~mask].max()
    assert kept.sum() - kept.min() < target + slack


def test_bands_and_block():
    bands = np.asarray(digits.band_masks(3))
    assert bands.sum(axis=1).tolist() == [22, 21, 21]
    assert np.all(bands.sum(axis=0) == 1)  # disjoint and covering
    k, l = digits.frequency_index()
    assert bands[0, 0] and bands[2, 63]  # (0, 0) is low, (7, 7) is high
    assert max((k + l)[bands[0]]) <= min((k + l)[bands[2]])  # bands ordered by k + l
    block = np.asarray(digits.block_mask(3))
    assert block.sum() == 9 and np.all((k < 3) & (l < 3) == block)


def test_split_is_a_fixed_stratified_partition():
    from sklearn.datasets import load_digits

    a, b = digits.load_split(0), digits.load_split(0)
    assert [s.x.shape[0] for s in a] == [1079, 359, 359]
    for s, t in zip(a, b):
        assert np.array_equal(np.asarray(s.x), np.asarray(t.x)) and np.array_equal(np.asarray(s.y), np.asarray(t.y))
    # The three parts together are exactly the data set (as a multiset of (image, label) rows).
    ref = load_digits()
    ours = np.concatenate([np.column_stack([np.asarray(s.x, np.float64) * 16, np.asarray(s.y)]) for s in a])
    theirs = np.column_stack([ref.data, ref.target])
    assert np.array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])
    for s in a:  # stratified: each class within one image of its share
        counts = np.bincount(np.asarray(s.y), minlength=10)
        share = np.bincount(ref.target, minlength=10) * s.x.shape[0] / 1797
        assert np.all(np.abs(counts - share) <= 1.5)
    c = digits.load_split(1)
    assert not np.array_equal(np.asarray(a.test.y), np.asarray(c.test.y))
