"""signGD's irrelevant-band energy in general ``d`` (THEORY.md section 7, item 4).

Population signGD in input coordinates, ``e = w - w*``, ``C = DCT-II``:

    e <- e - lr s(t),   s(t) = sign(g(t)),   g = M e,   M = C^T diag(sigma^2) C.

``I = {k : sigma_k = 0}`` (non-empty), ``C_I`` its rows, ``V_rel`` the span
of the relevant basis signals ``c_k``, ``k not in I`` (so ``C_I v = 0`` iff
``v in V_rel``), ``E(t) = ||e~_I(t)||^2``.

Derived (exact arithmetic; checked on the float64 iteration):

(a) **Lattice identity.** ``e(t) = e(0) - lr N(t)`` with the integer vector
    ``N(t) = sum_{tau < t} s(tau)``, so ``e~_I(t) = e~_I(0) - lr C_I N(t)``.
    With ``e~_I(0) = 0``: ``E(t) = lr^2 ||C_I N(t)||^2``, positive iff
    ``N(t) not in V_rel``.
(b) **Phase 1** is the initial run of steps whose sign vector is all-equal,
    ``s = +-(1, ..., 1) = +-sqrt(d) c_0``; ``t1`` is the first step whose sign
    vector is not (``t1 = 0`` if the run starts there). ``C c_0 = e_0``, so
    such a step moves ``e~_0`` by ``-+ lr sqrt(d)`` and nothing else,
    relevant or irrelevant.
(c) **Leaving phase 1.** ``M 1 = C^T diag(sigma^2) sqrt(d) e_0 = sigma_0^2 1``,
    so during phase 1 ``g(t) = g(0) - h m(t) 1`` (``h = lr sigma_0^2``,
    ``N(t) = m(t) 1``): every spatial component moves at the same rate. If
    ``g(0)`` has one sign ``s'``, write ``a = s' g(0) > 0``,
    ``k_lo = ceil(min a / h)``, ``k_hi = ceil(max a / h)``:
    * ``k_lo < k_hi``: ``t1 = k_lo``, and the components that change sign
      there are ``S = {i : ceil(a_i / h) = k_lo}`` (not all of them):
      ``s(t1) = s' (1 - 2 1_S)``. ``|S| = 1`` is *not* generic: components
      whose ``a_i`` lie in the same interval ``((k-1) h, k h]`` cross
      together, which happens with positive probability (in about 3 of 4
      exits in the draws below).
    * ``k_lo = k_hi``: all components cross together at ``k_lo``, and then
      again at every step: a two-cycle of all-equal sign vectors
      (``s(t) = s'`` for ``t < k_lo``, ``-s'``, ``s'``, ... after), ``e~_0``
      flips by ``lr sqrt(d)`` and nothing else ever moves; ``t1`` never comes
      (the general-``d`` NO_PHASE2 of THEORY.md section 4). It needs
      ``max a - min a < h``.
    * If ``g(0)`` is not of one sign, ``t1 = 0``.
    With a power-law spectrum and ``cutoff < d``, ``d - 1`` is in ``I``, and
    ``C[d-1, i] = sqrt(2/d) cos(pi (d-1)(2i+1) / 2d) = (-1)^i sqrt(2/d) sin(pi (2i+1) / 2d)``
    (``cos(pi (2i+1)/2 - x) = (-1)^i sin x``), never 0 since
    ``0 < pi (2i+1) / 2d < pi``. (Equivalently: ``cos(pi m / 2d) = 0`` needs
    ``m / d`` odd; ``gcd(d-1, d) = 1`` forces ``d | 2i+1``, i.e. ``2i+1 = d``,
    and then ``m / d = d - 1`` is even.) So when one component ``i`` crosses
    (``|S| = 1``), ``C_I N(t1 + 1) = C_I s(t1) = -2 s' C_I e_i != 0``:
    ``E(t1 + 1) = 4 lr^2 ||C_I e_i||^2 >= 8 lr^2 sin^2(pi (2i+1) / 2d) / d > 0``.
(d-i) Let ``t*`` be the first step whose sign vector is not in ``V_rel``.
    ``E(t) = 0`` for ``t <= t*`` and ``E(t* + 1) = lr^2 ||C_I s(t*)||^2 > 0``;
    ``t* >= t1`` (all-equal vectors lie in ``V_rel``), and ``t* = t1`` when
    ``t1 > 0`` and ``|S| = 1`` (by (c)). No ``t*`` (within ``T``): ``E = 0``
    throughout.

**Counterexamples to the claim as first stated** ("``E(t) > 0`` for every
``t1 < t <= T`` whenever ``t1`` exists"), found while writing these tests by
a random search over about 25 000 power-law configurations (see the
deterministic ``test_counterexample_*`` below):

* ``t* > t1``: a non-constant sign vector can lie in ``V_rel``. For ``d``
  even and ``cutoff > d/2``, ``c_{d/2}`` is proportional to the sign vector
  ``(1, -1, -1, 1, 1, -1, ...)``; for ``cutoff = d - 1`` and ``d`` even, every
  symmetric vector (``v_i = v_{d-1-i}``) is in ``V_rel`` (``c_k`` has parity
  ``(-1)^k`` under ``i -> d-1-i``, and ``d - 1`` is odd). E.g. ``d = 4``,
  ``cutoff = 3``: ``s(t) = +-(1, -1, -1, 1) = +-2 c_2`` moves only ``e~_2``.
  Seen in 0.5% of draws with ``d`` in ``[3, 10]``, none with ``d >= 16``.
* ``E`` returns to 0 after ``t*``: the walk ``C_I N(t)`` comes back to 0
  (the first version of (d-ii) allowed this only for ``d`` odd; a sweep of
  the test's own draws then found ``d = 4``, see
  ``test_counterexample_return_symmetric_d4``). Seen in 1% of draws with ``d`` in ``[3, 10]``, 0.2% in ``[8, 16]``, 0.01% in
  ``[16, 64]`` (0.1% with ``cutoff`` in {2, 3}), always by one of the two mechanisms of (d-ii).

(d-ii) **Empirical** (not a theorem: held in every one of about 40 000
configurations, the 25 000 of that search and 15 000 more through this
file's checks (seeds 100000-103000, 200000-206000, 300000-303000,
500000-503000), with ``d`` in ``[3, 64]``, ``1 <= cutoff < d``,
``alpha`` in ``[0, 2.5]``, ``lr`` in ``[1e-3, 1e-1]`` log-uniform, target and
start on the relevant band, ``T = ceil(20 / lr)``): for ``t* < t <= T``,
``E(t) = 0`` happens only

* when ``cutoff = d - 1``: the one irrelevant basis signal ``c_{d-1}`` has
  reflection parity ``(-1)^(d-1)`` (``c_k(d-1-i) = (-1)^k c_k(i)``), so every
  integer vector of the other parity (symmetric for ``d`` even, antisymmetric
  for ``d`` odd) lies in ``V_rel``, a lattice of rank about ``d/2`` that the
  walk can come back to (the paper's ``d = 3`` geometry: ``e~_2`` lives on
  the lattice ``lr / sqrt6 Z`` and returns to 0 when the drift is
  ``O(lr)``); or
* in a two-cycle started at ``t*``: ``s(t* + 1) = -s(t*)``, so
  ``N(t* + 2) = N(t*)``; the zeros after ``t*`` are ``t* + 2, t* + 4, ...``
  while the sign vector keeps reversing, ``s(tau) = (-1)^(tau - t*) s(t*)``.

So otherwise ``E(t) > 0`` for every ``t* < t <= T``. "Generic" means almost
surely, so configurations are drawn from a hypothesis-drawn integer seed
through numpy's and JAX's generators, not from hypothesis floats (which
shrink towards 0, 1 and ties, i.e. towards the non-generic cases).

Tolerances (``U = 2^-53``; ``W = max_t ||e(t)||_inf``, ``W2 = max_t ||e(t)||_2``,
``beta_d = (2 pi d + 4) U`` bounds the error of each entry of the float64
basis ``C'``, ``theory/test_gd.py``):

* Positivity of ``E`` is decided on the exact integers ``N(t)``. If
  ``C_I N = 0`` exactly, each computed entry of ``C'_I N`` is at most
  ``beta_d ||N||_1`` (basis) plus ``1.01 d U sqrt(2/d) ||N||_1`` (a ``d``-term
  dot product, ``|C_kj| <= sqrt(2/d)``), so ``||fl(C'_I N)||_2 <=
  tau0 = sqrt(|I|) (beta_d + 1.1 d U) ||N||_1``. ``N`` is called in ``V_rel``
  iff the computed norm is ``<= 4 tau0``: an exact zero can never pass as
  positive; only a nonzero value below ``5 tau0`` (``<= 3e-6`` here, against
  ``lr ||C_I N||`` of order ``lr``) could be misread as zero, a near miss that
  would fail the test spuriously, never pass it. The same test with
  ``||s||_1`` decides ``s in V_rel``.
* (a) in input coordinates: the iteration rounds ``e - lr s`` once a step
  (``lr s`` is exact), ``<= U W``; comparing with ``fl(e(0) - fl(lr N))``
  adds ``2 U (W + lr ||N||_inf)``: ``|e(t) - (e(0) - lr N(t))| <=
  1.01 (t + 2) U (W + lr ||N(t)||_inf)``. In frequency, ``||e~_I(t)||`` from
  ``C'_I e(t)`` and ``lr ||C'_I N(t)||`` differ by at most
  ``(3 d beta_d + 1.1 d U) W2`` (the start: ``e(0) = fl(C'^T e~(0))`` and
  ``||C' C'^T - I|| <= 3 d beta_d``, with ``e~_I(0) = 0`` exactly)
  ``+ 1.01 sqrt(d) t U W`` (the drift, ``||C'_I||_2 <= 1 + d beta_d``)
  ``+ 1.1 sqrt(|I|) d U (W2 + lr ||N||_2)`` (the two products); doubled.
* (b) and (c), float ``g`` against exact arithmetic. While the iteration's
  signs equal the exact dynamics', ``e(t)`` is within ``t U W`` of it, so
  its computed ``g(t)`` is within ``err(t) = S (sqrt(d) t U W +
  1.01 (d + 2)(sqrt(d) + 1) U W2 + 3 d beta_d W2)`` of the exact ``M e``
  (``S = sigma_0^2 = max sigma^2``; drift, evaluation rounding as in
  ``theory/test_signgd_events.py``, and ``||C'^T diag C' - M|| <= 3 d beta_d S``).
  If every ``|g_i(t)| > 4 err(t)`` on the steps used, the signs are the exact
  ones there (induction on ``t``) and ``a_i / h`` is at least ``err / h``
  from an integer, which covers the rounding of ``a`` (``<= err(0)``) and of
  the division; otherwise (a near tie, where the sign is decided by rounding)
  the predictions of (c) are not checked for that draw.
  The uniform motion ``g(t) = g(0) - h m(t) 1`` is checked to ``2 err(t) +
  lr |m(t)| S sqrt(d) d (beta_d + 1.1 d U)`` (the float ``C' 1`` is not
  exactly ``sqrt(d) e_0``).
* (b) in frequency: ``e~(t) - e~(0) = -lr m(t) C 1 + C delta``, so
  ``|e~_k(t) - e~_k(0) + lr m(t) sqrt(d) [k = 0]| <= 2 (1.01 sqrt(d) t U W +
  (1.1 d U + 3 d beta_d) W2 + lr |m(t)| d (beta_d + 1.1 d U))`` (drift, the
  start as in (a), and ``C' 1`` against ``sqrt(d) e_0``).

Budget: one compiled ``lax.scan`` of ``T_MAX = 20 000`` steps on ``d`` padded
to 64 (the padding has ``sigma = 0`` and ``e = 0``; its rows of ``C`` are 0,
so ``g``, ``s`` and ``N`` stay exactly 0 there), about 0.05 s an example.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from theory.spectra import draw_w_star_freq, powerlaw_spectrum, relevant_band

U = 2.0**-53
D_MAX = 64
T_MAX = 20_000  # ceil(20 / lr) for lr >= 1e-3
HORIZON = 20.0  # T = ceil(HORIZON / lr)


def beta(d: int) -> float:
    return (2 * math.pi * d + 4) * U


@functools.lru_cache(maxsize=None)
def dct_np(d: int) -> np.ndarray:
    """The orthonormal DCT-II in float64, ``sqrt(2/d) cos(pi k (2j+1) / 2d)``
    (row 0 divided by ``sqrt2``); entries within ``beta_d`` of exact."""
    k = np.arange(d)[:, None]
    j = np.arange(d)[None, :]
    c = np.sqrt(2.0 / d) * np.cos(np.pi * k * (2 * j + 1) / (2 * d))
    c[0] /= np.sqrt(2.0)
    return c


@functools.partial(jax.jit, static_argnames="steps")
def signgd_lattice(c, s2, e0, lr, steps=T_MAX):
    """``e(0..steps)`` (input coordinates), the integer ``N(0..steps)`` and
    ``g(0..steps-1)`` of ``e <- e - lr sign(g)``, ``g = c^T (s2 (c e))``."""

    def step(carry, _):
        e, n = carry
        g = c.T @ (s2 * (c @ e))
        s = jnp.sign(g)
        e, n = e - lr * s, n + s.astype(n.dtype)
        return (e, n), (e, n, g)

    n0 = jnp.zeros(e0.shape, jnp.int64)
    _, (e, n, g) = jax.lax.scan(step, (e0, n0), None, length=steps)
    return jnp.concatenate([e0[None], e]), jnp.concatenate([n0[None], n]), g


class Run:
    """One configuration and its iteration up to ``T``, in numpy."""

    def __init__(self, d, cutoff, lr, sigma, e0_freq, steps=None):
        self.d, self.cutoff, self.lr = d, cutoff, lr
        self.sigma = np.asarray(sigma, np.float64)
        self.c = dct_np(d)
        self.e0_freq = np.asarray(e0_freq, np.float64)
        self.T = steps if steps is not None else int(math.ceil(HORIZON / lr))
        cp = np.zeros((D_MAX, D_MAX))
        cp[:d, :d] = self.c
        s2 = np.zeros(D_MAX)
        s2[:d] = self.sigma**2
        e0 = np.zeros(D_MAX)
        e0[:d] = self.c.T @ self.e0_freq
        e, n, g = (np.asarray(a) for a in signgd_lattice(cp, s2, e0, lr))
        assert np.all(n[:, d:] == 0) and np.all(e[:, d:] == 0)  # the padding never moves
        self.e, self.n, self.g = e[: self.T + 1, :d], n[: self.T + 1, :d], g[: self.T, :d]
        self.s = np.diff(self.n, axis=0)  # s(t), t < T
        self.irr = self.sigma == 0
        self.ci = self.c[self.irr]
        self.w = float(np.abs(self.e).max())
        self.w2 = float(np.linalg.norm(self.e, axis=1).max())

    # -- V_rel membership on exact integers -----------------------------------
    def tau(self, v):
        """``4 tau0`` for integer rows ``v``: the computed ``||C'_I v||`` of an exact zero is ``<= tau0``."""
        return 4 * math.sqrt(self.irr.sum()) * (beta(self.d) + 1.1 * self.d * U) * np.abs(v).sum(axis=-1)

    def outside_v_rel(self, v):
        return np.linalg.norm(v @ self.ci.T, axis=-1) > self.tau(v)

    @functools.cached_property
    def positive(self):
        """``E(t) > 0`` for ``t = 0..T``, decided on ``N(t)``."""
        return self.outside_v_rel(self.n)

    @functools.cached_property
    def t1(self):
        """First step whose sign vector is not all-equal (``+-1``), or None."""
        all_equal = np.all(self.s == self.s[:, :1], axis=1) & (self.s[:, 0] != 0)
        idx = np.nonzero(~all_equal)[0]
        return int(idx[0]) if idx.size else None

    @functools.cached_property
    def t_star(self):
        """First step whose sign vector is not in ``V_rel``, or None."""
        idx = np.nonzero(self.outside_v_rel(self.s))[0]
        return int(idx[0]) if idx.size else None

    def err(self, t):
        """``err(t)``: computed ``g(t)`` vs exact ``M e`` along the exact dynamics."""
        d = self.d
        smax = float(self.sigma.max() ** 2)
        return smax * (
            math.sqrt(d) * t * U * self.w + 1.01 * (d + 2) * (math.sqrt(d) + 1) * U * self.w2 + 3 * d * beta(d) * self.w2
        )

    def robust_until(self, last):
        """Whether every ``|g_i(t)| > 4 err(t)`` for ``t <= last``: no near tie."""
        t = np.arange(last + 1)
        return bool(np.all(np.abs(self.g[: last + 1]).min(axis=1) > 4 * self.err(t)))


def config(seed: int):
    """A power-law configuration drawn from ``seed`` (continuous distributions).

    ``d`` in [3, 64], ``cutoff`` in [1, d - 1], ``alpha`` in [0, 2.5], ``lr``
    log-uniform in [1e-3, 1e-1]; ``sigma_0 = 1`` (the scale does not change
    signGD: ``sign(g)`` is invariant under scaling ``sigma``). Target
    ``w~* = draw_w_star_freq`` (``N(0, 1)`` on the relevant band) and start
    ``w~(0) = 0.01 N(0, 1)`` on the relevant band, so ``e~_I(0) = 0``. Both are
    drawn for ``D_MAX`` frequencies and cut to ``d``: ``powerlaw_spectrum``'s
    entry ``k`` does not depend on ``d``, and one shape means one compile.
    """
    rng = np.random.default_rng(seed)
    d = int(rng.integers(3, D_MAX + 1))
    cutoff = int(rng.integers(1, d))
    alpha = float(rng.uniform(0.0, 2.5))
    lr = float(10.0 ** rng.uniform(-3.0, -1.0))
    spectrum = powerlaw_spectrum(D_MAX, alpha, cutoff)
    k_star, k_0 = jax.random.split(jax.random.key(seed))
    w_star = np.asarray(draw_w_star_freq(k_star, spectrum))[:d]
    w0 = np.asarray(relevant_band(spectrum, 0.01 * jax.random.normal(k_0, (D_MAX,))))[:d]
    return d, cutoff, lr, np.asarray(spectrum)[:d], w0 - w_star


def check_lattice_identity(r: Run):
    """(a): ``e(t) = e(0) - lr N(t)`` and ``||e~_I(t)|| = lr ||C_I N(t)||``."""
    t = np.arange(r.T + 1)[:, None]
    n_inf = np.abs(r.n).max(axis=1, keepdims=True)
    lattice = r.e[0] - r.lr * r.n
    assert np.all(np.abs(r.e - lattice) <= 1.01 * (t + 2) * U * (r.w + r.lr * n_inf))
    e_irr = np.linalg.norm(r.e @ r.ci.T, axis=1)
    n_irr = r.lr * np.linalg.norm(r.n @ r.ci.T, axis=1)
    d, n_i = r.d, r.irr.sum()
    tol = 2 * (
        (3 * d * beta(d) + 1.1 * d * U) * r.w2
        + 1.01 * math.sqrt(d) * t[:, 0] * U * r.w
        + 1.1 * math.sqrt(n_i) * d * U * (r.w2 + r.lr * np.linalg.norm(r.n, axis=1))
    )
    assert np.all(np.abs(e_irr - n_irr) <= tol)


def check_phase_one(r: Run):
    """(b): up to ``t1`` (or ``T``), ``N(t) = m(t) 1`` and only ``e~_0`` moves, by ``-lr sqrt(d) m(t)``."""
    end = r.t1 if r.t1 is not None else r.T
    n = r.n[: end + 1]
    assert np.all(n == n[:, :1])
    m = n[:, 0].astype(np.float64)
    e_freq = r.e[: end + 1] @ r.c.T
    expected = np.broadcast_to(r.e0_freq, e_freq.shape).copy()
    expected[:, 0] -= r.lr * math.sqrt(r.d) * m
    t = np.arange(end + 1)
    d = r.d
    tol = 2 * (
        1.01 * math.sqrt(d) * t * U * r.w
        + (1.1 * d * U + 3 * d * beta(d)) * r.w2
        + r.lr * np.abs(m) * d * (beta(d) + 1.1 * d * U)
    )
    assert np.all(np.abs(e_freq - expected) <= tol[:, None])
    # and the gradient moves uniformly: g(t) = g(0) - h m(t) 1 (M 1 = sigma_0^2 1)
    h = r.lr * float(r.sigma[0] ** 2)
    g = r.g[: min(end + 1, r.T)]
    k = len(g)
    g_tol = 2 * r.err(t[:k]) + r.lr * np.abs(m[:k]) * float(r.sigma.max() ** 2) * math.sqrt(d) * d * (
        beta(d) + 1.1 * d * U
    )
    assert np.all(np.abs(g - (g[0] - h * m[:k, None])) <= g_tol[:, None])


def predict_exit(r: Run):
    """(c): ``("t1=0",)``, ``("exit", k_lo, S, s')`` or ``("trapped", k_lo, s')`` from ``g(0)``."""
    g0 = r.g[0]
    sign = np.sign(g0)
    if not np.all(sign == sign[0]):
        return ("t1=0",)
    s1 = float(sign[0])
    h = r.lr * float(r.sigma[0] ** 2)
    k = np.ceil(s1 * g0 / h).astype(np.int64)
    k_lo, k_hi = int(k.min()), int(k.max())
    if k_lo == k_hi:
        return ("trapped", k_lo, s1)
    return ("exit", k_lo, np.nonzero(k == k_lo)[0], s1)


def check_exit(r: Run):
    """(c) and (d-i) on one run. Returns a label for hypothesis' ``event``."""
    pred = predict_exit(r)
    kind = pred[0]
    # Signs must be exact on every step the prediction speaks about.
    last = r.T - 1 if kind == "trapped" else (0 if kind == "t1=0" else min(pred[1], r.T - 1))
    if not r.robust_until(last):
        return "near tie: (c) not checked"
    if kind == "t1=0":
        assert r.t1 == 0
    elif kind == "trapped":
        k_lo, s1 = pred[1], pred[2]
        assert r.t1 is None
        tt = np.arange(r.T)
        expected = np.where(tt < k_lo, s1, s1 * (-1.0) ** (tt - k_lo + 1))
        np.testing.assert_array_equal(r.s, np.broadcast_to(expected[:, None], r.s.shape))
        assert np.ptp(s1 * r.g[0]) < r.lr * float(r.sigma[0] ** 2)  # max a - min a < h
        assert not np.any(r.positive)  # nothing irrelevant ever moves
    else:
        _, k_lo, crossing, s1 = pred
        if k_lo >= r.T:
            assert r.t1 is None
            return "exit after T"
        assert r.t1 == k_lo
        expected = np.full(r.d, s1)
        expected[crossing] = -s1
        np.testing.assert_array_equal(r.s[k_lo], expected)
        if len(crossing) == 1 and k_lo < r.T:
            (i,) = crossing
            assert r.t_star == k_lo  # (d-i): the crossing vector is not in V_rel
            # E(t1 + 1) = 4 lr^2 ||C_I e_i||^2 >= 8 lr^2 sin^2(pi (2i+1)/2d) / d
            # (computed norms within tau of exact: the argument for tau, applied to N - (-2 s' e_i))
            n_next = r.n[k_lo + 1]
            got, exact = np.linalg.norm(n_next @ r.ci.T), 2 * np.linalg.norm(r.ci[:, i])
            assert abs(got - exact) <= r.tau(n_next)
            assert exact**2 >= 0.99 * 8 * math.sin(math.pi * (2 * i + 1) / (2 * r.d)) ** 2 / r.d
            assert r.irr[r.d - 1]
            return "left phase 1, one component crossed"
        return "left phase 1, 2-5 components crossed" if len(crossing) <= 5 else "left phase 1, > 5 crossed"
    return kind


def check_energy(r: Run):
    """(d-i) and (d-ii). Returns a label for hypothesis' ``event``."""
    pos = r.positive
    ts = r.t_star
    if ts is None:
        assert not np.any(pos)
        return "no t*: E = 0 throughout"
    assert r.t1 is not None and ts >= r.t1
    assert not np.any(pos[: ts + 1]) and pos[ts + 1]
    zeros = np.nonzero(~pos[ts + 1 :])[0] + ts + 1
    if zeros.size == 0:
        return "E > 0 after t*"
    if r.cutoff == r.d - 1:
        return "E returns to 0 (cutoff = d - 1)"
    # Otherwise only in a two-cycle s(t*), -s(t*), ... started at t*.
    for t in zeros:
        assert (t - ts) % 2 == 0, (t, ts)
        tau = np.arange(ts, t)
        np.testing.assert_array_equal(r.s[ts:t], r.s[ts] * ((-1) ** (tau - ts))[:, None])
    return "E returns to 0 in a reversal two-cycle"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_irrelevant_energy_general_d(seed):
    r = Run(*config(seed))
    assert np.all(r.e0_freq[r.irr] == 0)  # the start and target lie on the relevant band
    check_lattice_identity(r)
    check_phase_one(r)
    event(check_exit(r))
    event(check_energy(r))


def powerlaw_run(d, cutoff, alpha, lr, e0_head):
    """A run with ``e~(0) = (e0_head, 0, ...)`` (on the relevant band)."""
    e0 = np.zeros(d)
    e0[: len(e0_head)] = e0_head
    r = Run(d, cutoff, lr, np.asarray(powerlaw_spectrum(d, alpha, cutoff)), e0)
    assert r.robust_until(r.T - 1)  # no near tie: these are the exact dynamics' signs
    return r


def test_counterexample_sign_vector_in_v_rel():
    """``d = 4``, ``cutoff = 3``, flat band, ``e~(0) = (0.1, 0.05, -1, 0)``:
    ``g(0)`` is dominated by ``-c_2``, so ``t1 = 0`` with ``s = (-1, 1, 1, -1) =
    -2 c_2`` in ``V_rel``; it only moves ``e~_2`` (by ``2 lr`` a step), and
    ``E = 0`` up to ``t* = 42``, not only up to ``t1``."""
    r = powerlaw_run(4, 3, 0.0, 0.01, [0.1, 0.05, -1.0])
    assert r.t1 == 0 and r.t_star == 42
    np.testing.assert_array_equal(r.s[:42], np.broadcast_to([-1, 1, 1, -1], (42, 4)))
    assert not np.any(r.positive[:43]) and np.all(r.positive[43:])
    e_freq = r.e[:43] @ r.c.T  # only e~_2 moved, by 2 lr a step
    np.testing.assert_allclose(e_freq[:, 2], -1.0 + 2 * 0.01 * np.arange(43), rtol=0, atol=1e-12)
    np.testing.assert_allclose(e_freq[:, [0, 1, 3]], np.broadcast_to([0.1, 0.05, 0.0], (43, 3)), rtol=0, atol=1e-12)
    assert check_energy(r) == "E > 0 after t*"


def test_counterexample_return_d3():
    """``d = 3``, ``cutoff = 2`` (the paper's geometry), ``alpha = 1.17``,
    ``lr = 0.048``, ``e~(0) = (-1.35, -0.16, 0)``: phase 1 ends at ``t1 = t* = 16``
    with one component crossing, ``E(17) = 4 lr^2 ||C_I e_2||^2 = (2/3) lr^2``,
    and at 18 the walk is back on ``V_rel`` (``e~_2 = lr/sqrt6 (N_0 - 2 N_1 + N_2)``
    lives on the lattice ``lr/sqrt6 Z``) and stays: an all-equal two-cycle
    from there on, ``E = 0`` to ``T``. The drift ``~ sqrt3 q |e~_1(0)| = 0.055``
    (THEORY.md section 4) is ``O(lr)`` here."""
    r = powerlaw_run(3, 2, 1.17, 0.048, [-1.35, -0.16])
    assert r.t1 == 16 and r.t_star == 16
    np.testing.assert_array_equal(r.s[16:18], [[-1, -1, 1], [-1, 1, 1]])
    assert r.positive[17] and not np.any(r.positive[:17]) and not np.any(r.positive[18:])
    np.testing.assert_allclose(np.sum((r.n[17] @ r.ci.T) ** 2), 2 / 3, rtol=1e-12)
    assert check_exit(r) == "left phase 1, one component crossed"
    assert check_energy(r) == "E returns to 0 (cutoff = d - 1)"


def test_counterexample_return_symmetric_d4():
    """``d = 4``, ``cutoff = 3``, ``alpha = 0.5``, ``lr = 0.08``,
    ``e~(0) = (-0.2, -0.06, 0.5, 0)``: ``t1 = t* = 0``, and
    ``N(2) = s(0) + s(1) = (-1, -1, -1, 1) + (1, -1, -1, -1) = (0, -2, -2, 0)`` is
    symmetric, so in ``V_rel`` (``c_3`` is antisymmetric): ``E(2) = 0``; then
    ``s(2) = (1, -1, -1, 1) = 2 c_2`` keeps it there, ``E(3) = 0``. Not a
    reversal (``s(1) != -s(0)``): the parity lattice of ``cutoff = d - 1``."""
    r = powerlaw_run(4, 3, 0.5, 0.08, [-0.2, -0.06, 0.5])
    assert r.t1 == 0 and r.t_star == 0
    np.testing.assert_array_equal(r.s[:3], [[-1, -1, -1, 1], [1, -1, -1, -1], [1, -1, -1, 1]])
    np.testing.assert_array_equal(r.n[2], [0, -2, -2, 0])
    assert r.positive[1] and not r.positive[2] and not r.positive[3] and np.all(r.positive[4:])
    assert check_energy(r) == "E returns to 0 (cutoff = d - 1)"


def test_counterexample_reversal_two_cycle():
    """``d = 14``, ``cutoff = 2``, ``alpha = 0.25``, ``lr = 0.012``, a small
    ``e~(0) = (-0.047, -0.015, 0, ...)``: phase 1 ends at ``t1 = t* = 1`` with
    6 components crossing, and the next sign vector is the opposite one: the
    run is a two-cycle ``s(1), -s(1), ...`` to ``T``, ``E`` alternating between
    ``E(2) > 0`` and 0 (``E(T) = 0``)."""
    r = powerlaw_run(14, 2, 0.25, 0.012, [-0.047, -0.015])
    assert r.t1 == 1 and r.t_star == 1 and r.T % 2 == 1
    tau = np.arange(1, r.T)
    np.testing.assert_array_equal(r.s[1:], r.s[1] * ((-1) ** (tau - 1))[:, None])
    assert np.all(r.positive[2::2]) and not np.any(r.positive[1::2]) and not r.positive[0]
    assert check_energy(r) == "E returns to 0 in a reversal two-cycle"
