"""Wall times of the README's default commands, repeated, for its timing table.

    python benchmarks/bench_timings.py              # 3 runs of each command
    python benchmarks/bench_timings.py --runs 1 --commands "python sims/phase_diagram.py"

Each command runs from the repository root with ``--out`` in a temporary
folder (so the committed figures stay as they are), one after another on an
otherwise idle machine. Writes ``benchmarks/timings.json``, which
``python -m sims.docs`` renders into the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = (
    "python sims/linear_dynamics.py",
    "python sims/spectrum_sweep.py",
    "python sims/phase_diagram.py",
    "python sims/small_lr_limit.py",
    "python sims/deep_robustness.py",
    "pytest",
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), CPU only"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--commands", nargs="*", default=list(COMMANDS))
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "timings.json"))
    p.add_argument("--merge", action="store_true", help="keep the other commands already in --out")
    args = p.parse_args()
    times: dict[str, list[float]] = {}
    if args.merge and os.path.exists(args.out):
        with open(args.out) as f:
            times = {k: v for k, v in json.load(f)["commands"].items() if k not in args.commands}
    for cmd in args.commands:
        for r in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                argv = shlex.split(cmd)
                argv[0] = sys.executable if argv[0] == "python" else argv[0]
                if argv[0] != "pytest":
                    argv += ["--out", tmp, "--quiet"]
                else:
                    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                t = time.perf_counter()
                subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                times.setdefault(cmd, []).append(time.perf_counter() - t)
            print(f"{cmd}: run {r + 1}: {times[cmd][-1]:.1f} s", file=sys.stderr)
    with open(args.out, "w") as f:
        ordered = {c: times[c] for c in COMMANDS if c in times} | times
        json.dump({"machine": machine(), "runs": args.runs, "commands": ordered}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
