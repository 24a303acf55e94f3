"""Record steps: the steps at which trajectories are recorded.

Record steps are a sorted, strictly increasing integer array that starts at 0
(the initial point) and ends at ``steps``. The engine only keeps the state at
the record steps, so memory grows with their number, not with the number of
steps.
"""

from __future__ import annotations

import numpy as np


def every_step(steps: int) -> np.ndarray:
    """``0, 1, ..., steps``."""
    return every_k(steps, 1)


def every_k(steps: int, k: int) -> np.ndarray:
    """``0, k, 2k, ...`` and ``steps``."""
    if steps < 0 or k < 1:
        raise ValueError(f"need steps >= 0 and k >= 1, got steps={steps}, k={k}")
    return np.union1d(np.arange(0, steps + 1, k), [steps]).astype(np.int64)


def log_steps(steps: int, points: int = 300) -> np.ndarray:
    """About ``points`` steps, log-spaced from 1 to ``steps``, plus 0.

    Every step below the point where log spacing gets finer than 1 is kept,
    so there are at most ``points + 1`` record steps.
    """
    if steps < 0 or points < 2:
        raise ValueError(f"need steps >= 0 and points >= 2, got steps={steps}, points={points}")
    if steps == 0:
        return np.zeros(1, np.int64)
    record_steps = np.unique(np.round(np.geomspace(1, steps, points)).astype(np.int64))
    return np.concatenate([[0], record_steps])


def check_record_steps(record_steps) -> np.ndarray:
    """Validates record steps: 1-D integers, starting at 0, strictly increasing."""
    record_steps = np.asarray(record_steps)
    if record_steps.ndim != 1 or record_steps.size == 0 or not np.issubdtype(record_steps.dtype, np.integer):
        raise ValueError("record steps are a non-empty 1-D integer array")
    if record_steps[0] != 0 or np.any(np.diff(record_steps) <= 0):
        raise ValueError("record steps start at 0 and are strictly increasing")
    return record_steps.astype(np.int64)
