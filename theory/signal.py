"""The synthetic signal model: a spectrum of frequencies in the DCT-II basis.

Ma, Pan and Farahmand, *Understanding the robustness difference between
stochastic gradient descent and adaptive gradient methods*, TMLR 2023
(arXiv:2308.06703), section 4.

Frequency coordinates carry a tilde in the paper and the suffix ``_freq``
here: ``x_freq = C x``, ``w_freq = C w``, ``x = C^T x_freq``, where ``C`` is
the orthonormal DCT-II matrix. Data are ``x_freq_k ~ N(0, spectrum_k^2)``,
independent across ``k``; a frequency with ``spectrum_k = 0`` is *irrelevant*.
Labels are noise-free, ``y = <w_star_freq, x_freq>``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy import fft as jfft

Array = jax.Array


class Problem(NamedTuple):
    """A linear regression problem on a DCT spectrum (a pytree, so vmap-able).

    Attributes:
      spectrum: ``(d,)`` standard deviations ``sigma_k`` of the frequency
        coordinates; zero marks an irrelevant frequency.
      w_star_freq: ``(d,)`` target weights in frequency coordinates.
      w0_freq: ``(d,)`` initial weights in frequency coordinates.
    """

    spectrum: Array
    w_star_freq: Array
    w0_freq: Array

    @property
    def dim(self) -> int:
        return self.spectrum.shape[-1]

    @property
    def e0_freq(self) -> Array:
        """Initial error ``e~(0) = w~(0) - w~*``."""
        return self.w0_freq - self.w_star_freq


def make_problem(spectrum, w_star_freq, w0_freq) -> Problem:
    """Builds a :class:`Problem`, checking shapes and the spectrum's sign.

    Raises:
      ValueError: if the three vectors differ in length, are not 1-D, or a
        spectrum entry is negative or non-finite.
    """
    spectrum = jnp.asarray(spectrum, dtype=jnp.result_type(float))
    w_star_freq = jnp.asarray(w_star_freq, dtype=spectrum.dtype)
    w0_freq = jnp.asarray(w0_freq, dtype=spectrum.dtype)
    if spectrum.ndim != 1:
        raise ValueError(f"spectrum must be 1-D, got shape {spectrum.shape}")
    d = spectrum.shape[0]
    for name, v in (("w_star_freq", w_star_freq), ("w0_freq", w0_freq)):
        if v.shape != (d,):
            raise ValueError(f"{name} has shape {v.shape}, expected ({d},) to match the spectrum")
    if not bool(jnp.all(jnp.isfinite(spectrum))) or bool(jnp.any(spectrum < 0)):
        raise ValueError("spectrum entries must be finite and >= 0")
    return Problem(spectrum, w_star_freq, w0_freq)


#: The paper's Figure 5 setting (THEORY.md section 1), as Python floats; frequency 2 is irrelevant.
PAPER_SPECTRUM = (0.1, 0.05, 0.0)
PAPER_W_STAR_FREQ = (5.0, 10.0, 0.0)
PAPER_W0_FREQ = (0.01, -0.01, 0.02)


def paper_problem() -> Problem:
    """The paper's Figure 5 setting: :data:`PAPER_SPECTRUM`, :data:`PAPER_W_STAR_FREQ`,
    :data:`PAPER_W0_FREQ` (THEORY.md section 1)."""
    return make_problem(PAPER_SPECTRUM, PAPER_W_STAR_FREQ, PAPER_W0_FREQ)


class PaperTraining(NamedTuple):
    """The paper's training hyper-parameters for Figure 5."""

    lr: float = 0.01
    steps: int = 200_001
    batch_size: int = 5000
    radius: float = math.sqrt(2.0)


def dct_basis(d: int, dtype=None) -> Array:
    """The orthonormal DCT-II matrix ``C`` (``d x d``), so that ``x_freq = C x``.

    Built by applying ``jax.scipy.fft.dct(norm="ortho")`` to the identity:
    column ``j`` is the transform of the ``j``-th unit vector. Row ``k`` is
    the ``k``-th basis signal ``c_k``, e.g. for ``d = 3``
    ``c_0 = (1,1,1)/sqrt3``, ``c_1 = (1,0,-1)/sqrt2``, ``c_2 = (1,-2,1)/sqrt6``.
    """
    dtype = dtype or jnp.result_type(float)
    return jfft.dct(jnp.eye(d, dtype=dtype), type=2, norm="ortho", axis=0)


def to_freq(x: Array) -> Array:
    """Input to frequency coordinates along the last axis: ``x_freq = C x``."""
    return jfft.dct(x, type=2, norm="ortho", axis=-1)


def to_input(x_freq: Array) -> Array:
    """Frequency to input coordinates along the last axis: ``x = C^T x_freq``."""
    return jfft.idct(x_freq, type=2, norm="ortho", axis=-1)


def irrelevant_mask(spectrum: Array) -> Array:
    """Boolean mask of the irrelevant frequencies (``spectrum_k == 0``)."""
    return spectrum == 0


def sample_freq(key: Array, spectrum: Array, n: int) -> Array:
    """Draws ``n`` samples ``x_freq ~ N(0, diag(spectrum^2))``, shape ``(n, d)``.

    Irrelevant coordinates are exactly zero.
    """
    z = jax.random.normal(key, (n, spectrum.shape[-1]), dtype=spectrum.dtype)
    return z * spectrum
