"""Sign gradient descent in closed form: d = 3, one irrelevant frequency.

The update is ``w <- w - lr sign(grad R_s(w))`` with the sign taken in input
(spatial) coordinates, which mixes frequencies. With spectrum
``(sigma_0, sigma_1, 0)`` the spatial population gradient is

    g = (A + B, A, A - B),   A = sigma_0^2 e~_0 / sqrt3,   B = sigma_1^2 e~_1 / sqrt2,

and with ``s = sign(g)`` the frequency-domain recursion is

    e~_0 <- e~_0 - lr/sqrt3 (s_0 + s_1 + s_2)
    e~_1 <- e~_1 - lr/sqrt2 (s_0 - s_2)
    e~_2 <- e~_2 - lr/sqrt6 (s_0 - 2 s_1 + s_2).

Phases (THEORY.md section 4; Ma, Pan and Farahmand, TMLR 2023, section 4):

1. ``|A| > |B|``: ``s = sign(A) (1,1,1)``; only ``e~_0`` moves, by
   ``sqrt3 lr`` per step towards 0, so ``|A|`` falls by ``h = sigma_0^2 lr``.
2. ``|A| < |B|``: ``s = (sign B, sign A, -sign B)``; ``e~_0`` moves by
   ``lr/sqrt3`` and ``e~_1`` by ``sqrt2 lr`` towards 0, while the irrelevant
   ``e~_2`` moves by ``sqrt(2/3) lr sign(e~_0)`` every step.
3. From ``t2``, when ``e~_0`` first changes sign after ``t1``, ``e~_2`` stays within
   ``sqrt(2/3) lr`` of ``e~_2(t2)``.

Exact discrete boundaries, for ``|A(0)| >= |B(0)|``:

    t1 = floor((|A(0)| - |B(0)|) / h) + 1   (t1 = 0 if |A(0)| < |B(0)|),
    t2 = t1 + K,   K = ceil(sqrt3 |e~_0(t1)| / lr),

and the drift is ``e~_2(t2) - e~_2(0) = sqrt(2/3) lr K sign(e~_0(t1))``, which
is ``sqrt2 |e~_0(t1)|`` in magnitude up to ``sqrt(2/3) lr``.

The closed form holds when phase 2 runs until ``e~_0`` reaches 0, which needs
``sigma_1^2 <= sigma_0^2 / 3`` (``|A|`` then falls at least as fast as
``|B|``) and that phase 1 does not jump over the band ``|A| < |B|``. Outside
these assumptions every function here reports ``applicable = False`` and
returns NaN or -1 instead of a number.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from theory.signal import Problem

Array = jax.Array

SQRT2 = 2.0**0.5
SQRT3 = 3.0**0.5
SQRT_2_3 = (2.0 / 3.0) ** 0.5

#: ``q = sigma_1^2 / sigma_0^2`` up to which the three-phase closed form holds
#: (``|A|`` falls at least as fast as ``|B|`` in phase 2) and above which the
#: sign flow's drift saturates at ``|e~_1(0)| / sqrt3`` (THEORY.md sections 4 and 8.1).
Q_BOUNDARY = 1.0 / 3.0


class Reason(enum.IntEnum):
    """Why the closed form does or does not apply (``SignGDPhases.reason``)."""

    APPLICABLE = 0
    BAD_SPECTRUM = 1  # not of the form (sigma_0 > 0, sigma_1 > 0, 0)
    RATIO = 2  # sigma_1^2 > sigma_0^2 / 3: |B| falls faster than |A| in phase 2
    NO_PHASE2 = 3  # phase 1 jumps over |A| < |B| (e.g. e~_1(0) = 0 or |B| tiny)
    BAD_LR = 4  # lr <= 0 or not finite


REASON_TEXT = {
    Reason.APPLICABLE: "the closed form applies",
    Reason.BAD_SPECTRUM: "needs spectrum (sigma_0 > 0, sigma_1 > 0, 0)",
    Reason.RATIO: "needs sigma_1^2 <= sigma_0^2 / 3",
    Reason.NO_PHASE2: "phase 1 never enters phase 2 (|A| jumps over |B|)",
    Reason.BAD_LR: "needs a finite lr > 0",
}


class NotApplicableError(ValueError):
    """Raised by :func:`require_applicable` outside the closed form's assumptions."""


class SignGDPhases(NamedTuple):
    """The closed-form phase structure of population signGD (d = 3).

    Attributes:
      applicable: whether the closed form holds (bool array).
      reason: a :class:`Reason` code (int array).
      t1: first step with ``|A| < |B|`` (-1 if not applicable).
      t2: first step after ``t1`` at which ``e~_0`` has the sign opposite to
        ``e~_0(t1)`` (-1 if not applicable). Usually the first sign change of
        ``e~_0``; but the last phase-1 step can jump over 0, and then
        ``e~_0(t1)`` already has the sign opposite to ``e~_0(0)``.
      e_freq_t1: ``e~(t1)`` (NaN if not applicable).
      e_freq_t2: ``e~(t2)`` (NaN if not applicable).
      irrelevant_drift: ``e~_2(t2) - e~_2(0)`` (NaN if not applicable).
      phase3_bound: ``sqrt(2/3) lr``, the bound on ``|e~_2(t) - e~_2(t2)|``
        for ``t >= t2``.
    """

    applicable: Array
    reason: Array
    t1: Array
    t2: Array
    e_freq_t1: Array
    e_freq_t2: Array
    irrelevant_drift: Array
    phase3_bound: Array


def signgd_gradient_parts(e_freq: Array, spectrum: Array) -> tuple[Array, Array]:
    """``A = sigma_0^2 e~_0 / sqrt3`` and ``B = sigma_1^2 e~_1 / sqrt2``.

    The spatial population gradient is ``(A + B, A, A - B)``. Batched over
    leading axes of ``e_freq`` (shape ``(..., 3)``).
    """
    s2 = jnp.square(spectrum)
    return s2[0] * e_freq[..., 0] / SQRT3, s2[1] * e_freq[..., 1] / SQRT2


def signgd_step_freq(e_freq: Array, spectrum: Array, lr) -> Array:
    """One population signGD step written in frequency coordinates (d = 3).

    Implements the recursion in the module docstring, with the sign of the
    spatial gradient ``(A + B, A, A - B)``.
    """
    a, b = signgd_gradient_parts(e_freq, spectrum)
    s0, s1, s2 = jnp.sign(a + b), jnp.sign(a), jnp.sign(a - b)
    delta = jnp.stack(
        [(s0 + s1 + s2) / SQRT3, (s0 - s2) / SQRT2, (s0 - 2.0 * s1 + s2) / (SQRT3 * SQRT2)],
        axis=-1,
    )
    return e_freq - lr * delta


def signgd_phases(problem: Problem, lr) -> SignGDPhases:
    """Phase boundaries and irrelevant drift of population signGD (d = 3).

    Pure and traceable: vmap it over models or learning rates. See the module
    docstring for the formulas and the assumptions.

    Args:
      problem: a :class:`Problem` with ``d = 3``.
      lr: learning rate.

    Returns:
      A :class:`SignGDPhases`.

    Raises:
      ValueError: if ``d != 3`` (a static shape check).
    """
    if problem.dim != 3:
        raise ValueError(f"the signGD closed form is for d = 3, got d = {problem.dim}")
    spectrum = problem.spectrum
    e0 = problem.e0_freq
    dtype = e0.dtype
    lr = jnp.asarray(lr, dtype)
    s2 = jnp.square(spectrum)
    a0, b0 = signgd_gradient_parts(e0, spectrum)
    h = s2[0] * lr  # |A| falls by h per phase-1 step

    # Phase 1: A_t = a0 - sign(a0) h t while |A_t| >= |B|; t1 is the first t with |A_t| < |B|.
    starts_in_2 = jnp.abs(a0) < jnp.abs(b0)
    t1 = jnp.where(starts_in_2, 0.0, jnp.floor((jnp.abs(a0) - jnp.abs(b0)) / h) + 1.0)
    e0_t1 = e0[0] - jnp.sign(e0[0]) * SQRT3 * lr * t1
    a_t1 = s2[0] * e0_t1 / SQRT3
    enters_2 = jnp.abs(a_t1) < jnp.abs(b0)

    # Phase 2: e~_0 falls by lr/sqrt3 a step, so it changes sign after K steps.
    k = jnp.ceil(SQRT3 * jnp.abs(e0_t1) / lr)
    sign0 = jnp.sign(e0_t1)
    sign1 = jnp.sign(e0[1])
    e_t1 = jnp.stack([e0_t1, e0[1], e0[2]])
    e_t2 = e_t1 + k * lr * jnp.stack([-sign0 / SQRT3, -sign1 * SQRT2, sign0 * SQRT_2_3])

    good_spectrum = (spectrum[0] > 0) & (spectrum[1] > 0) & (spectrum[2] == 0)
    good_lr = jnp.isfinite(lr) & (lr > 0)
    ratio_ok = s2[1] <= s2[0] * Q_BOUNDARY
    reason = jnp.select(
        [~good_lr, ~good_spectrum, ~ratio_ok, ~enters_2],
        [Reason.BAD_LR, Reason.BAD_SPECTRUM, Reason.RATIO, Reason.NO_PHASE2],
        Reason.APPLICABLE,
    ).astype(jnp.int32)
    ok = reason == Reason.APPLICABLE
    nan = jnp.full((), jnp.nan, dtype)
    int_t = jnp.int64 if dtype == jnp.float64 else jnp.int32
    return SignGDPhases(
        applicable=ok,
        reason=reason,
        t1=jnp.where(ok, t1, -1).astype(int_t),
        t2=jnp.where(ok, t1 + k, -1).astype(int_t),
        e_freq_t1=jnp.where(ok, e_t1, nan),
        e_freq_t2=jnp.where(ok, e_t2, nan),
        irrelevant_drift=jnp.where(ok, e_t2[2] - e0[2], nan),
        phase3_bound=SQRT_2_3 * lr,
    )


def signgd_error(problem: Problem, lr) -> Callable[[Array], Array]:
    """Returns ``t -> e~(t)``, the exact population signGD error for ``0 <= t <= t2``.

    Phase 1 (``t <= t1``): ``e~_0(t) = e~_0(0) - sign(e~_0(0)) sqrt3 lr t``.
    Phase 2 (``t1 <= t <= t2``), with ``u = t - t1`` and ``s_k = sign e~_k(t1)``:

        e~_0 = e~_0(t1) - s_0 lr u / sqrt3,
        e~_1 = e~_1(t1) - s_1 sqrt2 lr u,
        e~_2 = e~_2(0) + s_0 sqrt(2/3) lr u.

    The result is NaN for ``t > t2`` (phase 3 is only bounded, see
    :class:`SignGDPhases`) and everywhere when the closed form does not apply.
    """
    ph = signgd_phases(problem, lr)
    e0 = problem.e0_freq
    lr = jnp.asarray(lr, e0.dtype)

    def e_freq_at(t: Array) -> Array:
        t = jnp.asarray(t, e0.dtype)[..., None]
        t1 = ph.t1.astype(e0.dtype)
        phase1 = e0 + jnp.array([-SQRT3, 0.0, 0.0], e0.dtype) * jnp.sign(e0[0]) * lr * jnp.minimum(t, t1)
        s = jnp.sign(ph.e_freq_t1)
        rate = jnp.stack([-s[0] / SQRT3, -s[1] * SQRT2, s[0] * SQRT_2_3])
        e = jnp.where(t <= t1, phase1, ph.e_freq_t1 + rate * lr * (t - t1))
        valid = ph.applicable & (t >= 0) & (t <= ph.t2.astype(e0.dtype))
        return jnp.where(valid, e, jnp.nan)

    return e_freq_at


def signgd_drift_first_order(problem: Problem) -> Array:
    """First-order (in lr) irrelevant drift ``e~_2(t2) - e~_2(0)``.

    Phase 2 moves ``e~_2`` by ``+sqrt(2/3) lr sign(e~_0)``, so the drift is
    ``sqrt2 e~_0(t1)`` up to ``O(lr)``. Phase 1 moves ``e~_0`` towards 0 in
    steps of ``sqrt3 lr`` and stops at the first step below
    ``beta = sqrt3 |B(0)| / sigma_0^2``, so the drift is ``sign(e~_0(0)) sqrt2 beta``:

    * starting in phase 1, ``|e~_0(t1)| ~ sqrt(3/2) (sigma_1^2/sigma_0^2) |e~_1(0)|``,
      so the drift is ``sqrt3 (sigma_1^2/sigma_0^2) |e~_1(0)|``;
    * starting in phase 2 (``t1 = 0``), it is ``sqrt2 |e~_0(0)|``.

    The exact discrete drift differs from this by at most
    ``(sqrt(2/3) + sqrt6) lr``: ``sqrt(2/3) lr`` from rounding ``K`` up, and
    ``sqrt6 lr`` because ``|A(t1)|`` lies within ``h = sigma_0^2 lr`` below ``|B|``.
    """
    e0 = problem.e0_freq
    s2 = jnp.square(problem.spectrum)
    a0, b0 = signgd_gradient_parts(e0, problem.spectrum)
    from_1 = SQRT3 * (s2[1] / s2[0]) * jnp.abs(e0[1])
    from_2 = SQRT2 * jnp.abs(e0[0])
    return jnp.sign(e0[0]) * jnp.where(jnp.abs(a0) < jnp.abs(b0), from_2, from_1)


def require_applicable(phases: SignGDPhases) -> SignGDPhases:
    """Raises :class:`NotApplicableError` naming the reason if the closed form
    does not apply; returns ``phases`` unchanged otherwise (not traceable)."""
    reason = Reason(int(phases.reason))
    if reason != Reason.APPLICABLE:
        raise NotApplicableError(f"signGD closed form not applicable: {REASON_TEXT[reason]}")
    return phases


class SignGDSettled(NamedTuple):
    """Where population signGD settles after phase 3 (d = 3).

    For ``t >= t_settled``, ``|e~_k(t) - e_freq_k| <= bound_k`` for each ``k``.

    Attributes:
      t_settled: ``t2 + ceil(|e~_1(t2)| / (sqrt2 lr))`` (-1 if not applicable).
      e_freq: ``(0, 0, e~_2(t2))`` (NaN if not applicable).
      bound: ``(sqrt3 lr, sqrt2 lr / (3 q), sqrt(2/3) lr)``, ``q = sigma_1^2/sigma_0^2``.
    """

    t_settled: Array
    e_freq: Array
    bound: Array


def signgd_settled(problem: Problem, lr) -> SignGDSettled:
    """The long-time error of population signGD, up to ``O(lr)``.

    After ``t2``, ``e~_0`` oscillates within ``sqrt3 lr`` of 0 and ``e~_2``
    within ``sqrt(2/3) lr`` of ``e~_2(t2)`` (phase 3). ``e~_1`` keeps falling
    by ``sqrt2 lr`` on each phase-2 step until it is within a step of 0, or
    until ``|B| < sigma_0^2 lr / 3``: then ``e~_0`` two-cycles by phase-1 steps
    (``|A| > |B|`` on both sides of 0) and ``e~_1`` freezes with
    ``|e~_1| < sqrt2 lr / (3 q)``, which is at least ``sqrt2 lr`` for
    ``q <= 1/3``. It gets there by ``t_settled``. So signGD ends at
    ``e~ ~ (0, 0, e~_2(t2))``: zero standard risk to ``O(lr^2)``, and the
    irrelevant drift kept for ever.

    Args:
      problem: a :class:`Problem` with ``d = 3``.
      lr: learning rate.

    Returns:
      A :class:`SignGDSettled`; NaN and -1 where :func:`signgd_phases` does
      not apply.
    """
    ph = signgd_phases(problem, lr)
    dtype = problem.e0_freq.dtype
    lr = jnp.asarray(lr, dtype)
    q = jnp.square(problem.spectrum[1] / problem.spectrum[0])
    t_settled = ph.t2 + jnp.ceil(jnp.abs(ph.e_freq_t2[1]) / (SQRT2 * lr)).astype(ph.t2.dtype)
    e_freq = jnp.stack([jnp.zeros((), dtype), jnp.zeros((), dtype), ph.e_freq_t2[2]])
    return SignGDSettled(
        t_settled=jnp.where(ph.applicable, t_settled, -1),
        e_freq=jnp.where(ph.applicable, e_freq, jnp.nan),
        bound=jnp.stack([SQRT3 * lr, SQRT2 * lr / (3.0 * q), SQRT_2_3 * lr]),
    )
