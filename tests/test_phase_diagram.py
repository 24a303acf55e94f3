"""Software tests of ``sims/linear/grid.py``, ``sims/linear/phase_study.py`` and ``python sims/phase_diagram.py``.

Outputs, determinism, validation, and the grid engine against a plain loop,
on tiny grids. The theory the study relies on (the drift and settle bounds,
the closed form that applies at a step, the saturated drift, GD's time to a
risk) is checked in ``theory/test_phase_bounds.py``.

The grid iteration runs in float64 (``jax.enable_x64(True)`` here and in the
script), whatever the float32 default of ``tests/``.
"""

from __future__ import annotations

import json
import math
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sims import phase_diagram as pd
from sims.linear import phase_study
from sims.linear.grid import signgd_grid
from theory.phase_bounds import settle_bound
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
    """Schema, plus what the tiny grid must show. q = 0.05, 0.106, 0.224 are
    inside q <= 1/3 and 0.473, 1 outside; the sign flow converges in every
    cell and equals its d = 3 closed form to rounding (a few roundings of
    numbers of size 10: 1e-12 is loose); every applicable cell matches the
    discrete closed form's t1, t2 exactly and e~(t2) to float64 rounding
    (about 1e-15 relative per step over < 2000 steps, so 1e-10 is loose); the
    flow's error is within the derived DRIFT_LR_BOUND lr for q <= 1/3. The
    reference cell reproduces THEORY.md section 4 (t1 = 112, t2 = 641,
    e~_2(t2) about -4.30) and 8.1 (flow end -4.314457)."""
    s = load(tiny_run)
    assert set(s) == {"config", "grid", "flow", "closed_form_vs_iteration", "settling", "adversarial_gap",
                      "reference_cell", "slice_paper_lr", "timing", "files"}
    cfg = s["config"]
    assert cfg["dtype"] == "float64" and cfg["grid"] == [5, 4] and set(cfg["versions"]) >= {"jax", "numpy"}
    assert set(s["timing"]) == {"flow_s", "compile_s", "grid_s", "plots_s", "total_s"}
    assert sorted(s["files"]) == sorted((pd.SUMMARY,) + pd.FIGURES)
    assert s["grid"]["cells"] == 20 and len(s["grid"]["q"]) == 5 and len(s["grid"]["lr"]) == 4
    f = s["flow"]
    assert f["reasons"] == {"CONVERGED": 20} and f["max_abs_diff_closed_form_d3"] < 1e-12
    assert f["all"]["cells"] == 20 and f["q_le_1_3"]["cells"] == 12 and f["q_gt_1_3"]["cells"] == 8
    assert f["q_le_1_3"]["frac_within_drift_lr_bound"] == 1.0
    assert f["all"]["err_over_lr"]["max"] == max(f["q_le_1_3"]["err_over_lr"]["max"], f["q_gt_1_3"]["err_over_lr"]["max"])
    assert f["all"]["worst_cell"]["err_over_lr"] == f["all"]["err_over_lr"]["max"]
    assert len(f["tolerance_frontier"]["lr_max"]) == 5
    c = s["closed_form_vs_iteration"]
    assert c["reasons"] == {"APPLICABLE": 12, "RATIO": 8}
    assert c["cells"] == c["t1_equal"] == c["t2_equal"] == 12
    assert c["max_rel_e_freq_t2_diff"] < 1e-10
    assert s["settling"]["cells_settled"] == 20
    assert s["settling"]["phase3_dev_over_lr_max_applicable"] <= math.sqrt(2 / 3) * (1 + 1e-9)
    ref = s["reference_cell"]
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


def _cells(q, lr):
    """Models and learning rates for cells with the paper's w~*, w~(0) (float64)."""
    problems = phase_study.cell_models(np.asarray(q, np.float64), np.ones(len(q)), 0.1, (5.0, 10.0, 0.0), (0.01, -0.01, 0.02))
    return jax.tree.map(jnp.asarray, problems), jnp.asarray(lr, jnp.float64)


@partial(jax.jit, static_argnames="steps")
def plain_loop(e0, spectrum, lr, steps):
    """``e~(0..steps)`` of ``signgd_step_freq`` iterated by ``lax.scan``: one cell, no vmap, no selects."""
    step = lambda e, _: (signgd_step_freq(e, spectrum, lr),) * 2
    return jnp.concatenate([e0[None], jax.lax.scan(step, e0, None, length=steps)[1]])


def test_grid_equals_per_cell_loop():
    """The vmapped grid is, bitwise, the plain iteration of ``signgd_step_freq``
    cell by cell, and a cell's result does not depend on the other cells.

    Bitwise, because each cell performs the same float64 operations in the
    same order (vmap only adds selects that keep finished cells fixed). The
    observed t1 and t2 and the probe at the closed form's t2 are recomputed
    from the plain loop's trajectory with the definitions of ``GridRun``."""
    q = [0.05, 0.2, 0.3, 0.6, 1.0]
    lrs = [0.1, 0.05, 0.08, 0.07, 0.1]
    with jax.enable_x64(True):
        problems, lr = _cells(q, lrs)
        steps = jax.vmap(settle_bound)(problems, lr).astype(jnp.int64)
        t_probe = jax.vmap(signgd_phases)(problems, lr).t2
        run = signgd_grid(problems, lr, steps, t_probe, steps // 2)
        # cell 2 among other cells (cell 0 repeated): same shape, so the same compiled program
        alone = signgd_grid(*jax.tree.map(lambda x: x[np.array([2, 0, 0, 0, 0])], (problems, lr, steps, t_probe,
                                                                                  steps // 2)))
        longest = int(steps.max())
        for i in range(len(q)):
            traj = np.asarray(plain_loop(problems.e0_freq[i], problems.spectrum[i], lr[i], longest))[: int(steps[i]) + 1]
            np.testing.assert_array_equal(np.asarray(run.e_freq_final[i]), traj[-1])
            s2 = np.asarray(problems.spectrum[i]) ** 2
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
