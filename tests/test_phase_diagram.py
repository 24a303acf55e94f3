"""Software tests of ``sims/linear/phase_study.py`` and ``python sims/phase_diagram.py``.

Outputs, determinism, validation, and the study's iteration of all points
at once (``phase_study.iterate_points``: the core ``theory.dynamics.run``
vmapped over points with traced step counts) against the core run on one
point with every step recorded. The theory the study relies on (the drift
and settle bounds, the closed form that applies at a step, the saturated
drift, GD's time to a risk) is checked in ``theory/test_phase_bounds.py``.

The iteration runs in float64 (``jax.enable_x64(True)`` here and in the
study), whatever the float32 default of ``tests/``.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims import phase_diagram as pd
from sims.linear import phase_study
from theory import dynamics
from theory.signgd import signgd_gradient_parts

TINY = ["--shape", "5,4", "--q-range", "0.05,1", "--lr-range", "0.01,0.08", "--quiet"]

BAD_INPUTS = [
    (["--q-range", "0.1"], "--q-range"),
    (["--q-range", "0,1"], "--q-range"),
    (["--q-range", "1,0.5"], "--q-range"),
    (["--q-range", "0.1,nan"], "--q-range"),
    (["--q-range", "a,b"], "--q-range"),
    (["--lr-range", "0,0.1"], "--lr-range"),
    (["--lr-range", "-1,0.1"], "--lr-range"),
    (["--lr-range", "0.1,0.01"], "--lr-range"),
    (["--lr-range", "0.001,inf"], "--lr-range"),
    (["--lr-range", "0.001,300"], "--lr-range"),  # GD unstable: lr sigma_0^2 = 3 >= 2
    (["--lr-range", "1e-9,1e-8"], "--lr-range"),  # ~1e10 steps per point
    # 4 points of 2.2e9 steps: under 1e10 point-steps in all, but past the int32 step counter
    (["--shape", "2,2", "--lr-range", "1e-8,1e-7", "--horizon", "1.4"], "--lr-range"),
    (["--shape", "64"], "--shape"),
    (["--shape", "1,64"], "--shape"),
    (["--shape", "64,0"], "--shape"),
    (["--shape", "8.5,8"], "--shape"),
    (["--shape", "8,8,8"], "--shape"),
    (["--sigma0", "0"], "--sigma0"),
    (["--sigma0", "-0.1"], "--sigma0"),
    (["--sigma0", "nan"], "--sigma0"),
    (["--w-star", "5,10"], "--w-star"),
    (["--w-star", "5,x,0"], "--w-star"),
    (["--w0", "1,2,3,4"], "--w0"),
    (["--w0", "1,inf,0"], "--w0"),
    (["--w0-scales", "1,1"], "--w0-scales"),
    (["--w0-scales", "1,2,3,4,5,6,7"], "--w0-scales"),
    (["--w0-scales", ""], "--w0-scales"),
    (["--radius", "-1"], "--radius"),
    (["--radius", "inf"], "--radius"),
    (["--tol", "0"], "--tol"),
    (["--tol", "1"], "--tol"),
    (["--horizon", "0.5"], "--horizon"),
    (["--horizon", "nan"], "--horizon"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(pd.main, argv, flag)


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(pd.main)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run with plots, shared by the output tests."""
    out = tmp_path_factory.mktemp("phase")
    assert pd.main(TINY + ["--out", str(out)]) == 0
    return out


def load(out) -> dict:
    with open(os.path.join(out, pd.SUMMARY)) as f:
        return json.load(f)


def test_outputs_written(tiny_run):
    assert sorted(os.listdir(tiny_run)) == sorted((pd.SUMMARY,) + pd.FIGURES)  # no temp files left
    for png in pd.FIGURES:
        with open(os.path.join(tiny_run, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert str(tiny_run) not in (tiny_run / pd.SUMMARY).read_text()  # no absolute paths


def test_summary_contents(tiny_run):
    """Schema, plus what the tiny diagram must show. q = 0.05, 0.106, 0.224 are
    inside q <= 1/3 and 0.473, 1 outside; the sign flow converges at every
    point and equals its d = 3 closed form to rounding (a few roundings of
    numbers of size 10: 1e-12 is loose); every applicable point matches the
    discrete closed form's t1, t2 exactly and e~(t2) to float64 rounding
    (about 1e-15 relative per step over < 2000 steps, so 1e-10 is loose); the
    flow's error is within the derived DRIFT_LR_BOUND lr for q <= 1/3. The
    reference point reproduces THEORY.md section 4 (t1 = 112, t2 = 641,
    e~_2(t2) about -4.30) and 8.1 (flow end -4.314457)."""
    s = load(tiny_run)
    assert set(s) == {"config", "diagram", "flow", "closed_form_vs_iteration", "settling", "adversarial_gap",
                      "reference_point", "slice_paper_lr", "timing", "files"}
    cfg = s["config"]
    assert cfg["dtype"] == "float64" and cfg["shape"] == [5, 4] and cfg["q_range"] == [0.05, 1.0]
    assert cfg["w0_scales"] == [1.0] and set(cfg["versions"]) >= {"jax", "numpy"}
    assert set(s["timing"]) == {"flow_s", "compile_s", "run_s", "plots_s", "total_s"}
    assert sorted(s["files"]) == sorted((pd.SUMMARY,) + pd.FIGURES)
    assert s["diagram"]["points"] == 20 and len(s["diagram"]["q"]) == 5 and len(s["diagram"]["lr"]) == 4
    f = s["flow"]
    assert f["reasons"] == {"CONVERGED": 20} and f["max_abs_diff_closed_form_d3"] < 1e-12
    assert f["all"]["points"] == 20 and f["q_le_1_3"]["points"] == 12 and f["q_gt_1_3"]["points"] == 8
    assert f["q_le_1_3"]["frac_within_drift_lr_bound"] == 1.0
    assert f["all"]["err_over_lr"]["max"] == max(f["q_le_1_3"]["err_over_lr"]["max"], f["q_gt_1_3"]["err_over_lr"]["max"])
    assert f["all"]["worst_point"]["err_over_lr"] == f["all"]["err_over_lr"]["max"]
    assert len(f["tolerance_frontier"]["lr_max"]) == 5
    c = s["closed_form_vs_iteration"]
    assert c["reasons"] == {"APPLICABLE": 12, "RATIO": 8}
    assert c["points"] == c["t1_equal"] == c["t2_equal"] == 12
    assert c["max_rel_e_freq_t2_diff"] < 1e-10
    assert s["settling"]["points_settled"] == 20
    assert s["settling"]["phase3_dev_over_lr_max_applicable"] <= math.sqrt(2 / 3) * (1 + 1e-9)
    ref = s["reference_point"]
    assert (ref["t1"], ref["t2"], ref["t1_closed"], ref["t2_closed"]) == (112, 641, 112, 641)
    assert abs(ref["e2_t2"] - (-4.30)) < 0.01 and abs(ref["flow_e2"] - (-4.314457)) < 1e-6
    assert abs(ref["flow_err_over_lr"] - abs(ref["e2_final"] - ref["flow_e2"]) / ref["lr"]) < 1e-9


def test_determinism(tmp_path):
    """Same arguments, same JSON, apart from the timing block."""
    texts = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert pd.main(TINY + ["--no-plots", "--out", str(out)]) == 0
        assert os.listdir(out) == [pd.SUMMARY]
        data = load(out)
        data.pop("timing")
        texts.append(json.dumps(data, sort_keys=True))
    assert texts[0] == texts[1]


#: Steps of the reference trajectory: past every drawn point's horizon. The drawn starts have
#: ``|e~_0(0)| <= 6`` and ``|e~_1(0)| <= 11`` (``w~* = (5, 10, 0)``, ``|scale| <= 100``) and ``lr >= 0.025``, so
#: ``ceil(1.25 settle_bound) <= ceil(1.25 (ceil((sqrt3 6 + 11 / sqrt2) / 0.025) + 2)) = 912``.
REFERENCE_STEPS = 1024


@jax.jit
def _reference(problem, lr):
    """``e~(0..REFERENCE_STEPS)`` of one point (the core run, not vmapped, every step recorded)
    and ``A(t)``, ``B(t)`` along it (:func:`theory.signgd.signgd_gradient_parts`)."""
    state0 = dynamics.State(jnp.zeros((), jnp.int32), problem.e0_freq, ())
    _, saved, _ = dynamics.run(dynamics.signgd_freq_step(problem.spectrum, lr), state0,
                               np.arange(1, REFERENCE_STEPS + 1))
    traj = jnp.concatenate([problem.e0_freq[None], saved])
    return traj, *jax.vmap(signgd_gradient_parts, (0, None))(traj, problem.spectrum)


def _observed(traj: np.ndarray, a: np.ndarray, b: np.ndarray, steps: int, t_probe: int, t_window: int) -> dict:
    """What ``PhaseTimes`` defines, read off a trajectory ``e~(0..steps)`` and its ``A``, ``B`` with NumPy."""
    traj, a, b = traj[: steps + 1], a[: steps + 1], b[: steps + 1]
    nan3 = np.full(3, np.nan)
    hits = np.flatnonzero(np.abs(a) < np.abs(b))
    t1 = int(hits[0]) if hits.size else -1
    flips = np.flatnonzero(np.sign(traj[t1 + 1:, 0]) == -np.sign(traj[t1, 0])) if t1 >= 0 else []
    t2 = t1 + 1 + int(flips[0]) if len(flips) else -1
    window = traj[t_window:, 1]
    return {
        "e_freq_final": traj[-1], "t1": t1, "t2": t2,
        "e_freq_t2": traj[t2] if t2 >= 0 else nan3,
        "phase3_dev": np.abs(traj[t2:, 2] - traj[t2, 2]).max() if t2 >= 0 else np.nan,
        "e1_window_range": window.max() - window.min() if window.size else np.nan,
        "e_freq_probe": traj[t_probe] if 0 <= t_probe <= steps else nan3,
    }


@st.composite
def drawn_points(draw, n=3):
    """``n`` points: ``q`` on both sides of 1/3, ``lr``, and the paper's ``w~(0)`` scaled (up to 100,
    so that ``e~(0)`` is not always dominated by ``w~*``), log-uniform."""
    log = lambda lo, hi: float(np.exp(draw(st.floats(np.log(lo), np.log(hi)))))
    q = np.array([log(0.01, 1.0) for _ in range(n)])
    lr = np.array([log(0.025, 0.25) for _ in range(n)])
    scale = np.array([draw(st.sampled_from((-1.0, 1.0))) * log(0.1, 100.0) for _ in range(n)])
    return q, lr, scale


@settings(max_examples=25, deadline=None)
@given(drawn_points())
def test_points_run_as_the_core_on_each_point(drawn):
    """``iterate_points`` (the core vmapped over points, traced step counts,
    observed at every step) equals, bitwise, the core run on each point alone
    with every step recorded, and its observations are ``PhaseTimes``'s
    definitions read off that trajectory.

    Bitwise, because each point performs the same float64 operations in the
    same order: vmap only adds selects that keep finished points fixed, so
    a point's result does not depend on the points beside it either. Each
    example is one call of each compiled program (same shapes: no
    recompilation)."""
    q, lr, scale = drawn
    with jax.enable_x64(True):
        problems = jax.tree.map(jnp.asarray, phase_study.point_problems(
            q, scale, phase_study.PAPER["sigma0"], phase_study.PAPER["w_star_freq"], phase_study.PAPER["w0_freq"]))
        lr = jnp.asarray(lr)
        th = phase_study.closed_forms(problems, lr, 1.25)
        steps, t_probe, t_window = (np.asarray(x) for x in (th.steps, th.phases.t2, th.t_window))
        assert steps.max() <= REFERENCE_STEPS
        final, times = phase_study.iterate_points(problems, lr, th.steps, th.phases.t2, th.t_window)
        got = {"e_freq_final": final, **times._asdict()}
        for i in range(len(q)):
            problem = jax.tree.map(lambda x: x[i], problems)
            traj, a, b = (np.asarray(x) for x in _reference(problem, lr[i]))
            want = _observed(traj, a, b, int(steps[i]), int(t_probe[i]), int(t_window[i]))
            for key, value in want.items():
                np.testing.assert_array_equal(np.asarray(got[key][i]), value, err_msg=f"point {i}: {key}")
