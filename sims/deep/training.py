"""Mini-batch training of the digit classifiers with GD, Adam or RMSProp.

One run is a pure function of ``(key, lr)``: the key fixes the
initialisation and the order of the mini-batches, and the whole run is one
``lax.scan`` over the steps of all epochs. Runs are ``vmap``-ed
over seeds and over a list of learning rates, and a learning rate is chosen
per optimizer by the one-standard-error rule on the validation accuracy
(:func:`select_lr`); the study (:mod:`sims.deep.study`) also compares the
optimizers at every learning rate (Ma, Pan and Farahmand, TMLR 2023, section 5).

Adam and RMSProp use PyTorch's defaults, as the paper's code did
(:mod:`sims.common.optimizers`, THEORY.md section 5); GD (``w <- w - lr g``, ``g``
a mini-batch's gradient) may carry heavy-ball
momentum (PyTorch's form, ``v <- m v + g``, ``w <- w - lr v``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sims.deep.digits import Split
from sims.deep.networks import Architecture, Conv, Params, apply, init_params
from sims.common.optimizers import make_optimizer as shared_make_optimizer

Array = jax.Array

OPTIMIZERS = ("gd", "adam", "rmsprop")


class TrainConfig(NamedTuple):
    """Static training settings (hashable: a jit static argument).

    Attributes:
      arch: network shape.
      optimizer: one of :data:`OPTIMIZERS`.
      epochs: passes over the training set.
      batch_size: samples per step; each epoch drops the last partial batch.
      momentum: GD heavy-ball momentum (0: plain GD); ignored otherwise.
    """

    arch: Architecture
    optimizer: str
    epochs: int
    batch_size: int
    momentum: float = 0.0


def make_optimizer(name: str, lr, momentum: float = 0.0) -> optax.GradientTransformation:
    """The optax transformation for ``name`` at learning rate ``lr`` (may be traced).

    :func:`sims.common.optimizers.make_optimizer` (here ``gd``'s gradient is a
    mini-batch's), plus optional heavy-ball momentum for ``gd``.

    Raises:
      ValueError: for an unknown name.
    """
    if name == "gd":
        return optax.sgd(lr, momentum=momentum) if momentum > 0 else shared_make_optimizer("gd", lr)
    if name in ("adam", "rmsprop"):
        return shared_make_optimizer(name, lr)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def margin(logits: Array, y: Array) -> Array:
    """Logit margin ``z_y - max_{j != y} z_j``; positive iff the prediction is ``y``.

    Args:
      logits: ``(..., 10)``.
      y: integer labels, broadcastable to ``logits.shape[:-1]``.
    """
    y = jnp.broadcast_to(y, logits.shape[:-1])
    z_y = jnp.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
    others = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return z_y - jnp.max(others, axis=-1)


def accuracy(params: Params, x: Array, y: Array) -> Array:
    """Fraction of samples with a positive margin (a tie counts as an error)."""
    return jnp.mean(margin(apply(params, x), y) > 0)


def loss(params: Params, x: Array, y: Array) -> Array:
    """Mean softmax cross-entropy."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y))


def train(key: Array, lr, data: Split, config: TrainConfig) -> Params:
    """Trains one network.

    Args:
      key: PRNG key; split into the initialisation key and the key of the
        shuffles.
      lr: learning rate (a scalar; may be traced, for ``vmap`` over learning rates).
      data: the training set.
      config: static settings.

    Returns:
      The final parameters.
    """
    k_init, k_data = jax.random.split(key)
    params = init_params(k_init, config.arch, data.x.dtype)
    opt = make_optimizer(config.optimizer, jnp.asarray(lr, data.x.dtype), config.momentum)
    n = data.x.shape[0]
    steps = n // config.batch_size
    # One shuffle per epoch: argsort of random 32-bit words, all epochs in one draw (a tie, about
    # n^2 / 2^33 ~ 1e-4 per epoch, is broken by index: still a permutation).
    order = jnp.argsort(jax.random.bits(k_data, (config.epochs, n)), axis=-1)
    batches = order[:, : steps * config.batch_size].reshape(config.epochs * steps, config.batch_size)

    def step(carry, idx):
        params, state = carry
        grads = jax.grad(loss)(params, data.x[idx], data.y[idx])
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), batches)
    return params


def _train_lrs(keys: Array, lrs: Array, data: Split, config: TrainConfig) -> Params:
    per_seed = jax.vmap(train, in_axes=(0, None, None, None))
    return jax.vmap(per_seed, in_axes=(None, 0, None, None))(keys, lrs, data, config)


#: ``train_lrs(keys (S,), lrs (L,), data, config)`` -> parameters with leading
#: axes ``(L, S)``. Seed ``s`` has the same initialisation and batch order at
#: every learning rate (common random numbers).
train_lrs = jax.jit(_train_lrs, static_argnames="config")


def batch_axes(params: Params) -> int:
    """Number of leading batch axes (learning rates, seeds) of stacked parameters."""
    return params[0].w.ndim - (4 if isinstance(params[0], Conv) else 2)


@jax.jit
def batched_accuracy(params: Params, data: Split) -> Array:
    """Accuracy of parameters with any leading batch axes (learning rates, seeds), on one data set."""
    fn = accuracy
    for _ in range(batch_axes(params)):
        fn = jax.vmap(fn, in_axes=(0, None, None))
    return fn(params, data.x, data.y)


class Selection(NamedTuple):
    """The learning-rate choice of one optimizer.

    Attributes:
      index: position of the chosen rate in ``lrs``.
      lr: the chosen rate.
      val_accuracy: ``(L, S)`` validation accuracy of every learning rate and seed.
    """

    index: int
    lr: float
    val_accuracy: np.ndarray


def select_lr(lrs, val_accuracy) -> Selection:
    """The largest rate whose mean validation accuracy is within one standard error of the best.

    With ``m_l`` the mean over seeds and ``se_l = sd_l / sqrt(S)`` its
    standard error (``sd`` with ``ddof=1``; 0 for one seed), let ``b`` be the
    rate with the largest ``m``; the choice is the largest ``lr`` with
    ``m_l >= m_b - se_b`` (the "one-standard-error rule" of model selection).
    A difference smaller than the seeds' own scatter, e.g. one validation
    image, cannot move the choice unless it moves ``m_b - se_b`` across an
    ``m_l``. Non-finite accuracies (none occur: accuracy is a count) would
    count as 0.

    Args:
      lrs: ``(L,)`` learning rates.
      val_accuracy: ``(L, S)``.
    """
    val = np.nan_to_num(np.asarray(val_accuracy, np.float64))
    lrs = np.asarray(lrs, np.float64)
    mean = val.mean(axis=1)
    se = val.std(axis=1, ddof=1) / np.sqrt(val.shape[1]) if val.shape[1] > 1 else np.zeros_like(mean)
    best = int(np.argmax(mean))
    ok = np.flatnonzero(mean >= mean[best] - se[best])
    i = int(ok[np.argmax(lrs[ok])])
    return Selection(i, float(lrs[i]), val)
