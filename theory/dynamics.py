"""The linear dynamics, once: a pure step, a run over record steps, observers.

API (every function is pure, jit- and vmap-able):

* :class:`State` ``(t, e, opt_state)``: the step counter, the error and the
  optimizer's state.
* Gradient sources ``gradient(e_freq, t) -> g_freq`` (:data:`Gradient`):
  :func:`population_gradient` (``H~ e~``, from a spectrum or a Hessian),
  :func:`online_gradient` (a fresh explicit batch from ``fold_in(key, t)``),
  :func:`fixed_gradient` (a training set: the population problem on ``H~_S``).
* Steps ``step(state) -> state``:
  :func:`optax_step` (any optax optimizer, ``e`` in input coordinates) and
  :func:`signgd_freq_step` (the exact d = 3 signGD recursion, ``e`` in
  frequency coordinates). :func:`init_state` builds the first state of
  :func:`optax_step`.
* :func:`run` ``(step, state0, record_steps, save, observer) ->
  (final_state, saved, observed)``: ``saved`` is ``save(state)`` at each
  record step, ``observed`` what ``observer`` made of ``save(state)`` at
  *every* step. :func:`save_e_freq` is the usual ``save`` (``e~ = C e``).
* Observers :class:`Observer` ``(init, update, finish)``: :func:`phase_times`
  (the observed signGD phase times in d = 3, result :class:`PhaseTimes`);
  :func:`observe_records` runs an observer over saved records instead.
* :func:`optax_trajectory`: ``w~`` at record steps of one optax optimizer on
  the population gradient of a :class:`~theory.signal.Problem` (what the
  sweeps vmap over problems and learning rates).

The optax step (THEORY.md section 8), with ``C`` the DCT-II matrix:

    e~ = C e,   g = C^T g~(e~, t),
    upd, s <- optimizer.update(g, s, e + w*),   e <- e + upd.

The state is the error ``e = w - w*`` in input coordinates, where the
optimizers act (the sign of signGD is taken there); iterating on ``e``
rather than ``w`` keeps float32 rounding relative to ``|e|``, which goes to
0, instead of ``|w|``. The optimizer sees the weights ``w = e + w*`` as its
``params`` (unused by GD, signGD, Adam and RMSProp). Traced learning rates or
hyper-parameters come with the optimizer (build it inside the traced
function, or use ``optax.inject_hyperparams``).

The signGD recursion (THEORY.md section 4, :func:`theory.signgd.signgd_step_freq`)
is the same population dynamics for signGD in d = 3, written in frequency
coordinates: its state's ``e`` is ``e~``, and its ``save`` is the identity.

``theory`` never imports ``sims``: the fast seeds-last engine
(``sims.linear.engine``) is checked against this core in ``tests/``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from theory.signal import Problem, dct_basis
from theory.signgd import signgd_gradient_parts, signgd_step_freq

Array = jax.Array
PyTree = Any

#: ``gradient(e_freq, t) -> g_freq``: the gradient in frequency coordinates
#: at the error ``e~`` and step ``t`` (an integer array).
Gradient = Callable[[Array, Array], Array]


class State(NamedTuple):
    """The state of one run (a pytree).

    Attributes:
      t: steps taken, an int32 scalar array.
      e: ``(d,)`` the error ``w - w*``; input coordinates for
        :func:`optax_step`, frequency coordinates for :func:`signgd_freq_step`.
      opt_state: the optimizer's state (``()`` for :func:`signgd_freq_step`).
    """

    t: Array
    e: Array
    opt_state: PyTree


Step = Callable[[State], State]


# --------------------------------------------------------------------------
# Gradient sources.


def population_gradient(spectrum_or_hessian: Array) -> Gradient:
    """The exact gradient ``g~ = H~ e~``.

    Args:
      spectrum_or_hessian: a ``(d,)`` spectrum ``sigma`` (``H~ =
        diag(sigma^2)``, applied element-wise: ``g~ = sigma^2 e~``) or a
        ``(d, d)`` Hessian ``H~`` (applied as ``H~ @ e~``).

    Returns:
      A :data:`Gradient` that ignores ``t``.
    """
    m = jnp.asarray(spectrum_or_hessian)
    if m.ndim == 1:
        s2 = jnp.square(m)
        return lambda e_freq, t: s2 * e_freq
    if m.ndim == 2:
        return lambda e_freq, t: m @ e_freq
    raise ValueError(f"expected a (d,) spectrum or a (d, d) Hessian, got shape {m.shape}")


def online_gradient(spectrum: Array, batch_size: int, key: Array) -> Gradient:
    """A fresh batch of ``n`` Gaussian samples at every step.

    ``X~_t = Z_t diag(sigma)``, ``Z_t`` standard normal ``(n, d)`` from
    ``fold_in(key, t)``, and ``g~ = X~_t^T X~_t e~ / n``: step ``t``'s batch
    depends only on ``key`` and ``t`` (not on record steps, nor on what is
    vmapped beside the run).

    Args:
      spectrum: ``(d,)`` standard deviations ``sigma`` of the samples.
      batch_size: ``n >= 1`` (static).
      key: the PRNG key of the batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sigma = jnp.asarray(spectrum)

    def gradient(e_freq: Array, t: Array) -> Array:
        z = jax.random.normal(jax.random.fold_in(key, t), (batch_size, sigma.shape[-1]), e_freq.dtype)
        x = z * sigma
        return x.T @ (x @ e_freq) / batch_size

    return gradient


def fixed_gradient(x_freq: Array) -> Gradient:
    """A fixed training set ``X~`` ``(n, d)``: the population problem on
    ``H~_S = X~^T X~ / n`` (THEORY.md section 8.4)."""
    return population_gradient(x_freq.T @ x_freq / x_freq.shape[0])


# --------------------------------------------------------------------------
# Steps.


def init_state(optimizer: optax.GradientTransformation, e0: Array, w_star: Optional[Array] = None) -> State:
    """The state at ``t = 0`` of :func:`optax_step`.

    Args:
      optimizer: the optax transformation.
      e0: ``(d,)`` start error ``w(0) - w*``, input coordinates.
      w_star: ``(d,)`` target, input coordinates (the optimizer is
        initialised at ``w(0) = e0 + w_star``); ``None``: zero.
    """
    w0 = e0 if w_star is None else e0 + w_star
    return State(jnp.zeros((), jnp.int32), e0, optimizer.init(w0))


def optax_step(
    optimizer: optax.GradientTransformation,
    gradient: Gradient,
    dct: Array,
    w_star: Optional[Array] = None,
) -> Step:
    """One step of an optax optimizer, the error in input coordinates.

    ``g = C^T g~(C e, t)``; ``upd, s = optimizer.update(g, s, e + w*)``;
    ``e <- optax.apply_updates(e, upd)``; ``t <- t + 1``.

    Args:
      optimizer: any optax transformation (it acts in input coordinates).
      gradient: a :data:`Gradient`.
      dct: ``(d, d)`` the DCT-II matrix ``C`` (:func:`theory.signal.dct_basis`).
      w_star: ``(d,)`` the target in input coordinates, ``C^T w~*``, for the
        optimizer's ``params`` argument ``w = e + w*``; ``None``: ``params = e``
        (the same updates for optimizers that ignore ``params``).

    Returns:
      ``step(state) -> state``.
    """

    def step(state: State) -> State:
        e = state.e
        g = dct.T @ gradient(dct @ e, state.t)
        params = e if w_star is None else e + w_star
        upd, opt_state = optimizer.update(g, state.opt_state, params)
        return State(state.t + 1, optax.apply_updates(e, upd), opt_state)

    return step


def signgd_freq_step(spectrum: Array, lr) -> Step:
    """Population signGD in d = 3 as the exact frequency recursion
    :func:`theory.signgd.signgd_step_freq`: ``state.e`` is ``e~``.

    Args:
      spectrum: ``(3,)`` ``(sigma_0, sigma_1, 0)``.
      lr: the learning rate (may be traced); cast to the state's dtype.
    """

    def step(state: State) -> State:
        e_freq = state.e
        return State(state.t + 1, signgd_step_freq(e_freq, spectrum, jnp.asarray(lr, e_freq.dtype)), state.opt_state)

    return step


def save_e_freq(dct: Array) -> Callable[[State], Array]:
    """``save(state) = C e``: the frequency error of an :func:`optax_step` state."""
    return lambda state: dct @ state.e


def save_e(state: State) -> Array:
    """``save(state) = e``: the error in the step's own coordinates (e.g.
    ``e~`` for :func:`signgd_freq_step`)."""
    return state.e


# --------------------------------------------------------------------------
# Observers.


class Observer(NamedTuple):
    """A reduction over the saved quantity at every step (optax-like).

    Attributes:
      init: ``init(x) -> obs``, empty observations for quantities shaped
        like ``x`` (``x`` itself is not observed).
      update: ``update(obs, t, x) -> obs``: observes ``x = save(state)`` at
        step ``t``; called once for each step, in increasing order.
      finish: ``finish(obs) -> result``.
    """

    init: Callable[[PyTree], PyTree]
    update: Callable[[PyTree, Array, PyTree], PyTree]
    finish: Callable[[PyTree], PyTree] = lambda obs: obs


def _nothing() -> Observer:
    return Observer(lambda x: (), lambda obs, t, x: obs)


class PhaseTimes(NamedTuple):
    """What :func:`phase_times` observes of a d = 3 signGD run.

    Attributes:
      t1: the first ``t`` with ``|A(t)| < |B(t)|`` (phase 2 starts); -1 if none.
      t2: the first ``t > t1`` at which ``e~_0`` has the sign opposite to
        ``e~_0(t1)`` (phase 3 starts); -1 if none.
      e_freq_t2: ``e~(t2)`` (NaN where ``t2 = -1``).
      phase3_dev: ``max_{t >= t2} |e~_2(t) - e~_2(t2)|`` (NaN where ``t2 = -1``).
      e1_window_range: ``max - min`` of ``e~_1(t)`` over ``t >= t_window``
        (NaN if no step was in the window).
      e_freq_probe: ``e~(t_probe)`` (NaN if ``t_probe`` was not observed).
    """

    t1: Array
    t2: Array
    e_freq_t2: Array
    phase3_dev: Array
    e1_window_range: Array
    e_freq_probe: Array


class _PhaseObs(NamedTuple):
    t1: Array
    sign_t1: Array  # sign e~_0(t1)
    t2: Array
    e_t2: Array
    e_probe: Array
    dev: Array
    e1_lo: Array
    e1_hi: Array


def phase_times(spectrum: Array, t_probe=-1, t_window=np.iinfo(np.int32).max) -> Observer:
    """The observed phases of d = 3 signGD (THEORY.md section 4), from ``e~(t)``.

    With ``A = sigma_0^2 e~_0 / sqrt3`` and ``B = sigma_1^2 e~_1 / sqrt2``
    (:func:`theory.signgd.signgd_gradient_parts`): ``t1`` is the first
    observed ``t`` with ``|A| < |B|``; ``t2`` the first observed ``t > t1``
    with ``sign e~_0(t) = -sign e~_0(t1)``; then ``e~(t2)``, the phase-3
    deviation ``max_{t >= t2} |e~_2(t) - e~_2(t2)|`` (the theory bounds it
    by ``sqrt(2/3) lr`` for ``sigma_1^2 <= sigma_0^2 / 3``), the range of
    ``e~_1`` over ``t >= t_window`` (whether the run has settled, e.g.
    ``t_window = theory.phase_bounds.settle_bound``) and ``e~(t_probe)``.
    Exact when every step is observed (inside :func:`run`, or over records
    holding every step); over sparser records, to the records' spacing.

    The saved quantity must be ``e~`` ``(3,)`` (:func:`save_e_freq` or
    :func:`save_e` of :func:`signgd_freq_step`), computed in its dtype.

    Args:
      spectrum: ``(3,)``.
      t_probe: the step at which to keep ``e~`` (-1: none); may be traced.
      t_window: the first step of the settling window; may be traced.

    Returns:
      An :class:`Observer` whose result is a :class:`PhaseTimes`.
    """

    def init(e_freq: Array) -> _PhaseObs:
        dtype = e_freq.dtype
        minus1 = jnp.asarray(-1, jnp.int32)
        nan3 = jnp.full(e_freq.shape, jnp.nan, dtype)
        inf = jnp.asarray(jnp.inf, dtype)
        return _PhaseObs(t1=minus1, sign_t1=jnp.zeros((), dtype), t2=minus1, e_t2=nan3, e_probe=nan3,
                         dev=jnp.zeros((), dtype), e1_lo=inf, e1_hi=-inf)

    def update(c: _PhaseObs, t: Array, e: Array) -> _PhaseObs:
        t = jnp.asarray(t, jnp.int32)
        a, b = signgd_gradient_parts(e, spectrum)
        sign0 = jnp.sign(e[0])
        new_t1 = (c.t1 < 0) & (jnp.abs(a) < jnp.abs(b))
        t1 = jnp.where(new_t1, t, c.t1)
        sign_t1 = jnp.where(new_t1, sign0, c.sign_t1)
        new_t2 = (c.t2 < 0) & (t1 >= 0) & (t > t1) & (sign0 == -sign_t1)
        t2 = jnp.where(new_t2, t, c.t2)
        e_t2 = jnp.where(new_t2, e, c.e_t2)
        dev = jnp.where(t2 >= 0, jnp.maximum(c.dev, jnp.abs(e[2] - e_t2[2])), c.dev)
        in_window = t >= t_window
        return _PhaseObs(
            t1=t1, sign_t1=sign_t1, t2=t2, e_t2=e_t2,
            e_probe=jnp.where(t == t_probe, e, c.e_probe),
            dev=dev,
            e1_lo=jnp.where(in_window, jnp.minimum(c.e1_lo, e[1]), c.e1_lo),
            e1_hi=jnp.where(in_window, jnp.maximum(c.e1_hi, e[1]), c.e1_hi),
        )

    def finish(c: _PhaseObs) -> PhaseTimes:
        return PhaseTimes(
            t1=c.t1,
            t2=c.t2,
            e_freq_t2=c.e_t2,
            phase3_dev=jnp.where(c.t2 >= 0, c.dev, jnp.nan),
            e1_window_range=jnp.where(c.e1_hi >= c.e1_lo, c.e1_hi - c.e1_lo, jnp.nan),
            e_freq_probe=c.e_probe,
        )

    return Observer(init, update, finish)


def observe_records(observer: Observer, ts: Array, xs: PyTree) -> PyTree:
    """An observer over saved records: a ``lax.scan`` of ``update`` over
    ``(ts[i], xs[i])``, then ``finish``. Equal to what :func:`run` observes
    when ``ts`` holds every step of the run.

    Args:
      observer: an :class:`Observer`.
      ts: ``(T,)`` integer steps, increasing.
      xs: the saved quantities, leading axis ``T``.
    """
    first = jax.tree.map(lambda x: x[0], xs)
    obs, _ = jax.lax.scan(lambda o, tx: (observer.update(o, tx[0], tx[1]), None), observer.init(first),
                          (jnp.asarray(ts, jnp.int32), xs))
    return observer.finish(obs)


# --------------------------------------------------------------------------
# Runs.


def _gaps(t0: Array, record_steps) -> Array:
    """Steps between consecutive record points, from ``t0``: ``(T,)`` int32."""
    if isinstance(record_steps, (np.ndarray, list, tuple)):
        rs = np.asarray(record_steps, np.int64)
        if rs.ndim != 1 or rs.size == 0 or np.any(np.diff(rs) < 0) or rs[0] < 0:
            raise ValueError("record_steps must be a non-empty increasing sequence of non-negative integers")
        if rs[-1] > np.iinfo(np.int32).max:
            raise ValueError("record_steps must be below 2^31 (int32 step counter)")
        rs = jnp.asarray(rs, jnp.int32)
    else:
        rs = jnp.asarray(record_steps, jnp.int32)
        if rs.ndim != 1:
            raise ValueError(f"record_steps must be 1-D, got shape {rs.shape}")
    return jnp.diff(rs, prepend=jnp.asarray(t0, jnp.int32)[None])


def run(
    step: Step,
    state0: State,
    record_steps,
    save: Callable[[State], PyTree] = save_e,
    observer: Optional[Observer] = None,
) -> tuple[State, PyTree, PyTree]:
    """Iterates ``step`` from ``state0``, saving at ``record_steps`` and
    observing every step.

    The steps between record points run in ``lax.fori_loop``s inside a
    ``lax.scan`` over the gaps. ``record_steps`` is static (NumPy, a list) or
    a traced integer array of static length, e.g. ``[0, steps_i]`` per
    vmapped point: under ``vmap`` a loop with a traced trip count runs to
    the largest and keeps every finished point fixed, so points with
    different step counts share one program and do not depend on each other.

    Args:
      step: ``step(state) -> state`` (:func:`optax_step`,
        :func:`signgd_freq_step`).
      state0: the start; ``state0.t`` may be any step ``<= record_steps[0]``.
      record_steps: ``(T,)`` increasing integer steps ``>= state0.t``.
      save: what is saved (and observed) of a state; default ``state.e``
        (use :func:`save_e_freq` for ``e~`` of an :func:`optax_step` state).
      observer: an :class:`Observer` fed ``(t, save(state))`` at every step
        ``t`` from ``state0.t`` to ``record_steps[-1]``, both included.

    Returns:
      ``(final_state, saved, observed)``: the state at ``record_steps[-1]``,
      ``save`` at each record step (leading axis ``T``), and the observer's
      result (``()`` without an observer).
    """
    observer = observer or _nothing()
    gaps = _gaps(state0.t, record_steps)

    def body(_, carry):
        state, obs = carry
        obs = observer.update(obs, state.t, save(state))
        return step(state), obs

    def segment(carry, gap):
        carry = jax.lax.fori_loop(jnp.zeros_like(gap), gap, body, carry)
        return carry, save(carry[0])

    (state, obs), saved = jax.lax.scan(segment, (state0, observer.init(save(state0))), gaps)
    obs = observer.update(obs, state.t, save(state))  # the final state, never stepped
    return state, saved, observer.finish(obs)


def optax_trajectory(optimizer: optax.GradientTransformation, problem: Problem, record_steps) -> Array:
    """``w~`` at ``record_steps`` of one optax optimizer on the population gradient.

    Pure and traceable in ``problem`` and in the optimizer's hyper-parameters
    (``vmap`` it over problems and learning rates by building the optimizer
    inside the vmapped function). Row 0 is ``w~* + e~(0)`` exactly; the rest
    is :func:`run` of :func:`optax_step` with ``g~ = sigma^2 e~``, the
    optimizer's ``params`` being ``w = e + C^T w~*``.

    Args:
      optimizer: any optax transformation.
      problem: the signal problem (any ``d``).
      record_steps: increasing static steps starting at 0.

    Returns:
      ``(len(record_steps), d)`` weights in frequency coordinates.
    """
    rs = np.asarray(record_steps, np.int64)
    if rs.ndim != 1 or rs.size == 0 or rs[0] != 0:
        raise ValueError("record_steps must be a non-empty increasing sequence starting at 0")
    c = dct_basis(problem.dim, problem.spectrum.dtype)
    w_star = c.T @ problem.w_star_freq
    e0 = c.T @ problem.e0_freq
    step = optax_step(optimizer, population_gradient(problem.spectrum), c, w_star)
    state0 = State(jnp.zeros((), jnp.int32), e0, optimizer.init(e0))
    if rs.size == 1:
        return (problem.w_star_freq + problem.e0_freq)[None]
    _, e_freq, _ = run(step, state0, rs[1:], save_e_freq(c))
    return problem.w_star_freq + jnp.concatenate([problem.e0_freq[None], e_freq])
