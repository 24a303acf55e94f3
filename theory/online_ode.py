"""Online signGD at small learning rates: the averaged ODE (THEORY.md section 8.3).

With a fresh batch of ``n`` Gaussian samples each step the gradient is
``g_B = X^T X e / n``; its mean is the population gradient ``g = H e``. As
``lr -> 0`` with ``n`` fixed the batch noise averages out and signGD, in time
``tau = lr t``, follows the deterministic ODE

    de/dtau = -E[sign g_B]          (input coordinates),

whose right-hand side is known exactly (:func:`expected_sign`).

**The law of one coordinate of g_B.** Sample ``j`` contributes
``u_j v_j`` with ``u = x_i`` and ``v = x^T e``: jointly normal, variances
``H_ii`` and ``e^T H e``, covariance ``g_i``, correlation
``rho_i = g_i / sqrt(H_ii e^T H e)``. Standardise ``u' = u / sd(u)``,
``v' = v / sd(v)``; then ``P = u' + v'`` and ``M = u' - v'`` are jointly
normal with ``Var P = 2 (1 + rho)``, ``Var M = 2 (1 - rho)`` and
``Cov(P, M) = Var u' - Var v' = 0``: independent. Since ``u'v' = (P^2 - M^2) / 4``,

    n g_B,i = sd(u) sd(v) / 2 ((1 + rho) X - (1 - rho) Y),   X, Y ~ chi^2_n independent,

a difference of two independent scaled chi-squares. Hence
``g_B,i > 0`` iff ``X / (X + Y) > (1 - rho) / 2``, and ``X / (X + Y) ~ Beta(n/2, n/2)``:

    P(g_B,i > 0) = 1 - I_{(1 - rho)/2}(n/2, n/2) = I_{(1 + rho)/2}(n/2, n/2),
    E[sign g_B,i] = 2 I_{(1 + rho_i)/2}(n/2, n/2) - 1

(``I`` the regularised incomplete beta function; ``P(g_B,i = 0) = 0`` unless
``sd(u) sd(v) = 0``, when ``g_B,i = 0`` and the sign is 0). The same
representation gives ``Var(g_B,i) = (H_ii e^T H e + g_i^2) / n``
(``theory.quadratic.batch_gradient_variance``) and the cumulants
``kappa_r = (r - 1)!/2 ((1 + rho)^r + (-1)^r (1 - rho)^r)`` of ``u'v'``.

The Gaussian approximation ``erf(g_i / sqrt(2 Var))`` matches the mean and
the variance only; its error is the Edgeworth skewness and kurtosis terms,
``O(1/n)`` (about ``0.62 / n`` at most over ``rho``; ``1.2e-4`` at
``n = 5000``, where it equals THEORY.md's ``0.009 / sqrt(n)``).

**The ODE.** ``E[sign g_B]`` depends on ``e`` only through the direction of
its relevant part (``rho`` is homogeneous of degree 0), so the ODE is a
smoothed sign flow (section 8.1): the sign switch of each coordinate is
spread over ``|rho_i| <~ 1/sqrt(n)``. The state is ``e~`` (frequency
coordinates) and ``g = C^T H~ e~`` (section 8: rounding in ``g`` then stays
relative to the relevant error).

**Stopping rule** (derived). Let ``s = sqrt(e^T H e) = sqrt(2 R_s)`` and
``m(rho) = E[sign g_B]`` as a function of ``rho``. Then
``ds/dtau = -sum_i sqrt(H_ii) rho_i m(rho_i)``. For ``n >= 2``,
``m`` is concave on ``[0, 1]`` (its derivative is proportional to
``(x (1 - x))^(n/2 - 1)``, ``x = (1 + rho)/2``, decreasing for ``x > 1/2``) with
``m(1) = 1``, so ``rho m(rho) >= rho^2``; for ``n = 1``,
``m = (2/pi) arcsin rho``; the Gaussian form used for noise-free coordinates
(below) is concave with ``m(1) >= 2/pi``. So always ``rho m(rho) >= (2/pi) rho^2``, and
with ``sum_i H_ii rho_i^2 = |g|^2 / s^2 >= lambda_+`` (the smallest positive
eigenvalue of ``H``) and ``sqrt(H_ii) <= sqrt(h_max)``,

    ds/dtau <= -kappa,   kappa = (2/pi) lambda_+ / sqrt(h_max),   h_max = max_i H_ii.

The relevant error therefore vanishes within ``s / kappa`` more time, during
which each input coordinate moves at most 1 per unit time, so ``e~`` moves
at most ``sqrt(d) s / kappa`` in norm. The solve stops once this bound is
below ``drift_tol``; the prediction is constant after ``tau_end``.

**Noise-free coordinates** (``noise_mask`` False). The exact population
sign there makes the ODE a Filippov system: in ``d = 3`` the relevant error
slides on ``A = 0`` (section 4's phase 3) and an adaptive solver chatters
across the switch with ever smaller steps. Those coordinates therefore use
the tiny-noise limit: the Gaussian form at a very large batch
``noiseless_n``, integrated with an implicit solver. Its smoothing moves the
result by ``O(1 / sqrt(noiseless_n))`` (section 8.3's deficit scales like
``12.9 / sqrt(n)``: ``1.3e-5`` at the default ``1e12``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import diffrax
import jax
import jax.numpy as jnp
from jax.scipy.special import betainc, erf

from theory.quadratic import Quadratic, gradient_input, input_hessian
from theory.signal import to_freq

Array = jax.Array

TWO_OVER_PI = 2.0 / math.pi


def _correlation(hessian_freq: Array, e_freq: Array) -> tuple[Array, Array]:
    """``rho_i = g_i / sqrt(H_ii e^T H e)`` (clipped to ``[-1, 1]``) and
    whether the batch gradient coordinate is random at all (``H_ii e^T H e > 0``;
    otherwise ``g_B,i = 0`` exactly)."""
    g = gradient_input(hessian_freq, e_freq)
    ehe = jnp.einsum("...i,ij,...j->...", e_freq, hessian_freq, e_freq)
    denom = jnp.diagonal(input_hessian(hessian_freq)) * ehe[..., None]
    random = denom > 0
    rho = g / jnp.sqrt(jnp.where(random, denom, 1.0))
    return jnp.clip(jnp.where(random, rho, 0.0), -1.0, 1.0), random


def sign_mean(rho: Array, n) -> Array:
    """``2 I_{(1+rho)/2}(n/2, n/2) - 1``, written as
    ``sign(rho) (1 - 2 I_{(1-|rho|)/2}(n/2, n/2))`` (``I_x(a, a) = 1 - I_{1-x}(a, a)``):
    exactly odd, exactly 0 at ``rho = 0`` and the small tail computed directly."""
    a = jnp.asarray(n, rho.dtype) / 2
    return jnp.sign(rho) * (1.0 - 2.0 * betainc(a, a, (1.0 - jnp.abs(rho)) / 2))


def sign_mean_gaussian(rho: Array, n) -> Array:
    """``erf(g / sqrt(2 Var)) = erf(sqrt(n/2) rho / sqrt(1 + rho^2))``."""
    return erf(jnp.sqrt(jnp.asarray(n, rho.dtype) / 2) * rho / jnp.sqrt(1.0 + rho * rho))


def expected_sign(hessian_freq: Array, e_freq: Array, n) -> Array:
    """Exact ``E[sign g_B,i] = 2 I_{(1 + rho_i)/2}(n/2, n/2) - 1`` (section 8.3).

    ``g_B`` is the input-coordinate gradient of a fresh batch of ``n``
    samples ``x~ ~ N(0, H~)``; see the module docstring for the derivation
    (a difference of two independent scaled chi-squares). Where
    ``H_ii e^T H e = 0`` (e.g. ``e`` has no relevant part), ``g_B,i = 0``
    exactly and the result is 0.

    Args:
      hessian_freq: ``(d, d)`` population ``H~`` (the samples' covariance).
      e_freq: ``(..., d)`` error.
      n: batch size ``>= 1`` (scalar, or broadcasting against ``(..., d)``).
        ``jax.scipy.special.betainc`` is accurate to about ``1e-12`` up to
        ``n ~ 1e5``; use :func:`expected_sign_gaussian` far beyond.

    Returns:
      ``(..., d)`` expectations in ``[-1, 1]``, input coordinates.
    """
    rho, random = _correlation(hessian_freq, e_freq)
    return jnp.where(random, sign_mean(rho, n), 0.0)


def expected_sign_gaussian(hessian_freq: Array, e_freq: Array, n) -> Array:
    """The Gaussian approximation ``erf(g_i / sqrt(2 Var(g_B,i)))`` of
    :func:`expected_sign`, ``Var`` from ``batch_gradient_variance``
    (off by ``O(1/n)``, see the module docstring). Same arguments and returns."""
    rho, random = _correlation(hessian_freq, e_freq)
    return jnp.where(random, sign_mean_gaussian(rho, n), 0.0)


class OnlineODEPrediction(NamedTuple):
    """The averaged online signGD ODE's solution (section 8.3).

    Attributes:
      tau_end: where the solve stopped (``tau = lr t``): the stopping rule
        was met (``converged``) or ``tau_max`` was reached.
      e_freq_end: ``(d,)`` ``e~(tau_end)``.
      ts: ``(k,)`` the requested ``saveat_tau``.
      e_freq: ``(k, d)`` ``e~`` at ``ts``; equal to ``e_freq_end`` for
        ``ts > tau_end`` when converged (the remaining motion is below
        ``drift_tol``), NaN there otherwise.
      converged: the relevant error vanished: the remaining motion of ``e~``
        is at most ``drift_tol`` in norm.
      applicable: the solver succeeded and ``n >= 1``.
      num_steps: accepted solver steps.
    """

    tau_end: Array
    e_freq_end: Array
    ts: Array
    e_freq: Array
    converged: Array
    applicable: Array
    num_steps: Array


def online_signgd_velocity(hessian_freq: Array, e_freq: Array, n, noise_mask: Array, noiseless_n) -> Array:
    """``de~/dtau = -C E[sign g_B]``, with the tiny-noise Gaussian form on the
    input coordinates where ``noise_mask`` is False (module docstring)."""
    rho, random = _correlation(hessian_freq, e_freq)
    m = jnp.where(noise_mask, sign_mean(rho, n), sign_mean_gaussian(rho, noiseless_n))
    return -to_freq(jnp.where(random, m, 0.0))


def remaining_motion_bound(hessian_freq: Array, e_freq: Array) -> Array:
    """``sqrt(d) s / kappa``: how far ``e~`` can still move (module docstring).

    ``s = sqrt(e~^T H~ e~)``, ``kappa = (2/pi) lambda_+ / sqrt(max_i H_ii)``;
    ``lambda_+`` is the smallest eigenvalue of ``H~`` above
    ``d U lambda_max`` (rounding of ``eigvalsh``).
    """
    d = e_freq.shape[-1]
    lam = jnp.linalg.eigvalsh(hessian_freq)
    floor = d * jnp.finfo(lam.dtype).eps * jnp.max(lam)
    lam_plus = jnp.min(jnp.where(lam > floor, lam, jnp.inf))
    h_max = jnp.max(jnp.diagonal(input_hessian(hessian_freq)))
    kappa = TWO_OVER_PI * lam_plus / jnp.sqrt(h_max)
    s = jnp.sqrt(jnp.maximum(e_freq @ hessian_freq @ e_freq, 0.0))
    return math.sqrt(d) * s / kappa


def online_signgd_ode(
    quad: Quadratic,
    n,
    *,
    noise_mask: Optional[Array] = None,
    saveat_tau: Optional[Array] = None,
    tau_max: float = 100.0,
    drift_tol: float = 1e-8,
    noiseless_n: float = 1e12,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    solver: Optional[diffrax.AbstractSolver] = None,
    max_steps: int = 100_000,
    dt0: float = 1e-3,
) -> OnlineODEPrediction:
    """Solves ``de/dtau = -E[sign g_B]`` (online signGD, batch ``n``; section 8.3).

    Pure; jit it with ``n``, ``noise_mask`` etc. as arguments. The state is
    ``e~`` and ``g = C^T H~ e~``.

    Tolerances: ``rtol`` / ``atol`` bound the local error per step; the
    field is smooth on the scale ``|rho| ~ 1/sqrt(n)`` away from convergence, so
    at ``rtol = 1e-10`` the end point is reproducible to about ``1e-8``
    (halving or tightening the tolerances by 100 moves the paper setting's
    ``e~_2`` by less than that). ``atol = 1e-12`` sits below ``drift_tol``'s
    effect near the end, where the relevant error itself is tiny and only
    ``drift_tol`` matters (the stopping bound holds for any state).

    The field becomes stiff near convergence (the rate of the smoothed
    sliding is ``~ sqrt(n) / s``) and with noise-free coordinates, so the
    default solver is the implicit ``Kvaerno5``.

    Args:
      quad: population ``H~`` (the samples' covariance) and ``e~(0)``.
      n: batch size ``>= 1``.
      noise_mask: ``(d,)`` bool over INPUT coordinates; False: noise-free
        (population) sign there, in the tiny-noise limit ``noiseless_n``.
        Default all True.
      saveat_tau: ``(k,)`` increasing times to save ``e~`` at (default: none).
      tau_max: the solve stops here if not converged.
      drift_tol: stop once ``e~`` can move at most this much more (the
        stopping rule of the module docstring).
      noiseless_n: the batch size standing in for "no noise".
      rtol, atol: the step-size controller's tolerances.
      solver: a diffrax solver (default ``Kvaerno5``).
      max_steps: diffrax's step budget.

    Returns:
      An :class:`OnlineODEPrediction`.
    """
    h = quad.hessian_freq
    e0 = quad.e0_freq
    d = quad.dim
    if noise_mask is None:
        noise_mask = jnp.ones((d,), bool)
    ts = jnp.zeros((0,), e0.dtype) if saveat_tau is None else jnp.asarray(saveat_tau, e0.dtype)
    solver = diffrax.Tsit5() if solver is None else solver

    def field(tau, e_freq, args):
        return online_signgd_velocity(h, e_freq, n, noise_mask, noiseless_n)

    def settled(tau, e_freq, args, **kwargs):
        return remaining_motion_bound(h, e_freq) <= drift_tol

    subs = [diffrax.SubSaveAt(t1=True)]
    if ts.size:
        subs.append(diffrax.SubSaveAt(ts=ts))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        0.0,
        tau_max,
        dt0,
        e0,
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        event=diffrax.Event(settled),
        max_steps=max_steps,
        throw=False,
    )
    ok = (sol.result == diffrax.RESULTS.successful) | (sol.result == diffrax.RESULTS.event_occurred)
    tau_end = sol.ts[0][-1]
    e_end = sol.ys[0][-1]
    converged = ok & (remaining_motion_bound(h, e_end) <= drift_tol)
    if ts.size:
        # diffrax fills the times after a terminating event with inf.
        after = (ts > tau_end)[:, None]
        saved = jnp.where(after, jnp.where(converged, e_end, jnp.nan), sol.ys[1])
    else:
        saved = jnp.zeros((0, d), e0.dtype)
    applicable = ok & (jnp.asarray(n) >= 1)
    return OnlineODEPrediction(tau_end, e_end, ts, saved, converged, applicable, sol.stats["num_accepted_steps"])
