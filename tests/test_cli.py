"""End-to-end tests of ``python sims/linear_dynamics.py`` on short runs."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from sims.linear import dynamics_study as study
from sims.linear.dynamics_study import Config
from sims.linear.predictions import Prediction
from sims.common.streams import FIRST_RESERVED
from sims.linear_dynamics import build_parser, main, validate
from theory.signal import PaperTraining, paper_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = ["--steps", "300", "--seeds", "2", "--test-samples", "400", "--pgd-steps", "5", "--quiet"]


BAD_INPUTS = [
    (["--lr", "abc"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--steps", "0"], "--steps"),
    (["--steps", "1.5"], "--steps"),
    (["--seeds", "0"], "--seeds"),
    (["--spectrum", "0.1,0.05"], "--w-star"),
    (["--w-star", "5,10"], "--w-star"),
    (["--w0", "1,2,3,4"], "--w0"),
    (["--spectrum", "0.1,-0.05,0"], "--spectrum"),
    (["--spectrum", "0.1,,0"], "--spectrum"),
    (["--spectrum", "0.1,nan,0"], "--spectrum"),
    (["--optimizers", "gd,sgdx"], "--optimizers"),
    (["--optimizers", "gd,gd"], "--optimizers"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--radius", "-1"], "--radius"),
    (["--radius", "inf"], "--radius"),
    (["--hparam", "adam.beta=0.1"], "--hparam"),
    (["--hparam", "adam.b1"], "--hparam"),
    (["--hparam", "adam.b1=1.5"], "--hparam"),
    (["--optimizers", "gd", "--hparam", "adam.b1=0"], "--hparam"),
    (["--batch-size", "0"], "--batch-size"),
    (["--gradient", "exact"], "--gradient"),
    (["--mode", "online"], "--mode"),
    (["--gradient", "population", "--label-noise", "0.1"], "--label-noise"),
    (["--seeds", str(FIRST_RESERVED + 1)], "--seeds"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(main, argv, flag)


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(main)


def test_bad_input_leaves_existing_outputs_alone(tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")
    code, _, _ = run_cli(main, ["--lr", "-1", "--out", str(out)])
    assert code == 2
    assert (out / "summary.json").read_text() == "old"
    assert sorted(os.listdir(out)) == ["summary.json"]


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    """The real entry point, as a user runs it."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "sims", "linear_dynamics.py"), "--lr", "x",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--lr" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_defaults_are_the_papers():
    """The defaults are read from ``theory.signal`` in float64: exactly its numbers, not float32 roundings."""
    config, training = Config(), PaperTraining()
    with jax.enable_x64(True):
        paper = paper_problem()
        for leaf, value in zip(paper, (config.spectrum, config.w_star_freq, config.w0_freq)):
            assert np.array_equal(np.asarray(leaf), np.asarray(value, np.float64))
    assert (config.lr, config.steps, config.batch_size, config.radius) == (
        training.lr, training.steps, training.batch_size, training.radius)
    assert config.gradient == "online"


def _config(argv) -> Config:
    """The run's settings, as the script fills them from ``argv``."""
    args = build_parser().parse_args(argv)
    validate(args)
    return args.config


THEORIES = {"gd": "closed_form", "signgd": "online_ode", "adam": "online_ode", "rmsprop": "online_ode"}


@functools.lru_cache(maxsize=None)
def _short_prediction(name: str) -> Prediction:
    """Optimizer ``name``'s prediction for the short run, solved as the main job solves it."""
    config = _config(SHORT + ["--out", tempfile.gettempdir()])  # nothing is written
    record = study.record_steps_for(config, study.signgd_theory(config.problem(), config.lr))
    return study.solve_prediction(config, name, record)


@pytest.mark.parametrize("name", list(THEORIES))
def test_short_run_predictions(name):
    """Each optimizer's prediction for the default (online) gradient is its formula, applies, and is
    finite on every record step. One test per optimizer: each compiles one solver (the Adam and
    RMSProp ODEs take seconds), which the short run below then reuses."""
    p = _short_prediction(name)
    assert p.theory == THEORIES[name] and p.applicable and p.reason == "", p
    assert p.e_freq.ndim == 2 and p.e_freq.shape[1] == 3 and np.all(np.isfinite(p.e_freq))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One short run with plots, shared by the schema and output tests."""
    out = tmp_path_factory.mktemp("run")
    assert main(SHORT + ["--out", str(out)]) == 0
    return out


def load(out) -> dict:
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def test_outputs_written(short_run):
    names = sorted(os.listdir(short_run))
    assert names == ["error_dynamics.png", "risks.png", "seeds.npz", "summary.json"]  # no temp files left
    for png in ("error_dynamics.png", "risks.png"):
        with open(os.path.join(short_run, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_summary_schema(short_run):
    s = load(short_run)
    assert set(s) == {"config", "optimizers", "theory", "empirical", "timing", "files"}
    assert s["files"] == ["error_dynamics.png", "risks.png", "seeds.npz", "summary.json"]
    cfg = s["config"]
    assert set(cfg) == {f.name for f in dataclasses.fields(Config)} | {"versions", "device"}
    assert cfg["gradient"] == "online" and cfg["batch_size"] == 5000 and cfg["sampler"] == "wishart"
    assert cfg["hparams"]["rmsprop"] == {"decay": 0.99, "eps": 1e-8}
    assert set(cfg["versions"]) >= {"jax", "optax"}
    assert set(s["optimizers"]) == {"gd", "signgd", "adam", "rmsprop"}
    for name, r in s["optimizers"].items():
        f = r["final"]
        for key in ("standard_risk", "adversarial_risk", "weight_norm"):
            assert set(f[key]) == {"mean", "std"} and isinstance(f[key]["mean"], float)
        assert len(f["e_freq"]) == 3 and f["diverged"] == 0
    for name, theory in THEORIES.items():
        p = s["optimizers"][name]["predicted"]
        assert p["theory"] == theory and p["applicable"] is True, p
        assert set(p) == {"theory", "applicable", "standard_risk", "adversarial_risk", "weight_norm", "e_freq"}
        assert p["e_freq"] == [float(x) for x in _short_prediction(name).e_freq[-1]]  # the solve, reported as is
    sg = s["theory"]["signgd"]
    assert sg["applicable"] is True and sg["t1"] == 112 and sg["t2"] == 641
    assert set(sg["observed"]) == {"t1", "t2", "irrelevant_drift"}
    for name, e in s["empirical"].items():
        assert set(e) >= {"worst_l2", "pgd_l2", "closed_form"}
        lo, hi = e["worst_l2"]["ci95"]
        assert lo <= e["worst_l2"]["mean"] <= hi
    assert set(s["timing"]) >= {"total_s"}


def test_gd_matches_closed_form_in_short_run(short_run):
    """GD's mean error follows the population closed form: E[e(t+1)] = (I - lr Sigma) E[e(t)]
    for independent online batches, so 2 seeds of n=5000 agree to a few standard errors.
    Relative spread of one step's gradient is ~sqrt(2/n) = 2%, averaged over 300 steps."""
    s = load(short_run)
    sim, pred = s["optimizers"]["gd"]["final"], s["optimizers"]["gd"]["predicted"]
    assert abs(sim["adversarial_risk"]["mean"] - pred["adversarial_risk"]) < 1e-3 * pred["adversarial_risk"]


def test_determinism_byte_identical(short_run, tmp_path):
    """The same flags again give the same numbers: the summary (but its timing and file list) and
    every array of ``seeds.npz``, byte for byte."""
    out = tmp_path / "again"
    assert main(SHORT + ["--no-plots", "--out", str(out)]) == 0
    texts = []
    for folder in (short_run, out):
        data = load(folder)
        data.pop("timing"), data.pop("files")
        texts.append(json.dumps(data, sort_keys=True))
    assert texts[0] == texts[1]
    first, again = np.load(short_run / "seeds.npz"), np.load(out / "seeds.npz")
    assert sorted(first.files) == sorted(again.files)
    for key in first.files:
        assert first[key].dtype == again[key].dtype and first[key].tobytes() == again[key].tobytes(), key


def test_divergence_is_counted_and_reported(tmp_path, run_cli):
    # GD is stable iff lr * max(sigma^2) < 2: lr = 250 gives |1 - 2.5| = 1.5 > 1 on frequency 0.
    out = tmp_path / "div"
    code, stdout, _ = run_cli(main, ["--lr", "250", "--steps", "200", "--seeds", "3", "--optimizers", "gd",
                                "--gradient", "population", "--test-samples", "100", "--quiet", "--out", str(out)])
    assert code == 0
    s = load(out)
    gd = s["optimizers"]["gd"]
    assert gd["final"]["diverged"] == 3
    assert gd["final"]["adversarial_risk"]["mean"] is None
    assert gd["predicted"]["applicable"] is False and "diverges" in gd["predicted"]["reason"]
    assert s["theory"]["gd"]["stable"] is False
    assert s["config"]["batch_size"] is None and s["config"]["sampler"] is None  # unused by the population gradient
    assert "lr * max(spectrum^2)" in stdout and "3/3" in stdout
    assert os.path.exists(out / "risks.png")
