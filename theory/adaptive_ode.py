"""Adam and RMSProp at small learning rates: the fixed-``c`` ODEs.

THEORY.md sections 8.2 (population) and 8.3 (online batches). Time is
``tau = lr * t``. Holding ``c1 = (1 - b1)/lr`` and ``c2 = (1 - b2)/lr`` (RMSProp:
``c2 = (1 - decay)/lr``) and ``eps`` fixed as ``lr -> 0``, the optimizers,
acting element-wise in input coordinates on ``g = H e = C^T H~ e~``, follow

    Adam:     dm/dtau = c1 (G - m),   dv/dtau = c2 (G2 - v),
              dw/dtau = -mhat / (sqrt(vhat) + eps),
              mhat = m / b1(tau),  vhat = v / b2(tau),  bk(tau) = 1 - exp(-ck tau)
    RMSProp:  dv/dtau = c2 (G2 - v),  dw/dtau = -G / (sqrt(v) + eps),  v(0) = 0

(``eps`` outside the square root, as in PyTorch). For the population
``G = g`` and ``G2 = g^2``; with a fresh batch of ``n`` samples per step
(section 8.3) the batch noise averages out, ``m`` still averages to ``g`` and
``G2 = E[g_B^2] = g^2 + Var(g_B)``
(:func:`theory.quadratic.batch_gradient_variance`).

Variables actually integrated (derived here; ``kappa_k = ck / bk(tau)``).
Differentiating ``mhat = m / b1`` with ``b1' = c1 (1 - b1)``:

    dmhat/dtau = c1 (G - m)/b1 - mhat c1 (1 - b1)/b1 = kappa_1 (G - mhat),

and likewise ``dvhat/dtau = kappa_2 (G2 - vhat)``: the bias correction turns
the averages into averages over ``[0, tau]``, with ``mhat(0) = G(0)`` and
``vhat(0) = G2(0)``. ``mhat`` and ``vhat`` both decay to 0 as the relevant
error does, so Adam integrates ``u = log vhat`` and ``r = mhat / sqrt(vhat)``
(``O(1)`` throughout):

    du/dtau = kappa_2 (G2 e^-u - 1),
    dr/dtau = kappa_1 (G e^(-u/2) - r) - (r/2) du/dtau,
    dw/dtau = -r / (1 + eps e^(-u/2)),
    r(0) = G(0) / sqrt(G2(0)),  u(0) = log G2(0).

RMSProp has no bias correction, but writing ``v = b2(tau) vhat`` with the
same ``u = log vhat`` gives ``u(0) = log G2(0)`` finite and

    du/dtau = kappa_2 (G2 e^-u - 1),
    dw/dtau = -G / (sqrt(b2) e^(u/2) + eps).

The start. Both systems are singular at ``tau = 0``: ``kappa_k ~ 1/tau``
(a regular singular point: for ``y' = kappa (f - y)``, ``y(0) = f(0)``, the
solution is ``f(0) + f'(0) tau/2 + O(tau^2)``), and RMSProp's ``w`` moves
like ``2 sqrt(tau/c2)`` (``b2 ~ c2 tau``), an unbounded derivative. Both are
removed by solving in the time ``s`` with

    tau = tau_c softplus(s) = tau_c log(1 + e^s),   dtau/ds = tau_c sigmoid(s),

``tau_c = 1/(c1 + c2)`` (Adam) or ``1/c2`` (RMSProp): logarithmic for
``tau << tau_c``, where ``kappa dtau/ds -> 1`` and ``sqrt(tau) = sqrt(tau_c)
e^(s/2)`` are smooth, and linear (``tau ~ tau_c s``) after. Without it the
implicit solver's chord iteration, whose Jacobian is frozen over a step,
fails whenever a step is not small against ``tau`` (``kappa`` changes by
``O(1)`` across it), and the solve stalls near the start. The solve starts at
``s0 = S0`` (``tau0 = tau_c softplus(S0) ~ 1e-16 tau_c``) from ``r(0), u(0)``
(an ``O(tau0)`` error, far below rounding of the later solution) and with
``w`` moved by its exact small-``tau`` displacement: ``-tau0 r(0) / (1 +
eps/sqrt(G2(0)))`` (Adam) and, for RMSProp with ``v ~ c2 G2(0) tau``,
``a = sqrt(c2 G2(0))``,

    w(tau0) - w(0) = -G(0) int_0^tau0 dtau / (a sqrt(tau) + eps)
                   = -G(0) (2/a) [sqrt(tau0) - (eps/a) log(1 + a sqrt(tau0)/eps)],

which is ``O(sqrt(tau0))`` (about ``1e-8 / sqrt(c2)``) and is kept. Requested
save times below ``tau0`` are saved at ``tau0``.

RMSProp's start-up shift (section 8.2). The discrete's ``k``-th step is
``lr g0 / sqrt(v_k)`` with ``v_k ~ c2 lr k g0^2``, i.e. ``sqrt(lr/c2) / sqrt(k)``
per coordinate, and ``sum_{k <= K} k^-1/2 = 2 sqrt(K) + zeta(1/2) + O(K^-1/2)``,
while the ODE moves ``sqrt(lr/c2) 2 sqrt(K)``. The plain ODE is therefore
``O(sqrt(lr))`` off; starting it from
``w(0) - sign(g(0)) zeta(1/2) sqrt(lr/c2)`` (``shift_lr = lr``) removes that
term, leaving about ``O(lr)``. With online batches the first steps divide
``g_B`` by a noisy ``sqrt(v)``; those corrections to the shift are
``O(Var(g_B)/g^2) = O(1/n)`` relative and are not included.

Stopping. The solve stops at the first step end with
``R_s = 1/2 e~^T H~ e~ < R_S_STOP = 1e-32`` (a ``diffrax.Event``): past it
nothing moves at float64 resolution, and continuing only amplifies rounding
through ``g / sqrt(v)``. Saved values at later times are the final state.

Solver: ``diffrax.Kvaerno5`` (implicit, L-stable: ``kappa`` and the late
effective step ``1/sqrt(v)`` make the system stiff), a ``PIDController`` at
``rtol = 1e-10``, in the dtype of the quadratic (use float64).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import diffrax
import jax
import jax.numpy as jnp

from theory.quadratic import Quadratic, batch_gradient_variance, gradient_input
from theory.signal import to_freq

Array = jax.Array

#: ``zeta(1/2)``, the constant of ``sum_{k<=K} k^-1/2 - 2 sqrt(K)``.
ZETA_HALF = -1.4603545088095868
#: The solves stop once the standard risk is below this.
R_S_STOP = 1e-32
#: The solves start at ``s = S0``: ``tau0 = tau_c log(1 + e^S0) ~ 1.6e-16 tau_c``.
S0 = -36.0
#: Default solver tolerances (float64).
RTOL = 1e-10
ATOL = 1e-12


class ODEConstants(NamedTuple):
    """The fixed-``c`` constants of the small-learning-rate limit.

    Attributes:
      c1: ``(1 - b1)/lr`` (Adam's first moment), or ``None``.
      c2: ``(1 - b2)/lr`` (Adam) or ``(1 - decay)/lr`` (RMSProp), or ``None``.
    """

    c1: Optional[float]
    c2: Optional[float]


def ode_constants(lr, b1=None, b2=None, decay=None) -> ODEConstants:
    """Maps discrete hyper-parameters to the ODE constants (section 8.2).

    Args:
      lr: learning rate.
      b1: Adam's ``b1`` (gives ``c1``).
      b2: Adam's ``b2`` (gives ``c2``).
      decay: RMSProp's ``decay`` (PyTorch's ``alpha``; gives ``c2``).

    Returns:
      :class:`ODEConstants`, ``None`` for what was not given. PyTorch's
      defaults at ``lr = 1e-2``: Adam ``c1 = 10, c2 = 0.1``; RMSProp ``c2 = 1``.

    Raises:
      ValueError: if both ``b2`` and ``decay`` are given.
    """
    if b2 is not None and decay is not None:
        raise ValueError("give b2 (Adam) or decay (RMSProp), not both")
    c1 = None if b1 is None else (1 - b1) / lr
    beta2 = b2 if b2 is not None else decay
    c2 = None if beta2 is None else (1 - beta2) / lr
    return ODEConstants(c1, c2)


class ODEPrediction(NamedTuple):
    """The solution of one of the ODEs (a pytree; batched under ``vmap``).

    Attributes:
      tau: ``(T,)`` the requested save times.
      e_freq: ``(T, d)`` ``e~`` at ``tau``; times past ``tau_end`` hold
        ``e_freq_end``.
      tau_end: where the solve stopped: the first step end with
        ``R_s < R_S_STOP``, or ``tau_max``.
      e_freq_end: ``(d,)`` ``e~(tau_end)``.
      converged: whether ``R_s < R_S_STOP`` was reached by ``tau_max``.
      applicable: whether the solve succeeded (no step limit or solver
        failure) with finite values; if not, nothing here is a prediction.
      num_steps: accepted solver steps.
    """

    tau: Array
    e_freq: Array
    tau_end: Array
    e_freq_end: Array
    converged: Array
    applicable: Array
    num_steps: Array


def e_freq_at(prediction: ODEPrediction, tau) -> Array:
    """``e~`` at ``tau`` by linear interpolation between the saved times.

    Exact (the solver's value) at the saved times; in between, the error is
    that of linear interpolation. Save the times needed instead where it
    matters. Outside the saved range the end values are held.

    Args:
      prediction: one (unbatched) :class:`ODEPrediction`.
      tau: scalar or ``(K,)`` times.

    Returns:
      ``e~``, shape ``tau.shape + (d,)``.
    """
    tau = jnp.asarray(tau, prediction.tau.dtype)
    interp = lambda col: jnp.interp(tau, prediction.tau, col)  # noqa: E731
    return jnp.moveaxis(jax.vmap(interp, in_axes=1)(prediction.e_freq), 0, -1)


def _second_moment(quad: Quadratic, pop_h: Array, e_freq: Array, inv_n) -> tuple[Array, Array]:
    """``G = g`` and ``G2 = g^2 + Var(g_B)`` in input coordinates (8.3).

    ``inv_n = 1/n``, or 0 for the population (then ``G2 = g^2`` exactly).
    """
    g = gradient_input(quad.hessian_freq, e_freq)
    var = batch_gradient_variance(pop_h, e_freq, 1.0) * inv_n
    return g, jnp.square(g) + var


def _inverse_batch_size(batch_size, dtype) -> Array:
    """``1/n``, or 0 for the population (``n = 0``); ``batch_size`` may be traced."""
    n = jnp.asarray(batch_size, dtype)
    return jnp.where(n > 0, 1.0 / jnp.where(n > 0, n, 1.0), 0.0)


def _standard_risk(quad: Quadratic, e_freq: Array) -> Array:
    return 0.5 * e_freq @ quad.hessian_freq @ e_freq


def _kappa(c, tau):
    """``c / (1 - exp(-c tau))``, the bias-correction averaging rate."""
    return c / -jnp.expm1(-c * tau)


def _tau_of_s(s, tau_c):
    """``tau = tau_c softplus(s)`` and ``dtau/ds = tau_c sigmoid(s)``."""
    return tau_c * jax.nn.softplus(s), tau_c * jax.nn.sigmoid(s)


def _s_of_tau(tau, tau_c):
    """The inverse, ``s = log(expm1(tau/tau_c)) = x + log(1 - e^-x)``, ``x = tau/tau_c``."""
    x = tau / tau_c
    return x + jnp.log(-jnp.expm1(-x))


def _solve(field, y0, tau_c, tau_max, saveat_tau, quad, rtol, atol, max_steps):
    """Solves ``dy/dtau = field(tau, y)`` (``y[0]`` is ``e~``) in ``s``.

    Starts at ``s = S0`` from ``y0``, stops at the first step end with
    ``R_s < R_S_STOP`` or at ``tau_max``; saves ``e~`` at ``saveat_tau``.

    Returns:
      ``(e_saved, tau_end, e_end, converged, applicable, num_steps)``.
    """
    dtype = y0[0].dtype

    def field_s(s, y, args):
        tau, dtau_ds = _tau_of_s(s, tau_c)
        return jax.tree.map(lambda dy: dtau_ds * dy, field(tau, y))

    s0 = jnp.asarray(S0, dtype)
    s1 = _s_of_tau(tau_max, tau_c)
    save_s = jnp.clip(_s_of_tau(saveat_tau, tau_c), s0, s1)  # -inf at tau = 0
    event = diffrax.Event(lambda s, y, args, **kw: _standard_risk(quad, y[0]) < R_S_STOP)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field_s),
        diffrax.Kvaerno5(),
        s0,
        s1,
        jnp.asarray(1.0, dtype),
        y0,
        saveat=diffrax.SaveAt(ts=save_s, t1=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4),
        event=event,
        max_steps=max_steps,
        throw=False,
        adjoint=diffrax.ForwardMode(),
    )
    # On an event diffrax stores the final state in the first unused slot
    # (the remaining save times and the t1 slot hold inf).
    last = jnp.sum(jnp.isfinite(sol.ts)) - 1
    e_all = sol.ys[0]
    e_end = e_all[last]
    s_end = sol.ts[last]
    # diffrax fills save times past a terminating event with inf; nothing
    # moves after R_s < R_S_STOP, so they hold the final state.
    e_saved = jnp.where(save_s[:, None] > s_end, e_end, e_all[:-1])
    converged = sol.result == diffrax.RESULTS.event_occurred
    ok = (sol.result == diffrax.RESULTS.successful) | converged
    applicable = ok & jnp.all(jnp.isfinite(e_end)) & jnp.all(jnp.isfinite(e_saved))
    tau_end, _ = _tau_of_s(s_end, tau_c)
    return e_saved, tau_end, e_end, converged, applicable, sol.stats["num_accepted_steps"]


def _prepare_times(saveat_tau, tau_max, dtype):
    tau_max = jnp.asarray(tau_max, dtype)
    if saveat_tau is None:
        saveat_tau = tau_max[None]
    saveat_tau = jnp.asarray(saveat_tau, dtype)
    if saveat_tau.ndim != 1:
        raise ValueError("saveat_tau must be 1-D")
    return saveat_tau, tau_max


def adam_ode(
    quad: Quadratic,
    c1,
    c2,
    eps=1e-8,
    *,
    batch_size: int = 0,
    population_hessian_freq: Optional[Array] = None,
    saveat_tau: Optional[Array] = None,
    tau_max=2000.0,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int = 16384,
) -> ODEPrediction:
    """Adam's fixed-``c`` ODE (sections 8.2, 8.3), solved in ``(e~, r, u)``.

    Args:
      quad: the quadratic (``H~`` gives the mean gradient) and ``e~(0)``.
      c1: ``(1 - b1)/lr``.
      c2: ``(1 - b2)/lr``.
      eps: Adam's ``eps`` (outside the square root).
      batch_size: ``n > 0`` for fresh batches of ``n`` samples each step
        (``G2 = g^2 + Var(g_B)``), 0 for the population gradient. May be
        traced.
      population_hessian_freq: the samples' covariance ``H~`` for
        ``Var(g_B)`` (default ``quad.hessian_freq``).
      saveat_tau: ``(T,)`` non-decreasing times in ``[0, tau_max]`` at which
        to save ``e~`` (default: ``tau_max`` only).
      tau_max: the solve stops here if ``R_s < R_S_STOP`` was not reached.
      rtol, atol: step-size controller tolerances.
      max_steps: solver step limit (static); hitting it makes the
        prediction not applicable.

    Returns:
      :class:`ODEPrediction`.
    """
    e0 = quad.e0_freq
    dtype = e0.dtype
    saveat_tau, tau_max = _prepare_times(saveat_tau, tau_max, dtype)
    pop_h = quad.hessian_freq if population_hessian_freq is None else population_hessian_freq
    inv_n = _inverse_batch_size(batch_size, dtype)
    c1 = jnp.asarray(c1, dtype)
    c2 = jnp.asarray(c2, dtype)
    eps = jnp.asarray(eps, dtype)

    def field(tau, y):
        e, r, u = y
        g, g2 = _second_moment(quad, pop_h, e, inv_n)
        du = _kappa(c2, tau) * (g2 * jnp.exp(-u) - 1.0)
        dr = _kappa(c1, tau) * (g * jnp.exp(-0.5 * u) - r) - 0.5 * r * du
        dw = -r / (1.0 + eps * jnp.exp(-0.5 * u))
        return to_freq(dw), dr, du

    g0, g20 = _second_moment(quad, pop_h, e0, inv_n)
    g20 = jnp.maximum(g20, jnp.finfo(dtype).tiny)  # a coordinate with g = 0 exactly
    r0 = g0 / jnp.sqrt(g20)
    tau_c = 1.0 / (c1 + c2)
    tau0, _ = _tau_of_s(jnp.asarray(S0, dtype), tau_c)
    w_move = -tau0 * r0 / (1.0 + eps / jnp.sqrt(g20))
    y0 = (e0 + to_freq(w_move), r0, jnp.log(g20))
    e_saved, tau_end, e_end, conv, appl, nsteps = _solve(
        field, y0, tau_c, tau_max, saveat_tau, quad, rtol, atol, max_steps)
    return ODEPrediction(saveat_tau, e_saved, tau_end, e_end, conv, appl, nsteps)


def _start_integral(a, s0, eps):
    """``int_0^(s0^2) dtau / (a sqrt(tau) + eps) = (2 s0^2/eps) h(x)``, ``x = a s0/eps``.

    ``h(x) = (x - log(1 + x)) / x^2``; for ``x < 1/4`` its series
    ``sum_{k>=2} (-1)^k x^(k-2) / k`` (to ``k = 30``: truncation below
    ``4^-29 < 1e-17`` relative) replaces the cancelling difference, and
    gives ``h(0) = 1/2`` (``a = 0``: ``w`` moves ``tau0 G / eps``).
    """
    x = a * s0 / eps
    small = x < 0.25
    xs = jnp.where(small, x, 0.0)
    series = sum((-1) ** k * xs ** (k - 2) / k for k in range(2, 31))
    xl = jnp.where(small, 1.0, x)
    direct = (xl - jnp.log1p(xl)) / jnp.square(xl)
    return 2.0 * s0 * s0 / eps * jnp.where(small, series, direct)


def rmsprop_shift_freq(quad: Quadratic, c2, shift_lr) -> Array:
    """RMSProp's start-up shift of ``e~(0)`` (section 8.2).

    ``-sign(g(0)) zeta(1/2) sqrt(lr/c2)`` per input coordinate, in frequency
    coordinates; ``zeta(1/2) < 0``, so each coordinate moves *up* its
    gradient: the discrete's first steps move less than the ODE.
    """
    g0 = gradient_input(quad.hessian_freq, quad.e0_freq)
    return to_freq(-jnp.sign(g0) * ZETA_HALF * jnp.sqrt(shift_lr / c2))


def rmsprop_ode(
    quad: Quadratic,
    c2,
    eps=1e-8,
    *,
    shift_lr=None,
    batch_size: int = 0,
    population_hessian_freq: Optional[Array] = None,
    saveat_tau: Optional[Array] = None,
    tau_max=2000.0,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int = 16384,
) -> ODEPrediction:
    """RMSProp's fixed-``c`` ODE (sections 8.2, 8.3), solved in ``(e~, u)``.

    PyTorch's RMSprop: ``eps`` outside the square root, no momentum, not
    centered, ``v(0) = 0``.

    Args:
      quad: the quadratic (``H~`` gives the mean gradient) and ``e~(0)``.
      c2: ``(1 - decay)/lr``.
      eps: ``eps`` (outside the square root).
      shift_lr: the discrete learning rate whose start-up shift
        (:func:`rmsprop_shift_freq`) to apply to ``e~(0)``, making the
        prediction about ``O(lr)`` accurate instead of ``O(sqrt(lr))``;
        ``None`` for the plain ODE. May be traced.
      batch_size: ``n > 0`` for fresh batches of ``n`` samples each step, 0
        for the population gradient. May be traced.
      population_hessian_freq: the samples' covariance ``H~`` for
        ``Var(g_B)`` (default ``quad.hessian_freq``).
      saveat_tau: ``(T,)`` non-decreasing times in ``[0, tau_max]`` at which
        to save ``e~`` (default: ``tau_max`` only).
      tau_max: the solve stops here if ``R_s < R_S_STOP`` was not reached.
      rtol, atol: step-size controller tolerances.
      max_steps: solver step limit (static).

    Returns:
      :class:`ODEPrediction`.
    """
    dtype = quad.e0_freq.dtype
    saveat_tau, tau_max = _prepare_times(saveat_tau, tau_max, dtype)
    pop_h = quad.hessian_freq if population_hessian_freq is None else population_hessian_freq
    inv_n = _inverse_batch_size(batch_size, dtype)
    c2 = jnp.asarray(c2, dtype)
    eps = jnp.asarray(eps, dtype)
    if shift_lr is not None:
        quad = quad._replace(
            e0_freq=quad.e0_freq + rmsprop_shift_freq(quad, c2, jnp.asarray(shift_lr, dtype)))
    e0 = quad.e0_freq

    def field(tau, y):
        e, u = y
        g, g2 = _second_moment(quad, pop_h, e, inv_n)
        du = _kappa(c2, tau) * (g2 * jnp.exp(-u) - 1.0)
        sqrt_v = jnp.sqrt(-jnp.expm1(-c2 * tau)) * jnp.exp(0.5 * u)
        return to_freq(-g / (sqrt_v + eps)), du

    g0, g20 = _second_moment(quad, pop_h, e0, inv_n)
    g20 = jnp.maximum(g20, jnp.finfo(dtype).tiny)
    tau_c = 1.0 / c2
    tau0, _ = _tau_of_s(jnp.asarray(S0, dtype), tau_c)
    w_move = -g0 * _start_integral(jnp.sqrt(c2 * g20), jnp.sqrt(tau0), eps)
    y0 = (e0 + to_freq(w_move), jnp.log(g20))
    e_saved, tau_end, e_end, conv, appl, nsteps = _solve(
        field, y0, tau_c, tau_max, saveat_tau, quad, rtol, atol, max_steps)
    return ODEPrediction(saveat_tau, e_saved, tau_end, e_end, conv, appl, nsteps)
