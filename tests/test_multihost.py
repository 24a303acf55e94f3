"""Multi-host: two processes joined by ``jax.distributed`` give one process's results.

Two Python processes on this machine call ``jax.distributed.initialize``
(coordinator on localhost at a free port), each with two CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``), so the engine's
mesh spans four devices on two hosts. They run the online case of the
engine's reference cases (``tests/engine_cases.py``: the four optimizers,
300 steps) with six seeds sharded over all four devices, gather the records
(``multihost_utils.process_allgather``), and process 0 saves them. The test
compares them bit for bit with the same seeds run here, in one process on
one device (the first six of the case's 64 seeds: a seed's trajectory does
not depend on the seeds beside it, ``tests/test_engine.py``).

The same command, by hand:

    python tests/test_multihost.py PORT 0 OUT.npy & python tests/test_multihost.py PORT 1 OUT.npy
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = 6  # not a multiple of 4: padded


def _worker(port: int, process_id: int, out: str) -> None:
    import jax

    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id,
                               initialization_timeout=60)
    from jax.experimental import multihost_utils

    from engine_cases import GRID, OPTS, model, oracle
    from sims.linear.engine import make_simulation, seed_keys, simulate

    assert jax.process_count() == 2 and len(jax.devices()) == 4 and len(jax.local_devices()) == 2, jax.devices()
    traj = simulate(make_simulation(OPTS, oracle("online")), model(), seed_keys(SEEDS), GRID)
    assert len(traj.w_freq.sharding.device_set) == 4
    w = np.asarray(multihost_utils.process_allgather(traj.w_freq, tiled=True))
    if process_id == 0:
        np.save(out, w)
    jax.distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    from engine_cases import GRID, OPTS, run64

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = tmp_path / "w.npy"
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, __file__, str(port), str(i), str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    # The one-process reference runs here while the two processes run (two cores).
    one = run64("online")[:SEEDS]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    two_hosts = np.load(out)
    assert two_hosts.shape == one.shape == (SEEDS, len(OPTS), len(GRID), 3)
    np.testing.assert_array_equal(two_hosts, one)


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
