"""The iteration engine: optax optimizers on the linear signal model.

One step, for every optimizer at once (they share the batch, i.e. common
random numbers across optimizers):

    e~   = C w - w~*                          (frequency-coordinate error)
    g~   = oracle.grad(data, fold_in(stream_key, t), e~)
    g    = C^T g~                             (input-coordinate gradient)
    w    <- w + optimizer.update(g)           (the sign etc. act on g)

The batch drawn at step ``t`` depends only on the seed's key and ``t``, so a
seed's trajectory does not depend on how many seeds run beside it, on the
record grid, on chunking, or on the devices the seeds are sharded over.

Steps run in ``lax.fori_loop`` between record points inside a ``lax.scan``
over the grid, vmapped over seeds, so memory is proportional to the grid.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sims.oracles import GradientOracle, OracleState
from sims.recording import check_grid
from theory.signal import SignalModel, dct_basis

Array = jax.Array


class Simulation(NamedTuple):
    """What to simulate: named optax optimizers and a gradient oracle (static)."""

    names: tuple[str, ...]
    optimizers: tuple[optax.GradientTransformation, ...]
    oracle: GradientOracle


class SimState(NamedTuple):
    """The state of one seed.

    Attributes:
      step: number of steps taken (int32 scalar).
      stream_key: the batch at step ``t`` is drawn from ``fold_in(stream_key, t)``.
      data: the oracle's fixed data (the training set in ``fixed`` mode).
      w: ``(k, d)`` weights of the ``k`` optimizers, input coordinates.
      opt_state: tuple of the optimizers' states.
    """

    step: Array
    stream_key: Array
    data: OracleState
    w: Array
    opt_state: tuple[Any, ...]


class Trajectories(NamedTuple):
    """Recorded weights.

    Attributes:
      names: optimizer names, in the order of axis 1 of ``w_freq``.
      steps: ``(T,)`` the record grid.
      w_freq: ``(seeds, k, T, d)`` weights in frequency coordinates.
    """

    names: tuple[str, ...]
    steps: np.ndarray
    w_freq: Array

    def of(self, name: str) -> Array:
        """``(seeds, T, d)`` weights of one optimizer."""
        return self.w_freq[:, self.names.index(name)]


def make_simulation(optimizers: Mapping[str, optax.GradientTransformation], oracle: GradientOracle) -> Simulation:
    return Simulation(tuple(optimizers), tuple(optimizers.values()), oracle)


def init_state(sim: Simulation, model: SignalModel, key: Array) -> SimState:
    """Initial state of one seed: every optimizer starts at ``w0``."""
    data_key, stream_key = jax.random.split(key)
    basis = dct_basis(model.dim, model.spectrum.dtype)
    w0 = model.w0_freq @ basis  # w = C^T w~, as a row vector
    return SimState(
        step=jnp.zeros((), jnp.int32),
        stream_key=stream_key,
        data=sim.oracle.init(data_key),
        w=jnp.broadcast_to(w0, (len(sim.names), model.dim)),
        opt_state=tuple(opt.init(w0) for opt in sim.optimizers),
    )


def step(sim: Simulation, model: SignalModel, basis: Array, state: SimState) -> SimState:
    """One step of every optimizer on one shared batch."""
    e_freq = state.w @ basis.T - model.w_star_freq
    g = sim.oracle.grad(state.data, jax.random.fold_in(state.stream_key, state.step), e_freq) @ basis
    ws, opt_states = [], []
    for i, opt in enumerate(sim.optimizers):
        updates, s = opt.update(g[i], state.opt_state[i], state.w[i])
        ws.append(optax.apply_updates(state.w[i], updates))
        opt_states.append(s)
    return state._replace(step=state.step + 1, w=jnp.stack(ws), opt_state=tuple(opt_states))


def run_segments(sim: Simulation, model: SignalModel, state: SimState, lengths: Array) -> tuple[SimState, Array]:
    """Runs ``lengths[j]`` steps, then records, for each ``j``.

    Returns:
      The final state and the ``(len(lengths), k, d)`` recorded ``w~``.
    """
    basis = dct_basis(model.dim, model.spectrum.dtype)
    body = lambda _, s: step(sim, model, basis, s)

    def segment(s, n):
        s = jax.lax.fori_loop(0, n, body, s)
        return s, s.w @ basis.T

    return jax.lax.scan(segment, state, lengths)


def seed_keys(seeds: Sequence[int] | int, base_seed: int = 0) -> Array:
    """Keys ``fold_in(key(base_seed), i)`` for each seed index ``i``.

    ``seeds`` is a count (``range(seeds)``) or an explicit list of indices.
    """
    idx = np.arange(seeds) if isinstance(seeds, (int, np.integer)) else np.asarray(seeds)
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(base_seed), i))(jnp.asarray(idx, jnp.uint32))


def simulate(
    sim: Simulation,
    model: SignalModel,
    keys: Array,
    grid,
    *,
    chunks: int = 64,
    progress: Optional[Callable[[int, int], None]] = None,
    devices: Optional[Sequence[jax.Device]] = None,
) -> Trajectories:
    """Runs every seed and optimizer, recording ``w~`` on ``grid``.

    Args:
      sim: from :func:`make_simulation`.
      model: the signal model (shared by all seeds).
      keys: ``(seeds,)`` PRNG keys, e.g. from :func:`seed_keys`.
      grid: record steps, from :mod:`sims.recording` (starts at 0).
      chunks: the compiled scan runs in about this many calls, so that
        ``progress`` can report; results do not depend on it.
      progress: called as ``progress(steps_done, steps_total)`` after each chunk.
      devices: devices to shard the seed axis over (default: all of
        ``jax.devices()``). Seed counts that do not divide evenly are padded.

    Returns:
      :class:`Trajectories` with ``w_freq`` of shape ``(seeds, k, T, d)``.
    """
    grid = check_grid(grid)
    lengths = np.diff(grid).astype(np.int32)
    per_chunk = max(1, math.ceil(len(lengths) / max(1, chunks)))
    n_chunks = math.ceil(len(lengths) / per_chunk)
    padded = np.zeros(n_chunks * per_chunk, np.int32)
    padded[: len(lengths)] = lengths

    devices = list(devices if devices is not None else jax.devices())
    n_seeds = keys.shape[0]
    n_pad = -n_seeds % len(devices)
    if n_pad:  # extra seeds, dropped below, so that every device gets as many
        keys = jnp.concatenate([keys, jnp.broadcast_to(keys[-1:], (n_pad,))])
    sharding = NamedSharding(Mesh(np.array(devices), ("seeds",)), PartitionSpec("seeds"))
    keys = jax.device_put(keys, sharding)

    init = jax.jit(jax.vmap(lambda k: init_state(sim, model, k)), out_shardings=sharding)
    advance = jax.jit(
        jax.vmap(lambda s, n: run_segments(sim, model, s, n), in_axes=(0, None)),
        donate_argnums=0,
    )
    state = init(keys)
    records = [(state.w @ dct_basis(model.dim, model.spectrum.dtype).T)[:, :, None]]
    total, done = int(grid[-1]), 0
    for c in range(n_chunks):
        chunk = padded[c * per_chunk : (c + 1) * per_chunk]
        state, rec = advance(state, jnp.asarray(chunk))
        keep = min(per_chunk, len(lengths) - c * per_chunk)
        records.append(jnp.moveaxis(rec[:, :keep], 1, 2))
        done += int(chunk.sum())
        if progress is not None:
            jax.block_until_ready(state.w)
            progress(done, total)
    w_freq = jnp.concatenate(records, axis=2)[:n_seeds]
    return Trajectories(sim.names, grid, w_freq)
