"""Exact event-driven population signGD in any dimension ``d``.

The iteration (input coordinates, ``C = dct_basis(d)``, ``s2 = sigma^2``) is

    w <- w - lr sign(g),   g = C^T diag(s2) (C w - w~*),

with the sign evaluated at every integer step. Between two sign changes the
sign vector ``s`` is constant, so from an event at ``t0``

    w(t) = w(t0) - lr (t - t0) s,
    g(t) = g(t0) + (t - t0) r,     r = -lr M s,   M = C^T diag(s2) C,

each spatial gradient component is linear in ``t``. The sign vector used at
step ``t0 + k`` differs from ``s`` at the first integer ``k >= 1`` with
``sign(g_i(t0) + k r_i) != s_i`` for some ``i``:

* ``s_i != 0`` and ``r_i`` of sign ``-s_i``: ``k_i = ceil(-g_i(t0) / r_i)``. An
  exact integer crossing lands on ``g_i = 0``, whose sign ``0`` already
  differs from ``s_i``, so the flip is *at* that step (``ceil``, not
  ``floor + 1``);
* ``s_i = 0`` (``g_i(t0) == 0``) and ``r_i != 0``: ``k_i = 1``;
* otherwise component ``i`` never flips (``k_i = inf``).

The solver jumps to ``t0 + min_i k_i``, recomputes ``g`` there *from w*
(exactly as the iteration does), and repeats. To stay on the safe side of
rounding in the predicted ``k`` it jumps to ``ceil(q (1 - 32 d U))``
(``q = -g_i/r_i``, ``U = 2^-53`` in float64); if the recomputed sign vector
is unchanged at the landing step (a *re-check*, only possible within a few
roundings of a tie), no event is recorded and the current segment continues
from the same origin. Each segment computes ``w`` by one multiply-add,
``fl(w(t0) - fl(lr (t - t0)) s)`` (``s`` in ``{-1, 0, 1}``), instead of the
iteration's ``t - t0`` roundings.

The *oscillating regime*: once the dynamics reach the sign-flipping limit
cycle (e.g. ``e~_0`` alternating around 0 after ``t2`` in THEORY.md section
4), there is an event at every step. When ``osc_window`` consecutive steps
``t, t+1, ..., t + osc_window - 1`` all carry an event, ``t`` is reported as
``t_oscillating`` and (with ``stop_on_oscillation``) the solver stops there
rather than stepping one by one.

Everything is pure and traceable (``lax.while_loop``), vmap-able over models
and learning rates (``d`` and ``max_events`` are static).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from theory.signal import Problem, dct_basis

Array = jax.Array


class EventResult(NamedTuple):
    """Output of :func:`signgd_events`.

    Attributes:
      e_freq_final: ``e~(t_final) = C w(t_final) - w~*``, shape ``(d,)``.
      t_final: the step ``e_freq_final`` belongs to: ``steps``, unless the
        solver stopped early (oscillation detected with
        ``stop_on_oscillation``, or ``max_events`` hit), in which case it is
        the last event time.
      t_events: ``(max_events,)`` steps at which the sign vector changes
        (``sign g(t) != sign g(t - 1)``), in increasing order, padded with -1.
      n_events: number of valid entries of ``t_events``.
      oscillating: whether ``osc_window`` consecutive steps each carried an
        event (the oscillating regime was entered by ``t_final``).
      t_oscillating: first step of that run of events, or -1.
      truncated: whether the solver stopped because ``max_events`` was hit
        before ``steps`` (and before any oscillation stop).
    """

    e_freq_final: Array
    t_final: Array
    t_events: Array
    n_events: Array
    oscillating: Array
    t_oscillating: Array
    truncated: Array


class _Segments(NamedTuple):
    """Piecewise-linear trajectory: segment ``j`` starts at ``t[j]`` at
    ``w[j]`` and moves by ``-lr sign[j]`` per step; padded ``t`` is ``big``."""

    t: Array
    w: Array
    sign: Array
    n: Array


def _int_dtype(dtype):
    return jnp.int64 if dtype == jnp.float64 else jnp.int32


def _solve(problem: Problem, lr, steps, max_events: int, osc_window: int, stop_on_oscillation: bool):
    d = problem.dim
    dtype = problem.e0_freq.dtype
    it = _int_dtype(dtype)
    c = dct_basis(d, dtype)
    s2 = jnp.square(problem.spectrum)
    w_star = problem.w_star_freq
    lr = jnp.asarray(lr, dtype)
    steps = jnp.asarray(steps, it)
    slack = 32.0 * d * jnp.finfo(dtype).eps / 2.0
    big = jnp.iinfo(it).max

    def grad(w):
        return c.T @ (s2 * (c @ w - w_star))

    def next_step(g, s):
        """Steps until the predicted first sign change, ``>= 1``, as a float (inf: never)."""
        r = -lr * (c.T @ (s2 * (c @ s)))
        q = -g / r
        crossing = (s != 0) & (r * s < 0)
        k = jnp.where(crossing, jnp.ceil(q * (1.0 - slack)), jnp.inf)
        k = jnp.where((s == 0) & (r != 0), 1.0, k)
        return jnp.maximum(jnp.min(k), 1.0)

    w0 = c.T @ problem.w0_freq
    s0 = jnp.sign(grad(w0))
    seg_t = jnp.full((max_events + 1,), big, it).at[0].set(0)
    seg_w = jnp.zeros((max_events + 1, d), dtype).at[0].set(w0)
    seg_s = jnp.zeros((max_events + 1, d), dtype).at[0].set(s0)
    t_events = jnp.full((max_events,), -1, it)

    def jump(t_from, k):
        # k is a float >= 1, maybe inf: clamp before the integer cast.
        return t_from + jnp.minimum(k, (steps + 1 - t_from).astype(dtype)).astype(it)

    # state: (t_check, t_origin, w_origin, s, n_events, last_event, run_start,
    #         run_len, osc, t_osc, segment and event buffers)
    init = (
        jump(jnp.zeros((), it), next_step(grad(w0), s0)),
        jnp.zeros((), it),
        w0,
        s0,
        jnp.zeros((), jnp.int32),
        jnp.full((), -2, it),
        jnp.full((), -1, it),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), bool),
        jnp.full((), -1, it),
        seg_t,
        seg_w,
        seg_s,
        t_events,
    )

    def cond(st):
        t_check, _, _, _, n_ev, _, _, _, osc, _, *_ = st
        go = (t_check <= steps) & (n_ev < max_events)
        if stop_on_oscillation:
            go = go & ~osc
        return go

    def body(st):
        t_check, t_o, w_o, s, n_ev, last, run_start, run_len, osc, t_osc, seg_t, seg_w, seg_s, t_events = st
        w = w_o - (lr * (t_check - t_o).astype(dtype)) * s
        g = grad(w)
        s_new = jnp.sign(g)
        changed = jnp.any(s_new != s)
        consecutive = t_check == last + 1
        run_len_n = jnp.where(consecutive, run_len + 1, 1)
        run_start_n = jnp.where(consecutive, run_start, t_check)
        osc_n = osc | (run_len_n >= osc_window)
        idx = n_ev + 1
        seg_t = seg_t.at[idx].set(jnp.where(changed, t_check, seg_t[idx]))
        seg_w = seg_w.at[idx].set(jnp.where(changed, w, seg_w[idx]))
        seg_s = seg_s.at[idx].set(jnp.where(changed, s_new, seg_s[idx]))
        t_events = t_events.at[n_ev].set(jnp.where(changed, t_check, t_events[n_ev]))
        keep = lambda new, old: jnp.where(changed, new, old)
        return (
            jump(t_check, next_step(g, s_new)),
            keep(t_check, t_o),
            keep(w, w_o),
            keep(s_new, s),
            n_ev + changed.astype(jnp.int32),
            keep(t_check, last),
            keep(run_start_n, run_start),
            keep(run_len_n, run_len),
            osc | (changed & osc_n),
            jnp.where(~osc & changed & osc_n, run_start_n, t_osc),
            seg_t,
            seg_w,
            seg_s,
            t_events,
        )

    t_check, t_o, w_o, s, n_ev, last, run_start, run_len, osc, t_osc, seg_t, seg_w, seg_s, t_events = jax.lax.while_loop(
        cond, body, init
    )
    finished = t_check > steps
    t_final = jnp.where(finished, steps, t_o)
    w_final = w_o - (lr * (t_final - t_o).astype(dtype)) * s
    result = EventResult(
        e_freq_final=c @ w_final - w_star,
        t_final=t_final,
        t_events=t_events,
        n_events=n_ev,
        oscillating=osc,
        t_oscillating=t_osc,
        truncated=~finished & ~(osc & stop_on_oscillation),
    )
    return result, _Segments(seg_t, seg_w, seg_s, n_ev + 1)


@partial(jax.jit, static_argnames=("max_events", "osc_window", "stop_on_oscillation"))
def signgd_events(
    problem: Problem,
    lr,
    steps,
    max_events: int = 4096,
    osc_window: int = 8,
    stop_on_oscillation: bool = True,
) -> EventResult:
    """Population signGD by jumping from one sign change to the next.

    Equals ``steps`` iterations of ``w <- w - lr sign(C^T diag(sigma^2)(C w - w~*))``
    up to float64 rounding, except within a few roundings of a tie (a gradient
    component within rounding of 0 at an integer step), where the sign itself
    is decided by rounding (module docstring).

    Args:
      problem: a :class:`Problem` (any ``d``).
      lr: learning rate (> 0).
      steps: number of steps (may be traced).
      max_events: size of the event buffer (static); the solver stops and
        sets ``truncated`` when it is full.
      osc_window: ``K``; an event at each of ``K`` consecutive steps marks the
        oscillating regime (static). With ``K`` too small a transient run of
        one-step events is mistaken for it; ``t_oscillating`` is then early.
      stop_on_oscillation: stop at the ``K``-th consecutive event (static);
        otherwise continue event by event (one per step) until ``steps`` or
        ``max_events``.

    Returns:
      An :class:`EventResult`. Note the oscillation is only *detected*: the
      ``K``-th consecutive event need not be a true limit cycle.
    """
    return _solve(problem, lr, steps, max_events, osc_window, stop_on_oscillation)[0]


@partial(jax.jit, static_argnames=("max_events", "osc_window", "stop_on_oscillation"))
def signgd_event_trajectory(
    problem: Problem,
    lr,
    times,
    max_events: int = 4096,
    osc_window: int = 8,
    stop_on_oscillation: bool = True,
) -> Array:
    """``e~(t) = C w(t) - w~*`` of population signGD at integer ``times``.

    Runs :func:`signgd_events` up to ``max(times)`` and evaluates the
    piecewise-linear motion: for ``t`` in the segment that starts at event
    ``t_j`` with sign vector ``s_j``, ``w(t) = fl(w(t_j) - fl(lr (t - t_j)) s_j)``.

    Args:
      problem: a :class:`Problem`.
      lr: learning rate.
      times: integer array of steps ``>= 0`` (any shape).
      max_events, osc_window, stop_on_oscillation: as in :func:`signgd_events`.

    Returns:
      ``times.shape + (d,)`` errors; NaN for times after ``t_final`` (the
      solver stopped at the oscillation or at ``max_events``).
    """
    dtype = problem.e0_freq.dtype
    it = _int_dtype(dtype)
    times = jnp.asarray(times, it)
    res, seg = _solve(problem, lr, jnp.max(times), max_events, osc_window, stop_on_oscillation)
    c = dct_basis(problem.dim, dtype)
    flat = times.reshape(-1)
    j = jnp.searchsorted(seg.t, flat, side="right") - 1
    j = jnp.clip(j, 0, seg.n - 1)
    w = seg.w[j] - (jnp.asarray(lr, dtype) * (flat - seg.t[j]).astype(dtype))[:, None] * seg.sign[j]
    e = w @ c.T - problem.w_star_freq
    e = jnp.where(((flat >= 0) & (flat <= res.t_final))[:, None], e, jnp.nan)
    return e.reshape(times.shape + (problem.dim,))
