"""Spectrum presets and targets for the signal model in any dimension ``d``.

Natural images keep most of their energy in the low frequencies; the high
ones carry (almost) none and are, for a linear model, *irrelevant*. The
``powerlaw`` preset is the idealised version:

    sigma_k = scale (k + 1)^(-alpha)   for k < cutoff,
    sigma_k = 0                        for cutoff <= k < d,

so frequencies ``cutoff, ..., d - 1`` (``d - cutoff`` of them) are
irrelevant. ``paper`` is the three-dimensional spectrum of Figure 5 (Ma, Pan
and Farahmand, TMLR 2023, section 4) and ``custom`` any list.

Targets live on the relevant band: a target weight on an irrelevant
frequency is never seen in the data, so no optimizer could learn it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theory.signal import irrelevant_mask

Array = jax.Array

#: Spectrum presets, by name.
SPECTRA = ("paper", "powerlaw", "custom")


def powerlaw_spectrum(d: int, alpha: float, cutoff: int, scale: float = 1.0, dtype=None) -> Array:
    """``sigma_k = scale (k + 1)^-alpha`` for ``k < cutoff``, exactly 0 above.

    Args:
      d: dimension.
      alpha: decay exponent, ``>= 0`` (0 gives a flat relevant band).
      cutoff: number of relevant (lowest) frequencies, ``1 <= cutoff <= d``;
        the other ``d - cutoff`` are irrelevant.
      scale: ``sigma_0``, ``> 0``.
      dtype: floating dtype (default: JAX's default float).

    Returns:
      ``(d,)`` standard deviations.

    Raises:
      ValueError: for ``d < 1``, ``cutoff`` outside ``[1, d]``, a negative
        or non-finite ``alpha``, or a non-positive ``scale``.
    """
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d}")
    if int(cutoff) != cutoff or not 1 <= cutoff <= d:
        raise ValueError(f"cutoff must be an integer in [1, d] = [1, {d}], got {cutoff}")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be finite and > 0, got {scale}")
    dtype = dtype or jnp.result_type(float)
    k = jnp.arange(d, dtype=dtype)
    return jnp.where(k < cutoff, scale * jnp.power(k + 1.0, -alpha), 0.0).astype(dtype)


def relevant_band(spectrum: Array, values: Array) -> Array:
    """``values`` on the relevant frequencies, exactly 0 on the irrelevant ones."""
    return jnp.where(irrelevant_mask(spectrum), jnp.zeros((), values.dtype), values)


def draw_w_star_freq(key: Array, spectrum: Array, scale: float = 1.0) -> Array:
    """A target drawn from the relevant band: ``w~*_k ~ N(0, scale^2)`` where
    ``spectrum_k > 0``, exactly 0 where ``spectrum_k = 0``.

    The draw for frequency ``k`` does not depend on the spectrum, only its
    masking does, so targets for different cutoffs of one key are nested.
    """
    z = jax.random.normal(key, spectrum.shape, dtype=spectrum.dtype)
    return relevant_band(spectrum, scale * z)
