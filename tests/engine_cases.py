"""The engine's reference cases, shared by the engine, sharding and multi-host tests.

Every optimizer at lr = 0.01 on the paper's problem, each gradient oracle
(population, online at several batch sizes and with label noise, a fixed
training set, the explicit sampler), 300 steps recorded every 7th. One
process runs each case's 64 seeds once (:func:`run64`); on one device these
are the reference that sharded and multi-host runs of the same seeds must
equal bit for bit. No JAX arrays at module scope (tests/conftest.py).
"""

from __future__ import annotations

import functools

import numpy as np

from sims.common.optimizers import OPTIMIZERS, make_optimizer
from sims.linear.engine import make_simulation, seed_keys, simulate
from sims.linear.oracles import GradientOracle, make_oracle
from sims.linear.recording import every_k
from theory.signal import paper_problem

model = functools.lru_cache(maxsize=None)(paper_problem)
OPTS = {name: make_optimizer(name, 0.01) for name in OPTIMIZERS}
STEPS = 300
GRID = every_k(STEPS, 7)
SEEDS = 64

ORACLES = {
    "population": lambda: make_oracle("population", model().spectrum),
    "online": lambda: make_oracle("online", model().spectrum, 5000),
    "online-noise": lambda: make_oracle("online", model().spectrum, 50, label_noise=0.3),
    "online-small-n": lambda: make_oracle("online", model().spectrum, 2),
    "fixed": lambda: make_oracle("fixed", model().spectrum, 50, label_noise=0.1),
    "explicit": lambda: make_oracle("online", model().spectrum, 20, "explicit"),
}


@functools.lru_cache(maxsize=None)
def oracle(kind: str) -> GradientOracle:
    return ORACLES[kind]()


@functools.lru_cache(maxsize=None)
def run64(kind: str) -> np.ndarray:
    """``(64, optimizers, len(GRID), 3)`` records of seeds 0..63 on one device (the default)."""
    return np.asarray(simulate(make_simulation(OPTS, oracle(kind)), model(), seed_keys(SEEDS), GRID).w_freq)
