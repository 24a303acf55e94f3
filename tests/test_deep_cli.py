"""End to end: ``python sims/deep_robustness.py`` on a tiny configuration, and its flag checks."""

from __future__ import annotations

import json

import pytest

from sims.deep_robustness import FIGURES, SUMMARY, main

# Two optimizers (SGD with momentum), one hidden layer of 16, two seeds and epochs, two grid points:
# seconds, not minutes.
TINY = ["--optimizers", "sgd,adam", "--momentum", "0.5", "--widths", "16", "--seeds", "2", "--epochs", "2",
        "--lr-grid", "sgd=0.1,0.3", "--lr-grid", "adam=0.003,0.01", "--noise-sigmas", "0.2",
        "--noise-draws", "2", "--l2-eps", "0.5", "--linf-eps", "0.05", "--pgd-steps", "6",
        "--power-iters", "20", "--quiet"]


BAD_INPUTS = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "2.5"], "--epochs"),
    (["--seeds", "-1"], "--seeds"),
    (["--batch-size", "5000"], "--batch-size"),
    (["--arch", "resnet"], "--arch"),
    (["--widths", "16,,8"], "--widths"),
    (["--widths", "0"], "--widths"),
    (["--arch", "cnn", "--widths", "4,4,4,4"], "--widths"),
    (["--optimizers", "sgd,lbfgs"], "--optimizers"),
    (["--optimizers", "sgd,sgd"], "--optimizers"),
    (["--momentum", "1"], "--momentum"),
    (["--momentum", "nan"], "--momentum"),
    (["--lr-grid", "adam"], "--lr-grid"),
    (["--lr-grid", "adam=0.1,-1"], "--lr-grid"),
    (["--lr-grid", "adam=0.1,0.1"], "--lr-grid"),
    (["--lr-grid", "nadam=0.1"], "--lr-grid"),
    (["--optimizers", "sgd", "--lr-grid", "adam=0.1"], "--lr-grid"),
    (["--lr-grid", "adam=0.1", "--lr-grid", "adam=0.2"], "--lr-grid"),
    (["--noise-sigmas", "0.1,0"], "--noise-sigmas"),
    (["--noise-sigmas", "inf"], "--noise-sigmas"),
    (["--l2-eps", ""], "--l2-eps"),
    (["--linf-eps", "-0.1"], "--linf-eps"),
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


@pytest.mark.parametrize("argv,flag", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_no_files(argv, flag, assert_refused):
    assert_refused(main, argv, flag)


def test_unwritable_out_is_refused(assert_out_refused):
    assert_out_refused(main)


def test_tiny_run_end_to_end_is_deterministic(tmp_path, run_cli):
    a, b = tmp_path / "a", tmp_path / "b"
    code, out, err = run_cli(main, TINY + ["--out", str(a)])
    assert code == 0, err
    assert "deep_robustness.py" not in err and "Traceback" not in err  # --quiet: no progress line
    assert sorted(p.name for p in a.iterdir()) == sorted((SUMMARY,) + FIGURES)
    summary = json.loads((a / SUMMARY).read_text())
    assert set(summary) == {"config", "results", "timing"}
    res = summary["results"]["optimizers"]
    assert set(res) == {"sgd", "adam"}
    for r in res.values():
        assert r["lr"] in r["lr_grid"]
        assert 0 <= r["clean_accuracy"]["mean"] <= 1
        # Accuracy under attack can only fall with more steps (best iterate, same start).
        for norm in ("l2", "linf"):
            assert r["pgd"][norm]["max_change"] >= 0
        assert len(r["weight_norms"]["frobenius"]["mean"]) == 2
    for name in ("sgd", "adam", "PGD convergence", "band-limited", "Lipschitz"):
        assert name in out
    # Same seed, same numbers (the second run reuses the compiled functions).
    code, out2, _ = run_cli(main, TINY + ["--out", str(b), "--no-plots"])
    assert code == 0 and out2 == out
    assert sorted(p.name for p in b.iterdir()) == [SUMMARY]
    again = json.loads((b / SUMMARY).read_text())
    assert again["results"] == summary["results"]
    assert {k: v for k, v in again["config"].items()} == summary["config"]
