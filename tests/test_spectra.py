"""Spectrum presets and targets (``theory.spectra``) at the default float32.

Tolerance for the power law: ``sigma_k = scale (k + 1)^-alpha`` is computed in
float32 (``U32 = 2^-24``): ``alpha`` is rounded to float32 (relative error
``U32``, which moves ``x^-alpha`` by ``alpha ln(x) U32`` relatively), ``pow``
is accurate to a few ulp of its result, and the product with ``scale`` (also
rounded) adds two roundings. So each entry is within
``(alpha ln(k + 1) + 8) U32`` relative of the float64 value; 8 ulp leave room
for ``pow`` implemented as ``exp(-alpha log x)``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory.signal import PAPER_SPECTRUM
from theory.spectra import SPECTRA, draw_w_star_freq, powerlaw_spectrum, relevant_band

U32 = 2.0**-24


def expected_powerlaw(d, alpha, cutoff, scale):
    k = np.arange(d, dtype=np.float64)
    return np.where(k < cutoff, scale * (k + 1.0) ** -alpha, 0.0)


@pytest.mark.parametrize(
    "d,alpha,cutoff,scale",
    [(1, 1.0, 1, 1.0), (3, 0.0, 2, 0.1), (8, 1.0, 5, 2.0), (64, 2.5, 17, 0.3), (64, 0.37, 64, 1.0), (1024, 1.0, 768, 1.0)],
)
def test_powerlaw_values(d, alpha, cutoff, scale):
    sigma = powerlaw_spectrum(d, alpha, cutoff, scale)
    assert sigma.shape == (d,) and sigma.dtype == jnp.float32
    s = np.asarray(sigma, np.float64)
    want = expected_powerlaw(d, alpha, cutoff, scale)
    k = np.arange(d)
    tol = (alpha * np.log(k + 1.0) + 8) * U32 * want
    assert np.all(np.abs(s - want) <= tol)
    assert s[0] == np.float32(scale)  # (0 + 1)^-alpha = 1 exactly
    np.testing.assert_array_equal(s[cutoff:], 0.0)  # exact zeros: irrelevant
    assert np.all(s[:cutoff] > 0)
    assert np.all(np.diff(s) <= 0)  # monotone
    if alpha == 0:
        np.testing.assert_array_equal(s[:cutoff], np.float32(scale))


def test_powerlaw_default_scale_and_sizes():
    np.testing.assert_array_equal(powerlaw_spectrum(4, 2.0, 4), powerlaw_spectrum(4, 2.0, 4, 1.0))
    sigma = np.asarray(powerlaw_spectrum(1024, 1.5, 100))
    assert sigma.shape == (1024,) and int(np.sum(sigma == 0)) == 924 and sigma[99] > 0
    # entry k does not depend on d
    np.testing.assert_array_equal(np.asarray(powerlaw_spectrum(64, 1.3, 10))[:32], np.asarray(powerlaw_spectrum(32, 1.3, 10)))


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(d=0, alpha=1.0, cutoff=1), "d must"),
        (dict(d=-3, alpha=1.0, cutoff=1), "d must"),
        (dict(d=2.5, alpha=1.0, cutoff=1), "d must"),
        (dict(d=4, alpha=1.0, cutoff=0), "cutoff"),
        (dict(d=4, alpha=1.0, cutoff=5), "cutoff"),
        (dict(d=4, alpha=1.0, cutoff=2.5), "cutoff"),
        (dict(d=4, alpha=-0.1, cutoff=2), "alpha"),
        (dict(d=4, alpha=math.nan, cutoff=2), "alpha"),
        (dict(d=4, alpha=math.inf, cutoff=2), "alpha"),
        (dict(d=4, alpha=1.0, cutoff=2, scale=0.0), "scale"),
        (dict(d=4, alpha=1.0, cutoff=2, scale=-1.0), "scale"),
        (dict(d=4, alpha=1.0, cutoff=2, scale=math.nan), "scale"),
        (dict(d=4, alpha=1.0, cutoff=2, scale=math.inf), "scale"),
    ],
)
def test_powerlaw_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        powerlaw_spectrum(**kwargs)


def test_presets():
    assert "powerlaw" in SPECTRA and "paper" in SPECTRA
    assert PAPER_SPECTRUM == (0.1, 0.05, 0.0)


def test_relevant_band():
    spectrum = jnp.asarray([1.0, 0.0, 0.5, 0.0])
    values = jnp.asarray([3.0, -2.0, 7.0, 4.0])
    out = relevant_band(spectrum, values)
    assert out.dtype == values.dtype
    np.testing.assert_array_equal(out, [3.0, 0.0, 7.0, 0.0])


@pytest.mark.parametrize("d,cutoffs", [(8, (1, 3, 7, 8)), (1024, (1, 100, 768, 1023))])
def test_draw_w_star_freq_zero_on_irrelevant_band_and_nested(d, cutoffs):
    key = jax.random.key(7)
    draws = []
    for cutoff in cutoffs:
        spectrum = powerlaw_spectrum(d, 1.0, cutoff)
        w = np.asarray(draw_w_star_freq(key, spectrum))
        assert w.shape == (d,) and w.dtype == np.float32
        np.testing.assert_array_equal(w[cutoff:], 0.0)  # exactly zero where sigma = 0
        assert np.all(w[:cutoff] != 0)  # a normal draw is almost surely nonzero
        draws.append(w)
    # Nested: one key gives the same target on the common relevant band.
    for (c1, w1), w2 in zip(zip(cutoffs, draws), draws[1:]):
        np.testing.assert_array_equal(w1[:c1], w2[:c1])
    # The draws on the widest band look standard normal (z-tests, 5 SE).
    w = draws[-1][: cutoffs[-1]].astype(np.float64)
    n = len(w)
    if n >= 1000:
        assert abs(w.mean()) < 5 / math.sqrt(n)
        assert abs(w.var() - 1.0) < 5 * math.sqrt(2.0 / n)


def test_draw_w_star_freq_scale_and_keys():
    spectrum = powerlaw_spectrum(16, 0.5, 10)
    key = jax.random.key(3)
    w1 = np.asarray(draw_w_star_freq(key, spectrum))
    np.testing.assert_array_equal(np.asarray(draw_w_star_freq(key, spectrum, scale=2.0)), 2.0 * w1)  # exact
    np.testing.assert_array_equal(np.asarray(draw_w_star_freq(key, spectrum)), w1)  # deterministic
    assert not np.array_equal(np.asarray(draw_w_star_freq(jax.random.key(4), spectrum)), w1)
    # On a spectrum with zeros anywhere, not only at the top.
    w = np.asarray(draw_w_star_freq(key, jnp.asarray([0.0, 1.0, 0.0, 2.0])))
    assert w[0] == 0 and w[2] == 0 and w[1] != 0 and w[3] != 0
