"""Wall time of the default main job, ``python sims/linear_dynamics.py``.

    python benchmarks/bench_main_job.py [--repeats 3] [--out benchmarks/results_main_job.json]

Runs the job as a user would (a fresh interpreter, JAX start-up and
compilation included) into a temporary folder, and records the wall times,
the job's own timing breakdown and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results_main_job.json"))
    args = p.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            subprocess.run([sys.executable, os.path.join(ROOT, "sims", "linear_dynamics.py"), "--out", out, "--quiet"],
                           check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
            wall = time.perf_counter() - t
            with open(os.path.join(out, "summary.json")) as f:
                timing = json.load(f)["timing"]
        runs.append({"wall_s": round(wall, 2), **{k: round(v, 2) for k, v in timing.items()}})
        print(f"wall {wall:.1f} s  ({', '.join(f'{k} {v:.1f}' for k, v in timing.items())})")
    import jax

    result = {
        "command": "python sims/linear_dynamics.py",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "load_average_at_end": list(os.getloadavg())},
        "runs": runs,
        "best_wall_s": min(r["wall_s"] for r in runs),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"best {result['best_wall_s']} s -> {args.out}")


if __name__ == "__main__":
    main()
