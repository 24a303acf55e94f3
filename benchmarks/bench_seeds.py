"""The main job at scale: statistics over many seeds in bounded memory.

Calls :func:`sims.linear.seed_stats.simulate_stats` and the fixed-budget
:func:`sims.linear.seed_stats.attack_check` directly, with the main job's defaults
(:class:`sims.linear.dynamics_study.Config`: the paper's problem, online batches
of n = 5000, lr 0.01, all four optimizers, 300 log-spaced record steps plus
every step up to the signGD closed form's ``2 t2 + 10``, radius sqrt 2,
10 000 test samples, PGD 20 steps of radius/2 from 4 random starts), and
records the wall time, the simulation time and the peak resident memory
(``resource.getrusage``):

    python benchmarks/bench_seeds.py --seeds 4096 --steps 50001
    python benchmarks/bench_seeds.py --seeds 100000 --steps 2001

Results are merged into ``benchmarks/results_seeds.json``, one entry per
(seeds, steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--seeds", type=int, default=4096)
    p.add_argument("--steps", type=int, default=50_001)
    p.add_argument("--test-samples", type=int, default=10_000)
    p.add_argument("--out", default=os.path.join(HERE, "results_seeds.json"))
    args = p.parse_args()
    t0 = time.perf_counter()

    import jax
    import numpy as np

    from sims.common.optimizers import OPTIMIZERS, make_optimizer
    from sims.linear import dynamics_study as study
    from sims.linear.engine import make_simulation
    from sims.linear.oracles import make_oracle
    from sims.linear.seed_stats import attack_check, simulate_stats
    from sims.common.streams import TEST_STREAM

    config = study.Config(steps=args.steps, seeds=args.seeds, test_samples=args.test_samples)
    problem, lr, radius = config.problem(), config.lr, config.radius
    sim = make_simulation({n: make_optimizer(n, lr) for n in OPTIMIZERS},
                          make_oracle(config.gradient, problem.spectrum, config.batch_size))
    record_steps = study.record_steps_for(config, study.signgd_theory(problem, lr))

    t_sim = time.perf_counter()
    stats = simulate_stats(sim, problem, config.seed, args.seeds, record_steps, radius, phases=True)
    t_sim = time.perf_counter() - t_sim

    t_att = time.perf_counter()
    key = jax.random.fold_in(jax.random.key(config.seed), TEST_STREAM)
    keep = ~stats.diverged
    attacks = {a: attack_check(key, stats.w_final, keep, problem, radius, args.test_samples, a,
                               **study.attack_kwargs(config, a)) for a in study.ATTACKS}
    t_att = time.perf_counter() - t_att
    wall = time.perf_counter() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    entry = {
        "seeds": args.seeds,
        "steps": args.steps,
        "record_points": len(record_steps),
        "test_samples": args.test_samples,
        "wall_s": round(wall, 2),
        "simulate_stats_s": round(t_sim, 2),
        "attack_check_s": round(t_att, 2),
        "wall_over_simulation": round(wall / t_sim, 3),
        "peak_rss_mib": round(rss_mib, 1),
        "ns_per_traj_step_in_simulate_stats": round(t_sim / (args.seeds * (args.steps - 1) * len(OPTIMIZERS)) * 1e9, 2),
        "final_adversarial_risk_mean": dict(zip(stats.names, np.round(stats.adversarial_risk.mean[:, -1], 6).tolist())),
        "attack_ci95": {a: dict(zip(stats.names, np.round(r.ci95, 6).tolist())) for a, r in attacks.items()},
        "diverged": dict(zip(stats.names, stats.diverged.sum(0).tolist())),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "load_average_at_end": list(os.getloadavg())},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(json.dumps(entry, indent=1))
    result = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            result = json.load(f)
    result[f"{args.seeds}x{args.steps}"] = entry
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
