"""The iteration engine: what it computes, and that how it is run does not matter.

* A seed's trajectory is bit-for-bit the same whether it runs alone or with
  63 others, whatever the record grid, the chunking and the block size.
* The engine equals a naive per-seed loop over the public oracle and optax
  APIs (``g~ = oracle.grad(data, fold_in(stream_key, t), e~)``), for the
  fast (seed-last, blocked) path and for the generic vmapped path.
* Records start with ``w0`` at step 0 and have the grid's length, so memory
  follows the grid, not the number of steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sims.engine import auto_block, is_elementwise, make_simulation, seed_keys, simulate
from sims.optimizers import OPTIMIZERS, make_optimizer
from sims.oracles import GradientOracle, make_oracle
from sims.recording import every_k, log_grid
from theory.signal import dct_basis, paper_model

# No JAX arrays at module scope (tests/conftest.py): the model is built on first use.
_model = functools.lru_cache(maxsize=None)(paper_model)
OPTS = {name: make_optimizer(name, 0.01) for name in OPTIMIZERS}
STEPS = 300
GRID = every_k(STEPS, 7)

ORACLES = {
    "population": lambda: make_oracle("population", _model().spectrum),
    "online": lambda: make_oracle("online", _model().spectrum, 5000),
    "online-noise": lambda: make_oracle("online", _model().spectrum, 50, label_noise=0.3),
    "online-small-n": lambda: make_oracle("online", _model().spectrum, 2),
    "fixed": lambda: make_oracle("fixed", _model().spectrum, 50, label_noise=0.1),
    "explicit": lambda: make_oracle("online", _model().spectrum, 20, "explicit"),
}


@functools.lru_cache(maxsize=None)
def _oracle(kind: str) -> GradientOracle:
    return ORACLES[kind]()


@functools.lru_cache(maxsize=None)
def _run64(kind: str) -> np.ndarray:
    sim = make_simulation(OPTS, _oracle(kind))
    return np.asarray(simulate(sim, _model(), seed_keys(64), GRID).w_freq)


@pytest.mark.parametrize("kind", list(ORACLES))
def test_seed_independent_of_seed_count(kind):
    full = _run64(kind)
    sim = make_simulation(OPTS, _oracle(kind))
    alone = np.asarray(simulate(sim, _model(), seed_keys([5]), GRID).w_freq)
    np.testing.assert_array_equal(alone[0], full[5])
    few = np.asarray(simulate(sim, _model(), seed_keys([17, 3, 40]), GRID).w_freq)
    np.testing.assert_array_equal(few, full[[17, 3, 40]])


@pytest.mark.parametrize("kind", ["population", "online-noise", "explicit"])
def test_grid_chunks_and_block_do_not_change_values(kind):
    full = _run64(kind)
    sim = make_simulation(OPTS, _oracle(kind))
    coarse = np.array([0, 7, 147, STEPS])
    other = np.asarray(simulate(sim, _model(), seed_keys(64), coarse, chunks=2, block=5).w_freq)
    np.testing.assert_array_equal(other, full[:, :, np.searchsorted(GRID, coarse)])
    one_chunk = np.asarray(simulate(sim, _model(), seed_keys(64), GRID, chunks=1, block=64).w_freq)
    np.testing.assert_array_equal(one_chunk, full)


def test_records_start_at_w0_and_follow_the_grid():
    sim = make_simulation(OPTS, _oracle("population"))
    grid = log_grid(100_000, 20)
    calls = []
    traj = simulate(sim, _model(), seed_keys(3), grid, chunks=4, progress=lambda done, total: calls.append((done, total)))
    assert traj.names == tuple(OPTIMIZERS)
    np.testing.assert_array_equal(traj.steps, grid)
    assert traj.w_freq.shape == (3, len(OPTIMIZERS), len(grid), 3)  # memory ~ grid, not 10^5 steps
    np.testing.assert_allclose(np.asarray(traj.w_freq[:, :, 0]), np.broadcast_to(_model().w0_freq, (3, 4, 3)), atol=1e-6)
    assert traj.of("adam").shape == (3, len(grid), 3)
    assert calls[-1] == (100_000, 100_000) and 1 < len(calls) <= 4
    only_start = simulate(sim, _model(), seed_keys(2), np.array([0]))
    assert only_start.w_freq.shape == (2, 4, 1, 3)
    with pytest.raises(ValueError):
        simulate(sim, _model(), seed_keys(2), np.array([1, 2]))


def _naive(oracle: GradientOracle, opts: tuple, key, steps: int):
    """One seed, written from the public APIs: ``(k, steps + 1, d)`` ``w~`` of each optimizer.

    Like the engine it iterates on the error ``e = w - w*`` in input
    coordinates, and shows the optimizers ``w = e + w*``.
    """
    model = _model()
    basis = dct_basis(model.dim, model.spectrum.dtype)
    data_key, stream_key = jax.random.split(key)
    data = oracle.init(data_key)
    w_star = model.w_star_freq @ basis
    e0 = model.e0_freq @ basis

    def body(carry, t):
        out = []
        for opt, (e, s) in zip(opts, carry):
            g = oracle.grad(data, jax.random.fold_in(stream_key, t), (e @ basis.T)[None])[0] @ basis
            u, s = opt.update(g, s, e + w_star)
            out.append((optax.apply_updates(e, u), s))
        return tuple(out), jnp.stack([e @ basis.T + model.w_star_freq for e, _ in out])

    _, ws = jax.lax.scan(body, tuple((e0, opt.init(e0 + w_star)) for opt in opts), jnp.arange(steps))
    return jnp.concatenate([jnp.broadcast_to(model.w0_freq, (1, len(opts), model.dim)), ws]).swapaxes(0, 1)


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _naive_seeds(oracle, opts, keys, steps):
    return jax.vmap(lambda k: _naive(oracle, opts, k, steps))(keys)


@pytest.mark.parametrize("kind", ["population", "online", "online-noise", "fixed", "explicit"])
def test_engine_matches_naive_loop(kind):
    """Same batches, same updates, up to float32 rounding (different fusion)."""
    ref = np.asarray(_naive_seeds(_oracle(kind), tuple(OPTS.values()), seed_keys(64)[np.array([0, 9])], STEPS))
    np.testing.assert_allclose(_run64(kind)[[0, 9]], ref[:, :, GRID], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kind", ["online", "online-noise"])
def test_fast_path_matches_generic_path(kind):
    """An oracle stripped to ``(init, grad)`` runs vmapped over seeds: same numbers."""
    oracle = _oracle(kind)
    generic = make_simulation(OPTS, GradientOracle(oracle.init, oracle.grad))
    got = np.asarray(simulate(generic, _model(), seed_keys(64), GRID).w_freq)
    np.testing.assert_allclose(got, _run64(kind), rtol=1e-5, atol=1e-5)


def test_non_elementwise_optimizer():
    """Global-norm clipping couples coordinates: it is vmapped per seed, and correct."""
    clip = optax.chain(optax.clip_by_global_norm(0.01), optax.sgd(0.5))
    w0 = jnp.zeros(3)
    assert not is_elementwise(clip.update, w0, clip.init(w0), w0)
    for name, opt in OPTS.items():
        assert is_elementwise(opt.update, w0, opt.init(w0), w0), name
    oracle = _oracle("online")
    sim = make_simulation({"clip": clip, "gd": OPTS["gd"]}, oracle)
    traj = np.asarray(simulate(sim, _model(), seed_keys(20), GRID).w_freq)
    alone = np.asarray(simulate(sim, _model(), seed_keys([7]), GRID).w_freq)
    np.testing.assert_array_equal(alone[0], traj[7])
    ref = np.asarray(_naive_seeds(oracle, (clip,), seed_keys(20)[7:8], STEPS))
    np.testing.assert_allclose(traj[7, 0], ref[0, 0, GRID], rtol=2e-5, atol=2e-5)


def test_auto_block():
    assert auto_block(1) == 64 and auto_block(1024) == 8 and auto_block(10**6) == 4


def test_float64():
    with jax.enable_x64(True):
        from theory.signal import make_model

        model = make_model(np.array([0.1, 0.05, 0.0]), np.array([5.0, 10.0, 0.0]), np.array([0.01, -0.01, 0.02]))
        for mode in ("population", "online"):
            sim = make_simulation(OPTS, make_oracle(mode, model.spectrum, 5000))
            w = np.asarray(simulate(sim, model, seed_keys(4), np.array([0, 100])).w_freq)
            assert w.dtype == np.float64
            # GD never moves it; the record C e + w~* rounds each of its d products and sums at
            # u = 2^-53 relative to the terms' sizes, so allow 4 d u (||e||_1 + ||w~*||_1).
            atol = 4 * 3 * 2.0**-53 * (np.abs(model.e0_freq).sum() + np.abs(model.w_star_freq).sum())
            np.testing.assert_allclose(w[:, 0, -1, 2], 0.02, rtol=0, atol=float(atol))
