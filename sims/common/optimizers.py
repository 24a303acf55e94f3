"""Optimizers by name, with the PyTorch defaults that the paper used.

THEORY.md section 5: the paper's code used PyTorch's ``Adam`` (``b1 = 0.9``,
``b2 = 0.999``, ``eps = 1e-8``) and ``RMSprop`` (``alpha = 0.99``,
``eps = 1e-8`` added *outside* the square root, no momentum, not centred).
optax's own ``rmsprop`` defaults differ (``decay = 0.9``, eps inside the
square root), so they are overridden here.
"""

from __future__ import annotations

from typing import Any, Mapping

import optax

OPTIMIZERS = ("gd", "signgd", "adam", "rmsprop")

#: Hyper-parameters beyond the learning rate, matching PyTorch's defaults.
DEFAULT_HYPERPARAMS: Mapping[str, Mapping[str, Any]] = {
    "gd": {},
    "signgd": {},
    "adam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
    "rmsprop": {"decay": 0.99, "eps": 1e-8},
}


def hyperparams(name: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """``name``'s hyper-parameters beyond the lr: :data:`DEFAULT_HYPERPARAMS` updated by ``overrides``."""
    return {**DEFAULT_HYPERPARAMS[name], **dict(overrides or {})}


def make_optimizer(name: str, lr: float, **overrides: Any) -> optax.GradientTransformation:
    """Builds an optax optimizer by name.

    * ``gd``: ``w <- w - lr g`` (``optax.sgd``).
    * ``signgd``: ``w <- w - lr sign(g)`` (``optax.sign_sgd``), sign taken
      element-wise in the coordinates the parameters live in (input space).
    * ``adam``: Kingma and Ba (2015), ``optax.adam``; PyTorch defaults.
    * ``rmsprop``: Tieleman and Hinton (2012) as in PyTorch,
      ``v <- a v + (1 - a) g^2``, ``w <- w - lr g / (sqrt(v) + eps)``.

    Args:
      name: one of :data:`OPTIMIZERS`.
      lr: learning rate.
      **overrides: hyper-parameters replacing :data:`DEFAULT_HYPERPARAMS`
        (e.g. ``b1=0.0`` for Adam).

    Returns:
      An ``optax.GradientTransformation``.

    Raises:
      ValueError: for an unknown name or hyper-parameter.
    """
    if name not in DEFAULT_HYPERPARAMS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    unknown = set(overrides) - set(DEFAULT_HYPERPARAMS[name])
    if unknown:
        raise ValueError(f"optimizer {name!r} has no hyper-parameter(s) {sorted(unknown)}")
    hp = hyperparams(name, overrides)
    if name == "gd":
        return optax.sgd(lr)
    if name == "signgd":
        return optax.sign_sgd(lr)
    if name == "adam":
        return optax.adam(lr, **hp)
    return optax.rmsprop(lr, eps_in_sqrt=False, centered=False, momentum=None, **hp)
