"""Claim: population signGD settles at ``e~ ~ (0, 0, e~_2(t2))`` (THEORY.md section 4).

``theory.signgd.signgd_settled``: for every ``t >= t_settled`` (``t2`` plus
the steps ``e~_1`` needs at ``sqrt2 lr`` a step),
``|e~_k(t) - e_freq_k| <= bound_k`` with
``bound = (sqrt3 lr, sqrt2 lr / (3 q), sqrt(2/3) lr)``. The ``e~_1`` bound is
where a phase-1 two-cycle of ``e~_0`` freezes ``e~_1``.

Tolerance: the iteration differs from exact arithmetic by ``D(t)`` (the
rounding bound of ``test_signgd``), and the tie exclusions are the same; so
each comparison allows ``D(t) + D(t2)``.
"""

import numpy as np
from hypothesis import assume, given, settings

from theory import signgd
from theory.test_signgd import T, applicable_problems, far_from_ties, rounding, spatial_iteration


@settings(max_examples=60, deadline=None)
@given(applicable_problems())
def test_signgd_settles_within_the_bound(problem):
    problem, lr, ph = problem
    e = np.asarray(spatial_iteration(problem.w0_freq, problem.w_star_freq, problem.spectrum, lr))
    dist = rounding(problem, lr, e)
    assume(far_from_ties(problem, lr, ph, dist))
    settled = signgd.signgd_settled(problem, lr)
    t_s = int(settled.t_settled)
    assert int(ph.t2) <= t_s < T - 1000  # the run checks >= 1000 settled steps
    gap = np.abs(e[t_s:] - np.asarray(settled.e_freq))
    slack = (dist[t_s:] + dist[int(ph.t2)])[:, None]
    assert np.all(gap <= np.asarray(settled.bound) + slack)


def test_not_applicable_gives_nan():
    from theory.signal import make_problem

    problem = make_problem((0.1, 0.09, 0.0), (5.0, 10.0, 0.0), (0.0, 0.0, 0.0))  # q = 0.81 > 1/3
    settled = signgd.signgd_settled(problem, 0.01)
    assert int(settled.t_settled) == -1 and np.all(np.isnan(np.asarray(settled.e_freq)))
