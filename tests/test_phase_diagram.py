"""Tests of ``sims/grid.py`` and ``python sims/phase_diagram.py`` on tiny grids.

The grid iteration runs in float64 (``jax.enable_x64(True)`` here and in the
script), whatever the float32 default of ``tests/``.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import phase_diagram as pd
from sims.grid import settle_bound, signgd_grid
from theory.signgd import signgd_phases, signgd_step_freq

TINY = ["--grid", "5,4", "--ratios", "0.05,1", "--lrs", "0.01,0.08", "--quiet"]

BAD_INPUTS = [
    (["--ratios", "0.1"], "--ratios"),
    (["--ratios", "0,1"], "--ratios"),
    (["--ratios", "1,0.5"], "--ratios"),
    (["--ratios", "0.1,nan"], "--ratios"),
    (["--ratios", "a,b"], "--ratios"),
    (["--lrs", "0,0.1"], "--lrs"),
    (["--lrs", "-1,0.1"], "--lrs"),
    (["--lrs", "0.1,0.01"], "--lrs"),
    (["--lrs", "0.001,inf"], "--lrs"),
    (["--lrs", "0.001,300"], "--lrs"),  # GD unstable: lr sigma_0^2 = 3 >= 2
    (["--lrs", "1e-9,1e-8"], "--lrs"),  # ~1e10 steps per cell
    (["--grid", "64"], "--grid"),
    (["--grid", "1,64"], "--grid"),
    (["--grid", "64,0"], "--grid"),
    (["--grid", "8.5,8"], "--grid"),
    (["--grid", "8,8,8"], "--grid"),
    (["--sigma0", "0"], "--sigma0"),
    (["--sigma0", "-0.1"], "--sigma0"),
    (["--sigma0", "nan"], "--sigma0"),
    (["--w-star", "5,10"], "--w-star"),
    (["--w-star", "5,x,0"], "--w-star"),
    (["--w0", "1,2,3,4"], "--w0"),
    (["--w0", "1,inf,0"], "--w0"),
    (["--init-scale", "1,1"], "--init-scale"),
    (["--init-scale", "1,2,3,4,5,6,7"], "--init-scale"),
    (["--init-scale", ""], "--init-scale"),
    (["--eps", "-1"], "--eps"),
    (["--eps", "inf"], "--eps"),
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
    """Schema, plus the facts the tiny grid must show: q = 0.05, 0.106, 0.224
    are inside q <= 1/3 and 0.473, 1 outside; every applicable cell matches
    the closed form's t1, t2 exactly and e~(t2) to float64 rounding (about
    1e-15 relative per step over < 2000 steps, so 1e-10 is loose); phase 3
    keeps e~_2 within sqrt(2/3) lr (plus rounding)."""
    s = load(tiny_run)
    assert set(s) == {"config", "grid", "closed_form", "closed_form_vs_iteration", "drift", "settling",
                      "adversarial_gap", "reference_cell", "slice_paper_lr", "timing"}
    cfg = s["config"]
    assert cfg["dtype"] == "float64" and cfg["grid"] == [5, 4] and set(cfg["versions"]) >= {"jax", "numpy"}
    assert set(s["timing"]) == {"compile_s", "grid_s", "plots_s", "total_s"}
    assert s["grid"]["cells"] == 20 and len(s["grid"]["q"]) == 5 and len(s["grid"]["lr"]) == 4
    assert s["closed_form"]["reasons"] == {"APPLICABLE": 12, "RATIO": 8}
    c = s["closed_form_vs_iteration"]
    assert c["cells"] == c["t1_equal"] == c["t2_equal"] == 12
    assert c["max_rel_e_freq_t2_diff"] < 1e-10
    assert s["settling"]["cells_settled"] == 20
    assert s["settling"]["phase3_dev_over_lr_max_applicable"] <= math.sqrt(2 / 3) * (1 + 1e-9)
    d = s["drift"]
    assert d["q_le_1_3_applicable"]["cells"] == 12 and d["q_gt_1_3"]["cells"] == 8
    assert d["q_le_1_3_applicable"]["first_order"]["frac_within_lr_bound"] == 1.0
    assert d["q_gt_1_3"]["saturated"]["frac_within_lr_bound"] == 1.0
    ref = s["reference_cell"]  # the paper's setting: THEORY.md section 4
    assert (ref["t1"], ref["t2"], ref["t1_closed"], ref["t2_closed"]) == (112, 641, 112, 641)
    assert abs(ref["e2_t2"] - (-4.30)) < 0.01


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


def _cells(q, lr):
    """Models and learning rates for cells with the paper's w~*, w~(0) (float64)."""
    models = pd.cell_models(np.asarray(q, np.float64), np.ones(len(q)), 0.1, (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    return jax.tree.map(jnp.asarray, models), jnp.asarray(lr, jnp.float64)


def test_grid_equals_per_cell_loop():
    """The vmapped grid is, bitwise, the plain iteration of ``signgd_step_freq``
    cell by cell, and a cell's result does not depend on the other cells.

    Bitwise, because each cell performs the same float64 operations in the
    same order (vmap only adds selects that keep finished cells fixed). The
    observed t1 and t2 and the probe at the closed form's t2 are recomputed
    from the Python loop's trajectory with the definitions of ``GridRun``."""
    q = [0.05, 0.2, 0.3, 0.6, 1.0]
    lrs = [0.1, 0.05, 0.08, 0.07, 0.1]
    with jax.enable_x64(True):
        models, lr = _cells(q, lrs)
        steps = jax.vmap(settle_bound)(models, lr).astype(jnp.int64)
        t_probe = jax.vmap(signgd_phases)(models, lr).t2
        run = signgd_grid(models, lr, steps, t_probe, steps // 2)
        alone = signgd_grid(*jax.tree.map(lambda x: x[2:3], (models, lr, steps, t_probe, steps // 2)))
        step = jax.jit(signgd_step_freq)
        for i in range(len(q)):
            traj = [models.e0_freq[i]]
            for _ in range(int(steps[i])):
                traj.append(step(traj[-1], models.spectrum[i], lr[i]))
            traj = np.asarray(jnp.stack(traj))
            np.testing.assert_array_equal(np.asarray(run.e_freq_final[i]), traj[-1])
            s2 = np.asarray(models.spectrum[i]) ** 2
            a, b = s2[0] * traj[:, 0] / math.sqrt(3), s2[1] * traj[:, 1] / math.sqrt(2)
            t1 = int(np.argmax(np.abs(a) < np.abs(b)))
            flipped = np.sign(traj[t1 + 1:, 0]) == -np.sign(traj[t1, 0])
            t2 = t1 + 1 + int(np.argmax(flipped))
            assert (int(run.t1[i]), int(run.t2[i])) == (t1, t2)
            np.testing.assert_array_equal(np.asarray(run.e_freq_t2[i]), traj[t2])
            if int(t_probe[i]) >= 0:
                np.testing.assert_array_equal(np.asarray(run.e_freq_probe[i]), traj[int(t_probe[i])])
            else:
                assert np.all(np.isnan(np.asarray(run.e_freq_probe[i])))
        for field in run._fields:
            np.testing.assert_array_equal(np.asarray(getattr(alone, field)[0]), np.asarray(getattr(run, field)[2]))


def test_saturated_drift_beyond_q_one_third():
    """For q > 1/3 (no closed form) the derived sliding-mode drift
    ``sign(e~_0(0)) |e~_1(0)| / sqrt3`` (``phase_diagram`` docstring) holds to
    ``O(lr)``: within ``(2 sqrt(2/3) + sqrt6) lr``, the first-order bound,
    while the uncapped first-order formula is off by more than 10%."""
    q = [0.4, 0.5, 0.7, 1.0, 2.0]
    lrs = [0.02, 0.01, 0.05, 0.03, 0.01]
    with jax.enable_x64(True):
        models, lr = _cells(q, lrs)
        th = pd.closed_forms(models, lr, 1.25)
        run = signgd_grid(models, lr, th.steps, th.phases.t2, th.t_window)
        drift = np.asarray(run.e_freq_final[:, 2] - models.e0_freq[:, 2])
        expect = -10.01 / math.sqrt(3)  # e~_1(0) = -10.01, e~_0(0) < 0
        np.testing.assert_allclose(np.asarray(th.drift_saturated), expect, rtol=1e-12)
        assert np.all(np.abs(drift - expect) <= pd.DRIFT_LR_BOUND * np.asarray(lr))
        assert np.all(np.abs(drift - np.asarray(th.drift_first_order)) > 0.1 * abs(expect))
        assert not np.any(np.asarray(th.phases.applicable))


def test_gd_time_at_risk():
    """GD's ``R_s`` at the returned step equals the target (to 1e-9
    relative: bisection to float64 resolution in log(1 + t), then R_s is
    smooth in t); a target above ``R_s(0)`` gives 0, and a target of 0 a step
    at which GD's weights are its limit in float64."""
    from theory.gd import gd_error, gd_limit
    from theory.risks import standard_risk

    with jax.enable_x64(True):
        models, lr = _cells([0.25], [0.01])
        model = jax.tree.map(lambda x: x[0], models)
        rs = lambda t: float(standard_risk(model.w_star_freq + gd_error(model, lr[0])(t), model))
        for t in (0.0, 3.0, 1234.5, 4e5):
            target = rs(t)
            t_found = float(pd.gd_time_at_risk(model, lr[0], target))
            assert abs(rs(t_found) - target) <= 1e-9 * target
        assert float(pd.gd_time_at_risk(model, lr[0], 10 * rs(0.0))) == 0.0
        t_limit = pd.gd_time_at_risk(model, lr[0], 0.0)
        np.testing.assert_array_equal(np.asarray(model.w_star_freq + gd_error(model, lr[0])(t_limit)),
                                      np.asarray(gd_limit(model)))
