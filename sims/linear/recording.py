"""Step grids on which trajectories are recorded.

A grid is a sorted, strictly increasing integer array that starts at 0 (the
initial point) and ends at ``steps``. The engine only keeps the state on the
grid, so memory grows with the grid, not with the number of steps.
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
    so the grid has at most ``points + 1`` entries.
    """
    if steps < 0 or points < 2:
        raise ValueError(f"need steps >= 0 and points >= 2, got steps={steps}, points={points}")
    if steps == 0:
        return np.zeros(1, np.int64)
    grid = np.unique(np.round(np.geomspace(1, steps, points)).astype(np.int64))
    return np.concatenate([[0], grid])


def check_record_steps(grid) -> np.ndarray:
    """Validates a grid: 1-D integers, starting at 0, strictly increasing."""
    grid = np.asarray(grid)
    if grid.ndim != 1 or grid.size == 0 or not np.issubdtype(grid.dtype, np.integer):
        raise ValueError("a record grid is a non-empty 1-D integer array")
    if grid[0] != 0 or np.any(np.diff(grid) <= 0):
        raise ValueError("a record grid starts at 0 and is strictly increasing")
    return grid.astype(np.int64)
