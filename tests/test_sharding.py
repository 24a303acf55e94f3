"""Sharding the seed axis over devices does not change any seed's trajectory.

JAX fixes the number of host devices when it starts, so the sharded runs go
in one subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
six seeds (not a multiple of 4, so padded) of each gradient oracle of the
engine's reference cases (``tests/engine_cases.py``) on four CPU devices,
and, online, three seeds given explicitly on two of the four devices. It
saves the records; this process meanwhile runs the cases' 64 seeds on its
one device and compares bit for bit. Those runs are the seed-count
independent reference that ``tests/test_engine.py`` checks (and shares,
when it runs in the same process), so the first six of 64 seeds need no
run of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("population", "online", "online-noise", "fixed", "explicit")
FOUR_DEVICE_SEEDS = 6  # not a multiple of 4: padded
TWO_DEVICE_SEEDS = [4, 1, 5]


def _sharded(out: str) -> None:
    """The subprocess: four devices (and two of them), records saved to ``out``."""
    from engine_cases import GRID, OPTS, model, oracle
    from sims.linear.engine import make_simulation, seed_keys, simulate

    assert len(jax.devices()) == 4, jax.devices()
    got = {}
    for kind in KINDS:
        sim = make_simulation(OPTS, oracle(kind))
        four = simulate(sim, model(), seed_keys(FOUR_DEVICE_SEEDS), GRID)
        assert len(four.w_freq.sharding.device_set) == 4, (kind, four.w_freq.sharding)
        got[kind] = np.asarray(four.w_freq)
    two = simulate(make_simulation(OPTS, oracle("online")), model(), seed_keys(TWO_DEVICE_SEEDS), GRID,
                   devices=jax.devices()[1:3])
    assert len(two.w_freq.sharding.device_set) == 2
    got["online-two-devices"] = np.asarray(two.w_freq)
    np.savez(out, **got)


def test_four_devices_match_one_device(tmp_path):
    from engine_cases import GRID, OPTS, run64

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = str(tmp_path / "sharded.npz")
    proc = subprocess.Popen([sys.executable, __file__, out], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        ref = {kind: run64(kind) for kind in KINDS}  # one device: the default
        log = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    got = np.load(out)
    for kind in KINDS:
        assert got[kind].shape == (FOUR_DEVICE_SEEDS, len(OPTS), len(GRID), 3), got[kind].shape
        np.testing.assert_array_equal(got[kind], ref[kind][:FOUR_DEVICE_SEEDS], err_msg=kind)
    np.testing.assert_array_equal(got["online-two-devices"], ref["online"][TWO_DEVICE_SEEDS])


if __name__ == "__main__":
    _sharded(sys.argv[1])
