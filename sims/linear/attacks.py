"""Adversarial perturbations of the linear model and Monte Carlo risks.

For one sample ``(x, y)`` in input coordinates and weights ``w`` (input
coordinates, ``w = C^T w~``), the loss under a perturbation ``delta`` is

    l(delta) = 1/2 (<w, x + delta> - y)^2 = 1/2 (r + <w, delta>)^2,   r = <w, x> - y.

Over a norm ball ``||delta|| <= eps`` the maximum is attained where
``<w, delta> = eps sign(r) ||w||_*`` (Hoelder), ``||.||_*`` the dual norm:

* l2:    ``delta = eps sign(r) w / ||w||_2``,  loss ``1/2 (|r| + eps ||w||_2)^2``;
* l_inf: ``delta = eps sign(r) sign(w)``,      loss ``1/2 (|r| + eps ||w||_1)^2``.

``sign(0)`` is taken as ``+1`` so that ``r = 0`` still gets the worst case.
PGD (Madry et al., 2018) approximates these by projected gradient ascent with
``jax.grad``; on this model the loss along the ball boundary has a second,
local maximum at ``<w, delta> = -eps sign(r) ||w||_*`` when
``|r| < eps ||w||_*``, which PGD reaches from a random start on that side, so
PGD is a lower bound on the worst case.

Reference: Ma, Pan and Farahmand (TMLR 2023), section 4; THEORY.md section 2.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from sims.common.balls import pgd, steepest_direction
from theory.signal import Problem, sample_freq, to_input

Array = jax.Array

ATTACKS = ("none", "worst_l2", "pgd_l2", "worst_linf", "pgd_linf")


class RiskEstimate(NamedTuple):
    """A Monte Carlo estimate: ``mean`` of the per-sample losses and its
    standard error ``stderr = std(loss, ddof=1) / sqrt(n)``."""

    mean: Array
    stderr: Array


def sample_loss(w: Array, x: Array, y: Array, delta: Array) -> Array:
    """``1/2 (<w, x + delta> - y)^2`` for one sample (``w, x, delta``: ``(d,)``)."""
    return 0.5 * jnp.square(jnp.dot(w, x + delta) - y)


def _sign_plus(r: Array) -> Array:
    # sign with sign(0) = +1: at r = 0 both sides are worst, 0 would be the best.
    return jnp.where(r >= 0, 1.0, -1.0).astype(r.dtype)


def worst_case(w: Array, x: Array, y: Array, radius, norm: str) -> Array:
    """Worst-case perturbation of one sample in the ``norm`` ball, input coordinates.

    Args:
      w: ``(d,)`` weights in input coordinates.
      x: ``(d,)`` input.
      y: scalar label.
      radius: the ball's radius.
      norm: ``"l2"`` or ``"linf"`` (static).

    Returns:
      ``delta = radius sign(r) s(w)`` with ``r = <w, x> - y`` and ``s`` the
      steepest direction (:func:`sims.common.balls.steepest_direction`):
      ``w / ||w||_2`` (zero if ``w = 0``, when every ``delta`` gives the same
      loss) or ``sign(w)``. Its loss is ``1/2 (|r| + radius ||w||_*)^2``.
    """
    return radius * _sign_plus(jnp.dot(w, x) - y) * steepest_direction(w, norm)


def _pgd_one(key, w, x, y, radius, steps, step_size, random_start, norm):
    """PGD on one sample's loss (:func:`sims.common.balls.pgd`), its last iterate; ``norm`` is static."""
    loss = lambda delta: sample_loss(w, x, y, delta)
    return pgd(loss, key, w.shape, radius, norm, steps, step_size, random_start, w.dtype).last


def pgd_perturbations(
    key: Array,
    w: Array,
    x: Array,
    y: Array,
    radius,
    norm: str,
    steps: int = 50,
    step_size=None,
    random_start: bool = True,
    restarts: int = 1,
) -> Array:
    """PGD on the per-sample loss in the ``norm`` ball, vmapped over samples.

    ``delta <- P(delta + a s(g))``, ``g = grad_delta 1/2 (<w, x+delta> - y)^2``
    (by ``jax.grad``), ``s`` the steepest direction (``g / ||g||_2`` or
    ``sign(g)``) and ``P`` the projection onto the ball (:func:`sims.common.balls.pgd`).

    Args:
      key: PRNG key for the random starts (one subkey per sample).
      w: ``(d,)`` weights in input coordinates.
      x: ``(n, d)`` inputs.
      y: ``(n,)`` labels.
      radius: the ball's radius.
      norm: ``"l2"`` or ``"linf"`` (static).
      steps: number of ascent steps (static).
      step_size: ``a``; default ``2.5 radius / steps`` (Madry et al., 2018).
      random_start: start uniformly in the ball (else at 0).
      restarts: runs from this many random starts and keeps, per sample, the
        perturbation with the highest loss (static).

    Returns:
      ``(n, d)`` perturbations inside the ball.
    """
    step_size = 2.5 * radius / steps if step_size is None else step_size
    one = partial(_pgd_one, steps=steps, random_start=random_start, norm=norm)

    def best(k, xi, yi):
        # The highest loss over the restarts, each from its own random start.
        deltas = jax.vmap(lambda kr: one(kr, w, xi, yi, radius, step_size=step_size))(jax.random.split(k, restarts))
        losses = jax.vmap(sample_loss, in_axes=(None, None, None, 0))(w, xi, yi, deltas)
        return deltas[jnp.argmax(losses)]

    return jax.vmap(best)(jax.random.split(key, x.shape[0]), x, y)


def attack_perturbations(key: Array, w: Array, x: Array, y: Array, radius, attack: str, **pgd_kwargs) -> Array:
    """``(n, d)`` perturbations of the samples ``x`` by the named attack.

    Args:
      key: PRNG key (used by the PGD attacks only).
      w: ``(d,)`` weights in input coordinates.
      x: ``(n, d)`` inputs; y: ``(n,)`` labels.
      radius: budget.
      attack: one of :data:`ATTACKS` (static).
      **pgd_kwargs: ``steps``, ``step_size``, ``random_start``, ``restarts`` for PGD.

    Raises:
      ValueError: for an unknown attack.
    """
    if attack == "none":
        return jnp.zeros_like(x)
    kind, _, norm = attack.partition("_")  # "worst_l2" -> ("worst", "l2")
    if attack in ATTACKS and kind == "worst":
        return jax.vmap(worst_case, in_axes=(None, 0, 0, None, None))(w, x, y, radius, norm)
    if attack in ATTACKS and kind == "pgd":
        return pgd_perturbations(key, w, x, y, radius, norm, **pgd_kwargs)
    raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")


def monte_carlo_risk(
    key: Array,
    w_freq: Array,
    problem: Problem,
    radius,
    n_samples: int,
    attack: str = "none",
    **pgd_kwargs,
) -> RiskEstimate:
    """Monte Carlo (adversarial) risk of ``f(x) = <w, x>`` on fresh samples.

    Draws ``x~ ~ N(0, diag(spectrum^2))`` (``n_samples`` of them), labels
    ``y = <w~*, x~>``, inputs ``x = C^T x~``, perturbs each input in input
    coordinates by ``attack`` and averages ``1/2 (<w, x + delta> - y)^2``.
    Jit it with ``static_argnames=("n_samples", "attack")`` (and any PGD
    ``steps``/``random_start``).

    Args:
      key: PRNG key; the samples (and PGD starts) depend only on it, so every
        ``w`` in a batch sees the same samples (common random numbers).
      w_freq: ``(..., d)`` weights in frequency coordinates, batched over the
        leading axes.
      problem: the signal model (its ``spectrum`` and ``w_star_freq``).
      radius: perturbation budget (ignored for ``"none"``).
      n_samples: number of samples (static).
      attack: one of :data:`ATTACKS` (static).
      **pgd_kwargs: ``steps``, ``step_size``, ``random_start``, ``restarts`` for PGD.

    Returns:
      :class:`RiskEstimate` with ``mean`` and ``stderr`` of shape ``w_freq.shape[:-1]``.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    k_x, k_attack = jax.random.split(key)
    x_freq = sample_freq(k_x, problem.spectrum, n_samples)
    y = x_freq @ problem.w_star_freq
    x = to_input(x_freq)

    def risk_one(wf: Array) -> RiskEstimate:
        w = to_input(wf)
        delta = attack_perturbations(k_attack, w, x, y, radius, attack, **pgd_kwargs)
        loss = jax.vmap(sample_loss, in_axes=(None, 0, 0, 0))(w, x, y, delta)
        return RiskEstimate(jnp.mean(loss), jnp.std(loss, ddof=1) / jnp.sqrt(n_samples))

    fn = risk_one
    for _ in range(w_freq.ndim - 1):
        fn = jax.vmap(fn)
    return fn(w_freq)
