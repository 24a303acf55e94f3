"""Event-driven population signGD against the step-by-step iteration.

Wall time after compilation (best and median of a few repeats), float64, of

* the step-by-step iteration ``w <- w - lr sign(C^T diag(sigma^2)(C w - w~*))``
  under ``lax.scan`` (final ``e~`` only), and
* ``theory.signgd_events.signgd_events`` (stopping at the oscillating regime,
  and, where marked, stepping through it event by event),

on the paper setting (``paper_model()``, lr 0.01; ``t2 = 641``) and on a
``d = 64`` power-law spectrum ``sigma_k = (k + 1)^-1`` with every fourth
frequency irrelevant and a random start (lr 0.01 and 0.001). Prints a table
and the machine.

In d = 64 the sign vector changes almost every step soon after the start
(some coordinate of ``g`` is always near 0): with lr 0.01 events come at
every step from step 1, with lr 0.001 from about step 222. The solver then
stops at the detection; stepping through the regime event by event costs
several times the plain scan per step.

    python benchmarks/bench_events.py
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from theory.signal import dct_basis, make_problem, paper_problem  # noqa: E402
from theory.signgd_events import signgd_events  # noqa: E402

REPEATS = 5


def iteration_final(problem, lr, steps):
    c = dct_basis(problem.dim)
    s2 = jnp.square(problem.spectrum)

    def step(w, _):
        return w - lr * jnp.sign(c.T @ (s2 * (c @ w - problem.w_star_freq))), None

    w = jax.lax.scan(step, c.T @ problem.w0_freq, None, length=steps)[0]
    return c @ w - problem.w_star_freq


def timed(fn):
    jax.block_until_ready(fn())  # compile
    ts = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return min(ts), statistics.median(ts)


def power_law_model(d=64, seed=0):
    rng = np.random.default_rng(seed)
    sigma = 1.0 / np.arange(1, d + 1)
    sigma[3::4] = 0.0
    w_star = rng.normal(size=d)
    return make_problem(sigma, w_star, w_star + rng.normal(size=d))


def main():
    print(f"machine: {platform.machine()} {platform.processor() or ''} | {os.cpu_count()} cores | "
          f"{platform.system()} {platform.release()} | python {platform.python_version()} | "
          f"jax {jax.__version__} on {jax.default_backend()} | float64")
    cases = [
        ("paper d=3", paper_problem(), 0.01, 641, 1024),
        ("paper d=3", paper_problem(), 0.01, 5_000, 1024),
        ("paper d=3", paper_problem(), 0.01, 200_001, 1024),
        ("power-law d=64", power_law_model(), 0.01, 2_000, 8192),
        ("power-law d=64", power_law_model(), 0.001, 2_000, 8192),
        ("power-law d=64", power_law_model(), 0.001, 20_000, 8192),
    ]
    hdr = f"{'case':16} {'lr':>6} {'steps':>8} | {'scan best/med ms':>18} | {'events best/med ms':>19} {'n_ev':>5} {'t_osc':>6} {'t_final':>8} {'max|de|':>9} {'scan->t_final':>13} | {'step-through ms':>15}"
    print(hdr)
    print("-" * len(hdr))
    for name, problem, lr, steps, max_events in cases:
        it = jax.jit(iteration_final, static_argnums=2)
        ev = jax.jit(lambda m, l, s: signgd_events(m, l, s, max_events=max_events))
        scan_t = timed(lambda: it(problem, lr, steps))
        ev_t = timed(lambda: ev(problem, lr, steps))
        res = ev(problem, lr, steps)
        tf = int(res.t_final)
        de = float(jnp.max(jnp.abs(it(problem, lr, tf) - res.e_freq_final))) if tf > 0 else 0.0
        scan_tf = timed(lambda: it(problem, lr, tf))[0] if tf > 0 else 0.0
        through = ""
        if steps <= max_events:  # one event a step in the oscillating regime: needs steps buffer slots
            ev_on = jax.jit(lambda m, l, s: signgd_events(m, l, s, max_events=steps, stop_on_oscillation=False))
            r_on = ev_on(problem, lr, steps)
            b, m = timed(lambda: ev_on(problem, lr, steps))
            de_on = float(jnp.max(jnp.abs(it(problem, lr, steps) - r_on.e_freq_final)))
            through = f"{1e3 * b:7.2f}/{1e3 * m:7.2f} (de {de_on:.1e})"
        print(f"{name:16} {lr:6.3f} {steps:8d} | {1e3 * scan_t[0]:8.2f}/{1e3 * scan_t[1]:8.2f} | "
              f"{1e3 * ev_t[0]:9.3f}/{1e3 * ev_t[1]:9.3f} {int(res.n_events):5d} {int(res.t_oscillating):6d} "
              f"{tf:8d} {de:9.1e} {1e3 * scan_tf:13.3f} | {through}")
    print("max|de|: |e~ events - e~ iteration| at t_final (the events solver stops at the oscillation,"
          " t_osc + 7; t_osc = -1: none detected); scan->t_final: the scan run only to t_final (best, ms);"
          " step-through: events with stop_on_oscillation=False to `steps` (best/median ms, de at `steps`).")


if __name__ == "__main__":
    main()
