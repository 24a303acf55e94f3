"""Sharding the seed axis over devices does not change any seed's trajectory.

JAX fixes the number of host devices when it starts, so the check runs in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``: six
seeds (not a multiple of 4, so padded) on four CPU devices against the same
six seeds on one device, bit for bit, in every gradient mode; for the online
mode also against the first six of 64 seeds on one device, and three seeds
on two of the four devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np

    from sims.engine import make_simulation, seed_keys, simulate
    from sims.optimizers import OPTIMIZERS, make_optimizer
    from sims.oracles import make_oracle
    from sims.recording import log_grid
    from theory.signal import paper_model

    assert len(jax.devices()) == 4, jax.devices()
    model = paper_model()
    opts = {name: make_optimizer(name, 0.01) for name in OPTIMIZERS}
    grid = log_grid(500, 12)
    cases = {
        "population": make_oracle("population", model.spectrum),
        "online": make_oracle("online", model.spectrum, 5000),
        "online-noise": make_oracle("online", model.spectrum, 50, label_noise=0.3),
        "fixed": make_oracle("fixed", model.spectrum, 50),
        "explicit": make_oracle("online", model.spectrum, 20, "explicit"),
    }
    one = jax.devices()[:1]
    for name, oracle in cases.items():
        sim = make_simulation(opts, oracle)
        four = simulate(sim, model, seed_keys(6), grid)
        assert len(four.w_freq.sharding.device_set) == 4, (name, four.w_freq.sharding)
        single = simulate(sim, model, seed_keys(6), grid, devices=one)
        a, b = np.asarray(four.w_freq), np.asarray(single.w_freq)
        assert a.shape == (6, 4, len(grid), 3), a.shape
        np.testing.assert_array_equal(a, b, err_msg=name)
        if name == "online":
            many = np.asarray(simulate(sim, model, seed_keys(64), grid, devices=one).w_freq)
            np.testing.assert_array_equal(a, many[:6], err_msg=name)
            # Two devices out of four, and seeds given explicitly.
            two = simulate(sim, model, seed_keys([4, 1, 5]), grid, devices=jax.devices()[1:3])
            np.testing.assert_array_equal(np.asarray(two.w_freq), many[[4, 1, 5]], err_msg=name)
        print(name, "ok", flush=True)
    print("ALL OK")
    """
)


def test_four_devices_match_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ALL OK" in proc.stdout
