"""Small classifiers for the 8x8 digits, as pure functions on parameter pytrees.

* ``mlp``: ``64 -> widths... -> 10``, ReLU between layers; with no hidden
  layer it is the linear classifier ``z = x @ w + b``.
* ``cnn``: per entry of ``widths`` a 3x3 ``SAME`` convolution, ReLU and 2x2
  max-pooling (8x8 -> 4x4 -> 2x2 ...), then a dense layer to 10 logits.

Parameters are a tuple of layers, each a :class:`Dense` or :class:`Conv`
(NamedTuples of arrays), so that they are pytrees for ``jax.grad``, optax
and ``vmap`` over seeds. Weights use He-normal initialisation
(``std = sqrt(2 / fan_in)``), biases start at zero.

Every non-linearity used (ReLU, non-overlapping max-pooling) is 1-Lipschitz
in l2, so the network's l2 Lipschitz constant is at most the product of the
operator norms of its linear layers (:func:`linear_maps`).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from sims.deep.digits import CLASSES, DIM, SIDE

Array = jax.Array

ARCHS = ("mlp", "cnn")


class Architecture(NamedTuple):
    """A network shape (hashable, so it can be a static jit argument).

    Attributes:
      kind: ``"mlp"`` or ``"cnn"``.
      widths: hidden widths (``mlp``) or channels per convolution (``cnn``).
    """

    kind: str = "mlp"
    widths: tuple[int, ...] = (128, 128)


class Dense(NamedTuple):
    """``y = x @ w + b``, ``w``: ``(in, out)``."""

    w: Array
    b: Array


class Conv(NamedTuple):
    """3x3 ``SAME`` convolution, ``w``: ``(3, 3, c_in, c_out)`` (HWIO), ``b``: ``(c_out,)``."""

    w: Array
    b: Array


Params = tuple  # of Dense / Conv layers

_DN = ("NHWC", "HWIO", "NHWC")


def check_architecture(arch: Architecture) -> None:
    """Raises ``ValueError`` for an unknown kind, no widths, or too many pooling stages."""
    if arch.kind not in ARCHS:
        raise ValueError(f"unknown architecture {arch.kind!r}; choose from {', '.join(ARCHS)}")
    if any(int(w) <= 0 for w in arch.widths):
        raise ValueError("widths must be positive integers")
    if arch.kind == "cnn" and not arch.widths:
        raise ValueError("a cnn needs at least one conv layer")
    if arch.kind == "cnn" and SIDE >> len(arch.widths) < 1:
        raise ValueError(f"a cnn on {SIDE}x{SIDE} images has at most {int(math.log2(SIDE))} conv layers")


def weight_shapes(arch: Architecture) -> list[tuple[int, ...]]:
    """Shapes of the layers' weights: ``(in, out)`` dense, ``(3, 3, c_in, c_out)`` conv."""
    if arch.kind == "mlp":
        sizes = (DIM, *arch.widths, CLASSES)
        return [(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    channels = (1, *arch.widths)
    convs = [(3, 3, c_in, c_out) for c_in, c_out in zip(channels[:-1], channels[1:])]
    return convs + [((SIDE >> len(arch.widths)) ** 2 * channels[-1], CLASSES)]


def init_params(key: Array, arch: Architecture, dtype=jnp.float32) -> Params:
    """He-normal weights (``std = sqrt(2 / fan_in)``), zero biases.

    One normal draw is cut into the layers (a single random-number kernel
    compiles much faster than one per layer).

    Args:
      key: PRNG key.
      arch: the network shape.
      dtype: parameter dtype.

    Returns:
      A tuple of :class:`Dense` / :class:`Conv` layers.
    """
    check_architecture(arch)
    shapes = weight_shapes(arch)
    z = jax.random.normal(key, (sum(math.prod(s) for s in shapes),), dtype)
    layers, start = [], 0
    for shape in shapes:
        size, fan_in = math.prod(shape), math.prod(shape[:-1])
        w = z[start:start + size].reshape(shape) * math.sqrt(2.0 / fan_in)
        layer = Conv if len(shape) == 4 else Dense
        layers.append(layer(w, jnp.zeros(shape[-1], dtype)))
        start += size
    return tuple(layers)


def _conv(w: Array, h: Array) -> Array:
    """3x3 ``SAME`` convolution of NHWC ``h`` as patches times a matrix.

    The same as ``lax.conv_general_dilated(h, w, (1, 1), "SAME")``, but a
    matrix product batches well under ``vmap`` over seeds (a vmapped kernel
    would become a slow grouped convolution on CPU). Patch features are
    ordered (input channel, row, column).
    """
    patches = jax.lax.conv_general_dilated_patches(h, (3, 3), (1, 1), "SAME", dimension_numbers=_DN)
    return patches @ jnp.transpose(w, (2, 0, 1, 3)).reshape(-1, w.shape[-1])


def _pool(h: Array) -> Array:
    # 2x2 max-pooling, stride 2: non-overlapping windows, so 1-Lipschitz in l2.
    return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def apply(params: Params, x: Array) -> Array:
    """Logits of the network.

    The architecture is read off the parameters (their layer types), so
    ``apply`` is the same function for both kinds.

    Args:
      params: from :func:`init_params`.
      x: ``(..., 64)`` images in ``[0, 1]``, flattened row-major.

    Returns:
      ``(..., 10)`` logits.
    """
    batch = x.shape[:-1]
    h = x.reshape((-1, DIM))
    if isinstance(params[0], Conv):
        h = h.reshape((-1, SIDE, SIDE, 1))
        for layer in params[:-1]:
            h = _pool(jax.nn.relu(_conv(layer.w, h) + layer.b))
        h = h.reshape((h.shape[0], -1))
        return (h @ params[-1].w + params[-1].b).reshape(batch + (CLASSES,))
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer.w + layer.b)
    return (h @ params[-1].w + params[-1].b).reshape(batch + (CLASSES,))


def linear_maps(params: Params) -> list[tuple[Callable[[Array], Array], tuple[int, ...]]]:
    """The linear part of each layer, without bias, with its input shape.

    Returns:
      ``[(A, shape), ...]``: ``A`` maps one input of ``shape`` linearly; its
      l2 operator norm is the layer's spectral norm. For a dense layer
      ``A(v) = v @ w``; for a convolution ``A`` is the convolution on the
      layer's actual input size (8x8, 4x4, ...), zero padding included.
    """
    maps = []
    side = SIDE
    for layer in params:
        if isinstance(layer, Conv):
            shape = (side, side, layer.w.shape[2])
            maps.append((lambda v, w=layer.w: _conv(w, v[None])[0], shape))
            side //= 2
        else:
            maps.append((lambda v, w=layer.w: v @ w, (layer.w.shape[0],)))
    return maps


def weight_norms(params: Params) -> Array:
    """Frobenius norm of each layer's weight (bias excluded), ``(layers,)``; vmap for seeds."""
    return jnp.stack([jnp.linalg.norm(layer.w.ravel()) for layer in params])
