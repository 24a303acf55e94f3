"""Speed of the iteration engine, in nanoseconds per trajectory-step.

A trajectory-step is one step of one optimizer for one seed, so the figure is
``wall / (seeds * steps * optimizers)``, measured after compilation (the best
of a few repeats; the median is kept too), on the paper's model
(``d = 3``, lr 0.01) with batches of ``n = 5000`` in the online modes.

    python benchmarks/bench_engine.py            # full table (a few minutes)
    python benchmarks/bench_engine.py --quick    # a smaller table (about a minute)
    python benchmarks/bench_engine.py --scale    # also the scale run (minutes)
    python benchmarks/bench_engine.py --scale-only
    python benchmarks/bench_engine.py --profile  # also time the pieces of a step

The scale run is 4096 seeds x 4 optimizers x 10^6 online steps recorded on a
log grid of about 300 points; it reports the peak resident memory (the full
trajectories would take 4096 * 4 * 10^6 * 3 * 4 bytes = 197 GB).

Results go to ``benchmarks/results_cpu.json`` (``results_cpu_quick.json``
with ``--quick``), with the machine they ran on; a run replaces the sections
it measured (table, profile, scale), each stamped with its time and the load
average (the machine may be shared), and keeps the others. ``--devices N`` forces N
host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) to
shard seeds over CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer seed counts and optimizer sets, shorter runs")
    p.add_argument("--scale", action="store_true", help="also run the 4096 x 4 x 10^6 scale run")
    p.add_argument("--scale-only", action="store_true", help="only the scale run (merged into the results file)")
    p.add_argument("--scale-steps", type=int, default=1_000_000)
    p.add_argument("--scale-seeds", type=int, default=4096)
    p.add_argument("--scale-mode", default="online", choices=["online", "population"])
    p.add_argument("--profile", action="store_true", help="also time the pieces of an online step")
    p.add_argument("--devices", type=int, default=0, help="force this many host devices (0: leave as is)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=None, help="target seconds per timed run")
    p.add_argument("--out", default=None, help="output JSON path")
    p.add_argument("--fresh", action="store_true", help="start a new results file instead of updating the sections run")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.devices:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}"
    ).strip()

import jax  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(HERE))
from sims.linear.engine import make_simulation, seed_keys, simulate  # noqa: E402
from sims.common.optimizers import OPTIMIZERS, make_optimizer  # noqa: E402
from sims.linear.oracles import make_oracle  # noqa: E402
from sims.linear.recording import log_steps  # noqa: E402
from theory.signal import PaperTraining, paper_problem  # noqa: E402

MODEL = paper_problem()
TRAIN = PaperTraining()
MODES = {
    "population": lambda: make_oracle("population", MODEL.spectrum),
    "online-wishart": lambda: make_oracle("online", MODEL.spectrum, TRAIN.batch_size, "wishart"),
    "online-explicit": lambda: make_oracle("online", MODEL.spectrum, TRAIN.batch_size, "explicit"),
}


def machine_info() -> dict:
    dev = jax.devices()
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in dev],
        "device_kind": dev[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_at_start": list(os.getloadavg()),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _run(sim, seeds: int, steps: int) -> float:
    keys = seed_keys(seeds)
    t0 = time.perf_counter()
    traj = simulate(sim, MODEL, keys, np.array([0, steps]), chunks=1)
    jax.block_until_ready(traj.w_freq)
    return time.perf_counter() - t0


def bench_one(mode: str, names: tuple[str, ...], seeds: int, target_s: float, repeats: int) -> dict:
    """Compiles, calibrates the step count to about ``target_s``, then times."""
    sim = make_simulation({n: make_optimizer(n, TRAIN.lr) for n in names}, MODES[mode]())
    k = len(names)
    first = _run(sim, seeds, 1)  # compile (+ one step)
    one = _run(sim, seeds, 1)  # one step plus the fixed cost of a call
    probe_steps, probe = 1, one
    while probe < 0.1 and probe_steps < 10**7:  # a step count that takes measurable time
        probe_steps *= 4
        probe = _run(sim, seeds, probe_steps)
    per_step = (probe - one) / (probe_steps - 1) if probe_steps > 1 else probe
    per_step = max(per_step, probe / probe_steps / 4)
    steps = int(max(1, min(10**7, target_s / per_step)))
    walls = [_run(sim, seeds, steps) for _ in range(repeats)]
    best, med = min(walls), statistics.median(walls)
    return {
        "mode": mode,
        "optimizers": "+".join(names),
        "n_optimizers": k,
        "seeds": seeds,
        "steps": steps,
        "compile_s": round(first - one, 3),
        "call_overhead_s": round(max(0.0, one - per_step), 4),
        "wall_s": round(best, 4),
        "wall_median_s": round(med, 4),
        "ns_per_traj_step": round(best / (seeds * steps * k) * 1e9, 3),
        "ns_per_traj_step_median": round(med / (seeds * steps * k) * 1e9, 3),
    }


def bench_table(quick: bool, repeats: int, target_s: float) -> list[dict]:
    seed_counts = (64, 1024) if quick else (1, 64, 1024, 4096)
    sets = [tuple(OPTIMIZERS)] + ([] if quick else [(n,) for n in OPTIMIZERS])
    rows = []
    for mode in MODES:
        for names in sets:
            for seeds in seed_counts:
                t = target_s
                if mode == "online-explicit":  # O(n d) per step: a short run is long enough
                    t = min(target_s, 0.5)
                row = bench_one(mode, names, seeds, t, repeats if mode != "online-explicit" else 2)
                rows.append(row)
                print(
                    f"{row['mode']:16s} {row['optimizers']:28s} seeds {seeds:5d}  steps {row['steps']:8d}  "
                    f"{row['ns_per_traj_step']:11.2f} ns/traj-step (median {row['ns_per_traj_step_median']:.2f})  "
                    f"compile {row['compile_s']:.2f} s",
                    flush=True,
                )
    return rows


def ratios(rows: list[dict]) -> dict:
    out = {}
    for r in rows:
        if r["mode"] != "online-explicit":
            continue
        w = [x for x in rows if x["mode"] == "online-wishart" and x["optimizers"] == r["optimizers"] and x["seeds"] == r["seeds"]]
        if w:
            out[f"{r['optimizers']}@{r['seeds']}"] = round(r["ns_per_traj_step"] / w[0]["ns_per_traj_step"], 1)
    return out


def profile_pieces(seeds: int = 1024, steps: int = 1024, draw_steps: int = 8, repeats: int = 3) -> dict:
    """Times the pieces of the online step (engine internals), ns per seed-step.

    A seed-step is one step of all four optimizers for one seed (4
    trajectory-steps).
    """
    import jax.numpy as jnp

    from sims.linear import engine as E
    from sims.linear.sampling import fold_in_words

    oracle = MODES["online-wishart"]()
    pop = MODES["population"]()
    sim = make_simulation({n: make_optimizer(n, TRAIN.lr) for n in OPTIMIZERS}, oracle)
    plan = E._make_plan(sim, MODEL, draw_steps)
    state = jax.jit(lambda k: E._init(plan, k))(seed_keys(seeds))
    offsets = jnp.arange(draw_steps, dtype=jnp.uint32)[:, None]
    calls = steps // draw_steps

    def timed(fn):
        f = jax.jit(fn)
        jax.block_until_ready(f(state))
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(f(state))
            walls.append(time.perf_counter() - t0)
        return round(min(walls) / (seeds * steps) * 1e9, 2)

    def keys_of(s, r):
        return fold_in_words(s.stream[:, None, :], r.astype(jnp.uint32) * draw_steps + offsets)

    def keys_only(s):
        body = lambda r, acc: acc ^ jnp.bitwise_xor(*keys_of(s, r)).sum()
        return jax.lax.fori_loop(0, calls, body, jnp.uint32(0))

    def keys_and_draws(s):  # keys carried, as in the engine
        def body(r, c):
            acc, kw = c
            d = oracle.draw(kw)
            return acc + d.diag.sum() + d.below.sum(), keys_of(s, r + 1)
        return jax.lax.fori_loop(0, calls, body, (0.0, keys_of(s, jnp.int32(0))))[0]

    kw0 = keys_of(state, jnp.int32(0))
    stats = jax.tree.map(lambda x: x[..., 0, :], jax.jit(oracle.draw)(kw0))
    steps_fixed = lambda s: jax.lax.fori_loop(
        0, steps, lambda _, s: E._step(plan, s, lambda e: oracle.apply(s.data, stats, e)), s
    ).e
    steps_pop = lambda s: jax.lax.fori_loop(0, steps, lambda _, s: E._step(plan, s, lambda e: pop.apply(None, None, e)), s).e
    full = lambda s: E._run_steps(plan, s, jnp.int32(steps)).e
    return {
        "seeds": seeds,
        "draw_steps": draw_steps,
        "unit": "ns per seed-step (4 optimizers)",
        "step_keys_fold_in": timed(keys_only),
        "step_keys_and_wishart_draws": timed(keys_and_draws),
        "optimizer_steps_with_a_fixed_batch": timed(steps_fixed),
        "optimizer_steps_population": timed(steps_pop),
        "full_online_steps": timed(full),
    }


def bench_scale(mode: str, seeds: int, steps: int) -> dict:
    """4 optimizers, ``seeds`` x ``steps``, log-grid records; peak RSS."""
    oracle = MODES["online-wishart" if mode == "online" else "population"]()
    sim = make_simulation({n: make_optimizer(n, TRAIN.lr) for n in OPTIMIZERS}, oracle)
    record_steps = log_steps(steps, 300)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    last = [t0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  scale: {done}/{total} steps, {now - t0:.0f} s", flush=True)

    traj = simulate(sim, MODEL, seed_keys(seeds), record_steps, chunks=32, progress=progress)
    w = np.asarray(traj.w_freq)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    k = len(OPTIMIZERS)
    return {
        "mode": mode,
        "seeds": seeds,
        "optimizers": k,
        "steps": steps,
        "grid_points": len(record_steps),
        "wall_s_including_compile": round(wall, 2),
        "ns_per_traj_step_including_compile": round(wall / (seeds * steps * k) * 1e9, 3),
        "peak_rss_mib": round(rss / 1024, 1),
        "peak_rss_mib_before_run": round(rss0 / 1024, 1),
        "records_mib": round(w.nbytes / 2**20, 2),
        "full_trajectories_would_be_gib": round(seeds * k * (steps + 1) * MODEL.dim * 4 / 2**30, 1),
        "finite": bool(np.isfinite(w).all()),
    }


def main(args: argparse.Namespace) -> None:
    out = args.out or os.path.join(HERE, "results_cpu_quick.json" if args.quick else "results_cpu.json")
    target = args.seconds if args.seconds is not None else (0.25 if args.quick else 0.6)
    result: dict = {}
    if os.path.exists(out) and not args.fresh:  # keep the sections not re-run
        with open(out) as f:
            result = json.load(f)
    result["machine"] = machine_info()
    print(json.dumps(result["machine"], indent=1), flush=True)
    stamp = lambda: {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average": list(os.getloadavg())}
    if not args.scale_only:
        result["table_measured"] = stamp()
        result["settings"] = {
            "model": "paper (d = 3, spectrum (0.1, 0.05, 0))",
            "lr": TRAIN.lr,
            "batch_size": TRAIN.batch_size,
            "repeats": args.repeats,
            "target_seconds_per_run": target,
            "metric": "wall / (seeds * steps * optimizers), after compilation; best and median of repeats",
        }
        rows = bench_table(args.quick, args.repeats, target)
        result["results"] = rows
        result["explicit_over_wishart"] = ratios(rows)
        print("explicit / wishart:", json.dumps(result["explicit_over_wishart"]), flush=True)
    if args.profile:
        result["profile"] = {**stamp(), **profile_pieces()}
        print(json.dumps(result["profile"], indent=1), flush=True)
    if args.scale or args.scale_only:
        result["scale"] = {**stamp(), **bench_scale(args.scale_mode, args.scale_seeds, args.scale_steps)}
        print(json.dumps(result["scale"], indent=1), flush=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main(ARGS)
