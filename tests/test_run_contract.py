"""Every run finishes honestly or refuses at once (``sims/common/cli.py``).

Each class of bad or extreme input gets one line on stderr naming the flag,
exit code 2 and nothing written, before any computation; interrupts end a
run with one line and exit 130/143, leaving neither temporary files nor a
partial set of outputs; JSON never holds ``inf`` or ``NaN``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sims.common import cli
from sims import linear_dynamics, phase_diagram, spectrum_sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HUGE = [
    (linear_dynamics.main, ["--seeds", "1e9"], "--seeds"),
    (linear_dynamics.main, ["--record-points", "1e9"], "--record-points"),
    (linear_dynamics.main, ["--test-samples", "1e9"], "--test-samples"),
    (linear_dynamics.main, ["--steps", "99999999999999999999999"], "--steps"),
    (linear_dynamics.main, ["--steps", "1e30"], "--steps"),
    (phase_diagram.main, ["--shape", "3000,3000", "--lr-range", "0.05,0.1"], "--shape"),
    (linear_dynamics.main, ["--spectrum", "0,0,0", "--w-star", "0,0,0"], "--spectrum"),
    (linear_dynamics.main, ["--optim", "gd"], "--optim"),  # no abbreviations
    (phase_diagram.main, ["--lr-range", "-0.1,0.1"], "--lr-range"),  # a negative value is a value, not a flag
]


@pytest.mark.parametrize("main,argv,flag", HUGE, ids=[" ".join(a) for _, a, _ in HUGE])
def test_refused_in_one_line_before_any_work(main, argv, flag, assert_refused):
    """Empty ``--out`` is checked by ``test_empty_out_is_refused`` (``assert_refused`` adds its own ``--out``)."""
    start = time.perf_counter()
    assert_refused(main, argv, flag)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("main", [linear_dynamics.main, spectrum_sweep.main, phase_diagram.main])
def test_empty_out_is_refused(main, run_cli):
    code, stdout, stderr = run_cli(main, ["--out", ""])
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "--out" in stderr


def test_memory_refusal_names_the_estimate_and_the_limit(run_cli, tmp_path):
    code, _, stderr = run_cli(linear_dynamics.main, ["--seeds", "1e9", "--out", str(tmp_path / "o")])
    assert code == 2 and "memory" in stderr and "limit" in stderr and "GB" in stderr


def test_integer_counts_accept_e_notation():
    assert cli.positive_int("2e5") == 200_000
    assert cli.positive_int("200_001") == 200_001
    for bad in ("2.5e0", "1e-3", "nan", "inf", "1e300", "x"):
        with pytest.raises(Exception):
            cli.positive_int(bad)


def test_json_has_null_with_a_reason(tmp_path):
    path = tmp_path / "s.json"
    cli.write_json(str(path), {"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -float("inf")}})
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["a"] is None and data["b"] == [1.0, None] and data["c"]["d"] is None
    assert data["nonfinite"] == {"a": "inf", "b[1]": "nan", "c.d": "-inf"}


def _names(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_failed_run_leaves_the_old_set(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("old")
    (out / "risks.png").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with cli.OutputSet(str(out)) as outputs:
            open(outputs.path("risks.png"), "w").write("new")
            raise KeyboardInterrupt  # between two files
    assert (out / "summary.json").read_text() == "old" and (out / "risks.png").read_text() == "old"
    assert _names(tmp_path) == ["out"]  # no temporary folder left


def test_a_run_replaces_the_whole_set_and_lists_it(tmp_path):
    out = tmp_path / "out"
    with cli.OutputSet(str(out)) as outputs:
        open(outputs.path("a.png"), "w").write("new")
        cli.write_json(outputs.path("summary.json"), {"files": outputs.files})
    assert _names(out) == ["a.png", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["files"] == ["a.png", "summary.json"]
    assert _names(tmp_path) == ["out"]


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_interrupt_is_one_line_and_writes_nothing(tmp_path, sig, code, word):
    """The real script, signalled once it has started simulating."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "sims", "linear_dynamics.py"), "--seeds", "64",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # wait for the first stage line: the run is under way
        lines.append(line)
        if "compiling" in line:
            break
    time.sleep(1.0)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    stderr = "".join(lines) + proc.stderr.read()  # the same buffered reader: nothing skipped
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(f"{word}; nothing written")
    assert not out.exists()
    assert _names(tmp_path) == []  # no temporary folder either
