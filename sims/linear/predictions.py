"""The analytical prediction of every optimizer, in the gradient mode a run uses.

THEORY.md sections 3 and 8. Each prediction is ``e~`` on the run's record
grid (``tau = lr t``), solved in float64 whatever the run's precision:

| optimizer | population | online (batch ``n``) | fixed training set |
|---|---|---|---|
| gd | ``closed_form`` (exact) | ``closed_form`` (the mean, exact) | ``fixed_set``: ``(I - lr H~_S)^t``, exact |
| signgd | ``sign_flow`` | ``online_ode`` (``E[sign g_B]``) | ``fixed_set``: the sign flow on ``H~_S`` |
| adam | ``adam_ode`` | ``online_ode`` (``g^2 + Var``) | ``fixed_set``: ``adam_ode`` on ``H~_S`` |
| rmsprop | ``rmsprop_ode`` (start shift) | ``online_ode`` (``g^2 + Var``) | ``fixed_set``: ``rmsprop_ode`` on ``H~_S`` |

A fixed training set is a population problem on its own ``H~_S``
(section 8.4), so its predictions are per seed, from the very training sets
the engine draws. Label noise moves the fixed set's minimiser away from
``w*``; those runs get no prediction, with that reason.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sims.common.optimizers import hyperparams
from theory.adaptive_ode import adam_ode, ode_constants, rmsprop_ode
from theory.gd import gd_error_quadratic
from theory.online_ode import online_signgd_ode
from theory.quadratic import Quadratic, population_quadratic
from theory.sign_flow import sign_flow, sign_flow_error
from theory.signal import Problem, make_problem

#: The formula behind each (optimizer, gradient mode); ``fixed`` is always ``fixed_set``.
THEORY_NAMES = {
    ("gd", "population"): "closed_form", ("gd", "online"): "closed_form",
    ("signgd", "population"): "sign_flow", ("signgd", "online"): "online_ode",
    ("adam", "population"): "adam_ode", ("adam", "online"): "online_ode",
    ("rmsprop", "population"): "rmsprop_ode", ("rmsprop", "online"): "online_ode",
}
#: Segments the sign flow may take (d = 3 needs 3; d = 64 with 16 relevant frequencies about 200).
MAX_EVENTS = 256


class Prediction(NamedTuple):
    """One optimizer's prediction on the record steps.

    Attributes:
      theory: the formula (:data:`THEORY_NAMES`, or ``fixed_set``).
      e_freq: ``(T, d)`` errors at the record steps, or ``(seeds, T, d)`` for a fixed
        set; ``None`` when not applicable.
      applicable: whether the prediction holds here.
      reason: why not, when not.
      solve_s: wall time of the solve (compilation included).
    """

    theory: str
    e_freq: Optional[np.ndarray]
    applicable: bool
    reason: str
    solve_s: float


def _solve(name: str, batch_size: int, quad: Quadratic, lr, hp: Mapping[str, jax.Array], tau: jax.Array,
           tau_max, population_h: jax.Array, **tolerances) -> tuple[jax.Array, jax.Array]:
    """``(e~ on tau, applicable)`` for one quadratic (vmap-able over ``quad``); ``tolerances``
    (``rtol``, ``atol``) go to the Adam and RMSProp ODE solves."""
    if name == "gd":
        return gd_error_quadratic(quad, lr)(tau / lr), jnp.asarray(True)
    if name == "signgd":
        if batch_size:
            p = online_signgd_ode(quad, batch_size, saveat_tau=tau, tau_max=tau_max)
            return p.e_freq, p.applicable
        flow = sign_flow(quad, max_events=MAX_EVENTS)
        return sign_flow_error(flow)(tau), flow.applicable
    extra = dict(batch_size=batch_size, population_hessian_freq=population_h if batch_size else None,
                 saveat_tau=tau, tau_max=tau_max, **tolerances)
    if name == "adam":
        c = ode_constants(lr, b1=hp["b1"], b2=hp["b2"])
        p = adam_ode(quad, c.c1, c.c2, hp["eps"], **extra)
    else:
        c = ode_constants(lr, decay=hp["decay"])
        p = rmsprop_ode(quad, c.c2, hp["eps"], shift_lr=lr, **extra)
    return p.e_freq, p.applicable


@functools.lru_cache(maxsize=None)
def _compiled(name: str, batch_size: int, per_seed: bool):
    """One compiled solver per (optimizer, batch size, fixed set): the problem,
    the lr and the hyper-parameters are traced, so later runs do not compile."""
    solve = functools.partial(_solve, name, batch_size)
    if per_seed:
        solve = jax.vmap(solve, in_axes=(0, None, None, None, None, None))
    return jax.jit(solve)


def predict(
    name: str,
    mode: str,
    problem: Problem,
    lr: float,
    steps: np.ndarray,
    *,
    hparams: Optional[Mapping[str, float]] = None,
    batch_size: int = 0,
    fixed_hessians: Optional[np.ndarray] = None,
    label_noise: float = 0.0,
) -> Prediction:
    """The prediction of optimizer ``name`` for a run in gradient ``mode``.

    Args:
      name: ``gd``, ``signgd``, ``adam`` or ``rmsprop``.
      mode: ``population``, ``online`` or ``fixed``.
      problem: the signal model (any precision; solved in float64).
      lr: the learning rate.
      steps: ``(T,)`` the record steps.
      hparams: the optimizer's hyper-parameters (default: PyTorch's).
      batch_size: ``n`` of the online batches.
      fixed_hessians: ``(seeds, d, d)`` each seed's ``H~_S`` (fixed mode).
      label_noise: the labels' noise (fixed mode: no prediction if > 0).

    Returns:
      A :class:`Prediction`.
    """
    theory = "fixed_set" if mode == "fixed" else THEORY_NAMES[(name, mode)]
    if mode == "fixed" and label_noise > 0:
        return Prediction(theory, None, False, "label noise moves the training set's minimiser off w*", 0.0)
    top = lr * float(np.max(np.square(np.asarray(problem.spectrum, np.float64))))
    if name == "gd" and not 0 < top < 2:
        return Prediction(theory, None, False, f"GD diverges: lr * max(spectrum^2) = {top:.4g} >= 2", 0.0)
    hp = {k: float(v) for k, v in hyperparams(name, hparams).items()}
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        m64 = make_problem(*(np.asarray(v, np.float64) for v in problem))
        tau = jnp.asarray(np.asarray(steps, np.float64) * lr)
        pop = population_quadratic(m64)
        if mode == "fixed":
            quads = Quadratic(jnp.asarray(fixed_hessians, jnp.float64),
                              jnp.broadcast_to(m64.e0_freq, (len(fixed_hessians), m64.dim)))
        else:
            quads = pop
        solve = _compiled(name, batch_size if mode == "online" else 0, mode == "fixed")
        args = (quads, jnp.float64(lr), {k: jnp.float64(v) for k, v in hp.items()}, tau,
                jnp.float64(float(steps[-1]) * lr), pop.hessian_freq)
        e, ok = solve(*args)
        e, ok = np.asarray(e, np.float64), bool(np.all(np.asarray(ok)))
    solve_s = time.perf_counter() - t0
    if not ok or not np.all(np.isfinite(e)):
        why = {"sign_flow": "the sign flow did not converge within its event budget",
               "closed_form": "non-finite closed form"}.get(theory, "the ODE solve failed or did not settle")
        return Prediction(theory, None, False, why, solve_s)
    return Prediction(theory, e, True, "", solve_s)


def fixed_set_hessians(oracle: Any, keys: jax.Array, spectrum: np.ndarray) -> np.ndarray:
    """Each seed's ``H~_S = X~^T X~ / n``, as the engine draws it.

    The engine splits seed ``i``'s key into ``(data_key, stream_key)`` and
    builds the fixed oracle's state from ``data_key``; the state holds ``S``
    on the relevant band, which is padded with zeros here.

    Returns:
      ``(seeds, d, d)`` float64.
    """
    data_keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
    states = jax.vmap(oracle.init)(data_keys)
    s_rel = np.asarray(states.factor, np.float64)  # (seeds, m, m)
    rel = np.flatnonzero(np.asarray(spectrum) != 0)
    d = len(spectrum)
    h = np.zeros((s_rel.shape[0], d, d))
    h[:, rel[:, None], rel[None, :]] = s_rel
    return h


#: Tolerances of :func:`predict_many`'s ODE solves: far below the ``O(lr)`` distance
#: of a finite-lr run from its limit (``lr >= 1e-4`` in practice), and several times
#: fewer implicit steps than :data:`theory.adaptive_ode.RTOL` in ``d = 64``.
MANY_RTOL = 1e-7
MANY_ATOL = 1e-10


class BatchPrediction(NamedTuple):
    """Population predictions of one optimizer for a batch of models of one ``d``.

    Attributes:
      theory: the formula (:data:`THEORY_NAMES`, population column).
      e_freq: ``(B, T, d)`` errors at the record steps. NaN where there is no
        prediction: everywhere for a failed solve, and after the last
        breakpoint for a sign flow that used its event budget (it is exact
        up to there).
      applicable: ``(B,)`` bool, whether each model has a prediction on the whole grid.
      reason: why not, for the models without one (``""`` if all have one).
      solve_s: wall time of the solve (compilation included).
    """

    theory: str
    e_freq: np.ndarray
    applicable: np.ndarray
    reason: str
    solve_s: float


@functools.lru_cache(maxsize=None)
def _compiled_many(name: str, rtol: float, atol: float):
    """:func:`_solve`'s population branch at the given ODE tolerances, vmapped over quadratics."""

    def solve(quad: Quadratic, lr, hp, tau, tau_max):
        return _solve(name, 0, quad, lr, hp, tau, tau_max, quad.hessian_freq, rtol=rtol, atol=atol)

    return jax.jit(jax.vmap(solve, in_axes=(0, None, None, None, None)))


def predict_many(
    name: str,
    problems: Problem,
    lr: float,
    steps: np.ndarray,
    *,
    hparams: Optional[Mapping[str, float]] = None,
    rtol: float = MANY_RTOL,
    atol: float = MANY_ATOL,
) -> BatchPrediction:
    """:func:`predict` in population mode for a batch of models, in one vmapped solve.

    The models (any spectra, targets and starts of one ``d``, stacked along a
    leading axis) are traced arguments of one compiled solver per optimizer
    and tolerances, so a batch compiles once per shape.

    Args:
      name: ``gd``, ``signgd``, ``adam`` or ``rmsprop``.
      problems: a :class:`Problem` with a leading batch axis ``B``.
      lr: the learning rate.
      steps: ``(T,)`` the record steps.
      hparams: the optimizer's hyper-parameters (default: PyTorch's).
      rtol, atol: the Adam and RMSProp ODE solver's tolerances.

    Returns:
      A :class:`BatchPrediction`, in float64.
    """
    theory = THEORY_NAMES[(name, "population")]
    hp = {k: float(v) for k, v in hyperparams(name, hparams).items()}
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        m64 = Problem(*(jnp.asarray(np.asarray(v, np.float64)) for v in problems))
        quads = jax.vmap(population_quadratic)(m64)
        tau = jnp.asarray(np.asarray(steps, np.float64) * lr)
        e, ok = _compiled_many(name, float(rtol), float(atol))(
            quads, jnp.float64(lr), {k: jnp.float64(v) for k, v in hp.items()}, tau,
            jnp.float64(float(steps[-1]) * lr))
        e, ok = np.asarray(e, np.float64), np.asarray(ok, bool)
    finite = np.all(np.isfinite(e), axis=(1, 2))
    # The sign flow is exact up to its last breakpoint and NaN after it: finite at the record steps is applicable.
    ok = finite if name == "signgd" else ok & finite
    if name == "gd":  # the closed form of an unstable lr is a number, not a prediction
        top = lr * np.max(np.square(np.asarray(problems.spectrum, np.float64)), axis=-1)
        ok = ok & (top > 0) & (top < 2)
    reason = "" if ok.all() else {
        "closed_form": "GD diverges: lr * max(spectrum^2) >= 2",
        "sign_flow": f"the sign flow used its {MAX_EVENTS} events before the last record step",
    }.get(theory, "the ODE solve failed")
    keep = ok[:, None, None] | (name == "signgd")
    return BatchPrediction(theory, np.where(keep, e, np.nan), ok, reason, time.perf_counter() - t0)
