"""Exact sufficient statistics of a batch of the signal model.

Labels are noise-free (or carry Gaussian noise ``xi``) and the model is
linear, so the gradient of an ``n``-sample batch,

    g~ = (1/n) X~^T (X~ e~ - xi) = S e~ - (1/n) X~^T xi,

depends on the data only through ``S = (1/n) X~^T X~`` and ``X~^T xi / n``.
``n S`` is Wishart(n, diag(spectrum^2)), which the Bartlett decomposition
samples in ``O(d^2)`` whatever ``n`` is:

    n S = D A A^T D,   D = diag(spectrum),
    A_ii = sqrt(chi^2_{n-i}),  A_ij ~ N(0, 1) (i > j),  A is d x min(n, d).

With ``n < d`` the same construction (``A`` lower trapezoidal, ``min(n, d)``
columns) is the QR factor of the ``n x d`` Gaussian matrix, so it is exact
there too. Given ``X~``, ``X~^T xi / n ~ N(0, noise^2 S / n)``, which is
``noise / sqrt(n) L z`` for any factor ``S = L L^T``; Bartlett hands us ``L``.
Irrelevant frequencies (``spectrum_k = 0``) get exactly zero rows.

Random numbers (how the Wishart sampler turns a key into numbers)
-----------------------------------------------------------------

The sampler is written for speed on a batch of keys at once (the engine draws
a block of steps for every seed in one vectorised call), and it is *exact*:

* A key is a threefry-2x32 key pair ``(k1, k2)`` (:func:`key_words`). Its
  *slot* ``(hi, lo)`` is the pair of words ``threefry2x32((k1, k2), (hi, lo))``
  (:func:`threefry2x32`: bit-identical to JAX's, but written out so that XLA
  fuses and vectorises it on CPU, where JAX lowers it as a loop).
* A word ``w`` gives the uniform ``u = (w >> 9) / 2^23`` in ``[0, 1)`` and
  the normal ``sqrt2 erfinv(2u - 1)``, the recipe of ``jax.random.normal``
  (float64: one number from both words of a slot).
* ``chi^2_k`` for ``k <= SMALL_DOF`` is a sum of ``k`` squared normals. For
  larger ``k`` it is ``2 Gamma(k/2)`` by Marsaglia and Tsang's rejection
  method (ACM TOMS 26, 2000): with ``a = k/2 - 1/3``, ``c = 1/sqrt(9a)``, a
  normal ``x`` and a uniform ``u``, the candidate ``2a(1 + cx)^3`` is
  accepted iff ``1 + cx > 0`` and ``log(1 - u) < 3a h(cx)``, where
  ``h(y) = log1p(y) - y + y^2/2 - y^3/3``. (This is their test
  ``log U < x^2/2 + a - a v + a log v``, ``v = (1+cx)^3``, with the
  ``x^2/2`` cancelled analytically; ``h`` is summed as a series for small
  ``|y|``, so it stays accurate in float32 for ``k`` in the thousands, where
  the textbook form cancels catastrophically.) A rejected entry ``i``
  retries with candidates from slots ``(1 + i, r)``, ``r = 0, 1, ...``, so
  the result is the first accepted draw of an i.i.d. sequence: exact. For
  ``k = 5000`` about 1 draw in 90 000 is rejected.
* Slots ``(0, lo)``: first one per Marsaglia-Tsang diagonal entry (``x``
  from the first word, ``u`` from the second; two slots in float64), then
  one per normal, using its first word: the ``k`` normals of each
  small-dof diagonal entry, the normals below the diagonal (row-major),
  then the ``min(n, d)`` label-noise normals (if any). One slot per output
  entry means XLA's element-wise fusion never computes a slot twice.

Reference: M. S. Bartlett, *On the theory of statistical regression*, 1933.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

SAMPLERS = ("wishart", "explicit")

#: ``chi^2_k`` with ``k <= SMALL_DOF`` is drawn as a sum of ``k`` squared normals.
SMALL_DOF = 4

#: Up to this many entries, small matrix products are unrolled into
#: element-wise arithmetic (which XLA fuses and vectorises over the batch).
UNROLL_MAX_ENTRIES = 64


class BatchStats(NamedTuple):
    """Sufficient statistics of one batch in frequency coordinates.

    Attributes:
      factor: ``(d, m)`` with ``S = factor @ factor.T = X~^T X~ / n``.
      label_grad: ``(d,)``, ``X~^T xi / n`` (zeros without label noise).

    :func:`wishart_draw` returns the same with trailing batch axes,
    ``(d, m, *batch)`` and ``(d, *batch)``.
    """

    factor: Array
    label_grad: Array


# --------------------------------------------------------------------------
# Counter-based random words.


def _rotl(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k1, k2, x1, x2) -> tuple[Array, Array]:
    """The threefry-2x32 block cipher (20 rounds), broadcasting its arguments.

    Bit-identical to ``jax.extend.random.threefry2x32_p``, written out so
    that XLA can fuse it with its consumers and vectorise it on CPU (JAX's
    CPU lowering wraps the rounds in a loop, which does neither).
    """
    k1, k2, x1, x2 = (jnp.asarray(v, jnp.uint32) for v in (k1, k2, x1, x2))
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x1 = x1 + ks[0]
    x2 = x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def key_words(key: Array) -> Array:
    """Threefry key words ``(2, *key.shape)`` (uint32) of a key or key array.

    Threefry keys (typed, or raw ``uint32[..., 2]`` as from
    ``jax.random.PRNGKey``) give their own data; other implementations give
    two words drawn from the key with ``jax.random.bits``.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) == "threefry2x32":
            data = jax.random.key_data(key)
        else:
            flat = key.reshape(-1)
            data = jax.vmap(lambda k: jax.random.bits(k, (2,), jnp.uint32))(flat).reshape(key.shape + (2,))
    else:
        data = jnp.asarray(key)
        if data.dtype != jnp.uint32 or data.shape[-1:] != (2,):
            raise TypeError(f"expected a PRNG key or uint32[..., 2] key data, got {data.dtype}{list(data.shape)}")
    return jnp.moveaxis(data, -1, 0)


def fold_in_words(kw: Array, data) -> Array:
    """``jax.random.fold_in`` on threefry key words: ``threefry(kw, (0, data))``.

    ``kw`` is ``(2, *batch)``; ``data`` (uint32) broadcasts against ``batch``.
    """
    y1, y2 = threefry2x32(kw[0], kw[1], np.uint32(0), jnp.asarray(data).astype(jnp.uint32))
    return jnp.stack([y1, y2])


def threefry_slots(kw: Array, hi, lo) -> tuple[Array, Array]:
    """The two words of slot ``(hi, lo)`` of each key: ``threefry(kw, (hi, lo))``.

    ``kw`` is ``(2, *batch)``; ``hi`` and ``lo`` broadcast against ``batch``.
    """
    return threefry2x32(kw[0], kw[1], jnp.asarray(hi).astype(jnp.uint32), jnp.asarray(lo).astype(jnp.uint32))


def _words_per_number(dtype) -> int:
    bits = jnp.finfo(dtype).bits
    if bits not in (32, 64):
        raise TypeError(f"the Wishart sampler supports float32 and float64, got {jnp.dtype(dtype).name}")
    return bits // 32


def uniform_from_words(words: Array, dtype, low: Array | None = None) -> Array:
    """Uniforms in ``[0, 1)`` from one word (float32) or from a high and a
    ``low`` word (float64): the bit recipe of ``jax.random.uniform``."""
    if _words_per_number(dtype) == 1:
        bits = (words >> np.uint32(9)) | np.uint32(0x3F800000)
        return jax.lax.bitcast_convert_type(bits, jnp.float32) - jnp.float32(1.0)
    if low is None:
        raise ValueError("float64 uniforms need a low word")
    hi, lo = words.astype(jnp.uint64), low.astype(jnp.uint64)
    bits = (((hi << np.uint64(32)) | lo) >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
    return jax.lax.bitcast_convert_type(bits, jnp.float64) - jnp.float64(1.0)


def _slot_uniforms(kw: Array, hi, lo, dtype) -> tuple[Array, ...]:
    """The uniforms of slot ``(hi, lo)``: two in float32, one in float64."""
    y1, y2 = threefry_slots(kw, hi, lo)
    if _words_per_number(dtype) == 1:
        return uniform_from_words(y1, dtype), uniform_from_words(y2, dtype)
    return (uniform_from_words(y1, dtype, y2),)


def normal_from_uniform(u: Array) -> Array:
    """``sqrt2 erfinv(v)`` with ``v`` uniform on ``(-1, 1)``, as ``jax.random.normal``."""
    dtype = u.dtype
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    v = jnp.maximum(lo, u * (np.array(1.0, dtype) - lo) + lo)
    return np.array(np.sqrt(2.0), dtype) * jax.lax.erf_inv(v)


# --------------------------------------------------------------------------
# Chi-square by Marsaglia and Tsang.

#: Bound on ``|x|`` of our normals: ``sqrt2 erfinv(1 - 2^-52) < 8.3``.
_NORMAL_MAX = 9.0


def _h(y: Array, y_max: float = math.inf) -> Array:
    """``h(y) = log1p(y) - y + y^2/2 - y^3/3``, accurate near 0.

    Summed as ``-y^4 (1/4 - y/5 + y^2/6 - ...)`` for ``|y| < 1/4``, with
    enough terms for a relative error below ``1e-10`` when ``|y| <= y_max``
    (statically known), and directly otherwise.
    """
    y_lim = min(0.25, y_max)
    terms = 1
    while y_lim**terms / (terms + 4) > 1e-10 / 4:
        terms += 1
    coefs = [1.0 / k for k in range(4, 4 + terms)]
    acc = jnp.full_like(y, coefs[-1])
    for coef in coefs[-2::-1]:
        acc = coef - y * acc
    y2 = y * y
    series = -(y2 * y2) * acc
    if y_max < 0.25:
        return series
    direct = jnp.log1p(y) - y + y2 / 2 - y2 * y / 3  # NaN for y <= -1: rejected by the caller
    return jnp.where(jnp.abs(y) < 0.25, series, direct)


def _chi2_candidate(x: Array, u: Array, dof) -> tuple[Array, Array]:
    """Marsaglia-Tsang candidate for ``chi^2_dof`` and whether it is accepted.

    ``x`` normal, ``u`` uniform on ``[0, 1)``; ``dof`` (static, a number or an
    array broadcasting against ``x``) must be ``>= 2``.
    """
    dtype = x.dtype
    a = np.asarray(dof, np.float64) / 2.0 - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * a)
    y = x * np.asarray(c, dtype)
    v = 1.0 + y
    accept = jnp.log1p(-u) < np.asarray(3.0 * a, dtype) * _h(y, float(np.max(c)) * _NORMAL_MAX)
    ok = (y > -1.0) & accept
    return np.asarray(2.0 * a, dtype) * (v * v * v), ok


class _Layout(NamedTuple):
    """Static plan of one Wishart draw (see the module docstring)."""

    d: int
    m: int
    dofs: tuple[int, ...]  # dof of diagonal entry i
    mt: tuple[int, ...]  # diagonal entries drawn by Marsaglia-Tsang
    small: tuple[int, ...]  # diagonal entries drawn as sums of squares
    below: tuple[tuple[int, int], ...]  # strictly-lower entries (row-major)
    noise: bool
    n_normals: int  # normals after the Marsaglia-Tsang slots


def _layout(d: int, n: int, label_noise: float) -> _Layout:
    m = min(n, d)
    dofs = tuple(n - i for i in range(m))
    mt = tuple(i for i in range(m) if dofs[i] > SMALL_DOF)
    small = tuple(i for i in range(m) if dofs[i] <= SMALL_DOF)
    below = tuple((i, j) for i in range(d) for j in range(min(i, m)))
    noise = bool(label_noise)
    n_normals = sum(dofs[i] for i in small) + len(below) + (m if noise else 0)
    return _Layout(d, m, dofs, mt, small, below, noise, n_normals)


def _expand(values, ndim: int) -> np.ndarray:
    """A static ``(q,)`` vector shaped ``(q, 1, ..., 1)`` to broadcast over a batch."""
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * ndim)


def _mt_draw(kw: Array, his, los, dofs, dtype) -> Array:
    """Marsaglia-Tsang candidates ``(q, *batch)`` from the slots ``(his, los)``
    (``(q, 1, ...)`` each; float64 also uses ``los + 1``); NaN where rejected."""
    if _words_per_number(dtype) == 1:
        ux, uu = _slot_uniforms(kw, his, los, dtype)
    else:
        (ux,) = _slot_uniforms(kw, his, los, dtype)
        (uu,) = _slot_uniforms(kw, his, los + 1, dtype)
    cand, ok = _chi2_candidate(normal_from_uniform(ux), uu, dofs)
    return jnp.where(ok, cand, np.array(np.nan, dtype))


class WishartDraw(NamedTuple):
    """A compact Bartlett draw, with trailing batch axes.

    Attributes:
      diag: ``(m, *batch)``, ``A_ii = sqrt(chi^2_{n-i})``.
      below: ``(P, *batch)``, the normals ``A_ij`` (``i > j``) in row-major order.
      label_grad: ``(d, *batch)``, ``X~^T xi / n`` (zeros without label noise).

    The factor is ``diag(spectrum) A / sqrt(n)`` (:func:`wishart_factor`).
    """

    diag: Array
    below: Array
    label_grad: Array


def wishart_draw(kw: Array, spectrum: Array, n: int, label_noise: float = 0.0) -> WishartDraw:
    """Exact Bartlett draws for a batch of threefry keys.

    Args:
      kw: ``(2, *batch)`` key words (:func:`key_words`), one key per draw.
      spectrum: ``(d,)`` standard deviations.
      n: batch size (static).
      label_noise: standard deviation of the label noise (static).

    Returns:
      A :class:`WishartDraw`. Every output entry is computed from its own
      threefry slots, so XLA's element-wise fusion recomputes nothing.
    """
    dtype = spectrum.dtype
    d = spectrum.shape[-1]
    lay = _layout(d, n, label_noise)
    batch = kw.shape[1:]
    nb = len(batch)
    wpn = _words_per_number(dtype)
    q = len(lay.mt)

    diag: dict[int, Array] = {}
    if q:
        dofs = _expand([lay.dofs[i] for i in lay.mt], nb).astype(np.float64)
        chi = _mt_draw(kw, np.uint32(0), _expand(np.arange(q, dtype=np.uint32) * wpn, nb), dofs, dtype)

        def retry(carry):
            chi, r = carry
            his = _expand(np.asarray([1 + i for i in lay.mt], np.uint32), nb)
            cand = _mt_draw(kw, his, r * np.uint32(wpn), dofs, dtype)
            return jnp.where(jnp.isnan(chi), cand, chi), r + np.uint32(1)

        # Rejected entries (NaN) retry from counters (1 + i, r); accepted ones never change.
        chi, _ = jax.lax.while_loop(lambda c: jnp.any(jnp.isnan(c[0])), retry, (chi, jnp.zeros((), jnp.uint32)))
        for a, i in enumerate(lay.mt):
            diag[i] = jnp.sqrt(chi[a])

    los = _expand(q * wpn + np.arange(lay.n_normals, dtype=np.uint32), nb)
    z = normal_from_uniform(_slot_uniforms(kw, np.uint32(0), los, dtype)[0])  # (n_normals, *batch)
    pos = 0
    for i in lay.small:
        k = lay.dofs[i]
        squares = [z[pos + l] * z[pos + l] for l in range(k)]  # element-wise, not a reduce:
        diag[i] = jnp.sqrt(sum(squares[1:], squares[0]))  # the same bits for any batch shape
        pos += k
    below = z[pos : pos + len(lay.below)]
    pos += len(lay.below)
    diag_arr = jnp.stack([diag[i] for i in range(lay.m)])
    if lay.noise:
        zl = z[pos : pos + lay.m]
        draw = WishartDraw(diag_arr, below, jnp.zeros((d,) + batch, dtype))
        label_grad = (label_noise / np.sqrt(n)) * factor_matvec(wishart_factor(draw, spectrum, n), zl)
    else:
        label_grad = jnp.zeros((d,) + batch, dtype)
    return WishartDraw(diag_arr, below, label_grad)


def wishart_factor(draw: WishartDraw, spectrum: Array, n: int) -> Array:
    """The dense factor ``(d, m, *batch)``: ``diag(spectrum) A / sqrt(n)``."""
    d = spectrum.shape[-1]
    m = draw.diag.shape[0]
    batch = draw.diag.shape[1:]
    sources = jnp.concatenate([jnp.zeros((1,) + batch, draw.diag.dtype), draw.diag, draw.below])
    index = np.zeros((d, m), np.int32)
    for i in range(m):
        index[i, i] = 1 + i
    for p, (i, j) in enumerate((i, j) for i in range(d) for j in range(min(i, m))):
        index[i, j] = 1 + m + p
    a_mat = jnp.take(sources, index.reshape(-1), axis=0).reshape((d, m) + batch)
    return (spectrum / np.sqrt(n)).reshape((d, 1) + (1,) * len(batch)) * a_mat


def draw_gradient(draw: WishartDraw, spectrum: Array, n: int, e_freq: Array) -> Array:
    """``g~ = S e~ - X~^T xi / n`` from a compact draw, coordinate axis first.

    ``draw`` has trailing batch ``b1``; ``e_freq`` is ``(d, *b2)`` with ``b2``
    broadcasting against ``b1`` (e.g. ``b1 = (S,)`` seeds and ``b2 = (k, S)``:
    ``k`` optimizers sharing each seed's batch). With ``S = F F^T``,
    ``F = diag(s) A``, ``s = spectrum / sqrt(n)``: ``u = A^T (s e)``,
    ``g = s (A u)``, unrolled over the nonzero entries of ``A`` for small ``d``.
    """
    d = spectrum.shape[-1]
    m = draw.diag.shape[0]
    lg = align_leading(draw.label_grad, e_freq.ndim)
    if d * m > UNROLL_MAX_ENTRIES:
        factor = wishart_factor(draw, spectrum, n)
        return factor_matvec(factor, factor_rmatvec(factor, e_freq)) - lg
    s = spectrum / np.sqrt(n)
    entry = {(i, i): draw.diag[i] for i in range(m)}
    entry.update({ij: draw.below[p] for p, ij in enumerate((i, j) for i in range(d) for j in range(min(i, m)))})
    se_freq = [s[i] * e_freq[i] for i in range(d)]
    u = []
    for j in range(m):
        terms = [entry[i, j] * se_freq[i] for i in range(j, d)]
        u.append(sum(terms[1:], terms[0]))
    rows = []
    for i in range(d):
        terms = [entry[i, j] * u[j] for j in range(min(i + 1, m))]
        rows.append(s[i] * sum(terms[1:], terms[0]))
    return jnp.stack(rows) - lg


# --------------------------------------------------------------------------
# Small products with a trailing batch, broadcasting like NumPy.


def factor_matvec(factor: Array, v: Array, lower: bool = True) -> Array:
    """``sum_j factor[i, j] v[j]``: ``factor`` ``(d, m, *b1)``, ``v`` ``(m, *b2)``
    with ``b1`` and ``b2`` broadcasting; returns ``(d, *b)``. ``lower``:
    ``factor`` is lower trapezoidal (entries ``j > i`` are skipped)."""
    d, m = factor.shape[:2]
    if d * m <= UNROLL_MAX_ENTRIES:
        rows = []
        for i in range(d):
            terms = [factor[i, j] * v[j] for j in range(m) if not (lower and j > i)]
            rows.append(sum(terms[1:], terms[0]))
        return jnp.stack(rows)
    f = factor.reshape(factor.shape[:2] + (1,) * max(0, v.ndim - factor.ndim + 1) + factor.shape[2:])
    return jnp.sum(f * v[None], axis=1)


def factor_rmatvec(factor: Array, v: Array, lower: bool = True) -> Array:
    """``sum_i factor[i, j] v[i]``: ``factor`` ``(d, m, *b1)``, ``v`` ``(d, *b2)``;
    returns ``(m, *b)``."""
    d, m = factor.shape[:2]
    if d * m <= UNROLL_MAX_ENTRIES:
        cols = []
        for j in range(m):
            terms = [factor[i, j] * v[i] for i in range(d) if not (lower and j > i)]
            cols.append(sum(terms[1:], terms[0]))
        return jnp.stack(cols)
    f = factor.reshape(factor.shape[:2] + (1,) * max(0, v.ndim - factor.ndim + 1) + factor.shape[2:])
    return jnp.sum(f * v[:, None], axis=0)


def gram(factor: Array) -> Array:
    """``S = factor factor^T``: ``(d, d, *batch)`` from ``(d, m, *batch)``,
    unrolled element-wise for small sizes (the same bits for any batch)."""
    d, m = factor.shape[:2]
    if d * d * m > 4 * UNROLL_MAX_ENTRIES:
        return jnp.einsum("ij...,kj...->ik...", factor, factor)
    rows = []
    for i in range(d):
        row = []
        for k in range(d):
            terms = [factor[i, j] * factor[k, j] for j in range(m)]
            row.append(sum(terms[1:], terms[0]))
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


def align_leading(x: Array, ndim: int) -> Array:
    """``x`` ``(d, *batch)`` reshaped to ``(d, 1, ..., 1, *batch)`` of rank ``ndim``,
    so that it broadcasts against ``(d, *lead, *batch)``."""
    return x.reshape(x.shape[:1] + (1,) * (ndim - x.ndim) + x.shape[1:])


# --------------------------------------------------------------------------
# The samplers.


def sample_wishart(key: Array, spectrum: Array, n: int, label_noise: float = 0.0) -> BatchStats:
    """Exact batch statistics by the Bartlett decomposition, ``O(d^2)`` per call.

    The numbers come from ``key`` as described in the module docstring, so
    ``sample_wishart(key, ...)`` is :func:`wishart_draw` on ``key_words(key)``
    (the engine's batched path), made dense.
    """
    draw = wishart_draw(key_words(key), spectrum, n, label_noise)
    return BatchStats(wishart_factor(draw, spectrum, n), draw.label_grad)


def sample_explicit(key: Array, spectrum: Array, n: int, label_noise: float = 0.0) -> BatchStats:
    """Batch statistics from ``n`` explicit samples, ``O(n d)`` per call: the reference."""
    d = spectrum.shape[-1]
    k_x, k_xi = jax.random.split(key)
    x_freq = jax.random.normal(k_x, (n, d), spectrum.dtype) * spectrum
    factor = x_freq.T / jnp.sqrt(n)
    if label_noise:
        xi = label_noise * jax.random.normal(k_xi, (n,), spectrum.dtype)
        label_grad = x_freq.T @ xi / n
    else:
        label_grad = jnp.zeros_like(spectrum)
    return BatchStats(factor, label_grad)


def sample_batch(key: Array, spectrum: Array, n: int, sampler: str = "wishart", label_noise: float = 0.0) -> BatchStats:
    """Dispatches to :func:`sample_wishart` or :func:`sample_explicit`."""
    if sampler == "wishart":
        return sample_wishart(key, spectrum, n, label_noise)
    if sampler == "explicit":
        return sample_explicit(key, spectrum, n, label_noise)
    raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
