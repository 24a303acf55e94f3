"""The sign flow: population signGD as ``lr -> 0`` (THEORY.md section 8.1).

With time ``tau = lr t``, population signGD ``w <- w - lr sign(g)``,
``g = H e = C^T H~ e~``, follows the Filippov solution of

    de/dtau in -SIGN(H e),      SIGN(0) = [-1, 1].

The solution is piecewise linear. On a segment the velocity ``v`` (input
coordinates) is constant: ``v_N = -sign(g_N)`` on the coordinates with
``g_i != 0``, and on the *sliding* set ``Z`` (``g_i = 0`` held) ``v_Z`` keeps
``(H v)_Z = 0`` with ``|v_Z| <= 1``. An *event* is a free ``g_i`` reaching 0.
At every event the velocity is re-selected over the whole zero set ``Z0``:

    v_N = -sign(g_N),   v_Z0 = argmin_{|v_i| <= 1} v^T H v = || L v ||^2,

with ``H = L^T L``, ``L = diag(sqrt(lambda)) V^T C`` from ``H~ = V diag(lambda) V^T``.
This box-constrained least squares (:func:`box_least_squares`) has the
Filippov conditions as its optimality (KKT) conditions, since
``d/dv_i (1/2 v^T H v) = (H v)_i = dg_i/dtau``:

* ``|v_i| < 1``: ``(H v)_i = 0``, the coordinate slides (stays in ``Z``);
* ``v_i = +1``: ``(H v)_i <= 0``, ``g_i`` becomes negative, so ``-sign(g_i) = +1``:
  it crosses (``v_i = -1`` likewise with ``(H v)_i >= 0``).

A per-coordinate rule ("slide or cross, leave when ``|v_i| > 1``") is not
enough: a sliding coordinate can have to leave when another one joins.
The flow stops when ``g = 0`` (``R_s = 0``); after that ``v = 0``, which is
what the discrete iteration does to ``O(lr)``.

The state is kept in frequency coordinates (``e~``), and ``g`` is formed as
``C^T (H~ e~)``, so rounding in ``g`` is relative to the relevant error.

Rounding thresholds (``eps`` the dtype's machine epsilon, ``lambda_max`` the
largest eigenvalue of ``H~``, ``k`` the number of events so far,
``S = ||e~(0)||_2 + sqrt(d) tau`` a bound on ``||e~(tau)||_2`` and on the path
length, since ``||v||_2 <= sqrt(d)``):

* ``e~`` is advanced once per event, ``fl(e~ + fl(dtau v~))``, each adding at
  most ``eps S`` per component; ``v~ = C v`` and ``H~ e~`` and ``C^T`` add
  ``d eps`` relative each. So after ``k`` events the computed ``g`` is within
  ``(k + 3 d) eps lambda_max S`` of the exact ``g`` of the exact flow's
  breakpoints. A gradient coordinate with ``|g_i| <= tol_g = 8 (k + 3 d) eps
  lambda_max S`` (a factor 8 of slack) is treated as 0; the flow has
  converged when every ``|g_i| <= tol_g``.
* ``(H v)_i`` is computed to ``d eps lambda_max ||v||_1 <= d^2 eps lambda_max``
  in ``C^T (H~ (C v))``, and the least-squares solve on the free set is
  backward stable (normal-equation residual ``~ d eps ||L||^2 ||v||``):
  ``|(H v)_i| <= tol_hv = 8 d^2 eps lambda_max`` counts as 0 (sliding, or no
  KKT violation at a bound).
* Eigenvalues of ``H~`` below ``d eps lambda_max`` (the backward error of
  ``eigh``) are set to 0.
"""

from __future__ import annotations

import enum
import functools
from functools import partial
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from theory.quadratic import Quadratic
from theory.signal import Problem, dct_basis
from theory.signgd import Q_BOUNDARY, SQRT3

Array = jax.Array

SQRT2 = 2.0**0.5


class FlowReason(enum.IntEnum):
    """Why a :class:`SignFlow` is or is not a valid prediction."""

    CONVERGED = 0  # reached g = 0: applicable
    MAX_EVENTS = 1  # max_events segments used before g = 0
    NON_FINITE = 2  # non-finite Hessian or start
    STUCK = 3  # no free coordinate ever reaches 0 although g != 0
    BVLS_FAILED = 4  # the velocity selection did not reach its optimality conditions


FLOW_REASON_TEXT = {
    FlowReason.CONVERGED: "the flow reached g = 0",
    FlowReason.MAX_EVENTS: "max_events reached before convergence",
    FlowReason.NON_FINITE: "non-finite Hessian or start",
    FlowReason.STUCK: "no event ahead although g != 0",
    FlowReason.BVLS_FAILED: "the box least squares did not converge",
}


class SignFlow(NamedTuple):
    """The piecewise-linear sign flow (a pytree; batched under vmap).

    Attributes:
      tau: ``(max_events + 1,)`` breakpoints, ``tau[0] = 0``; after the last
        valid one (``tau[n_segments]``) padded by repeating it.
      e_freq: ``(max_events + 1, d)`` ``e~`` at each breakpoint (padded likewise).
      velocity_freq: ``(max_events, d)`` ``de~/dtau = C v`` on each segment
        (0 on padding).
      sliding: ``(max_events, d)`` bool, the input coordinates held at
        ``g_i = 0`` on each segment.
      n_segments: number of valid segments.
      tau_converged: the time at which ``g = 0`` (inf if not reached).
      converged: whether ``g = 0`` was reached.
      applicable: whether the result is a valid prediction for all ``tau``.
      reason: a :class:`FlowReason` code.
    """

    tau: Array
    e_freq: Array
    velocity_freq: Array
    sliding: Array
    n_segments: Array
    tau_converged: Array
    converged: Array
    applicable: Array
    reason: Array


class BoxLSQ(NamedTuple):
    """Result of :func:`box_least_squares`.

    Attributes:
      x: ``(n,)`` the minimiser (0 outside ``active``).
      at_bound: ``(n,)`` bool, active components held at ``+-1``.
      ok: whether the optimality conditions were met within the iteration cap.
      iterations: active-set iterations used.
    """

    x: Array
    at_bound: Array
    ok: Array
    iterations: Array


def hessian_factor(hessian_freq: Array, basis: Optional[Array] = None, n_dim=None) -> tuple[Array, Array]:
    """``L = diag(sqrt(lambda)) V^T C`` with ``H = C^T H~ C = L^T L``, and ``lambda_max``.

    Eigenvalues below ``n_dim eps lambda_max`` (``eigh``'s backward error) are 0.

    Args:
      hessian_freq: ``(d, d)`` ``H~``.
      basis: ``C`` (default: the DCT-II basis of size ``d``).
      n_dim: the dimension in the rounding threshold (default ``d``).

    Returns:
      ``(L, lambda_max)``.
    """
    d = hessian_freq.shape[-1]
    dtype = hessian_freq.dtype
    c = dct_basis(d, dtype) if basis is None else basis
    n_dim = d if n_dim is None else n_dim
    lam, vecs = jnp.linalg.eigh(hessian_freq)
    lam_max = jnp.max(lam)
    lam = jnp.where(lam > n_dim * jnp.finfo(dtype).eps * lam_max, lam, 0.0)
    return jnp.sqrt(lam)[:, None] * (vecs.T @ c), lam_max


def box_least_squares(a: Array, b: Array, active: Array, tol, max_iter: int, x_init=None) -> BoxLSQ:
    """``min ||a x - b||_2`` over ``|x_i| <= 1`` for ``active`` ``i``, ``x_i = 0`` otherwise.

    A Lawson-Hanson-style active-set method (Stark and Parker's BVLS) for a
    fixed size with masks. Starting from a feasible ``x`` (``x_init``, default
    0) whose active components strictly inside the box are free and those at
    ``+-1`` bound, each iteration solves the unconstrained least
    squares on the free set (bound components fixed), by ``lstsq`` on ``a``
    with the other columns zeroed (their singular values are exactly 0, so
    the minimum-norm solution leaves them at 0):

    * if that solution ``z`` is feasible, ``x_F = z``; then the bound
      component with the largest violation of its optimality condition
      (``grad_i = (a^T (a x - b))_i > tol`` at ``+1``, ``< -tol`` at ``-1``) is
      freed; with none, ``x`` is optimal;
    * otherwise ``x`` moves towards ``z`` until a free component hits a bound,
      and that component is fixed there.

    Interior components are thus the exact least-squares solution on their
    set (to rounding), bound ones are exactly ``+-1``. A freed component that
    rounding pushes straight back to its bound ends the search (it satisfies
    its condition to rounding).

    Args:
      a: ``(m, n)`` matrix.
      b: ``(m,)`` right-hand side.
      active: ``(n,)`` bool, the components optimised.
      tol: threshold below which a gradient component counts as 0.
      max_iter: iteration cap (static).
      x_init: optional ``(n,)`` feasible warm start (``|x_i| <= 1``).

    Returns:
      A :class:`BoxLSQ`.
    """
    n = a.shape[1]
    dtype = a.dtype

    def solve_free(free, x):
        rhs = b - a @ jnp.where(free, 0.0, x)
        z = jnp.linalg.lstsq(a * free[None, :].astype(dtype), rhs)[0]
        return jnp.where(free, z, x)

    def cond(st):
        _, _, it, done, _ = st
        return (~done) & (it < max_iter)

    def body(st):
        x, free, it, done, last = st
        z = solve_free(free, x)
        beyond = free & (jnp.abs(z) > 1.0)
        feasible = ~jnp.any(beyond)

        # Feasible: accept z, look for a bound component violating its condition.
        xf = jnp.where(free, z, x)
        grad = a.T @ (a @ xf - b)
        viol = jnp.where(active & ~free, grad * jnp.sign(xf), -jnp.inf)  # > 0 means violated
        j = jnp.argmax(viol)
        has_viol = viol[j] > tol
        free_f = free.at[j].set(free[j] | has_viol)

        # Infeasible: step towards z until the first free component reaches its bound.
        bound = jnp.sign(z)
        ratio = jnp.where(beyond, (bound - x) / jnp.where(beyond, z - x, 1.0), jnp.inf)
        alpha = jnp.clip(jnp.min(ratio), 0.0, 1.0)
        xi = jnp.where(free, x + alpha * (z - x), x)
        hit = beyond & (ratio <= alpha)
        xi = jnp.where(hit, bound, xi)
        free_i = free & ~hit
        # Only the component just freed goes straight back: optimal to rounding.
        stuck = (alpha <= 0.0) & (last >= 0) & jnp.all(hit == (jnp.arange(n) == last))

        x_new = jnp.where(feasible, xf, xi)
        free_new = jnp.where(feasible, free_f, free_i)
        done_new = jnp.where(feasible, ~has_viol, stuck)
        last_new = jnp.where(feasible & has_viol, j, -1).astype(jnp.int32)
        return x_new, free_new, it + 1, done_new, last_new

    x0 = jnp.zeros((n,), dtype) if x_init is None else jnp.where(active, jnp.clip(x_init, -1.0, 1.0), 0.0)
    free0 = active & (jnp.abs(x0) < 1.0)
    init = (x0, free0, jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.full((), -1, jnp.int32))
    x, free, it, done, _ = jax.lax.while_loop(cond, body, init)
    return BoxLSQ(x=x, at_bound=active & ~free, ok=done, iterations=it)


def select_velocity(factor: Array, g: Array, zero_set: Array, tol, v_prev=None) -> BoxLSQ:
    """The Filippov velocity at an event (input coordinates).

    ``v_N = -sign(g_N)`` off ``zero_set``; on it, ``v`` minimises
    ``||L v||^2 = v^T H v`` in the box ``[-1, 1]`` (module docstring).

    Args:
      factor: ``L`` with ``H = L^T L`` (:func:`hessian_factor`).
      g: ``(d,)`` gradient, input coordinates.
      zero_set: ``(d,)`` bool, ``Z0``.
      tol: the ``(H v)_i`` threshold.
      v_prev: optional previous velocity, a warm start (its ``Z0`` part).

    Returns:
      A :class:`BoxLSQ` whose ``x`` is the whole velocity ``v``.
    """
    d = g.shape[-1]
    v_fixed = jnp.where(zero_set, 0.0, -jnp.sign(g))
    x_init = None if v_prev is None else jnp.where(zero_set, v_prev, 0.0)
    sol = box_least_squares(factor, -(factor @ v_fixed), zero_set, tol, 4 * d + 8, x_init)
    return sol._replace(x=v_fixed + sol.x)


def _flow(basis: Array, hessian_freq: Array, e0_freq: Array, dim_mask: Array, max_events: int) -> SignFlow:
    """The event loop. ``basis`` is ``C``; coordinates outside ``dim_mask``
    are padding (zero rows and columns of ``H~``, zero start) and never move."""
    h, e0, c = hessian_freq, e0_freq, basis
    d = e0.shape[-1]
    dtype = e0.dtype
    eps = jnp.finfo(dtype).eps
    d_true = jnp.sum(dim_mask).astype(dtype)
    finite = jnp.all(jnp.isfinite(h)) & jnp.all(jnp.isfinite(e0))
    h_safe = jnp.where(finite, h, jnp.eye(d, dtype=dtype))
    e0_safe = jnp.where(finite, e0, 0.0)
    factor, lam_max = hessian_factor(h_safe, c, d_true)  # H = L^T L
    tol_hv = 8.0 * d_true * d_true * eps * lam_max
    size0 = jnp.linalg.norm(e0_safe)

    def grad(e):
        return c.T @ (h_safe @ e)

    def hess_v(v):
        return c.T @ (h_safe @ (c @ v))

    tau_buf = jnp.zeros((max_events + 1,), dtype)
    e_buf = jnp.zeros((max_events + 1, d), dtype).at[0].set(e0_safe)
    v_buf = jnp.zeros((max_events, d), dtype)
    z_buf = jnp.zeros((max_events, d), bool)

    # state: k, tau, e, v, sliding set, just-hit set, status (-1 running, else FlowReason), buffers
    init = (
        jnp.zeros((), jnp.int32),
        jnp.zeros((), dtype),
        e0_safe,
        jnp.zeros((d,), dtype),
        jnp.zeros((d,), bool),
        jnp.zeros((d,), bool),
        jnp.where(finite, -1, FlowReason.NON_FINITE).astype(jnp.int32),
        tau_buf,
        e_buf,
        v_buf,
        z_buf,
    )

    def cond(st):
        return st[6] < 0

    def body(st):
        k, tau, e, v_prev, sliding, hit, status, tau_buf, e_buf, v_buf, z_buf = st
        g = jnp.where(dim_mask, grad(e), 0.0)
        tol_g = 8.0 * (k + 3.0 * d_true) * eps * lam_max * (size0 + jnp.sqrt(d_true) * tau)
        zero_set = dim_mask & (sliding | hit | (jnp.abs(g) <= tol_g))
        converged = jnp.all(jnp.abs(g) <= tol_g)

        sel = select_velocity(factor, g, zero_set, tol_hv, v_prev)
        v = jnp.where(dim_mask, sel.x, 0.0)
        hv = jnp.where(dim_mask, hess_v(v), 0.0)
        slide = zero_set & (jnp.abs(hv) <= tol_hv)
        # A free g_i heading for 0 reaches it at -g_i / (H v)_i.
        heading = dim_mask & ~zero_set & (g * hv < 0)
        t_hit = jnp.where(heading, -g / jnp.where(heading, hv, 1.0), jnp.inf)
        dt = jnp.maximum(jnp.min(t_hit), 0.0)
        hit_new = heading & (t_hit <= dt)
        v_freq = c @ v
        e_new = e + dt * v_freq
        tau_new = tau + dt

        # With the buffers full (k = max_events) the state is still checked for convergence.
        status_new = jnp.select(
            [converged, k >= max_events, ~sel.ok, ~jnp.isfinite(dt)],
            [FlowReason.CONVERGED, FlowReason.MAX_EVENTS, FlowReason.BVLS_FAILED, FlowReason.STUCK],
            -1,
        ).astype(jnp.int32)
        step = status_new < 0
        kk = jnp.minimum(k, max_events - 1)
        v_buf = v_buf.at[kk].set(jnp.where(step, v_freq, v_buf[kk]))
        z_buf = z_buf.at[kk].set(jnp.where(step, slide, z_buf[kk]))
        tau_buf = tau_buf.at[kk + 1].set(jnp.where(step, tau_new, tau_buf[kk + 1]))
        e_buf = e_buf.at[kk + 1].set(jnp.where(step, e_new, e_buf[kk + 1]))
        keep = lambda new, old: jnp.where(step, new, old)
        return (
            k + step.astype(jnp.int32),
            keep(tau_new, tau),
            keep(e_new, e),
            keep(v, v_prev),
            keep(slide, sliding),
            keep(hit_new, hit),
            status_new,
            tau_buf,
            e_buf,
            v_buf,
            z_buf,
        )

    k, tau, e, _, _, _, status, tau_buf, e_buf, v_buf, z_buf = jax.lax.while_loop(cond, body, init)
    idx = jnp.arange(max_events + 1)
    tau_buf = jnp.where(idx <= k, tau_buf, tau)
    e_buf = jnp.where((idx <= k)[:, None], e_buf, e)
    converged = status == FlowReason.CONVERGED
    nan = jnp.full((), jnp.nan, dtype)
    return SignFlow(
        tau=jnp.where(finite, tau_buf, nan),
        e_freq=jnp.where(finite, e_buf, nan),
        velocity_freq=v_buf,
        sliding=z_buf,
        n_segments=k,
        tau_converged=jnp.where(converged, tau, jnp.inf),
        converged=converged,
        applicable=converged,
        reason=status,
    )


_flow_jit = jax.jit(_flow, static_argnames=("max_events",))


@functools.lru_cache(maxsize=None)
def _padded_basis(d: int, pad: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``C`` of size ``d`` bordered by the identity up to ``pad``, and the mask of the first ``d``."""
    c = np.eye(pad, dtype=dtype)
    # One compiled program (not ~30 eager ops), run concretely even when called under a trace.
    c[:d, :d] = np.asarray(jax.jit(dct_basis, static_argnums=(0, 1)).lower(d, dtype).compile()())
    return c, np.arange(pad) < d


def sign_flow(quad: Quadratic, *, max_events: int = 64, pad_to: Optional[int] = None) -> SignFlow:
    """The exact event-driven Filippov solution of ``de/dtau in -SIGN(H e)``.

    Pure JAX (``lax.while_loop``), jit-compiled, vmap-able over quadratics of
    one ``d``. See the module docstring for the velocity selection and the
    rounding thresholds (THEORY.md section 8.1).

    Args:
      quad: the quadratic ``H~`` and the start ``e~(0)`` (frequency coordinates).
      max_events: number of segments the buffers hold (static).
      pad_to: optional ``D >= d`` (static): solve inside a ``D``-dimensional
        problem whose extra coordinates are masked out (``C`` padded with the
        identity, ``H~`` with zeros). The result is the same flow, sliced back
        to ``d``; one compiled program then serves every ``d <= D``.

    Returns:
      A :class:`SignFlow`. ``applicable`` is False (and ``tau_converged`` inf)
      unless ``g = 0`` was reached within ``max_events`` segments.
    """
    d = quad.dim
    dtype = quad.e0_freq.dtype
    pad = d if pad_to is None else int(pad_to)
    if pad < d:
        raise ValueError(f"pad_to = {pad} is smaller than d = {d}")
    extra = pad - d
    c, mask = _padded_basis(d, pad, jnp.dtype(dtype).name)
    if extra == 0:
        return _flow_jit(c, quad.hessian_freq, quad.e0_freq, mask, max_events=max_events)
    h, e0 = _pad_inputs(quad.hessian_freq, quad.e0_freq, extra)
    return _unpad(_flow_jit(c, h, e0, mask, max_events=max_events), d)


@partial(jax.jit, static_argnums=2)
def _pad_inputs(hessian_freq: Array, e0_freq: Array, extra: int) -> tuple[Array, Array]:
    return jnp.pad(hessian_freq, ((0, extra), (0, extra))), jnp.pad(e0_freq, (0, extra))


@partial(jax.jit, static_argnums=1)
def _unpad(flow: SignFlow, d: int) -> SignFlow:
    return flow._replace(e_freq=flow.e_freq[:, :d], velocity_freq=flow.velocity_freq[:, :d], sliding=flow.sliding[:, :d])


def sign_flow_error(flow: SignFlow) -> Callable[[Array], Array]:
    """Returns ``tau -> e~(tau)`` of a :class:`SignFlow` (like ``gd_error``).

    Piecewise linear between the breakpoints and constant after convergence.
    NaN for ``tau < 0``, and after the last breakpoint when the flow did not
    converge (no prediction there).

    Args:
      flow: an (unbatched) :class:`SignFlow`.

    Returns:
      A function of an array of times with shape ``T`` returning ``T + (d,)``.
    """
    n = flow.velocity_freq.shape[0]

    def e_freq_at(tau: Array) -> Array:
        tau = jnp.asarray(tau, flow.tau.dtype)
        j = jnp.clip(jnp.searchsorted(flow.tau, tau, side="right") - 1, 0, n - 1)
        lo, hi = flow.tau[j], flow.tau[j + 1]
        e = flow.e_freq[j] + (jnp.clip(tau, lo, hi) - lo)[..., None] * flow.velocity_freq[j]
        last = flow.tau[flow.n_segments]
        valid = (tau >= 0) & (flow.converged | (tau <= last))
        return jnp.where(valid[..., None], e, jnp.nan)

    return jax.jit(e_freq_at)


class SignFlowD3(NamedTuple):
    """Closed form of the d = 3 sign flow's end point.

    Attributes:
      e_freq_final: ``(0, 0, e~_2(0) + drift)`` (NaN if not applicable).
      drift: ``e~_2(inf) - e~_2(0)`` (NaN if not applicable).
      saturated: whether the flow slides on ``|A| = |B|`` (``q > 1/3``).
      applicable: bool.
      reason: 0 applicable, 1 spectrum not ``(sigma_0 > 0, sigma_1 > 0, 0)``,
        2 non-finite input.
    """

    e_freq_final: Array
    drift: Array
    saturated: Array
    applicable: Array
    reason: Array


def sign_flow_final_d3(problem: Problem) -> SignFlowD3:
    """Where the d = 3 sign flow ends, in closed form (THEORY.md 8.1 and 4).

    Spectrum ``(sigma_0, sigma_1, 0)``, ``q = sigma_1^2 / sigma_0^2``; the
    input gradient is ``g = (A + B, A, A - B)``, ``A = sigma_0^2 e~_0/sqrt3``,
    ``B = sigma_1^2 e~_1/sqrt2``. Let ``s = sign(e~_0(0))``.

    * Phase 1 (``|A| > |B|``): ``v = -sign(A)(1, 1, 1)``, ``v~ = -sign(A)(sqrt3, 0, 0)``;
      ``|A|`` falls at rate ``sigma_0^2`` until ``|A| = |B|``, where
      ``|e~_0| = sqrt(3/2) q |e~_1(0)|``.
    * At ``|A| = |B|`` the coordinate ``i`` with ``g_i = A -+ B = 0`` joins
      ``Z``; with ``A, B > 0`` the box minimiser is
      ``v_2 = (4 - 3q)/(2 + 3q)``, inside ``[-1, 1]`` iff ``q >= 1/3``.
    * ``q <= 1/3``: it crosses (phase 2): ``v~ = (-sign(A)/sqrt3, -sign(B) sqrt2,
      sign(A) sqrt(2/3))``; ``|A|`` falls at ``sigma_0^2/3``, ``|B|`` at
      ``q sigma_0^2``, so ``e~_0`` reaches 0 first, moving ``e~_2`` by
      ``sqrt2 |e~_0(t1)|``. Then ``g_1 = A = 0`` slides with ``v = (-sign B, 0,
      sign B)``, which does not move ``e~_2``. Drift: ``s sqrt3 q |e~_1(0)|``
      from phase 1, ``s sqrt2 |e~_0(0)|`` from phase 2.
    * ``q > 1/3``: it slides on ``|A| = |B|`` with ``e~_2`` moving
      ``(1 + v_2)/(2 - v_2) / sqrt2 = sqrt2/(3q)`` per unit of ``|e~_0|``, and
      ``A, B`` reach 0 together: drift ``s |e~_0(t_m)| sqrt2/(3q)`` from the
      meeting point ``t_m``, i.e. ``s |e~_1(0)|/sqrt3`` (saturated) from phase 1.
      From phase 2 with ``q > 1/3``, ``|B| - |A|`` falls at ``sigma_0^2 (q - 1/3)``:
      if ``A`` reaches 0 first (``3|A(0)| <= (|B(0)| - |A(0)|)/(q - 1/3)``) the drift is
      ``s sqrt2 |e~_0(0)|``; otherwise ``sqrt(2/3) tau_m`` in phase 2 plus
      ``sqrt2/(3q) (|e~_0(0)| - tau_m/sqrt3)`` sliding.

    Args:
      problem: a :class:`Problem` with ``d = 3``.

    Returns:
      A :class:`SignFlowD3`.

    Raises:
      ValueError: if ``d != 3``.
    """
    if problem.dim != 3:
        raise ValueError(f"the d = 3 closed form needs d = 3, got d = {problem.dim}")
    spectrum = problem.spectrum
    e0 = problem.e0_freq
    dtype = e0.dtype
    s2 = jnp.square(spectrum)
    q = s2[1] / s2[0]
    a0 = s2[0] * e0[0] / SQRT3
    b0 = s2[1] * e0[1] / SQRT2
    sign0 = jnp.sign(e0[0])
    from_1 = jnp.where(q <= Q_BOUNDARY, SQRT3 * q, 1.0 / SQRT3) * jnp.abs(e0[1])
    # From phase 2: time (units of 1/sigma_0^2) for |A| to reach 0, and for |A| to meet |B|.
    t_zero = 3.0 * jnp.abs(a0) / s2[0]
    gap_rate = s2[0] * (q - Q_BOUNDARY)
    t_meet = jnp.where(gap_rate > 0, (jnp.abs(b0) - jnp.abs(a0)) / jnp.where(gap_rate > 0, gap_rate, 1.0), jnp.inf)
    meets = t_meet < t_zero
    t_m = jnp.where(meets, t_meet, 0.0)
    from_2 = jnp.where(
        meets,
        (2.0 / 3.0) ** 0.5 * t_m + SQRT2 / (3.0 * q) * (jnp.abs(e0[0]) - t_m / SQRT3),
        SQRT2 * jnp.abs(e0[0]),
    )
    starts_in_2 = jnp.abs(a0) < jnp.abs(b0)
    drift = sign0 * jnp.where(starts_in_2, from_2, from_1)
    saturated = (q > Q_BOUNDARY) & (~starts_in_2 | meets)

    finite = jnp.all(jnp.isfinite(spectrum)) & jnp.all(jnp.isfinite(e0))
    good = (spectrum[0] > 0) & (spectrum[1] > 0) & (spectrum[2] == 0)
    reason = jnp.select([~finite, ~good], [2, 1], 0).astype(jnp.int32)
    ok = reason == 0
    nan = jnp.full((), jnp.nan, dtype)
    zero = jnp.zeros((), dtype)
    final = jnp.stack([zero, zero, e0[2] + drift])
    return SignFlowD3(
        e_freq_final=jnp.where(ok, final, nan),
        drift=jnp.where(ok, drift, nan),
        saturated=ok & saturated,
        applicable=ok,
        reason=reason,
    )
