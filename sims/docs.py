"""Renders the README's generated blocks from the committed JSONs.

    python -m sims.docs            # rewrite the blocks in README.md
    python -m sims.docs --check    # exit 1 if a block differs from its JSON

A generated block sits between two markers::

    <!-- generated:NAME -->
    ...
    <!-- end:NAME -->

and is the output of ``render(NAME)``: each study's ``readme_block`` applied
to the JSON its default command wrote with ``--out figures``. So every number
in such a block comes from a run anyone can repeat, and
``tests/test_docs.py`` fails when the README and the JSONs disagree.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")

#: block name -> (JSON relative to the repository, "module:function" rendering it).
BLOCKS: dict[str, tuple[str, str]] = {
    "main-table": ("figures/summary.json", "sims.linear.dynamics_study:readme_block"),
    "spectrum-sweep": ("figures/spectrum_summary.json", "sims.linear.sweep_study:readme_block"),
    "phase-diagram": ("figures/phase_summary.json", "sims.linear.phase_study:readme_block"),
    "deep": ("figures/deep_summary.json", "sims.deep.report:readme_block"),
    "small-lr-limit": ("figures/small_lr_limit.json", "sims.linear.limits_study:readme_block"),
    "timings": ("benchmarks/timings.json", "sims.docs:timings_block"),
    "seeds-at-scale": ("benchmarks/results_seeds.json", "sims.docs:seeds_block"),
}

_BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)\n?(<!-- end:(?P=name) -->)", re.S)


def _function(path: str) -> Callable[[dict], str]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def render(name: str) -> str:
    """The markdown of block ``name`` from its committed JSON."""
    json_path, fn = BLOCKS[name]
    with open(os.path.join(ROOT, json_path)) as f:
        return _function(fn)(json.load(f)).strip()


def timings_block(data: dict) -> str:
    """Wall times of the default commands over repeated runs (``benchmarks/bench_timings.py``)."""
    lines = [f"Measured on {data['machine']}, one command after another on an otherwise idle machine, "
             "installation excluded (`python benchmarks/bench_timings.py`):", "",
             "| command | runs | wall time |", "|---|---|---|"]
    for cmd, times in data["commands"].items():
        fmt = "{:.1f}" if max(times) < 20 else "{:.0f}"
        lines.append(f"| `{cmd}` | {len(times)} | {fmt.format(min(times))} to {fmt.format(max(times))} s |")
    return "\n".join(lines)


def seeds_block(data: dict) -> str:
    """The main job's simulation at scale (``benchmarks/bench_seeds.py``)."""
    lines = ["| run | record points | wall | simulation | attack check | wall / simulation | peak RSS | machine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data.values():
        m = r["machine"]
        lines.append(f"| `--seeds {r['seeds']} --steps {r['steps']}` | {r['record_points']} | {r['wall_s']:.0f} s "
                     f"| {r['simulate_stats_s']:.0f} s | {r['attack_check_s']:.0f} s | {r['wall_over_simulation']:.2f} "
                     f"| {r['peak_rss_mib'] / 1024:.2f} GB | {m['cpu_count']} cores, {m['device']}, load "
                     f"{m['load_average_at_end'][0]:.1f} at the end |")
    return "\n".join(lines)


def rewrite(text: str) -> tuple[str, list[str]]:
    """``text`` with every generated block re-rendered, and the names that changed."""
    changed = []

    def sub(m: re.Match) -> str:
        body = render(m.group("name"))
        if body != m.group("body").strip():
            changed.append(m.group("name"))
        return m.group(1) + body + "\n" + m.group(4)

    return _BLOCK.sub(sub, text), changed


def blocks_in(text: str) -> list[str]:
    return [m.group("name") for m in _BLOCK.finditer(text)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sims.docs", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--check", action="store_true", help="exit 1 if a block differs from its JSON; write nothing")
    args = p.parse_args(argv)
    with open(README) as f:
        text = f.read()
    new, changed = rewrite(text)
    if args.check:
        for name in changed:
            print(f"README block {name!r} differs from {BLOCKS[name][0]}", file=sys.stderr)
        return 1 if changed else 0
    if changed:
        with open(README, "w") as f:
            f.write(new)
    print(f"README.md: {len(changed)} block(s) rewritten: {', '.join(changed) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
