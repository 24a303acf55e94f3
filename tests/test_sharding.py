"""Sharding the seed axis over devices does not change any seed's trajectory.

JAX fixes the number of host devices when it starts, so the sharded runs go
in one subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
six seeds (not a multiple of 4, so padded) on four CPU devices in every
gradient mode, and, online, three seeds given explicitly on two of the four
devices. It saves the records; this process runs the same seeds on its one
device meanwhile (the two overlap on two cores) and compares bit for bit.
The one-device runs are the engine's seed-count-independent reference
(``tests/test_engine.py``), so the first six of 64 seeds need no extra run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("population", "online", "online-noise", "fixed", "explicit")
TWO_DEVICE_SEEDS = [4, 1, 5]


def _cases():
    from sims.linear.engine import make_simulation
    from sims.common.optimizers import OPTIMIZERS, make_optimizer
    from sims.linear.oracles import make_oracle
    from sims.linear.recording import log_steps
    from theory.signal import paper_problem

    problem = paper_problem()
    opts = {name: make_optimizer(name, 0.01) for name in OPTIMIZERS}
    oracles = {
        "population": make_oracle("population", problem.spectrum),
        "online": make_oracle("online", problem.spectrum, 5000),
        "online-noise": make_oracle("online", problem.spectrum, 50, label_noise=0.3),
        "fixed": make_oracle("fixed", problem.spectrum, 50),
        "explicit": make_oracle("online", problem.spectrum, 20, "explicit"),
    }
    return problem, {k: make_simulation(opts, oracles[k]) for k in KINDS}, log_steps(500, 12)


def _sharded(out: str) -> None:
    """The subprocess: four devices (and two of them), records saved to ``out``."""
    from sims.linear.engine import seed_keys, simulate

    assert len(jax.devices()) == 4, jax.devices()
    problem, sims, grid = _cases()
    got = {}
    for kind, sim in sims.items():
        four = simulate(sim, problem, seed_keys(6), grid)
        assert len(four.w_freq.sharding.device_set) == 4, (kind, four.w_freq.sharding)
        got[kind] = np.asarray(four.w_freq)
    two = simulate(sims["online"], problem, seed_keys(TWO_DEVICE_SEEDS), grid, devices=jax.devices()[1:3])
    assert len(two.w_freq.sharding.device_set) == 2
    got["online-two-devices"] = np.asarray(two.w_freq)
    np.savez(out, **got)


def test_four_devices_match_one_device(tmp_path):
    from sims.linear.engine import seed_keys, simulate

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = str(tmp_path / "sharded.npz")
    proc = subprocess.Popen([sys.executable, __file__, out], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        problem, sims, grid = _cases()
        one = jax.devices()[:1]
        ref = {k: np.asarray(simulate(sim, problem, seed_keys(6), grid, devices=one).w_freq) for k, sim in sims.items()}
        log = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    got = np.load(out)
    for kind in KINDS:
        assert got[kind].shape == (6, 4, len(grid), 3), got[kind].shape
        np.testing.assert_array_equal(got[kind], ref[kind], err_msg=kind)
    np.testing.assert_array_equal(got["online-two-devices"], ref["online"][TWO_DEVICE_SEEDS])


if __name__ == "__main__":
    _sharded(sys.argv[1])
