"""End to end: ``python sims/deep_robustness.py`` on a tiny configuration, its flag and resource checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sims.deep import report, stats, study
from sims.deep.figures import FILES
from sims.deep_robustness import SUMMARY, main

# GD with momentum and Adam, one hidden layer of 16, four seeds, two epochs, two learning rates each: seconds.
TINY = ["--optimizers", "gd,adam", "--momentum", "0.5", "--widths", "16", "--seeds", "4", "--epochs", "2",
        "--lrs", "gd=0.1,0.3", "--lrs", "adam=0.003,0.01", "--noise-sigmas", "0.2",
        "--noise-draws", "2", "--l2-radii", "0.5", "--linf-radii", "0.05", "--pgd-steps", "6",
        "--power-iters", "20", "--resamples", "50", "--quiet"]


BAD_INPUTS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "2.5"], "--epochs"),
    (["--seeds", "-1"], "--seeds"),
    (["--batch-size", "5000"], "--batch-size"),
    (["--arch", "resnet"], "--arch"),
    (["--widths", "16,,8"], "--widths"),
    (["--widths", "0"], "--widths"),
    (["--arch", "cnn", "--widths", "4,4,4,4"], "--widths"),
    (["--optimizers", "gd,lbfgs"], "--optimizers"),
    (["--optimizers", "gd,gd"], "--optimizers"),
    (["--optimizers", "sgd"], "--optimizers"),  # the deep study's GD is "gd", as everywhere
    (["--momentum", "1"], "--momentum"),
    (["--momentum", "nan"], "--momentum"),
    (["--lrs", "adam"], "--lrs"),
    (["--lrs", "adam=0.1,-1"], "--lrs"),
    (["--lrs", "adam=0.1,0"], "--lrs"),
    (["--lrs", "adam=0.1,x"], "--lrs"),
    (["--lrs", "adam=0.1,0.1"], "--lrs"),
    (["--lrs", "nadam=0.1"], "--lrs"),
    (["--optimizers", "gd", "--lrs", "adam=0.1"], "--lrs"),
    (["--lrs", "adam=0.1", "--lrs", "adam=0.2"], "--lrs"),
    (["--lr", "0.1"], "--lr"),  # no abbreviation of --lrs
    (["--lr-grid", "adam=0.1"], "--lr-grid"),  # the old name is gone
    (["--noise-sigmas", "0.1,0"], "--noise-sigmas"),
    (["--noise-sigmas", "inf"], "--noise-sigmas"),
    (["--l2-radii", ""], "--l2-radii"),
    (["--linf-radii", "-0.1"], "--linf-radii"),
    (["--pgd-steps", "1"], "--pgd-steps"),
    (["--pgd-step-frac", "3"], "--pgd-step-frac"),
    (["--pgd-tol", "2"], "--pgd-tol"),
    (["--keep-energy", "1.5"], "--keep-energy"),
    (["--keep-energy", "0"], "--keep-energy"),
    (["--lowpass", "fft"], "--lowpass"),
    (["--block", "9"], "--block"),
    (["--band-sigma", "0"], "--band-sigma"),
    (["--power-iters", "0"], "--power-iters"),
    (["--no-such-flag"], "--no-such-flag"),
]

# Huge values: refused by the memory or time estimate, before anything is computed.
HUGE = [
    (["--seeds", "1e9"], "--seeds"),
    (["--widths", "1000000,1000000"], "--seeds"),  # the parameters alone: 3 copies of 1e12 floats
    (["--epochs", "1e9"], "--epochs"),
    (["--pgd-steps", "1e9"], "--pgd-steps"),
    (["--noise-draws", "1e9"], "--noise-draws"),
    (["--power-iters", "1e9"], "--power-iters"),
    (["--resamples", "1e12"], "--resamples"),
]


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a in (b for b, _ in BAD_INPUTS)])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(main, argv, flag)


@pytest.mark.parametrize("argv,flag", HUGE, ids=[" ".join(a) for a, _ in HUGE])
def test_huge_values_are_refused_before_any_computation(argv, flag, assert_refused, monkeypatch):
    """One line naming the flag, exit 2, nothing written, and the study never starts (issue 12)."""

    def never(*args, **kwargs):
        raise AssertionError("the study started")

    monkeypatch.setattr(study, "run_study", never)
    assert_refused(main, argv, flag)


def test_the_defaults_pass_the_guards(run_cli, monkeypatch, tmp_path):
    """The default run is not refused: the guards reach the study, which is stubbed out here."""

    class Reached(Exception):
        pass

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(study, "run_study", stop)
    with pytest.raises(Reached):
        main(["--quiet", "--out", str(tmp_path / "out")])


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(main)


def test_empty_out_is_refused(run_cli):
    # Not through assert_refused: it appends its own --out.
    code, out, err = run_cli(main, ["--out", ""])
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1 and out == ""


def test_tiny_run_end_to_end_is_deterministic(tmp_path, run_cli):
    """The run writes the set, states a verdict per claim and metric, and repeats itself exactly.

    Each check can fail: a verdict outside the three, a per-lr list of the wrong length, an interval
    that does not contain its mean, a README block that lacks a verdict of the JSON, a second run
    that differs.
    """
    a, b = tmp_path / "a", tmp_path / "b"
    code, out, err = run_cli(main, TINY + ["--out", str(a)])
    assert code == 0, err
    assert err == ""  # --quiet: no progress
    assert sorted(p.name for p in a.iterdir()) == sorted((SUMMARY,) + FILES)
    summary = json.loads((a / SUMMARY).read_text())
    assert sorted(summary["files"]) == sorted((SUMMARY,) + FILES)
    cfg = summary["config"]  # dumped from the Config the flags filled: every field, as given
    assert {f.name for f in dataclasses.fields(study.Config)} <= set(cfg)
    assert cfg["lrs"] == {"gd": [0.1, 0.3], "adam": [0.003, 0.01]} and cfg["momentum"] == 0.5
    assert cfg["optimizers"] == ["gd", "adam"] and cfg["widths"] == [16] and cfg["seeds"] == 4
    res = summary["results"]
    assert set(res["optimizers"]) == {"gd", "adam"}
    for r in res["optimizers"].values():
        assert r["chosen_lr"]["lr"] in r["lrs"]
        for key, iv in r["per_lr"].items():
            assert len(iv["mean"]) == len(r["lrs"]), key
            for m, lo, hi in zip(iv["mean"], iv["lo"], iv["hi"]):
                if m is not None and not isinstance(m, list):
                    assert lo <= m <= hi, key
    assert len(res["comparisons"]) == 5  # one claim (gd vs adam) x five headline metrics
    for c in res["comparisons"]:
        assert c["verdict"] in stats.VERDICTS
        d = c["difference"]
        assert c["verdict"] == stats.verdict(d["lo"] if d["lo"] is not None else float("nan"),
                                             d["hi"] if d["hi"] is not None else float("nan"))
        assert c["verdict"] in out
    block = report.readme_block(summary)
    for c in res["comparisons"]:
        assert f"{c['difference']['value']:+.3f}" in block
    code, out2, _ = run_cli(main, TINY + ["--out", str(b), "--no-plots"])
    assert code == 0 and out2 == out
    assert sorted(p.name for p in b.iterdir()) == [SUMMARY]
    again = json.loads((b / SUMMARY).read_text())
    assert again["results"] == summary["results"] and again["config"] == summary["config"]


def test_lrs_defaults_scale_gd_by_one_minus_momentum_and_keep_given_lists():
    """``--lrs`` defaults: GD's list times ``1 - momentum`` (the effective step ``lr / (1 - m)`` is kept),
    the others as they are; a given list is sorted and used as given."""
    got = dict(study.parse_lrs(["adam=0.01,0.001"], ("gd", "adam", "rmsprop"), 0.5))
    assert got["gd"] == tuple(v / 2 for v in study.LRS["gd"])  # halving is exact in binary
    assert got["adam"] == (0.001, 0.01) and got["rmsprop"] == study.LRS["rmsprop"]
    with pytest.raises(ValueError, match="^--lrs: "):
        study.parse_lrs(["gd=0.1"], ("adam",), 0.0)
