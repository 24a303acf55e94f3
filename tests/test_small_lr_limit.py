"""``python sims/small_lr_limit.py``: the slope fit, the gap statistics and a tiny run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from sims.linear import limits_study as study
from sims.small_lr_limit import FIGURE, SUMMARY, main

# Population only: the online limits' compilation alone takes longer than this file's budget.
TINY = ["--problems", "paper", "--gradients", "population", "--optimizers", "signgd", "--lrs", "0.02,0.01,0.005",
        "--tau", "20", "--quiet"]

BAD_INPUTS = [
    (["--lrs", "0.01"], "--lrs"),
    (["--lrs", "0.01,0.01"], "--lrs"),
    (["--lrs", "0.01,0"], "--lrs"),
    (["--lrs", "0.1,0.01"], "--lrs"),
    (["--lrs", "0.01,x"], "--lrs"),
    (["--tau", "0"], "--tau"),
    (["--tau", "1,2,3"], "--tau"),
    (["--tau", "1e-5"], "--tau"),
    (["--tau", "1e9"], "--tau"),
    (["--seeds", "0"], "--seeds"),
    (["--batch-size", "0"], "--batch-size"),
    (["--problems", "mnist"], "--problems"),
    (["--gradients", "fixed"], "--gradients"),
    (["--modes", "online"], "--modes"),  # the old name is gone
    (["--optimizers", "lion"], "--optimizers"),
    (["--optimizers", "gd"], "--optimizers"),
]


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(main, argv, flag)


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(main)


# --- the slope fit ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(slope=st.floats(-2.0, 3.0), log_a=st.floats(-10.0, 5.0), k=st.integers(3, 8),
       top=st.floats(-3.0, -1.0), ratio=st.floats(1.5, 4.0))
def test_exact_power_law_recovers_its_slope(slope, log_a, k, top, ratio):
    """``y = a x^slope`` on a geometric grid is fitted exactly, with a zero-width interval.

    Tolerance: ``log y`` is exact to ``|log y| U`` (``U = 2^-53``), at most
    ``~40 U`` here; the slope is ``sum xc r / sum xc^2`` over ``k <= 8`` points
    with ``|xc| >= log(1.5) / 2``, so its rounding is below ``k 40 U / 0.2^2``,
    about ``1e-12``; ``1e-9`` leaves room. A fit that drops the centring or
    uses the wrong axis is off by ``O(1)``.
    """
    x = 10.0**top / ratio ** np.arange(k)
    y = np.exp(log_a) * x**slope
    f = study.fit_power_law(x, y)
    assert f.points == k
    assert abs(f.slope - slope) < 1e-9
    assert abs(f.intercept - log_a) < 1e-9 * (1 + abs(np.log(x)).max())
    assert f.lo <= f.slope <= f.hi and f.hi - f.lo < 1e-9


@settings(max_examples=25, deadline=None)
@given(k=st.integers(3, 7), seed=st.integers(0, 2**31 - 1), noise=st.floats(0.01, 1.0))
def test_fit_matches_scipy_linregress(k, seed, noise):
    """Slope and standard error equal ``scipy.stats.linregress`` on ``(log x, log y)``,
    an independent implementation, to rounding (``1e-9`` relative, as above)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(1e-4, 1e-2, k))
    x[0] *= 0.5  # distinct abscissae
    y = x ** 0.7 * np.exp(noise * rng.standard_normal(k))
    f = study.fit_power_law(x, y)
    ref = scipy.stats.linregress(np.log(x), np.log(y))
    assert f.slope == pytest.approx(ref.slope, rel=1e-9, abs=1e-12)
    assert f.stderr == pytest.approx(ref.stderr, rel=1e-9, abs=1e-12)


def test_interval_covers_the_true_slope_at_its_level():
    """With Gaussian noise in ``log y`` the 95% t interval covers the true slope in
    95% of 1000 fits of 4 points (2 degrees of freedom).

    The count of covering fits is Binomial(1000, 0.95): standard deviation
    ``sqrt(1000 0.95 0.05) = 6.9``; accepted within 4 of them (28), so a correct
    interval fails with probability ``< 1e-4``, while a normal quantile (1.96
    instead of ``t_2 = 4.30``) covers only about 81%, 140 too few.
    """
    rng = np.random.default_rng(0)
    x = np.array([1e-2, 3e-3, 1e-3, 3e-4])
    hits = 0
    for _ in range(1000):
        y = 0.5 * x * np.exp(0.3 * rng.standard_normal(4))
        f = study.fit_power_law(x, y)
        hits += f.lo <= 1.0 <= f.hi
    assert abs(hits - 950) <= 28


def test_fit_drops_nonpositive_points_and_needs_three_for_an_interval():
    f = study.fit_power_law([1e-2, 1e-3, 1e-4], [1e-2, 0.0, 1e-4])
    assert f.points == 2 and f.slope == pytest.approx(1.0) and math.isnan(f.lo)
    assert math.isnan(study.fit_power_law([1e-2, 1e-3], [1.0, -1.0]).slope)


# --- the gap statistics -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seeds=st.integers(2, 40), seed=st.integers(0, 2**31 - 1), offset=st.floats(-1.0, 1.0))
def test_gap_of_one_coordinate_is_the_mean_its_standard_error_and_the_std(seeds, seed, offset):
    """For one compared coordinate the delta-method error reduces to
    ``std / sqrt(S)`` and the spread to the (ddof 1) standard deviation; the
    value is ``|mean - limit|``. Checked against numpy's own moments (rounding:
    ``1e-12`` relative)."""
    d = np.random.default_rng(seed).standard_normal((seeds, 1)) + offset
    g = study.gap(d, np.array([0.25]))
    assert g.value == pytest.approx(abs(d.mean() - 0.25), rel=1e-12, abs=1e-15)
    assert g.spread == pytest.approx(d.std(ddof=1), rel=1e-12)
    assert g.stderr == pytest.approx(d.std(ddof=1) / math.sqrt(seeds), rel=1e-12)


def test_gap_standard_error_is_the_spread_of_the_norm_of_the_mean():
    """In several coordinates, ``stderr`` is the standard deviation of ``||mean||``
    over repeated draws (delta method, valid when the mean is many standard
    errors from 0: here 10 against 1/sqrt(50)).

    Monte Carlo over 800 repeats: the sample standard deviation of the norms
    has relative standard error ``1/sqrt(2 799) = 2.5%`` (the mean of the
    estimates is far tighter); accepted within 10% (4 of them). Using the
    full ``trace Sigma`` instead of ``u^T Sigma u`` is off by a factor about
    ``sqrt(6 / 1.7)``; dividing by ``S - 1`` instead of ``S`` moves it by 1%
    only, below this test's resolution.
    """
    rng = np.random.default_rng(1)
    mean, cov = np.array([6.0, 8.0, 0.0]), np.diag([1.0, 2.0, 3.0])
    norms, errs = [], []
    for draws in mean + rng.standard_normal((800, 50, 3)) * np.sqrt(np.diag(cov)):
        g = study.gap(draws, np.zeros(3))
        norms.append(g.value)
        errs.append(g.stderr)
    assert np.mean(errs) == pytest.approx(np.std(norms, ddof=1), rel=0.10)


# --- end to end -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    outs = [tmp_path_factory.mktemp("limit") for _ in range(2)]
    for out in outs:
        assert main(TINY + ["--out", str(out)]) == 0
    return outs, [json.loads((out / SUMMARY).read_text()) for out in outs]


def test_tiny_run_writes_its_outputs_with_the_schema(tiny_runs):
    outs, (s, _) = tiny_runs
    assert (outs[0] / FIGURE).stat().st_size > 10_000
    assert s["files"] == [FIGURE, SUMMARY]
    assert set(s) == {"config", "results", "timing", "files"}
    assert s["config"]["lrs"] == [0.02, 0.01, 0.005] and s["config"]["tau"] == [20.0]
    assert s["config"]["gradients"] == ["population"] and "modes" not in s["config"]
    r = s["results"]["paper"]
    assert set(r) == {"model", "tau", "settled", "timing", "population"}
    e = r["population"]["signgd"]
    assert e["compared"] == "irrelevant" and len(e["difference"]) == 3 and e["steps"] == [1000, 2000, 4000]
    assert e["fit"]["points"] == 3 and e["expected_slope"] == 1.0 and "spread" not in e
    assert e["fit"]["interval"][0] <= e["fit"]["slope"] <= e["fit"]["interval"][1]
    # the flow converges at tau = 8.19 < tau / 2 = 10 and is constant after: exactly settled
    assert r["settled"]["limit"]["population.signgd"] == 0.0
    assert "| paper | population | signGD | e~_I |" in study.readme_block(s)


def test_tiny_run_is_deterministic(tiny_runs):
    _, (a, b) = tiny_runs
    for s in (a, b):
        s.pop("timing")
        for r in s["results"].values():
            r.pop("timing")
    assert a == b


def test_population_signgd_gap_matches_an_independent_computation(tiny_runs):
    """The study's population signGD gap equals ``|e~_2(t) - e~_2(inf)|`` from
    the exact event-driven iteration (``theory.signgd_events``, not the engine)
    and the d = 3 closed form of the flow's end (THEORY.md 8.1,
    ``e~_2(0) + sign(e~_0(0)) sqrt3 q |e~_1(0)|``), both independent of the
    study's code path.

    Tolerance: both iterations are float64; each of ``t <= 4000`` steps rounds
    ``w`` by ``|w| U <= 12 U``, so they agree to ``1e-11``; ``1e-9`` leaves room.
    (Time 20 is past the paper's flow convergence at 8.19 and the discrete's
    ``t2 ~ 6.41 / lr``.)
    """
    import jax
    from theory.signal import paper_problem
    from theory.signgd_events import signgd_events

    _, (s, _) = tiny_runs
    with jax.enable_x64(True):  # tests/ default to float32: the paper's 0.1, 0.05 in float64
        m64 = paper_problem()
        q = float(m64.spectrum[1] ** 2 / m64.spectrum[0] ** 2)
        e0 = np.asarray(m64.e0_freq, np.float64)
        flow_end = e0[2] + np.sign(e0[0]) * math.sqrt(3.0) * q * abs(e0[1])
        for lr, got in zip(s["config"]["lrs"], s["results"]["paper"]["population"]["signgd"]["difference"]):
            t = study.horizon_steps(lr, 20.0)
            r = signgd_events(m64, lr, t, stop_on_oscillation=False)
            assert int(r.t_final) == t
            assert got == pytest.approx(abs(float(r.e_freq_final[2]) - flow_end), abs=1e-9)
