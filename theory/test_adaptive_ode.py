"""Adam and RMSProp against their fixed-``c`` ODEs (THEORY.md 8.2, 8.3).

The ODEs (``theory.adaptive_ode``) are checked against the one reference
discrete iteration (``theory.testing.reference_run``) with optax's
``adam(lr, b1 = 1 - c1 lr, b2 = 1 - c2 lr, eps)`` and
``rmsprop(lr, decay = 1 - c2 lr, eps, eps_in_sqrt=False)`` (PyTorch's
RMSprop), with ``c`` held fixed while ``lr`` shrinks, at ``tau = lr * steps``.

Orders, derived:

* Adam: the discrete is a one-step method of the ODE in ``tau`` with step
  ``lr`` (the moment recursions are explicit Euler steps of the ``m, v``
  equations, ``b^t = (1 - c lr)^(tau/lr) = e^(-c tau) (1 + O(lr))``), so the
  global error is ``a lr + O(lr^2)`` and the log-log slope of
  ``D(lr) = ||e~_disc - e~_ode||`` over ``lr`` in ``[1e-3, 1e-2]`` is
  ``1 + O(lr b/a)``; we allow ``[0.8, 1.2]``.
* RMSProp, plain: the start (``v ~ c2 g0^2 tau``) adds ``-sign(g0) zeta(1/2)
  sqrt(lr/c2)`` per input coordinate (THEORY.md 8.2), so
  ``D = a sqrt(lr) + b lr``: the slope lies between 1/2 and 1 and tends to
  1/2; with ``a sqrt(lr) >> b lr`` at these lr it is within ``[0.4, 0.7]``.
* RMSProp, shifted: the shift cancels the ``zeta(1/2)`` term; what remains
  is measured, not asserted as an order (``test_rmsprop_population_orders``).

Solver error: at ``rtol = 1e-10`` the ODE's ``e~`` changes by ``< 1e-8``
when the tolerance is tightened to ``1e-12`` (measured, paper setting), far
below the smallest difference compared here (``~ 3e-4`` at ``lr = 1e-3``);
the discrete's float64 rounding over ``2e4`` steps is ``< 2e4 * 10 U * 10 <
1e-10``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from theory.adaptive_ode import ZETA_HALF, adam_ode, ode_constants, rmsprop_ode
from theory.quadratic import population_quadratic
from theory.signal import paper_problem
from theory.testing import reference_run

EPS = 1e-8
PAPER_ADAM = (10.0, 0.1)  # c1, c2: PyTorch's defaults at lr = 1e-2
PAPER_RMSPROP = 1.0  # c2
LRS = (1e-2, 3e-3, 1e-3)
TAU = 20.0


# One compiled solve per optimizer: c, eps, batch size, shift and the save
# times are all traced; three save times each.
@jax.jit
def _adam(quad, c1, c2, batch_size, tau, rtol):
    return adam_ode(quad, c1, c2, EPS, batch_size=batch_size, saveat_tau=tau, tau_max=tau[-1],
                    rtol=rtol, atol=rtol * 1e-2)


@jax.jit
def _rmsprop(quad, c2, shift_lr, batch_size, tau, rtol):
    return rmsprop_ode(quad, c2, EPS, shift_lr=shift_lr, batch_size=batch_size, saveat_tau=tau,
                       tau_max=tau[-1], rtol=rtol, atol=rtol * 1e-2)


def _adam_opt(lr, c1, c2):
    return optax.adam(lr, b1=1.0 - c1 * lr, b2=1.0 - c2 * lr, eps=EPS)


def _rmsprop_opt(lr, c2):
    return optax.rmsprop(lr, decay=1.0 - c2 * lr, eps=EPS, eps_in_sqrt=False, centered=False)


def _discrete(make_opt):
    """``e~`` after ``steps`` steps, jitted with the hyper-parameters traced."""

    def run(quad, hyper, steps, batch_size=0, keys=None):
        if batch_size == 0:
            return reference_run(make_opt(*hyper), quad, (steps,))[-1]
        one = lambda k: reference_run(make_opt(*hyper), quad, (steps,), batch_size=batch_size, key=k)[-1]  # noqa: E731
        return jax.vmap(one)(keys)

    return jax.jit(run, static_argnums=(2, 3))


_adam_disc = _discrete(_adam_opt)
_rmsprop_disc = _discrete(_rmsprop_opt)


def _steps_and_taus(lrs, tau):
    steps = [round(tau / lr) for lr in lrs]
    taus = np.array([lr * k for lr, k in zip(lrs, steps)])
    order = np.argsort(taus)
    return steps, taus, order


def _ode_at(pred, taus, order):
    """``e~`` of a prediction saved at ``taus[order]``, back in ``lrs`` order."""
    e = np.asarray(pred.e_freq)
    out = np.empty_like(e)
    out[order] = e
    return out


def _slope(lrs, diffs):
    return np.polyfit(np.log(lrs), np.log(diffs), 1)[0]


def _paper_differences():
    """``||e~_disc - e~_ode||`` at ``tau ~ 20`` for the three optimizers (cached)."""
    if not hasattr(_paper_differences, "cache"):
        quad = population_quadratic(paper_problem())
        steps, taus, order = _steps_and_taus(LRS, TAU)
        ts = jnp.asarray(taus[order])
        adam = _ode_at(_adam(quad, *PAPER_ADAM, 0, ts, 1e-10), taus, order)
        plain = _ode_at(_rmsprop(quad, PAPER_RMSPROP, 0.0, 0, ts, 1e-10), taus, order)
        out = {"adam": [], "rms_plain": [], "rms_shift": []}
        for i, (lr, k) in enumerate(zip(LRS, steps)):
            shifted = _ode_at(_rmsprop(quad, PAPER_RMSPROP, lr, 0, ts, 1e-10), taus, order)[i]
            d_adam = np.asarray(_adam_disc(quad, (lr, *PAPER_ADAM), k))
            d_rms = np.asarray(_rmsprop_disc(quad, (lr, PAPER_RMSPROP), k))
            out["adam"].append(np.linalg.norm(d_adam - adam[i]))
            out["rms_plain"].append(np.linalg.norm(d_rms - plain[i]))
            out["rms_shift"].append(np.linalg.norm(d_rms - shifted))
        _paper_differences.cache = {k: np.array(v) for k, v in out.items()}
    return _paper_differences.cache


def test_ode_constants():
    """PyTorch's defaults at lr = 1e-2 are the paper's constants (THEORY.md 8.2).

    Exact up to the rounding of ``(1 - b)/lr`` (a few ``U``); ``rtol = 1e-12``.
    """
    c = ode_constants(1e-2, b1=0.9, b2=0.999)
    np.testing.assert_allclose([c.c1, c.c2], PAPER_ADAM, rtol=1e-12)
    c = ode_constants(1e-2, decay=0.99)
    assert c.c1 is None
    np.testing.assert_allclose(c.c2, PAPER_RMSPROP, rtol=1e-12)
    c = ode_constants(1e-3, b1=0.9, b2=0.999)
    np.testing.assert_allclose([c.c1, c.c2], (100.0, 1.0), rtol=1e-12)


def test_adam_population_order_lr():
    """Discrete Adam (c fixed) minus the ODE at tau ~ 20 is O(lr), paper setting.

    Slope interval ``[0.8, 1.2]`` (module docstring). Bound ``D <= K lr`` with
    ``K = 1``: THEORY.md 8.2 reports ``|Delta e~_2| / lr = 0.48 to 0.50`` at
    the end of the run; at ``tau = 20`` the relevant errors still move, so we
    allow twice that for the whole vector.
    """
    d = _paper_differences()["adam"]
    assert 0.8 <= _slope(LRS, d) <= 1.2, (d, _slope(LRS, d))
    assert np.all(d <= 1.0 * np.array(LRS)), d / np.array(LRS)


def test_rmsprop_population_orders():
    """RMSProp: the plain ODE is O(sqrt(lr)) off; the zeta(1/2) start shift removes
    the leading term.

    Plain: slope in ``[0.4, 0.7]`` (module docstring), and ``D`` exceeds
    ``|zeta(1/2)| sqrt(lr/c2) / 4``: the start shift is carried by the
    irrelevant coordinate (contracted on the relevant ones), so at least a
    quarter of it survives (measured: ``|Delta e~_2| = 0.45 sqrt(lr)`` against
    ``1.46 sqrt(lr)``).
    Shifted: at least 10 times closer than the plain ODE at every lr. This
    is what the shift provably does: it cancels the ``zeta(1/2) sqrt(lr/c2)``
    of the first steps. The remainder still scales about like ``sqrt(lr)``
    (measured slope 0.49, ``|Delta e~_2| ~ 0.026 sqrt(lr)``: the next-order
    start-up term, from ``g`` changing during the first steps), so the
    ``O(lr)`` claimed in THEORY.md 8.2 is not asserted here.
    """
    out = _paper_differences()
    plain, shifted = out["rms_plain"], out["rms_shift"]
    lrs = np.array(LRS)
    assert 0.4 <= _slope(lrs, plain) <= 0.7, (plain, _slope(lrs, plain))
    assert np.all(plain >= abs(ZETA_HALF) * np.sqrt(lrs / PAPER_RMSPROP) / 4), plain
    assert np.all(shifted * 10 <= plain), (shifted, plain)


ONLINE_N = 500
ONLINE_SEEDS = 16
ONLINE_LR = 1e-2
Z = 3.0


def test_online_ode_shift():
    """Online batches (n = 500): the averaged ODEs (G2 = g^2 + Var g_B) predict the
    online-minus-population shift of e~_2 (THEORY.md 8.3).

    Compared: ``Delta_ode = e~_2(online ODE) - e~_2(population ODE)`` with the
    seed mean of ``e~_2(online discrete) - e~_2(population discrete)``, both at
    ``lr = 1e-2``, ``tau = 20``, ``S = 16`` independent batch keys.
    Tolerance: ``Z s / sqrt(S)`` (``Z = 3``, ``s`` the seed standard
    deviation; a t-quantile with 15 degrees of freedom at 3 is two-sided
    p < 0.01) plus the ``O(lr)`` bias of each discrete run, which is at most
    ``K lr`` with ``K = 1`` (``test_adam_population_order_lr``; RMSProp
    shifted: ``<= 0.5`` measured there), twice (online and population):
    ``2 K lr = 0.02``. The effect tested is ``+0.087`` for Adam (discrete
    seed mean, measured), well outside that tolerance from 0, so dropping
    the variance term fails. Both shifts are positive (less drift of the
    irrelevant error online).
    """
    quad = population_quadratic(paper_problem())
    steps = round(TAU / ONLINE_LR)
    ts = jnp.full((3,), steps * ONLINE_LR)
    keys = jax.random.split(jax.random.PRNGKey(0), ONLINE_SEEDS)
    bias = 2 * 1.0 * ONLINE_LR
    cases = {
        "adam": (lambda n: _adam(quad, *PAPER_ADAM, n, ts, 1e-10),
                 _adam_disc, (ONLINE_LR, *PAPER_ADAM)),
        "rmsprop": (lambda n: _rmsprop(quad, PAPER_RMSPROP, ONLINE_LR, n, ts, 1e-10),
                    _rmsprop_disc, (ONLINE_LR, PAPER_RMSPROP)),
    }
    for name, (ode, disc, hyper) in cases.items():
        delta_ode = float(ode(ONLINE_N).e_freq[-1, 2] - ode(0).e_freq[-1, 2])
        pop = float(disc(quad, hyper, steps)[2])
        online = np.asarray(disc(quad, hyper, steps, ONLINE_N, keys))[:, 2]
        delta = online - pop
        mean, sd = delta.mean(), delta.std(ddof=1)
        tol = Z * sd / math.sqrt(ONLINE_SEEDS) + bias
        assert delta_ode > 0 and mean > 0, (name, delta_ode, mean)
        assert abs(mean - delta_ode) <= tol, (name, mean, delta_ode, tol)
