"""The scikit-learn handwritten digits and their 2-D DCT spectrum.

``sklearn.datasets.load_digits`` ships 1797 grey-scale 8x8 images of the
digits 0-9 with the package (no download). Pixels are integers in
``[0, 16]``; they are scaled to ``[0, 1]`` and flattened to 64-vectors in
row-major order, so an image is ``x.reshape(8, 8)``.

Frequency coordinates follow ``theory.signal``: the orthonormal DCT-II ``C``
applied along both image axes, ``X~ = C X C^T``, so ``||X~||_F = ||X||_F``
(Parseval) and ``X = C^T X~ C``. The *energy* of frequency ``(k, l)`` is the
mean of ``X~_kl^2`` over a data set; the energies sum to the mean ``||x||^2``.
Ma, Pan and Farahmand (TMLR 2023), section 3: natural images put little
energy in many frequencies, and removing those leaves accuracy unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory.signal import to_freq, to_input

Array = jax.Array

SIDE = 8  #: images are SIDE x SIDE
DIM = SIDE * SIDE
CLASSES = 10
PIXEL_MAX = 16.0  #: load_digits pixels are integers in [0, 16]


class Split(NamedTuple):
    """One part of the data: ``x`` is ``(n, 64)`` in ``[0, 1]``, ``y`` is ``(n,)`` int32."""

    x: Array
    y: Array


class Digits(NamedTuple):
    """The fixed train / validation / test split."""

    train: Split
    val: Split
    test: Split


def load_split(split_seed: int = 0, val_frac: float = 0.2, test_frac: float = 0.2, dtype=jnp.float32) -> Digits:
    """Loads the digits and splits them, stratified by class.

    The split is a function of ``split_seed`` only (``numpy`` permutations
    within each class), so every run and every training seed sees the same
    data.

    Args:
      split_seed: seed of the split.
      val_frac: fraction of each class in the validation set.
      test_frac: fraction of each class in the test set.
      dtype: floating dtype of the images.

    Returns:
      :class:`Digits` with the images scaled to ``[0, 1]``.

    Raises:
      ValueError: if the fractions leave no training data.
    """
    from sklearn.datasets import load_digits  # optional dependency, the `deep` extra

    if not (0 < val_frac and 0 < test_frac and val_frac + test_frac < 1):
        raise ValueError("need 0 < val_frac, 0 < test_frac and val_frac + test_frac < 1")
    data = load_digits()
    x = np.asarray(data.data, np.float64) / PIXEL_MAX
    y = np.asarray(data.target, np.int32)
    rng = np.random.default_rng(split_seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in range(CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val, n_test = round(val_frac * idx.size), round(test_frac * idx.size)
        for part, chunk in zip(parts, (idx[n_val + n_test:], idx[:n_val], idx[n_val:n_val + n_test])):
            part.append(chunk)
    # Sorted indices: the order inside a part does not depend on the class loop.
    splits = [np.sort(np.concatenate(p)) for p in parts]
    return Digits(*(Split(jnp.asarray(x[i], dtype), jnp.asarray(y[i])) for i in splits))


def dct2(x: Array) -> Array:
    """Images to 2-D frequency coordinates, ``X~ = C X C^T``, on flattened ``(..., 64)`` arrays.

    Row-major flattening, so frequency ``(k, l)`` (``k`` vertical, ``l``
    horizontal) sits at index ``8 k + l``.
    """
    img = x.reshape(x.shape[:-1] + (SIDE, SIDE))
    freq = to_freq(jnp.swapaxes(to_freq(img), -1, -2))  # C along rows, then along columns
    return jnp.swapaxes(freq, -1, -2).reshape(x.shape)


def idct2(x_freq: Array) -> Array:
    """The inverse of :func:`dct2`, ``X = C^T X~ C`` (``C`` is orthonormal)."""
    freq = x_freq.reshape(x_freq.shape[:-1] + (SIDE, SIDE))
    img = to_input(jnp.swapaxes(to_input(freq), -1, -2))
    return jnp.swapaxes(img, -1, -2).reshape(x_freq.shape)


def spectral_energy(x: Array) -> Array:
    """Mean squared 2-D DCT coefficient per frequency, ``(64,)``.

    Sums to the mean of ``||x||_2^2`` (Parseval).
    """
    return jnp.mean(jnp.square(dct2(x)), axis=0)


def energy_mask(energy: Array, keep: float) -> Array:
    """The fewest frequencies holding at least ``keep`` of the total energy.

    Frequencies are taken by decreasing energy (ties by index) until their
    summed energy reaches ``keep * sum(energy)``.

    Args:
      energy: ``(64,)`` energies from :func:`spectral_energy`.
      keep: fraction in ``(0, 1]``.

    Returns:
      ``(64,)`` boolean mask of the kept frequencies.
    """
    energy = np.asarray(energy, np.float64)
    order = np.argsort(-energy, kind="stable")
    cum = np.cumsum(energy[order])
    n_keep = int(np.searchsorted(cum, keep * cum[-1] * (1 - 1e-12))) + 1  # guard against rounding at keep = 1
    mask = np.zeros(energy.size, bool)
    mask[order[:min(n_keep, energy.size)]] = True
    return jnp.asarray(mask)


def frequency_index() -> tuple[np.ndarray, np.ndarray]:
    """``(k, l)`` of each flattened frequency index, each ``(64,)``."""
    k, l = np.divmod(np.arange(DIM), SIDE)
    return k, l


def block_mask(size: int) -> Array:
    """The low-frequency block ``k < size and l < size``, ``(64,)`` boolean."""
    k, l = frequency_index()
    return jnp.asarray((k < size) & (l < size))


def zigzag_order() -> np.ndarray:
    """Frequency indices by increasing ``k + l`` (ties by ``k``), the JPEG-like order."""
    k, l = frequency_index()
    return np.lexsort((k, k + l))


def band_masks(bands: int = 3) -> Array:
    """Splits the zigzag order into ``bands`` near-equal consecutive bands.

    With 3 bands: low (22 frequencies), middle (21), high (21).

    Returns:
      ``(bands, 64)`` boolean masks, disjoint, covering all frequencies.
    """
    masks = np.zeros((bands, DIM), bool)
    for b, chunk in enumerate(np.array_split(zigzag_order(), bands)):
        masks[b, chunk] = True
    return jnp.asarray(masks)


def project(x: Array, mask: Array) -> Array:
    """Orthogonal projection onto the span of the kept frequencies.

    ``P x = idct2(mask * dct2(x))``; ``P`` is symmetric and idempotent
    because the 2-D DCT is orthonormal.

    Args:
      x: ``(..., 64)`` images.
      mask: ``(64,)`` boolean, the frequencies to keep.
    """
    return idct2(jnp.where(mask, dct2(x), 0.0))
