"""Spectral norms by power iteration, the networks' linear maps, and the Lipschitz bounds.

Float32 throughout (parameters are made float32, so this holds with or
without x64); ``U = 2^-24``, ``gamma(n) = n U / (1 - n U)`` (Higham, Lemma 3.1).

Power iteration, derived. ``v_k`` is ``(A^T A)^k v_0`` normalised and the
estimate is ``s = ||A v_k||``. With ``A = sum_i s_i u_i w_i^T`` and
``c_i = <w_i, v_0>`` (``w_i`` a full orthonormal basis, ``s_i = 0`` past the
rank), ``s^2 = sum_i c_i^2 s_i^(4k+2) / sum_i c_i^2 s_i^(4k)``, so

    0 <= 1 - s / s_1 <= 1 - s^2 / s_1^2 <= B_k = sum_{i>1} c_i^2 (s_i / s_1)^(4k) / c_1^2.

Rounding: the final ``||A v||`` of a unit ``v`` is within ``gamma(n) ||A||_F
<= gamma(n) sqrt(r) s_1`` (``n`` the inner dimension, ``r`` the rank), and
the iteration only moves ``v`` (any unit ``v`` gives at most ``s_1``), so
``s`` lies in ``[s_1 (1 - B_k) - R, s_1 + R]`` with ``R = 2 gamma(n) sqrt(r) s_1``.
The float32 SVD in ``jnp.linalg.norm(W, 2)`` is backward stable: within
``max(m, n) U s_1`` of the float64 singular value (LAPACK's bound, modest
constant taken as 4).
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.deep import networks, robustness
from sims.deep.digits import DIM
from sims.deep.networks import Architecture, Dense

U = 2.0**-24


def gamma(n: int) -> float:
    return n * U / (1 - n * U)


def power_bound(matrix: np.ndarray, v0: np.ndarray, iters: int) -> float:
    """``B_k`` of the module docstring for ``A = matrix`` (``out x in``) and start ``v0``."""
    _, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=True)
    c = vt @ v0.astype(np.float64)
    s_full = np.zeros(vt.shape[0])
    s_full[: s.size] = s
    return float(np.sum(c[1:] ** 2 * (s_full[1:] / s_full[0]) ** (4 * iters)) / c[0] ** 2)


def check_power_iteration(matrix: np.ndarray, estimate: float, v0: np.ndarray, iters: int) -> None:
    s = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    r = int(np.sum(s > 0))
    round_off = 2 * gamma(matrix.shape[1]) * math.sqrt(r) * s[0]
    bound = power_bound(matrix, v0, iters)
    assert s[0] * (1 - bound) - round_off <= estimate <= s[0] + round_off, (estimate, s[0], bound)


@jax.jit
def _dense_power(w, v0):
    return robustness.power_iteration(lambda v: v @ w, v0, 1000), jnp.linalg.norm(w, 2)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_power_iteration_matches_the_dense_norm(seed):
    # A He-scaled 64 x 128 layer, as in the MLP; the dense reference is jnp.linalg.norm(W, 2).
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((DIM, 128)) * math.sqrt(2 / DIM)).astype(np.float32)
    v0 = rng.standard_normal(DIM).astype(np.float32)
    est, dense = _dense_power(w, v0)
    check_power_iteration(w.T, float(est), v0, 1000)
    s1 = np.linalg.svd(w.astype(np.float64), compute_uv=False)[0]
    assert abs(float(dense) - s1) <= 4 * 128 * U * s1


@partial(jax.jit, static_argnums=2)
def _small_power(w, v0, iters):
    return robustness.power_iteration(lambda v: v @ w, v0, iters)


def test_power_iteration_bound_is_sharp_with_a_small_gap():
    # s_2 / s_1 = 0.999: after 200 iterations B_k is still of order one, and the estimate must sit in
    # [s_1 (1 - B_k), s_1] (up to rounding); after 20000 it is converged.
    rng = np.random.default_rng(0)
    q1, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    q2, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    s = np.linspace(1.0, 0.2, 16)
    s[1] = 0.999
    w = ((q1 * s) @ q2.T).T.astype(np.float32)  # v @ w = A v with A = q1 diag(s) q2^T
    v0 = rng.standard_normal(16).astype(np.float32)
    for iters in (200, 20000):
        check_power_iteration(w.T, float(_small_power(w, v0, iters)), v0, iters)
    assert power_bound(w.T, v0, 200) > 1e-3  # the bound is not trivially small here


def test_conv_as_patches_equals_lax_conv():
    # Each output is a dot product of 9 c_in terms: |error| <= gamma(9 c_in) (|w| * |h|) entrywise for
    # either evaluation order, so the two differ by at most twice that.
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3, 8, 8, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    conv = lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=networks._DN,
                                                     precision="highest")
    both = jax.jit(lambda w, h: (networks._conv(w, h), conv(h, w), conv(jnp.abs(h), jnp.abs(w))))
    ours, ref, absolute = (np.asarray(a, np.float64) for a in both(w, h))
    assert np.all(np.abs(ours - ref) <= 2 * gamma(9 * 5) * absolute)


init_params = jax.jit(networks.init_params, static_argnums=(1, 2))


def _matrices(params):
    return [jax.jacfwd(f)(jnp.zeros(shape, jnp.float32)) for f, shape in networks.linear_maps(params)]


def as_matrices(params, jacobians) -> list[np.ndarray]:
    """The dense matrix of each layer's linear map (its Jacobian), in float64."""
    shapes = [shape for _, shape in networks.linear_maps(params)]
    return [np.asarray(m, np.float64).reshape(-1, math.prod(s)) for m, s in zip(jacobians, shapes)]


@jax.jit
def _cnn_case(params, key):
    return (robustness.spectral_norms(params, key, 1000), robustness.dense_spectral_norms(params),
            robustness.power_starts(params, key), _matrices(params))


def test_layer_norms_of_a_cnn_agree_with_their_dense_matrices():
    # A convolution (on 8x8 inputs, zero padding included) and a dense layer.
    params = init_params(jax.random.key(2), Architecture("cnn", (4,)), jnp.float32)
    est, dense, starts, jacobians = _cnn_case(params, jax.random.key(5))
    for layer, matrix, e, d, v0 in zip(params, as_matrices(params, jacobians), np.asarray(est, np.float64),
                                       np.asarray(dense, np.float64), starts):
        if isinstance(layer, Dense):  # the matrix is w^T exactly (products with 0 and 1)
            np.testing.assert_array_equal(matrix, np.asarray(layer.w, np.float64).T)
        check_power_iteration(matrix, float(e), np.asarray(v0).ravel(), 1000)
        s1 = np.linalg.svd(matrix, compute_uv=False)[0]
        assert abs(d - s1) <= 4 * max(matrix.shape) * U * s1


def _abs_forward(params, x):
    """The network with |weights|, |biases| on |x|: bounds the float32 forward error (Higham 3.5)."""
    return networks.apply(jax.tree.map(jnp.abs, params), jnp.abs(x))


@jax.jit
def _pairs_case(params, x, x2, y, key):
    bounds = robustness.lipschitz_bounds(params, x, y, key, 1000)
    diff = networks.apply(params, x) - networks.apply(params, x2)
    return bounds, diff, _abs_forward(params, x), _abs_forward(params, x2), _matrices(params)


@pytest.mark.parametrize("seed", [0, 1])
def test_lipschitz_bounds_hold_on_random_pairs(seed):
    # With S_l = ||M_l||_2 of each layer's matrix (float64 SVD of the float32 weights), L <= prod S_l.
    # Rounding, first order (Higham section 3.5): a forward pass through `layers` layers of fan-in at
    # most n = 64 is within layers * gamma(n + 1) times the same pass with |weights| on |x|; the
    # input gradient likewise within layers * gamma(n + 1) * sqrt2 * prod || |M_l| ||_2.
    params = init_params(jax.random.key(seed), Architecture("mlp", (16, 8)), jnp.float32)
    rng = np.random.default_rng(seed)
    x, x2 = (rng.uniform(0, 1, (32, DIM)).astype(np.float32) for _ in range(2))
    y = rng.integers(0, 10, 32).astype(np.int32)
    bounds, diff, abs1, abs2, jacobians = _pairs_case(params, x, x2, y, jax.random.key(seed + 100))
    mats = as_matrices(params, jacobians)
    layers, g = len(mats), gamma(DIM + 1)
    lip = math.prod(np.linalg.svd(m, compute_uv=False)[0] for m in mats)
    lip_abs = math.prod(np.linalg.svd(np.abs(m), compute_uv=False)[0] for m in mats)
    # The power-iteration product: each factor at most S_l + R_l with R_l <= 2 gamma(n) sqrt(r) S_l (the
    # lower side, B_k at 1000 iterations, is checked layer by layer above).
    assert float(bounds.upper) <= lip * (1 + 2 * g * math.sqrt(DIM)) ** layers
    assert 0 < float(bounds.lower) <= lip + layers * g * lip_abs
    norm = lambda a: np.linalg.norm(np.asarray(a, np.float64), axis=1)
    dist = norm(x.astype(np.float64) - x2)
    assert np.all(norm(diff) <= lip * dist + layers * g * (norm(abs1) + norm(abs2)))


@jax.jit
def _linear_case(params, x, y, key):
    bounds = robustness.lipschitz_bounds(params, x, y, key, 1000)
    return bounds, networks.apply(params, x), robustness.power_starts(params, key)[0]


def test_linear_classifier_bounds_are_the_closed_forms():
    # No hidden layer: f(x) = x W + b, L = ||W||_2 exactly; grad m(x) = W[:, y] - W[:, j*(x)].
    params = init_params(jax.random.key(7), Architecture("mlp", ()), jnp.float32)
    w = np.asarray(params[0].w, np.float64)
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (64, DIM)).astype(np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    bounds, logits, v0 = _linear_case(params, x, y, jax.random.key(10))
    check_power_iteration(w.T, float(bounds.upper), np.asarray(v0), 1000)
    logits = np.asarray(logits, np.float64)
    other = np.where(np.eye(10, dtype=bool)[y], -np.inf, logits).argmax(axis=1)
    grads = np.linalg.norm(w[:, y] - w[:, other], axis=0)
    # Gradient entries are one rounded subtraction each (U relative), the norm adds gamma(64) / 2.
    assert abs(float(bounds.lower) - grads.max() / math.sqrt(2)) <= (2 * U + gamma(DIM)) * grads.max()
    # The lower estimate never exceeds ||W||_2: ||W (e_y - e_j)|| <= sqrt2 ||W||_2.
    s1 = np.linalg.svd(w, compute_uv=False)[0]
    assert float(bounds.lower) <= s1 * (1 + 2 * U + gamma(DIM))


def test_weight_norms_are_frobenius():
    # A sum of n squares in float32: gamma(n) relative, the sqrt halves it and adds U.
    params = init_params(jax.random.key(0), Architecture("cnn", (4,)), jnp.float32)
    ref = [np.linalg.norm(np.asarray(p.w, np.float64)) for p in params]
    np.testing.assert_allclose(np.asarray(networks.weight_norms(params)), ref, rtol=gamma(4 * 4 * 10) / 2 + U)
