"""End-to-end tests of ``python sims/spectrum_sweep.py`` on tiny sweeps."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.spectrum_sweep import FIGURES, SUMMARY, build_parser, main, validate
from sims.linear.sweep_study import SWEEP_AXES, Config, PointPrediction, compare, transpose
from theory.signal import Problem

SMALL = ["--dim", "8", "--cutoff", "2", "--cutoffs", "2", "--alphas", "1", "--dims", "8", "--targets", "1",
         "--steps", "5", "--seeds", "2", "--record-points", "10", "--optimizers", "gd,signgd", "--quiet",
         "--no-plots", "--predict", "none"]
TINY = ["--dim", "8", "--cutoff", "2", "--cutoffs", "2,6", "--alphas", "0,1", "--dims", "8,16", "--targets", "2",
        "--steps", "300", "--seeds", "1", "--record-points", "20", "--optimizers", "gd,signgd", "--quiet",
        "--predict", "dynamics,cutoff"]
TINY_LR = 1e-3  # the default --lr

BAD_INPUTS = [
    (["--dim", "1"], "--dim"),
    (["--dim", "abc"], "--dim"),
    (["--dim", "5000"], "--dim"),
    (["--cutoff", "0"], "--cutoff"),
    (["--cutoff", "65"], "--cutoff"),
    (["--cutoffs", "2,2"], "--cutoffs"),
    (["--cutoffs", "2.5"], "--cutoffs"),
    (["--cutoffs", "70"], "--cutoffs"),
    (["--alphas", "-1"], "--alphas"),
    (["--alphas", "1,1"], "--alphas"),
    (["--alpha", "nan"], "--alpha"),
    (["--dims", "1"], "--dims"),
    (["--dims", "8,,16"], "--dims"),
    (["--sigma0", "0"], "--sigma0"),
    (["--scale", "30"], "--scale"),  # not a flag: sigma_0 is --sigma0
    (["--lr", "0"], "--lr"),
    (["--steps", "0"], "--steps"),
    (["--targets", "0"], "--targets"),
    (["--w0-std", "-1"], "--w0-std"),
    (["--init-scale", "0.01"], "--init-scale"),  # not a flag: the std of w~(0) is --w0-std
    (["--batch-size", "0"], "--batch-size"),
    (["--gradient", "batch"], "--gradient"),
    (["--label-noise", "0.1"], "--label-noise"),  # the default population gradient has no noise
    (["--mode", "fixed"], "--mode"),  # not a flag: the gradient source is --gradient
    (["--hparam", "adam.b1=2"], "--hparam"),
    (["--optimizers", "gd,lion"], "--optimizers"),
    (["--record-points", "1"], "--record-points"),
    (["--predict", "cutoff,speed"], "--predict"),
    (["--predict", "cutoff,cutoff"], "--predict"),
]


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(main, argv, flag)


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(main)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert main(TINY + ["--out", str(out)]) == 0
    return out, json.loads((out / SUMMARY).read_text())


def test_writes_summary_and_figures(tiny_run):
    out, s = tiny_run
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000
    assert set(s) == {"config", "dynamics", "files", "sweep", "theory", "timing"}
    assert set(s["sweep"]) == set(SWEEP_AXES)
    assert s["sweep"]["cutoff"]["irrelevant"] == [6, 2]
    assert s["sweep"]["dim"]["cutoff"] == [2, 4]  # cutoff / d kept at 2 / 8
    for axis in SWEEP_AXES:
        for name in ("gd", "signgd"):
            o = s["sweep"][axis]["optimizers"][name]
            assert len(o["adversarial_risk"]["mean"]) == len(s["sweep"][axis]["values"])
            assert o["diverged"] == [0] * len(s["sweep"][axis]["values"])


def test_parser_defaults_are_the_config_defaults(tmp_path):
    """No flags give ``Config()``: the parser reads its defaults from the Config, which resolves
    the cutoffs from ``dim`` (2,...,60 at d = 64), merges the optimizers' default hyper-parameters
    and drops the batch settings of the population gradient."""
    args = build_parser().parse_args(["--out", str(tmp_path / "out")])
    validate(args)
    assert args.config == Config()
    assert Config().cutoffs == (2, 4, 8, 16, 32, 48, 60)
    assert Config().batch_size is None and Config().sampler is None
    assert Config(gradient="online").batch_size == 5000


def test_json_config_is_the_config(tiny_run):
    """The JSON's ``config`` block is the dataclass (plus versions and device), under the flags' names."""
    _, s = tiny_run
    fields = {f.name for f in dataclasses.fields(Config)}
    assert fields <= set(s["config"]) and set(s["config"]) - fields == {"versions", "device"}
    c = s["config"]
    assert (c["dim"], c["cutoff"], c["cutoffs"], c["w0_std"], c["sigma0"]) == (8, 2, [2, 6], 0.01, 30.0)
    assert c["gradient"] == "population" and c["batch_size"] is None and c["predict"] == ["dynamics", "cutoff"]


def test_gd_matches_its_closed_form_and_keeps_the_irrelevant_band(tiny_run):
    """GD's iteration against its closed form, in float32.

    A float32 step rounds ``e`` by ``~d U32 |e|`` (``U32 = 2^-24``); over 300
    steps that is far below the 1e-4 relative tolerance used here, while a
    wrong learning rate or a missing step moves the final risk by percents.
    """
    _, s = tiny_run
    for axis in SWEEP_AXES:
        gd, closed = s["sweep"][axis]["optimizers"]["gd"], s["sweep"][axis]["gd_closed_form"]
        for key in ("adversarial_risk", "weight_norm", "irrelevant_norm"):
            np.testing.assert_allclose(gd[key]["mean"], closed[key]["mean"], rtol=1e-4)
    dyn = s["dynamics"]["optimizers"]["gd"]
    np.testing.assert_allclose(dyn["final"]["adversarial_risk"]["mean"], dyn["predicted"]["adversarial_risk"],
                               rtol=1e-4)


def test_sign_methods_put_error_in_the_irrelevant_band(tiny_run):
    """The phenomenon, on the tiny run: signGD ends with more irrelevant-band
    error than GD, which keeps its start's (GD never moves that band)."""
    _, s = tiny_run
    final = {n: o["final"]["irrelevant_norm"]["mean"] for n, o in s["dynamics"]["optimizers"].items()}
    assert final["signgd"] > 2 * final["gd"]


def test_same_seed_same_numbers_online(tmp_path):
    """Online batches: the seeds differ from each other, and a rerun is identical."""
    runs = []
    for i in range(2):
        assert main(SMALL + ["--gradient", "online", "--batch-size", "64", "--out", str(tmp_path / str(i))]) == 0
        runs.append(json.loads((tmp_path / str(i) / SUMMARY).read_text()))
    config = runs[0]["config"]
    assert config["gradient"] == "online" and config["sampler"] == "wishart" and config["batch_size"] == 64
    assert runs[0]["dynamics"]["optimizers"]["gd"]["final"]["standard_risk"]["std"] > 0  # seeds saw other batches
    for s in runs:
        s.pop("timing")
    assert runs[0] == runs[1]


def test_diverged_runs_are_reported_as_diverged(tmp_path):
    """``lr sigma0^2 = 0.01 x 900 = 9 > 2``: GD multiplies ``e~_0`` by ``|1 - 9| = 8`` per step, so
    ``R_s`` grows 64-fold per step and passes 100 times its start within 2 of the 5 steps. Every
    seed and target is counted as diverged, with no mean, and GD's closed form is not offered."""
    assert main(SMALL + ["--lr", "0.01", "--out", str(tmp_path)]) == 0
    s = json.loads((tmp_path / SUMMARY).read_text())
    gd = s["dynamics"]["optimizers"]["gd"]
    assert gd["final"]["diverged"] == 2 and gd["final"]["standard_risk"]["mean"] is None
    assert "predicted" not in gd and s["theory"]["gd"]["stable"] is False
    for axis in SWEEP_AXES:
        assert s["sweep"][axis]["optimizers"]["gd"]["diverged"] == [1]
        assert s["sweep"][axis]["gd_closed_form"] is None


def test_sign_flow_is_within_its_o_lr_gap_of_the_runs(tiny_run):
    """The sweep's signGD prediction (the sign flow) against the simulated runs.

    THEORY.md 8.1: discrete population signGD minus the flow is ``O(lr)`` in
    ``||e~_I||``, with a constant of 2 to 27 (times lr) at ``d = 8``, cutoff
    4 (and 157 to 320 at ``d = 16``, cutoff 8). The tiny run has ``d = 8``
    and cutoffs 2 and 6, so ``| ||e~_I||_sim - ||e~_I||_flow | <= 30 lr`` is
    the bound, plus float32 rounding of the run (``~300 steps x 2^-24 x
    |e~|``, negligible). A flow evaluated at a wrong time, or the start instead
    of the end, is off by ``O(tau) = O(0.3)``: 10 times the bound.
    """
    _, s = tiny_run
    p = s["sweep"]["cutoff"]["predictions"]["signgd"]
    assert p["theory"] == "sign_flow" and p["solved"] == [True, True]
    assert p["applicable"] == [2, 2]
    assert max(p["distance"]["irrelevant_norm_abs"]["max"]) <= 30 * TINY_LR
    dyn = s["dynamics"]["optimizers"]["signgd"]["predicted"]
    assert dyn["applicable"] and dyn["distance"]["irrelevant_norm_abs"] <= 30 * TINY_LR
    # The GD closed form is the discrete iteration itself: float32 rounding only (see the GD test).
    gd = s["sweep"]["cutoff"]["predictions"]["gd"]["distance"]["adversarial_risk_rel"]["max"]
    assert max(gd) <= 1e-4


def test_points_off_the_predict_axes_say_so(tiny_run):
    """Points of axes not in ``--predict`` carry ``null`` with a reason, not numbers.

    alpha = 0 lies on the alpha axis only (not predicted); alpha = 1 is the
    cutoff axis's point (d, 1, 2), which was solved and is reused.
    """
    _, s = tiny_run
    p = s["sweep"]["alpha"]["predictions"]["signgd"]
    assert p["solved"] == [False, True]
    assert p["predicted"]["irrelevant_norm"]["mean"][0] is None and p["reason"][0].startswith("not solved")
    assert p["predicted"]["irrelevant_norm"]["mean"][1] is not None


_finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=25, deadline=None)
@given(st.lists(_finite, min_size=18, max_size=18), st.lists(_finite, min_size=18, max_size=18),
       st.lists(st.booleans(), min_size=3, max_size=3))
def test_compare_against_the_risk_formula(w_sim, e_pred, applicable):
    """:func:`compare` against THEORY.md section 2 written out in numpy.

    3 targets, ``d = 6``, spectrum ``(1, 0.5, 0.25, 0, 0, 0)``: ``R_a = R_s +
    2 eps sqrt(R_s/pi) ||w|| + eps^2/2 ||w||^2`` and ``||e~_I||`` on the last 3
    frequencies, computed here in float64; :func:`compare` uses the package's
    float32 risks, so the relative tolerance is float32 rounding of a few
    sums, ``~10 x 2^-24 ~ 1e-6``, taken as 1e-5 (absolute 1e-5 for the
    distances, which are differences of O(1) numbers). A target without a
    prediction must drop out of both the predicted values and the distances.
    """
    spectrum = np.array([1.0, 0.5, 0.25, 0.0, 0.0, 0.0])
    w_star = np.array([[1.0, -0.5, 0.2, 0, 0, 0], [0.3, 0.3, -1.0, 0, 0, 0], [-2.0, 0.1, 0.4, 0, 0, 0]])
    w_sim = w_star + np.reshape(w_sim, (3, 6))
    e_pred = np.reshape(e_pred, (3, 1, 6))
    ok = np.array(applicable)
    problems = Problem(np.tile(spectrum, (3, 1)).astype(np.float32), w_star.astype(np.float32),
                         np.zeros((3, 6), np.float32))
    radius = math.sqrt(2.0)
    out = compare(w_sim.astype(np.float32), np.ones(3, bool), PointPrediction("x", e_pred, ok, "why"), problems, radius)

    def ra(w):
        e = w - w_star
        rs = 0.5 * np.sum(spectrum**2 * e**2, axis=-1)
        n = np.linalg.norm(w, axis=-1)
        return rs + 2 * radius * np.sqrt(rs / np.pi) * n + radius**2 / 2 * n**2

    ra_pred, ra_sim = ra(w_star + e_pred[:, 0]), ra(w_sim)
    irr = lambda e: np.linalg.norm(e[:, 3:], axis=-1)  # noqa: E731
    assert out["applicable"] == int(ok.sum())
    if not ok.any():
        assert out["predicted"]["adversarial_risk"]["mean"] is None
        assert out["distance"]["adversarial_risk_rel"]["mean"] is None and out["reason"] == "why"
        return
    np.testing.assert_allclose(out["predicted"]["adversarial_risk"]["mean"], ra_pred[ok].mean(), rtol=1e-5)
    np.testing.assert_allclose(out["distance"]["adversarial_risk_rel"]["max"],
                               np.max(np.abs(ra_sim - ra_pred)[ok] / ra_pred[ok]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["distance"]["irrelevant_norm_abs"]["mean"],
                               np.mean(np.abs(irr(w_sim - w_star) - irr(e_pred[:, 0]))[ok]), rtol=1e-5, atol=1e-5)
    t = transpose([out, None])
    assert t["solved"] == [True, False] and t["distance"]["adversarial_risk_rel"]["max"][1] is None
